"""Targets whose stacks a sampler must see exactly.

Usage: sampled.py MODE [ARG]. Prints "ready" (and, where the test needs
them, `tid NAME NATIVE_ID` lines) once the shape is running; runs until
killed.

  depth N   recurses N levels below `recurse(N)` and spins on one line
            (SPIN_LINE) in `recurse(0)`
  ratio     `three` and `one` burn CPU in a 3:1 ratio, in turns
  sleeper   the main thread spins; a thread named "sleeper" sleeps in `nap`
  chain N   N distinct functions `c_0` … `c_{N-1}` calling each other,
            spinning in the last
  fresh N   compiles N functions `f_I` (file `gen_I.py`), each with its
            own name and file, and runs each once for 5 ms; their code
            objects are freed at once, so their memory is reused. Prints
            `ids D` (distinct code addresses) at the end and waits
  gil       a thread spins in Python (`py_spin`), another checksums in C with
            the GIL released (`c_spin`)
  through_c `through_c` sorts with `key` as the key function: the eval
            loop calls C (the sort), which calls the eval loop again, where
            `key` spins (KEY_LINE)
"""
import sys
import threading
import time
import zlib


def recurse(n):
    if n == 0:
        x = 0
        while True: x += 1  # noqa: E701 (one line: the loop's jump is on it too) SPIN_LINE
    recurse(n - 1)


def burn(seconds):
    # CPU time, not wall time: a loaded machine that preempts the target
    # must not change the ratio of CPU the functions burn.
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def three():
    burn(0.003)


def one():
    burn(0.001)


def nap():
    while True:
        time.sleep(3600)


def py_spin():
    x = 0
    while True:
        x += 1


def c_spin():
    data = b"x" * (64 << 20)
    while True:
        # crc32 of a large buffer releases the GIL on every version (3.9's
        # hashlib does not, measured: the other thread barely ran).
        zlib.crc32(data)


def key(item):
    x = 0
    while True: x += 1  # noqa: E701 KEY_LINE


def through_c():
    sorted([2, 1], key=key)


def say_thread(name, thread):
    print("tid", name, thread.native_id, flush=True)


def main():
    mode = sys.argv[1]
    if mode == "depth":
        print("ready", flush=True)
        recurse(int(sys.argv[2]))
    elif mode == "ratio":
        print("ready", flush=True)
        while True:
            three()
            one()
    elif mode == "sleeper":
        t = threading.Thread(target=nap, name="sleeper", daemon=True)
        t.start()
        say_thread("sleeper", t)
        say_thread("main", threading.main_thread())
        print("ready", flush=True)
        py_spin()
    elif mode == "through_c":
        print("ready", flush=True)
        through_c()
    elif mode == "chain":
        n = int(sys.argv[2])
        source = "def c_%d():\n    x = 0\n    while True: x += 1\n" % (n - 1)
        for i in range(n - 1):
            source += "def c_%d():\n    c_%d()\n" % (i, i + 1)
        space = {}
        exec(compile(source, "chain.py", "exec"), space)
        print("ready", flush=True)
        space["c_0"]()
    elif mode == "fresh":
        print("ready", flush=True)
        time.sleep(0.3)
        ids = set()
        for i in range(int(sys.argv[2])):
            source = "def f_%d(burn):\n    burn(0.005)\n" % i
            space = {}
            exec(compile(source, "gen_%d.py" % i, "exec"), space)
            f = space["f_%d" % i]
            ids.add(id(f.__code__))
            f(burn)
            # The function and its globals refer to each other: break the
            # cycle so the code is freed now, not at a collection.
            space.clear()
            del f, space
        print("ids", len(ids), flush=True)
        threading.Event().wait()
    elif mode == "gil":
        a = threading.Thread(target=py_spin, name="py", daemon=True)
        b = threading.Thread(target=c_spin, name="c", daemon=True)
        a.start()
        b.start()
        say_thread("py", a)
        say_thread("c", b)
        print("ready", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
