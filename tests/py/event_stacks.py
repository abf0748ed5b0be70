"""Events whose stacks are known, for `pytap trace --stacks`
(tests/kernel/trace_stacks.rs): a collection, the import of a module no
one imported before (written to a temporary directory) and an audit event,
each from a known call chain, each between two `pytap.step` audit events.

At each event the program writes its own view of its stack to the oracle
file ($PYTAP_ORACLE), one JSON line per event: the `sys._getframe()` chain,
innermost first, each frame's qualified name where the version has one,
file and current line. The event and `here()` are on one line, so every
frame is on the same line at both moments.
"""

import gc
import json
import os
import sys
import tempfile
import time

# Only the collections asked for below.
gc.disable()

ORACLE = open(os.environ["PYTAP_ORACLE"], "w")
FRESH = tempfile.mkdtemp(prefix="pytap-fresh-")
with open(os.path.join(FRESH, "pytap_fresh_module.py"), "w") as f:
    f.write("VALUE = 42\n")
sys.path.insert(0, FRESH)


def here(what):
    """The caller's stack, innermost first, into the oracle."""
    frame = sys._getframe(1)
    frames = []
    while frame is not None:
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        frames.append(
            {"funcname": name, "filename": code.co_filename, "lineno": frame.f_lineno}
        )
        frame = frame.f_back
    ORACLE.write(json.dumps({"what": what, "stack": frames}) + "\n")


def step(what):
    here("step " + what); sys.audit("pytap.step", what)  # noqa: E702


class Collector:
    def collect(self):
        step("gc")
        here("gc"); gc.collect()  # noqa: E702
        step("gc done")


def importer():
    def inner():
        step("import")
        here("import"); import pytap_fresh_module  # noqa: E401,E702
        step("import done")
        return pytap_fresh_module.VALUE

    return inner()


def auditor(depth):
    if depth:
        return auditor(depth - 1)
    here("audit"); sys.audit("pytap.test", "audit", depth)  # noqa: E702


def main():
    # An embedding program maps libpython after its exec: pytap finds its
    # interpreter at its first events (start-up's imports), and events
    # before that have no stack (docs/output.md). Let it find it first.
    time.sleep(0.3)
    Collector().collect()
    assert importer() == 42
    auditor(3)
    ORACLE.close()
    # pytap names a stack's frames from this process's memory shortly
    # after the event (milliseconds, more on a loaded machine); the
    # interpreter's exit frees these functions' code, and a frame whose
    # code is gone is shown unknown, never guessed. Stay a moment.
    time.sleep(0.5)


if __name__ == "__main__":
    main()
