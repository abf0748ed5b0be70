# multiprocessing.Pool(4).map(f, range(400)): exactly 400 calls of f, made
# in the worker processes. argv[1], if given, is the start method.
import multiprocessing
import sys


def f(x):
    return x * x


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    context = multiprocessing.get_context(method)
    with context.Pool(4) as pool:
        print(sum(pool.map(f, range(400))))
