# Threads, generators (with throw), a coroutine, recursion and exceptions
# unwinding through frames: what flow must show exactly per thread. With
# `--oracle FILE`, every thread runs under sys.setprofile/threading.setprofile
# and each Python call and return of this file is written to FILE as
# `THREAD E|R name line depth` (THREAD: the thread's own index).
import sys
import threading


def leaf(x):
    return x + 1


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def gen(n):
    for i in range(n):
        try:
            yield i
        except KeyError:
            yield -1


async def co(x):
    return leaf(x)


def deep_raise(n):
    if n == 0:
        raise ValueError(n)
    return deep_raise(n - 1)


def catcher(n):
    try:
        deep_raise(n)
    except ValueError:
        return -1


def work(k):
    fact(k + 2)
    g = gen(3)
    next(g)
    g.throw(KeyError)
    list(g)
    c = co(k)
    try:
        c.send(None)
    except StopIteration:
        pass
    catcher(k)
    return [leaf(i) for i in range(k)]


def main():
    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work(0)


if len(sys.argv) > 2 and sys.argv[1] == "--oracle":
    events = []
    depths = {}
    lock = threading.Lock()
    # Threads by a per-thread number: an ident is reused once a thread ends.
    local = threading.local()
    numbers = iter(range(1000))

    def profile(frame, event, arg):
        code = frame.f_code
        if code.co_filename != __file__ or event not in ("call", "return"):
            return
        try:
            me = local.me
        except AttributeError:
            me = local.me = next(numbers)
        with lock:
            depth = depths.setdefault(me, 0)
            if event == "call":
                events.append((me, f"E {code.co_name} {frame.f_lineno} {depth}"))
                depths[me] = depth + 1
            else:
                depths[me] = depth - 1
                events.append((me, f"R {code.co_name} {frame.f_lineno} {depth - 1}"))

    threading.setprofile(profile)
    sys.setprofile(profile)
    main()
    sys.setprofile(None)
    threading.setprofile(None)
    names = {}
    with open(sys.argv[2], "w") as f:
        for me, line in events:
            f.write(f"{names.setdefault(me, len(names))} {line}\n")
else:
    main()
