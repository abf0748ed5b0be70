# Names a program chooses that would drive a terminal: a function whose
# name holds an OSC sequence (set the window title) and a bell, and a
# thread whose kernel name (what execname() and flow show) is a colour
# escape. Calls the function three times from that thread (each call long
# enough to be drawn in a flame graph).
import ctypes
import threading

PR_SET_NAME = 15


def f():
    return sum(range(300_000))


f.__code__ = f.__code__.replace(co_name="x\x1b]0;pwned\x07")


def run():
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_NAME, b"\x1b[31m\x9b", 0, 0, 0)
    for _ in range(3):
        f()


t = threading.Thread(target=run)
t.start()
t.join()
