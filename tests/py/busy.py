# Calls a function in a loop until stdin closes, then reports and exits 0:
# the tests check that tracing and detaching never change its behaviour.
import sys
import threading
import time

done = threading.Event()


def wait_for_eof():
    sys.stdin.read()
    done.set()


def tick(i):
    return i + 1


threading.Thread(target=wait_for_eof, daemon=True).start()
print("ready", flush=True)
i = 0
while not done.is_set():
    i = tick(i)
    if i % 50 == 0:
        time.sleep(0.001)
print("done", i > 0, flush=True)
