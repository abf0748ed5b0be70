# A program with its own sys.monitoring tool (as coverage or a debugger
# has): it counts its calls of work() on the coverage tool id and prints
# what it saw, which must be the same traced and untraced. It also prints
# what it can see of its environment, which pytap's agent must not change.
import os
import sys

calls = 0


def counter(code, offset):
    global calls
    if code.co_name == "work":
        calls += 1


def work(i):
    return i * 3


def gen():
    yield from range(3)


mon = sys.monitoring
mon.use_tool_id(mon.COVERAGE_ID, "mine")
mon.register_callback(mon.COVERAGE_ID, mon.events.PY_START, counter)
mon.set_events(mon.COVERAGE_ID, mon.events.PY_START)
total = sum(work(i) for i in range(1000)) + sum(gen())
mon.set_events(mon.COVERAGE_ID, 0)
mon.free_tool_id(mon.COVERAGE_ID)
try:
    raise KeyError("x")
except KeyError as e:
    caught = repr(e)
print("calls", calls, "total", total, "caught", caught)
print("PYTHONPATH", os.environ.get("PYTHONPATH"))
print("pytap vars", sorted(k for k in os.environ if k.startswith("PYTAP")))
print("path", [p for p in sys.path if "pytap" in p])
print("tools", [mon.get_tool(i) for i in range(6)])
