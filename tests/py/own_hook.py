"""A program with its own audit hook: the events it sees while it calls
functions, imports and collects, written to argv[1] as JSON (the same
traced or not, when pytap's agent raises none of its own)."""
import gc
import json
import sys

seen = []
sys.addaudithook(lambda event, args: seen.append(event))


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


fib(15)
import difflib  # noqa: E402,F401

gc.collect()
events = list(seen)
with open(sys.argv[1], "w") as f:
    json.dump(events, f)
