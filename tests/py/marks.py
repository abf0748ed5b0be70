"""gc collections, imports and audit events, with the interpreter's own
record of them: `gc.get_stats()` before and after, and an audit hook's
list of the events between the `pytap.begin` and `pytap.end` audit events
(written to argv[1] as JSON); run it with `-X importtime` for the imports.

Everything pytap's agent may import itself is imported, and the path
finders' caches filled, before the workload, which runs with automatic
collections off: the same events then happen with the agent and without.
"""
import gc
import json
import mmap  # noqa: F401
import os
import struct  # noqa: F401
import sys
import threading
import time  # noqa: F401

try:
    import pytap_test_none_before  # noqa: F401
except ImportError:
    pass
gc.disable()
gc.collect()

recording = False
seen = []


def simple(v):
    """An argument as pytap's JSON writes it, for the simple ones; "*" for
    the rest."""
    if v is None or type(v) in (bool, float):
        return v
    if type(v) is int and abs(v) < 2**53:
        return v
    if type(v) is str and len(v) <= 40 and v.isascii() and v.isprintable():
        return v
    return "*"


def hook(event, args):
    if recording:
        seen.append([event, [simple(a) for a in args]])


sys.addaudithook(hook)
before = gc.get_stats()
import colorsys  # noqa: E402,F401 (where the workload's imports start)

recording = True
sys.audit("pytap.begin")


class Node:
    pass


gc.collect()
for i in range(3):
    n = Node()
    n.me = n
    del n
    gc.collect(1)
import difflib  # noqa: E402,F401
import importlib  # noqa: E402

importlib.import_module("fractions")
try:
    import pytap_test_none  # noqa: F401
except ImportError:
    pass
sys.audit("pytap.values", 1, -2**70, 2**2000, "two", "\xe9" * 300, "\u20ac" * 10,
          "\U0001f600" * 100, b"three" * 100, (4, 5.0, None, "x" * 200, (1, 2), 7), True,
          [6], 1.5)
import email.message  # noqa: E402,F401


def worker():
    gc.collect(0)
    sys.audit("pytap.worker", threading.current_thread().name)


t = threading.Thread(target=worker, name="w1")
t.start()
t.join()
open(os.devnull).close()
sys.audit("pytap.end")
recording = False
after = gc.get_stats()
with open(sys.argv[1], "w") as f:
    json.dump({"audit": seen, "before": before, "after": after}, f)
sys.stdout.flush()
os._exit(0)
