# A call-dense workload made of the standard library's pure-Python code
# (not pytap's): text wrapping, diffs, fractions and statistics, pretty
# printing, shell-style splitting, e-mail parsing. Writes how long the
# work took (seconds) to the file argv[2]; argv[1] is the rounds.
import difflib
import fractions
import os
import pprint
import shlex
import statistics
import sys
import textwrap
import time
from email import message_from_string
from email.policy import default

TEXT = "The quick brown fox jumps over the lazy dog. " * 40
WORDS = TEXT.split()
MAIL = "Subject: hello\nFrom: a@example.org\nTo: b@example.org\n\nbody\n"


def work(rounds):
    for _ in range(rounds):
        textwrap.fill(TEXT, 50)
        difflib.SequenceMatcher(None, WORDS[:150], WORDS[::-1][:150]).ratio()
        statistics.median([fractions.Fraction(i, 7) for i in range(120)])
        pprint.pformat({i: list(range(i % 7)) for i in range(40)})
        shlex.split("cmd --flag 'quoted arg' \"x y\" z " * 8)
        message_from_string(MAIL, policy=default)["subject"]


rounds = int(sys.argv[1])
if "PYTAP_BENCH_CPU" in os.environ:  # the benchmark pins the work
    os.sched_setaffinity(0, {int(os.environ["PYTAP_BENCH_CPU"])})
began = time.perf_counter()
work(rounds)
elapsed = time.perf_counter() - began
with open(sys.argv[2], "w") as f:
    f.write(f"{elapsed:.6f}\n")
