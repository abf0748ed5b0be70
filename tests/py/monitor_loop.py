# Runs for argv[2] seconds at most, or until the file argv[1] + ".stop"
# exists, calling functions all the time, and writes to the file argv[1]
# what sys.monitoring's tool ids hold, every 0.05 s: `TOOLS name|None ...`.
# The detach tests watch pytap's tool come and go.
import os
import sys
import time


def tick(i):
    return i + 1


path = sys.argv[1]
deadline = time.monotonic() + float(sys.argv[2])
i = 0
last = 0.0
while time.monotonic() < deadline:
    i = tick(i)
    now = time.monotonic()
    if now - last >= 0.05:
        last = now
        tools = " ".join(str(sys.monitoring.get_tool(t)) for t in range(6))
        with open(path, "a") as f:
            f.write(f"TOOLS {tools}\n")
        if os.path.exists(path + ".stop"):
            break
print("done", i > 0)
