# Code compiled with fresh names in a loop, for pytap's names-sent-once
# test: each round's file name and function name are new str objects,
# freed when the round ends, so later rounds' names tend to reuse their
# addresses with other text. Writes each round's name addresses to argv[1];
# with `--oracle FILE` after it, the calls and returns of the fresh code as
# sys.setprofile sees them (`E|R filename funcname`).
import sys

ROUNDS = 300


def one_round(i):
    # Lengths vary, so an address reused holds another text.
    name = "fresh_%d_%s" % (i, "x" * (i % 5))
    filename = "<fresh %d %s>" % (i, "y" * (i % 3))
    source = "def %s(n):\n    return n + 1\n%s(%d)\n" % (name, name, i)
    code = compile(source, filename, "exec")
    func_code = code.co_consts[0]
    addresses = (id(code.co_filename), id(func_code.co_name))
    namespace = {}
    exec(code, namespace)
    # The function and its globals form a cycle: break it, so the round's
    # code and names are freed now rather than at a collection.
    namespace.clear()
    return addresses


def main(addresses_path, oracle_path=None):
    events = []

    def profile(frame, event, arg):
        if event in ("call", "return") and frame.f_code.co_filename.startswith("<fresh"):
            kind = "E" if event == "call" else "R"
            events.append("%s %s %s" % (kind, frame.f_code.co_filename, frame.f_code.co_name))

    if oracle_path:
        sys.setprofile(profile)
    addresses = [one_round(i) for i in range(ROUNDS)]
    sys.setprofile(None)
    with open(addresses_path, "w") as f:
        f.write("".join("%d %d\n" % a for a in addresses))
    if oracle_path:
        with open(oracle_path, "w") as f:
            f.write("\n".join(events) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--oracle" else None)
