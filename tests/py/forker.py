# Prints "ready", waits for a line on stdin, then forks a child that calls
# in_child() 5 times; with "linger" the child then waits on stdin too
# (so it outlives whatever traced it). The parent waits for the child.
import os
import sys


def in_child(i):
    return i


print("ready", flush=True)
sys.stdin.readline()
pid = os.fork()
if pid == 0:
    for i in range(5):
        in_child(i)
    print("child pid", os.getpid(), flush=True)
    if sys.argv[1:] == ["linger"]:
        sys.stdin.readline()
    os._exit(0)
os.waitpid(pid, 0)
print("parent done", flush=True)
