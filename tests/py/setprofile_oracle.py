# The oracle the hierarchy tests compare pytap's output with: runs
# `entry()` under sys.setprofile and writes each Python call and return of
# `source` (a file name) to `path` as `E|R name line depth`.
import sys


def record(entry, source, path):
    events = []
    depth = [0]

    def profile(frame, event, arg):
        code = frame.f_code
        if code.co_filename != source:
            return
        if event == "call":
            events.append(f"E {code.co_name} {frame.f_lineno} {depth[0]}")
            depth[0] += 1
        elif event == "return":
            depth[0] -= 1
            events.append(f"R {code.co_name} {frame.f_lineno} {depth[0]}")

    sys.setprofile(profile)
    entry()
    sys.setprofile(None)
    with open(path, "w") as f:
        f.write("\n".join(events) + "\n")
