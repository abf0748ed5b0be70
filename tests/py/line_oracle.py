"""The interpreter's own answer to "which line is this instruction on", for
every code object of a few stdlib modules (tests/cli/linetables.rs holds
pytap's line table decoder to it).

Prints one JSON object: the version and, per code object (recursively
through co_consts), its raw line table (hex: co_lnotab on 3.8-3.9,
co_linetable on 3.10+), co_firstlineno, len(co_code) and the line of every
instruction offset 0, 2, 4, ... < len(co_code), None where there is none.

The lines come from the interpreter's public API, not from the table: on
3.10+ co_lines() (the range holding the offset), on 3.8-3.9
dis.findlinestarts (the last start at or before the offset). Runs on 3.8+
with no third-party modules; works on every version the tests run.
"""
import dis
import importlib.util
import json
import sys

MODULES = ["textwrap", "difflib", "email.feedparser", "json.decoder", "argparse", "fractions"]

# What the stdlib rarely has: one line of more than 255 bytes of bytecode
# (lnotab and PEP 626 split its address step), and line steps beyond a
# signed byte both ways (a loop whose body ends 300 lines below its head).
BLANK = "\n" * 300
SYNTHETIC = (
    "def long_line(" + ", ".join("a%d" % i for i in range(120)) + "):\n"
    "    total = " + " + ".join("a%d" % i for i in range(120)) + "\n"
    "    return total\n"
    "def far_loop(xs):\n"
    "    total = 0\n"
    "    for x in xs:\n"
    "        total += x" + BLANK + "\n"
    "        total -= 1\n"
    "    while total < 10:" + BLANK + "\n"
    "        total += 1\n"
    "    return total\n"
)


def lines_of(code):
    size = len(code.co_code)
    offsets = range(0, size, 2)
    if sys.version_info >= (3, 10):
        ranges = list(code.co_lines())
        out = []
        for off in offsets:
            line = None
            for start, end, ln in ranges:
                if start <= off < end:
                    line = ln
                    break
            out.append(line)
        return out
    starts = list(dis.findlinestarts(code))
    out = []
    for off in offsets:
        line = None
        for start, ln in starts:
            if start <= off:
                line = ln
            else:
                break
        out.append(line)
    return out


def walk(code, module, out):
    table = code.co_lnotab if sys.version_info < (3, 10) else code.co_linetable
    out.append({
        "module": module,
        "name": getattr(code, "co_qualname", code.co_name),
        "firstlineno": code.co_firstlineno,
        "table": table.hex(),
        "code_len": len(code.co_code),
        "lines": lines_of(code),
    })
    for const in code.co_consts:
        if isinstance(const, type(code)):
            walk(const, module, out)


def main():
    codes = []
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        # The module's code as the interpreter would run it (from its .pyc
        # or compiled from source now), without executing it.
        walk(spec.loader.get_code(name), name, codes)
    walk(compile(SYNTHETIC, "<synthetic>", "exec"), "<synthetic>", codes)
    json.dump({"version": sys.version.split()[0], "codes": codes}, sys.stdout)


main()
