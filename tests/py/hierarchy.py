# A call hierarchy with the shapes scripts must indent right: nesting,
# recursion, a generator, a coroutine, a class with __init__, a context
# manager, a caught exception, a lambda and a comprehension. Nothing is
# printed on stdout. With `--oracle FILE`, main() runs under
# sys.setprofile and each Python call and return of this file is written
# to FILE as `E|R name line depth`: what the markers must show.
import sys


def leaf(x):
    return x + 1


def middle(x):
    return leaf(x) * 2


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def gen(n):
    for i in range(n):
        yield i


async def co():
    return 5


class Point:
    def __init__(self, x):
        self.x = x

    def norm(self):
        return abs(self.x)


class Managed:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def raiser():
    raise ValueError("boom")


def catcher():
    try:
        raiser()
    except ValueError:
        return -1


def main():
    middle(1)
    fact(4)
    total = sum(gen(3))
    c = co()
    try:
        c.send(None)
    except StopIteration:
        pass
    p = Point(-3)
    p.norm()
    with Managed():
        leaf(0)
    catcher()
    square = lambda v: v * v
    square(total)
    [leaf(i) for i in range(2)]
    return total


if len(sys.argv) > 2 and sys.argv[1] == "--oracle":
    import setprofile_oracle

    setprofile_oracle.record(main, __file__, sys.argv[2])
else:
    main()
