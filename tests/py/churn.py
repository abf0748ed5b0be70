# Starts and ends threads for SECS seconds (argv[1]), about RATE a second
# (argv[2], default as fast as it can), eight at a time, each calling a few
# functions and sending an audit event (the first of each eight also
# imports a module afresh and collects garbage): the per-thread state a
# tool keeps must go when its thread does. Prints "ready" first and the
# number of threads it made last.
import gc
import sys
import threading
import time


def leaf(i):
    return i * 2


def work(i):
    for j in range(20):
        leaf(j)
    if i == 0:
        # One import at a time (the batch's first thread): imported afresh.
        sys.modules.pop("colorsys", None)
        import colorsys  # noqa: F401
        gc.collect(0)
    sys.audit("churn.work", i)


def churn(secs, rate):
    end = time.monotonic() + secs
    made = 0
    while time.monotonic() < end:
        began = time.monotonic()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        made += len(threads)
        if rate:
            time.sleep(max(0.0, len(threads) / rate - (time.monotonic() - began)))
    return made


print("ready", flush=True)
print(churn(float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0), flush=True)
