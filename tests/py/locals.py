"""A thread parked with known local variables (the oracle of `pytap dump
--locals`): prints "ready", then waits until killed."""
import threading


def parked(n=42, big=-(2**70), s="héllo", b=b"\x00x", f=2.5, none=None, flag=True,
           items=[1, 2, 3], pair=(1, "a"), d={"a": 1}, obj=threading):
    cell = 7

    def closure():
        return cell

    ready = threading.Event()
    print("ready", flush=True)
    ready.wait()


parked()
