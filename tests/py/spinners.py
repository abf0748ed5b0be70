# Two threads spinning on the CPU until a line arrives on stdin, for the
# sampler's kernel test. Before spinning, every thread's ids are printed,
# one line each: `thread NATIVE_ID IDENT` for the spinners, then
# `main NATIVE_ID IDENT PID` and `ready`. NATIVE_ID is the kernel's tid;
# IDENT is threading.get_ident(), pthread_self(), which on x86-64 glibc is
# the thread pointer the kernel keeps as the task's fsbase.
import os
import sys
import threading

stop = False
ids = []
started = threading.Barrier(3)


def spin():
    ids.append((threading.get_native_id(), threading.get_ident()))
    started.wait()
    n = 0
    while not stop:
        n += 1


spinners = [threading.Thread(target=spin, name=f"spinner{i}") for i in range(2)]
for t in spinners:
    t.start()
started.wait()
for native_id, ident in ids:
    print(f"thread {native_id} {ident}")
print(f"main {threading.get_native_id()} {threading.get_ident()} {os.getpid()}")
print("ready", flush=True)
sys.stdin.readline()
stop = True
for t in spinners:
    t.join()
