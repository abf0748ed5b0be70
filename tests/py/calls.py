# A workload with known calls, for pytap's tests. Line numbers matter: the
# tests expect the `def` lines below. Nothing is printed on stdout.
import sys
import threading


def leaf(x):
    return x + 1


def middle(x):
    return leaf(x) * 2


def outer(n):
    total = 0
    for i in range(n):
        total += middle(i)
    return total


def gen(n):
    for i in range(n):
        yield i


def raiser():
    raise ValueError("boom")


def catcher():
    try:
        raiser()
    except ValueError:
        return "caught"


class K:
    def __init__(self, v):
        self.v = v


def keyf(k):
    return -k.v


def worker(n):
    return outer(n)


def main():
    outer(3)
    sum(gen(4))
    catcher()
    sorted([K(i) for i in range(3)], key=keyf)
    t = threading.Thread(target=worker, args=(2,))
    t.start()
    t.join()


main()
