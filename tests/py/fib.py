# The benchmark's call-heavy workload: recursive fib. Prints how long the
# calls took (seconds) to the file named by argv[2], so tracer start-up and
# output never count.
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


n = int(sys.argv[1])
start = time.perf_counter()
fib(n)
elapsed = time.perf_counter() - start
with open(sys.argv[2], "w") as f:
    f.write(f"{elapsed:.6f}\n")
