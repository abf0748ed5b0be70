"""A known Python stack at an audit event, and its truth.

Usage: jstack.py ORACLE_FILE. `inner` raises the audit event
"pytap.jstack" three times, on the line where it takes its own
`traceback.extract_stack()`, whose frames (innermost first, `file:line (function)`) are written to
ORACLE_FILE once. The sleeps keep the process alive while pytap names
the stacks.
"""
import sys
import time
import traceback


def inner(oracle):
    frames = traceback.extract_stack(); sys.audit("pytap.jstack")  # noqa: E702 (one line: the oracle's line is the event's)
    if oracle is not None:
        with open(oracle, "w") as f:
            for fr in reversed(frames):
                f.write(f"{fr.filename}:{fr.lineno} ({fr.name})\n")
    time.sleep(0.2)


def middle(oracle):
    inner(oracle)


def outer(oracle):
    for i in range(3):
        middle(oracle if i == 0 else None)


outer(sys.argv[1])
time.sleep(0.3)
