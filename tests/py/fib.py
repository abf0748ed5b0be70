# The benchmark's workload: recursive fib under start() (call_stack.d, --within
# start); the calls' time (s) goes to the file argv[2], so start-up never counts.
import os
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def start(n):
    return fib(n)


n = int(sys.argv[1])
if "PYTAP_BENCH_CPU" in os.environ:  # the benchmark pins the calls
    os.sched_setaffinity(0, {int(os.environ["PYTAP_BENCH_CPU"])})
began = time.perf_counter()
start(n)
elapsed = time.perf_counter() - began
with open(sys.argv[2], "w") as f:
    f.write(f"{elapsed:.6f}\n")
