# Generators, coroutines and async generators, for pytap's flow tests: on
# 3.15 each creation fires function__entry with no return, and flow must
# show the same depths as on 3.9, where creation fires nothing.


def gen(n):
    for i in range(n):
        yield i


def make(n):
    return gen(n)


async def co(x):
    return x + 1


async def agen(n):
    for i in range(n):
        yield i


def unused():
    gen(5)
    return 0


def drive(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    except StopAsyncIteration:
        return None


def main():
    g = make(2)
    for _ in g:
        unused()
    drive(co(1))
    a = agen(1)
    drive(a.asend(None))
    drive(a.asend(None))
    list(gen(1))


main()
