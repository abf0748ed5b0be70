import gc
import sys


def greet(name):
    return f"hello {name}"


def main():
    greet("world")
    import colorsys  # noqa: F401  (an import the markers see)
    gc.collect(0)
    sys.audit("demo.event", 42, "text", b"\x00\x01", None, (1, 2.5))


main()
