# Calls in two bursts more than two timer intervals apart, for top.stp's
# exact counts: burst 1 right away, burst 2 at 2.4 s, exit at 3.3 s. With a
# 1-second timer started when tracing starts, each burst lands in one
# interval, and at least one tick falls between them even when a loaded
# machine delays a tick or the interpreter's start by most of a second.
# Prints how many calls each burst made.
import time

start = time.monotonic()


def f():
    pass


def g():
    pass


for _ in range(1000):
    f()
for _ in range(500):
    g()
time.sleep(max(0.0, 2.4 - (time.monotonic() - start)))
for _ in range(300):
    f()
time.sleep(max(0.0, 3.3 - (time.monotonic() - start)))
print("f 1000 g 500 / f 300")
