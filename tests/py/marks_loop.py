"""Collections, imports and audit events in a loop, for pytap's agent to
give and then leave: each round writes to argv[1] what of the agent the
program can see (gc.callbacks, sys.monitoring's tools, the profile
function); it stops after argv[2] rounds or when argv[1] + ".stop"
exists, and prints "done"."""
import gc
import os
import sys
import time

out, rounds = sys.argv[1], int(sys.argv[2])
for i in range(rounds):
    if os.path.exists(out + ".stop"):
        break
    sys.audit("loop.round", i)
    gc.collect(0)
    try:
        import pytap_loop_none  # noqa: F401
    except ImportError:
        pass
    mon = getattr(sys, "monitoring", None)
    tools = [mon.get_tool(t) for t in range(6)] if mon else []
    with open(out, "a") as f:
        f.write("ROUND %d callbacks=%d profile=%s tools=%s\n"
                % (i, len(gc.callbacks), sys.getprofile() is not None,
                   [t for t in tools if t is not None]))
    time.sleep(0.01)
print("done")
