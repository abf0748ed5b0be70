"""Two threads parked in known call chains, and their stacks as the
interpreter itself sees them (the oracle for `pytap dump`).

Usage: parked.py ORACLE_FILE. A reporter thread waits until both threads
are parked, writes ORACLE_FILE (JSON: per thread its ident, native id where
the version has one, and frames innermost first as (function, file, line),
the function being co_qualname on 3.11+ and co_name before) from
sys._current_frames(), then ends; the two parked threads stay until the
process is killed.
"""
import json
import os
import sys
import threading
import time

parked = threading.Event()
forever = threading.Event()


def h():
    parked.set()
    forever.wait()


def g():
    h()


def f():
    g()


class K:
    def work(self):
        f()


def worker():
    K().work()


def main_loop():
    while True:
        time.sleep(3600)


def function(code):
    return getattr(code, "co_qualname", code.co_name)


def report(path, main_ident, worker_thread):
    parked.wait()
    # Let both threads reach their blocking call (the main thread's sleep).
    deadline = time.time() + 10
    while time.time() < deadline:
        frames = sys._current_frames()
        top = frames.get(main_ident)
        if top is not None and top.f_code.co_name == "main_loop":
            wtop = frames.get(worker_thread.ident)
            if wtop is not None and wtop.f_code.co_name == "wait":
                break
        time.sleep(0.01)
    time.sleep(0.1)
    frames = sys._current_frames()
    out = []
    for ident in (main_ident, worker_thread.ident):
        stack = []
        frame = frames[ident]
        while frame is not None:
            stack.append([function(frame.f_code), frame.f_code.co_filename, frame.f_lineno])
            frame = frame.f_back
        native = getattr(worker_thread, "native_id", None) if ident != main_ident else threading.main_thread().native_id if hasattr(threading.main_thread(), "native_id") else None
        out.append({"ident": ident, "native_id": native, "frames": stack})
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(out, fh)
    os.rename(tmp, path)


if __name__ == "__main__":
    w = threading.Thread(target=worker, name="worker", daemon=True)
    w.start()
    threading.Thread(target=report, args=(sys.argv[1], threading.get_ident(), w), daemon=True).start()
    main_loop()
