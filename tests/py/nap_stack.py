"""A known Python stack at a call that releases the GIL, and its truth.

Usage: nap_stack.py ORACLE_FILE. `inner` calls `time.sleep()` (which
releases the GIL and calls libc's `clock_nanosleep`) once, on the line
where it takes its own `traceback.extract_stack()`; the frames
(innermost first, `file:line (function)`) are written to ORACLE_FILE.
Nothing else in the program sleeps before it; the last sleep keeps the
process alive while pytap names the stack (without a Python caller of
its own: it is not a sleep a probe of the test counts).
"""
import sys
import time
import traceback


def inner(oracle):
    frames = traceback.extract_stack(); time.sleep(0.05)  # noqa: E702 (one line: the oracle's line is the call's)
    with open(oracle, "w") as f:
        for fr in reversed(frames):
            f.write(f"{fr.filename}:{fr.lineno} ({fr.name})\n")


def middle(oracle):
    inner(oracle)


def outer(oracle):
    middle(oracle)


outer(sys.argv[1])
time.sleep(0.3)
