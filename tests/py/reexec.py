# Calls f(), then executes itself again (os.execv) with one round fewer,
# from inside two frames: `flow` must start each new program at depth 0
# (an exec ends every frame of the process).
import os
import sys


def f():
    return 1


def again(rounds):
    os.execv(sys.executable, [sys.executable, __file__, str(rounds - 1)])


def main(rounds):
    f()
    if rounds > 0:
        again(rounds)


main(int(sys.argv[1]))
