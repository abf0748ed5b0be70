# Calls in two bursts a timer interval apart, for top.stp's exact counts:
# burst 1 right away, burst 2 at 1.4 s, exit at 2.3 s. With a 1-second
# timer started when tracing starts, each burst lands in one interval.
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
time.sleep(max(0.0, 1.4 - (time.monotonic() - start)))
for _ in range(300):
    f()
time.sleep(max(0.0, 2.3 - (time.monotonic() - start)))
print("f 1000 g 500 / f 300")
