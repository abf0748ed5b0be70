"""The floor of any sys.monitoring capture, for bench_capture.py: runs a
script (argv[2:]) with a built-in that does next to nothing (`slice`, which
takes the 2 or 3 arguments CPython passes) registered as the callback of
PY_START, and of PY_RETURN too when argv[1] is "both" ("entry": PY_START
only). Nothing is recorded; what the program loses is the cost of
CPython calling a compiled callback at all."""

import runpy
import sys

mode = sys.argv[1]
script = sys.argv[2]
mon = sys.monitoring
events = mon.events.PY_START
mon.use_tool_id(mon.PROFILER_ID, "floor")
mon.register_callback(mon.PROFILER_ID, mon.events.PY_START, slice)
if mode == "both":
    mon.register_callback(mon.PROFILER_ID, mon.events.PY_RETURN, slice)
    events |= mon.events.PY_RETURN
mon.set_events(mon.PROFILER_ID, events)
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
