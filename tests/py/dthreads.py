# Threads that each call work() a known number of times: aggregation
# one-liners must count every call exactly (4 threads x 2500 calls).
import threading


def work(i):
    return i * 2


def run():
    for i in range(2500):
        work(i)


threads = [threading.Thread(target=run) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
