# Makes calls while writing lines to stdout, each line in one write(2),
# for the tests that share a pipe between pytap and the program.
import os
import sys


def work(i):
    return i * 2


for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2000):
    work(i)
    os.write(1, (f"program line {i:05d} " + "x" * 40 + "\n").encode())
