#!/usr/bin/env python3
"""pytap's benchmark: what tracing costs a call-heavy Python program.

Runs tests/py/fib.py (recursive fib, about half a million calls at n=25)
under each mode, interleaved, --runs times, and takes the median of the
time the calls took as the program measures it itself (interpreter and
tracer start-up never count):

  untraced   the program alone
  empty      pytap attached to the same probes with an empty BPF program
             (`pytap trace --empty-probe`): the kernel's uprobe trap alone
  trace      `pytap trace -m function__entry -m function__return` streaming
             every event, both strings decoded, to a file
  bpftrace   bpftrace printing the same fields with printf (when installed;
             not on 3.11, where bpftrace cannot make function__entry fire)
  empty1     the empty program on function__entry only (top's probes)
  top        `pytap top --plain`: calls counted in the kernel
  clock      a program that only reads the clock (`bpf_ktime_get_ns`) on
             entry and return (`pytap trace --clock-probe`): the floor of
             any tool that times every event
  calls      `pytap calls`: lean entry/return records (no strings, names sent
             once per function), timed and aggregated in userspace
  whole      trace's program reading both names on every event (`pytap trace
             --split-probe whole`: trace before returns and lines were sent
             without the names their entry sent)
  no_strings, headers, no_output  whole with one part left out: no string
             read; each name's str object header read instead of the name
             (what a probe that checks a name is still the one it sent
             costs at least); no output. What leaving each out saves is
             where the time goes (--no-split skips them)
  kernel_timing  the floor of timing calls in the kernel instead of
             streaming them (`--split-probe kernel-timing`: a clock read, a
             per-thread stack of entry times, a per-function total at each
             return; nothing sent), against calls
  flow       `pytap flow`: the call hierarchy, to a file
  stap_hier  `pytap stap tapset-call-hierarchy.stp`: the HOWTO's hierarchy
             script (compiled to BPF by pytap), to a file
  stap_top   `pytap stap top.stp`: the HOWTO's top script, counts in the kernel
  stap_top_raw  the same with --raw-markers (3.15 only: without the frame
             check that drops generator creations, which `pytap top`, counting
             raw entries, does not make either)
  flow_within  `pytap flow --style dtrace --within start`, to a file
  d_stack    `pytap dtrace -q -s call_stack.d`: the HOWTO's D script, to a file
  d_count    `pytap dtrace -q -n '... function-entry { @[copyinstr(arg1)] =
             count(); }'`: a count() one-liner, aggregated in the kernel
             (with --raw-markers on 3.15, as stap_top_raw)

The calls run pinned to the last CPU and the tracer to the first (with
two CPUs or more), so the consumer does not compete with the workload.

Overhead = median(mode) - median(untraced); the ratios below are the
median of each interleaved round's ratio, with their interquartile range.
The targets (pytap's issue on the engine, then later ones) are:

  trace overhead <= 1.25 x empty overhead
  bpftrace overhead >= 4 x trace overhead
  top overhead <= 1.05 x empty1 overhead    (the streaming issue)
  calls overhead <= 1.12 x empty overhead
  pytap's own CPU while tracing <= 200 ns per event (the CPU time its
  summary reports, CLOCK_PROCESS_CPUTIME_ID, over the events: work moved
  from the probe to the consumer shows there)
  stap_hier overhead <= 1.1 x flow overhead  (the scripts issue)
  stap_top overhead <= 1.1 x top overhead    (3.15: stap_top_raw, the same stream as top)
  d_stack overhead <= 1.1 x flow_within overhead  (the D issue)
  d_count overhead <= 1.1 x top overhead

Both are printed with PASS/FAIL, together with the cost per event beyond
the uprobe trap (mode - empty), which is what the tracer itself adds. pytap
must also report 0 lost events in every run; bpftrace's own losses are
shown.

Start-up and memory (the first-contact issue), measured separately with
`python -c pass` and one marker (gc__start), interleaved --startup-runs
times: the wall time of the tracer's run minus the program's own (pytap's
start-up and teardown), and the peak resident memory as /usr/bin/time
reports it (ru_maxrss), for pytap and, when installed, bpftrace:

  pytap start-up + teardown <= 25 ms, and at least 10 x less than bpftrace's
  pytap peak RSS <= 32 MiB
  `pytap stap` on a one-probe script <= 30 ms more than `pytap trace`

The in-process capture (function events from inside CPython 3.12+, where
3.13 and 3.14 have no markers) is measured by bench_capture.py (its own
docstring says how), on fib and on a standard-library workload, for every
fixture interpreter (--no-capture skips it, --only-capture runs only it).

Recordings (`pytap record`'s cost against `trace --format jsonl -o`'s, and
exports of a million-event recording: time and memory) are measured by
bench_record.py (its docstring says how; --no-record skips it,
--only-record runs only it).

Lost events (the "nothing lost" issue) are counted by bench_loss.py (its
docstring lists the shapes): --loss-runs runs of each shape per
interpreter, unpinned at default settings, every run's loss reported;
target 0 in every run (--no-loss skips it, --only-loss runs only it).

Medians, with the interquartile range beside them. Needs root. Exit
status: 0 all targets met, 1 a target missed, 2 the benchmark could not run.

    scripts/bench.py                            # as root; fixtures 3.15, 3.9, 3.11
    scripts/bench.py --python /usr/bin/python3.11 --runs 9 --n 26
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "tests", "py", "fib.py")
TRACE_TARGET = 1.25
BPFTRACE_TARGET = 4.0
TOOL_TARGET = 1.1
TOP_TARGET = 1.05     # the streaming issue: top against the entry-only empty probe
CALLS_TARGET = 1.12   # and calls against the empty probe
CONSUMER_NS = 200.0   # pytap's own CPU per event while tracing
STARTUP_TARGET_MS = 25.0
STARTUP_VS_BPFTRACE = 10.0
SCRIPT_STARTUP_MS = 30.0
HOWTO = os.path.join(ROOT, "tests", "scripts", "howto")
RSS_TARGET_MIB = 32.0
# The split of trace's cost: trace's program with one part left out
# (`pytap trace --split-probe`).
SPLIT_PARTS = {"whole": "whole", "no_strings": "no-strings", "headers": "object-headers",
               "no_output": "no-output", "kernel_timing": "kernel-timing"}
SUMMARY = re.compile(r"pytap: (\d+) events, (\d+) lost")
CPU = re.compile(r"pytap used ([0-9.]+) ms of CPU")


# Pinning: the workload's calls run on the last CPU (fib.py pins itself when
# PYTAP_BENCH_CPU is set), the tracer and everything else on the first, so
# the consumer never competes with the calls it measures.
CPUS = sorted(os.sched_getaffinity(0))
PINNED_ENV = dict(os.environ)
if len(CPUS) >= 2:
    PINNED_ENV["PYTAP_BENCH_CPU"] = str(CPUS[-1])


def pin_tracer():
    if len(CPUS) >= 2:
        os.sched_setaffinity(0, {CPUS[0]})


def fail(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(2)


def real_binary(python):
    """The ELF behind a fixture wrapper script (bpftrace needs the file
    that carries the markers), or the path itself."""
    with open(python, "rb") as f:
        head = f.read(4096)
    if not head.startswith(b"#!"):
        return python
    m = re.search(rb'^exec "([^"]+)"', head, re.M)
    if not m:
        fail(f"{python}: a script, and not a fixture wrapper")
    return m.group(1).decode()


def version_of(python):
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Runner:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.lost = {}
        self.events = {}
        self.cpu = {}  # (mode, python) -> [pytap's own CPU seconds per run]

    def timed(self, argv, label):
        """Runs argv whose workload writes its elapsed time; returns it."""
        elapsed = os.path.join(self.tmp, "elapsed")
        if os.path.exists(elapsed):
            os.unlink(elapsed)
        proc = subprocess.run(argv, capture_output=True, text=True, env=PINNED_ENV,
                              preexec_fn=pin_tracer)
        if proc.returncode != 0 or not os.path.exists(elapsed):
            fail(f"{label} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        with open(elapsed) as f:
            value = float(f.read())
        return value, proc.stderr

    def run(self, mode, python, elf):
        value, err = self.run_mode(mode, python, elf)
        m = CPU.search(err or "")
        if m:
            self.cpu.setdefault((mode, python), []).append(float(m.group(1)) / 1e3)
        return value

    def run_mode(self, mode, python, elf):
        """One run of mode: (seconds the calls took, pytap's stderr)."""
        elapsed = os.path.join(self.tmp, "elapsed")
        work = [python, FIB, str(self.args.n), elapsed]
        out = os.path.join(self.tmp, "events")
        pytap = [self.args.pytap, "trace", "-m", "function__entry",
                 "-m", "function__return", "-o", out]
        if mode == "untraced":
            return self.timed(work, mode)
        if mode == "empty":
            return self.timed(pytap + ["--empty-probe", "--"] + work, mode)
        if mode == "clock":
            return self.timed(pytap + ["--clock-probe", "--"] + work, mode)
        if mode in SPLIT_PARTS:
            return self.timed(pytap + ["--split-probe", SPLIT_PARTS[mode], "--"] + work, mode)
        if mode == "empty1":
            return self.timed([self.args.pytap, "trace", "-m", "function__entry",
                               "--empty-probe", "--"] + work, mode)
        if mode == "top":
            return self.timed([self.args.pytap, "top", "--plain", "-n", "5", "-o", out,
                               "--"] + work, mode)
        if mode == "calls":
            return self.timed([self.args.pytap, "calls", "-o", out, "--"] + work, mode)
        if mode == "flow":
            return self.timed([self.args.pytap, "flow", "-o", out, "--"] + work, mode)
        if mode in ("stap_hier", "stap_top", "stap_top_raw"):
            script = "top.stp" if mode.startswith("stap_top") else "tapset-call-hierarchy.stp"
            argv = [self.args.pytap, "stap", os.path.join(HOWTO, script), "-o", out]
            if mode == "stap_top_raw":
                argv.append("--raw-markers")
            return self.timed(argv + ["-c", " ".join(work)], mode)
        if mode == "flow_within":
            return self.timed([self.args.pytap, "flow", "--style", "dtrace", "--within",
                               "start", "-o", out, "--"] + work, mode)
        if mode == "d_stack":
            return self.timed([self.args.pytap, "dtrace", "-q", "-s",
                               os.path.join(HOWTO, "call_stack.d"), "-o", out,
                               "-c", " ".join(work)], mode)
        if mode == "d_count":
            argv = [self.args.pytap, "dtrace", "-q", "-n",
                    "python$target:::function-entry { @[copyinstr(arg1)] = count(); }",
                    "-o", out]
            if version_of(python) == "3.15":
                argv.append("--raw-markers")
            return self.timed(argv + ["-c", " ".join(work)], mode)
        if mode == "trace":
            value, err = self.timed(pytap + ["--"] + work, mode)
            m = SUMMARY.search(err)
            if not m:
                fail(f"no pytap summary in:\n{err}")
            self.events.setdefault(python, []).append(int(m.group(1)))
            self.lost.setdefault(("trace", python), []).append(int(m.group(2)))
            return value, err
        if mode == "bpftrace":
            fmt = 'printf("%s %s %d\\n", str(arg0), str(arg1), arg2);'
            prog = " ".join(
                f"usdt:{elf}:python:{m} {{ {fmt} }}"
                for m in ("function__entry", "function__return"))
            cmd = " ".join([elf, FIB, str(self.args.n), elapsed])
            value, _ = self.timed(
                ["bpftrace", "-o", out, "-e", prog, "-c", cmd], mode)
            with open(out, errors="replace") as f:
                lost = sum(int(m.group(1)) for m in
                           re.finditer(r"^Lost (\d+) events", f.read(), re.M))
            self.lost.setdefault(("bpftrace", python), []).append(lost)
            return value, None
        raise ValueError(mode)


def bench_one(runner, python, args):
    elf = real_binary(python)
    version = version_of(python)
    modes = ["untraced", "empty", "trace"]
    if args.bpftrace and version != "3.11":
        modes.append("bpftrace")
    if args.tools:
        modes += ["empty1", "top", "clock", "calls"]
    if args.split:
        modes += list(SPLIT_PARTS)
    if args.scripts:
        modes += ["flow", "stap_hier", "stap_top"]
        if not args.tools:
            modes.append("top")
        if version == "3.15":
            modes.append("stap_top_raw")
        modes += ["flow_within", "d_stack", "d_count"]
    times = {m: [] for m in modes}
    for _ in range(args.runs):
        for mode in modes:
            times[mode].append(runner.run(mode, python, elf))
    med = {m: statistics.median(v) for m, v in times.items()}
    spread = {m: (quartiles(v)[0], quartiles(v)[2]) for m, v in times.items()}

    def per_run(mode, base):
        """mode's overhead over base's, run by run (the runs interleave)."""
        return [(t - u) / (b - u) for t, b, u in
                zip(times[mode], times[base], times["untraced"]) if b != u]
    base = med["untraced"]
    over = {m: med[m] - base for m in modes}
    events = statistics.median(runner.events[python])
    result = {
        "python": python,
        "version": version,
        "n": args.n,
        "runs": args.runs,
        "events": int(events),
        "median_seconds": med,
        "interquartile_seconds": spread,
        "overhead_seconds": {m: over[m] for m in modes if m != "untraced"},
        "ns_per_event_over_trap": {
            m: (med[m] - med["empty"]) / events * 1e9
            for m in modes if m not in ("untraced", "empty", "empty1", "top",
                                        "stap_top", "stap_top_raw", "d_count")},
        "trace_lost": sum(runner.lost[("trace", python)]),
        # Ratios: the median of the interleaved runs' ratios, and their
        # interquartile range.
        "trace_over_empty": quartiles(per_run("trace", "empty"))[1],
        "ratio_iqr": {"trace_over_empty": quartiles(per_run("trace", "empty"))[::2]},
        # pytap's own CPU (its summary's CLOCK_PROCESS_CPUTIME_ID), per event.
        "pytap_cpu_ns_per_event": {
            m: statistics.median(runner.cpu[(m, python)]) / events * 1e9
            for m in modes if (m, python) in runner.cpu},
    }
    if args.scripts:
        result["stap_hier_over_flow"] = over["stap_hier"] / over["flow"]
        top_mode = "stap_top_raw" if "stap_top_raw" in modes else "stap_top"
        result["stap_top_over_top"] = over[top_mode] / over["top"]
        result["stap_top_mode"] = top_mode
        result["d_stack_over_flow_within"] = over["d_stack"] / over["flow_within"]
        result["d_count_over_top"] = over["d_count"] / over["top"]
        if "stap_top_raw" in modes:
            result["stap_top_repaired_over_top"] = over["stap_top"] / over["top"]
    if args.tools:
        result["top_over_empty1"] = quartiles(per_run("top", "empty1"))[1]
        result["calls_over_empty"] = quartiles(per_run("calls", "empty"))[1]
        result["ratio_iqr"]["top_over_empty1"] = quartiles(per_run("top", "empty1"))[::2]
        result["ratio_iqr"]["calls_over_empty"] = quartiles(per_run("calls", "empty"))[::2]
        result["clock_over_empty"] = over["clock"] / over["empty"]
    if args.split:
        # Where trace's time goes beyond the trap, per event: each part is
        # what leaving it out saves, run by run (the runs interleave).
        def saved(part, base="whole"):
            return quartiles([(t - p) / events * 1e9 for t, p in
                              zip(times[base], times[part])])
        result["split_ns_per_event"] = {
            "strings": saved("no_strings"),
            "output": saved("no_output"),
            "object_headers_instead_of_strings": saved("headers"),
            "names_sent_once": saved("trace"),
        }
        result["whole_over_empty"] = quartiles(per_run("whole", "empty"))[1]
        result["ratio_iqr"]["whole_over_empty"] = quartiles(per_run("whole", "empty"))[::2]
        result["ratio_iqr"]["no_strings_over_empty"] = quartiles(
            per_run("no_strings", "empty"))[::2]
        result["no_strings_over_empty"] = quartiles(per_run("no_strings", "empty"))[1]
        result["headers_over_empty"] = quartiles(per_run("headers", "empty"))[1]
        result["kernel_timing_over_empty"] = quartiles(per_run("kernel_timing", "empty"))[1]
        result["ratio_iqr"]["kernel_timing_over_empty"] = quartiles(
            per_run("kernel_timing", "empty"))[::2]
        result["ratio_iqr"]["headers_over_empty"] = quartiles(per_run("headers", "empty"))[::2]
    if "bpftrace" in modes:
        result["bpftrace_lost"] = sum(runner.lost[("bpftrace", python)])
        result["bpftrace_over_trace"] = over["bpftrace"] / over["trace"]
        result["bpftrace_over_trace_beyond_trap"] = (
            (med["bpftrace"] - med["empty"]) / (med["trace"] - med["empty"]))
    return result


def report(r):
    ok = True
    print(f"\n== Python {r['version']} ({r['python']}), fib({r['n']}), "
          f"{r['events']} events, median [interquartile range] of {r['runs']} interleaved runs")
    med = r["median_seconds"]
    for mode, t in med.items():
        extra = ""
        if mode != "untraced":
            extra = f"  overhead {r['overhead_seconds'][mode]:.3f} s"
            per = r["ns_per_event_over_trap"].get(mode)
            if per is not None:
                extra += f", {per:.0f} ns/event beyond the uprobe trap"
            cpu = r.get("pytap_cpu_ns_per_event", {}).get(mode)
            if cpu is not None:
                extra += f"; pytap's CPU {cpu:.0f} ns/event"
        lo, hi = r["interquartile_seconds"][mode]
        print(f"  {mode:<9} {t:8.3f} s [{lo:.3f}, {hi:.3f}]{extra}")
    iqr = r.get("ratio_iqr", {})

    def spread(key):
        lo, hi = iqr.get(key, (None, None))
        return f" [IQR {lo:.2f}-{hi:.2f}]" if lo is not None else ""

    verdict = r["trace_over_empty"] <= TRACE_TARGET and r["trace_lost"] == 0
    ok &= verdict
    print(f"  trace / empty overhead     {r['trace_over_empty']:5.2f}x{spread('trace_over_empty')} "
          f"(target <= {TRACE_TARGET}x, lost {r['trace_lost']}) "
          f"{'PASS' if verdict else 'FAIL'}")
    cpu = r.get("pytap_cpu_ns_per_event", {}).get("trace")
    if cpu is not None:
        verdict = cpu <= CONSUMER_NS
        ok &= verdict
        print(f"  pytap's CPU per event (trace) {cpu:5.0f} ns (target <= {CONSUMER_NS:.0f} ns) "
              f"{'PASS' if verdict else 'FAIL'}")
    if "bpftrace_over_trace" in r:
        verdict = r["bpftrace_over_trace"] >= BPFTRACE_TARGET
        ok &= verdict
        print(f"  bpftrace / trace overhead  {r['bpftrace_over_trace']:5.2f}x "
              f"(target >= {BPFTRACE_TARGET}x) {'PASS' if verdict else 'FAIL'}"
              f"; beyond the trap {r['bpftrace_over_trace_beyond_trap']:.2f}x"
              f"; bpftrace lost {r['bpftrace_lost']} events")
    if "top_over_empty1" in r:
        for key, name, base, target in (("top_over_empty1", "top", "empty1", TOP_TARGET),
                                        ("calls_over_empty", "calls", "empty", CALLS_TARGET)):
            verdict = r[key] <= target
            ok &= verdict
            print(f"  {name} / {base} overhead{' ' * (12 - len(name) - len(base))}"
                  f"{r[key]:5.2f}x{spread(key)} (target <= {target}x) "
                  f"{'PASS' if verdict else 'FAIL'}")
        print(f"  clock / empty overhead   {r['clock_over_empty']:5.2f}x (a probe that only "
              f"reads the clock: the floor of any tool timing every event, such as calls)")
    if "split_ns_per_event" in r:
        split = r["split_ns_per_event"]
        print(f"  whole / empty overhead      {r['whole_over_empty']:5.2f}x"
              f"{spread('whole_over_empty')} (both names read on every event)")
        print("  where whole's time goes beyond the trap, per event (median [IQR] of what "
              "leaving each part out saves):")
        for key, name in (("strings", "reading the two names"),
                          ("output", "sending the record"),
                          ("object_headers_instead_of_strings",
                           "object headers read instead (an identity check's floor)"),
                          ("names_sent_once",
                           "returns sent without the names their entry sent (trace)")):
            lo, mid, hi = split[key]
            print(f"    {name:<56} {mid:5.0f} ns [{lo:.0f}, {hi:.0f}]")
        print(f"  no_strings / empty overhead {r['no_strings_over_empty']:5.2f}x"
              f"{spread('no_strings_over_empty')} (trace without reading the names)")
        print(f"  headers / empty overhead    {r['headers_over_empty']:5.2f}x"
              f"{spread('headers_over_empty')} (one object-header read per name instead)")
        print(f"  kernel_timing / empty      {r['kernel_timing_over_empty']:5.2f}x"
              f"{spread('kernel_timing_over_empty')} (the floor of calls timed in the kernel)")
    if "stap_hier_over_flow" in r:
        verdict = r["stap_hier_over_flow"] <= TOOL_TARGET
        ok &= verdict
        print(f"  stap_hier / flow overhead  {r['stap_hier_over_flow']:5.2f}x "
              f"(target <= {TOOL_TARGET}x) {'PASS' if verdict else 'FAIL'}")
        verdict = r["stap_top_over_top"] <= TOOL_TARGET
        ok &= verdict
        print(f"  {r['stap_top_mode']} / top overhead{' ' * (13 - len(r['stap_top_mode']))}"
              f"{r['stap_top_over_top']:5.2f}x (target <= {TOOL_TARGET}x) "
              f"{'PASS' if verdict else 'FAIL'}")
        for key, name, base in (("d_stack_over_flow_within", "d_stack", "flow_within"),
                                ("d_count_over_top", "d_count", "top")):
            verdict = r[key] <= TOOL_TARGET
            ok &= verdict
            print(f"  {name} / {base} overhead{' ' * max(1, 16 - len(name) - len(base))}"
                  f"{r[key]:5.2f}x (target <= {TOOL_TARGET}x) {'PASS' if verdict else 'FAIL'}")
        if "stap_top_repaired_over_top" in r:
            print(f"  stap_top / top overhead    {r['stap_top_repaired_over_top']:5.2f}x (the "
                  f"repaired stream's frame check on every entry, which top does not make)")
    return ok


def measured(argv):
    """Wall time (s) and peak RSS (KiB, ru_maxrss as /usr/bin/time gives it)
    of one run of argv, which must succeed."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            fail(f"{argv[0]} failed (exit {proc.returncode}):\n"
                 f"{err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def bench_startup(python, args):
    """Start-up and teardown, and peak memory: `python -c pass` alone, under
    a one-marker pytap trace, and under bpftrace, interleaved."""
    elf = real_binary(python)
    modes = {
        "python": [elf, "-c", "pass"],
        "pytap": [args.pytap, "trace", "-m", "gc__start", "-o", "/dev/null",
                  "--", elf, "-c", "pass"],
    }
    modes["stap"] = [args.pytap, "stap", "-e", 'probe process.mark("gc__start") { }',
                     "-o", "/dev/null", "-c", f"{elf} -c pass"]
    if args.bpftrace:
        modes["bpftrace"] = ["bpftrace", "-e", f"usdt:{elf}:python:gc__start {{}}",
                             "-c", f"{elf} -c pass"]
    walls = {m: [] for m in modes}
    rss = {m: [] for m in modes}
    for _ in range(args.startup_runs):
        for mode, argv in modes.items():
            wall, peak = measured(argv)
            walls[mode].append(wall * 1000)
            rss[mode].append(peak / 1024)
    base = statistics.median(walls["python"])
    result = {"python": python, "runs": args.startup_runs, "modes": {}}
    for mode in modes:
        lo, med, hi = quartiles(walls[mode])
        rlo, rmed, rhi = quartiles(rss[mode])
        result["modes"][mode] = {
            "wall_ms": {"q1": lo, "median": med, "q3": hi},
            "overhead_ms": med - base,
            "peak_rss_mib": {"q1": rlo, "median": rmed, "q3": rhi},
        }
    return result


def report_startup(r):
    print(f"\n== start-up and memory: `{r['python']} -c pass` with one marker "
          f"(gc__start), median [interquartile range] of {r['runs']} interleaved runs")
    modes = r["modes"]
    for mode, m in modes.items():
        w, rss = m["wall_ms"], m["peak_rss_mib"]
        over = "" if mode == "python" else f"  start-up + teardown {m['overhead_ms']:6.1f} ms"
        print(f"  {mode:<9} wall {w['median']:7.1f} ms [{w['q1']:.1f}, {w['q3']:.1f}]"
              f"  peak RSS {rss['median']:6.1f} MiB [{rss['q1']:.1f}, {rss['q3']:.1f}]{over}")
    pytap = modes["pytap"]
    ok = pytap["overhead_ms"] <= STARTUP_TARGET_MS
    print(f"  pytap start-up + teardown  {pytap['overhead_ms']:6.1f} ms "
          f"(target <= {STARTUP_TARGET_MS:.0f} ms) {'PASS' if ok else 'FAIL'}")
    verdict = pytap["peak_rss_mib"]["median"] <= RSS_TARGET_MIB
    ok &= verdict
    print(f"  pytap peak RSS             {pytap['peak_rss_mib']['median']:6.1f} MiB "
          f"(target <= {RSS_TARGET_MIB:.0f} MiB) {'PASS' if verdict else 'FAIL'}")
    extra = modes["stap"]["overhead_ms"] - pytap["overhead_ms"]
    verdict = extra <= SCRIPT_STARTUP_MS
    ok &= verdict
    print(f"  stap - trace start-up      {extra:6.1f} ms (target <= {SCRIPT_STARTUP_MS:.0f} ms) "
          f"{'PASS' if verdict else 'FAIL'}")
    if "bpftrace" in modes:
        b = modes["bpftrace"]
        ratio = b["overhead_ms"] / max(pytap["overhead_ms"], 0.1)
        verdict = ratio >= STARTUP_VS_BPFTRACE
        ok &= verdict
        print(f"  bpftrace / pytap start-up  {ratio:6.1f}x (target >= "
              f"{STARTUP_VS_BPFTRACE:.0f}x) {'PASS' if verdict else 'FAIL'}; bpftrace "
              f"peak RSS {b['peak_rss_mib']['median']:.1f} MiB")
    return ok


def startup_ok(r):
    modes = r["modes"]
    ok = (modes["pytap"]["overhead_ms"] <= STARTUP_TARGET_MS
          and modes["pytap"]["peak_rss_mib"]["median"] <= RSS_TARGET_MIB
          and modes["stap"]["overhead_ms"] - modes["pytap"]["overhead_ms"] <= SCRIPT_STARTUP_MS)
    if "bpftrace" in modes:
        ok &= modes["bpftrace"]["overhead_ms"] >= STARTUP_VS_BPFTRACE * modes["pytap"]["overhead_ms"]
    return ok


def default_pythons():
    fixtures = os.path.join(ROOT, "target", "pythons")
    found = [os.path.join(fixtures, f"python{v}") for v in ("3.15", "3.9")]
    found = [p for p in found if os.path.exists(p)]
    if os.path.exists("/usr/bin/python3.11"):
        found.append("/usr/bin/python3.11")
    return found


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append",
                    help="interpreter to measure (repeatable; default: the "
                         "3.15 and 3.9 fixtures and /usr/bin/python3.11)")
    ap.add_argument("--n", type=int, default=25, help="fib(n) (default 25)")
    ap.add_argument("--runs", type=int, default=15,
                    help="runs per mode, interleaved; medians and interquartile ranges "
                         "taken (default 15)")
    ap.add_argument("--pytap", default=os.path.join(ROOT, "target", "release", "pytap"),
                    help="pytap binary (default target/release/pytap)")
    ap.add_argument("--no-split", dest="split", action="store_false",
                    help="skip the split of trace's cost (trace without string reads, with "
                         "object-header reads instead, without output)")
    ap.add_argument("--no-bpftrace", dest="bpftrace", action="store_false",
                    help="skip bpftrace even when installed")
    ap.add_argument("--no-tools", dest="tools", action="store_false",
                    help="skip the top and calls measurements")
    ap.add_argument("--no-scripts", dest="scripts", action="store_false",
                    help="skip the flow, stap and top-script measurements")
    ap.add_argument("--startup-runs", type=int, default=21,
                    help="runs of the start-up and memory measurement (default 21; 0 skips it)")
    ap.add_argument("--only-startup", action="store_true",
                    help="measure start-up and memory only")
    ap.add_argument("--no-capture", dest="capture", action="store_false",
                    help="skip the in-process capture's measurements (bench_capture.py)")
    ap.add_argument("--only-capture", action="store_true",
                    help="measure the in-process capture only")
    ap.add_argument("--no-record", dest="record", action="store_false",
                    help="skip the recordings' measurements (bench_record.py)")
    ap.add_argument("--only-record", action="store_true",
                    help="measure recordings only")
    ap.add_argument("--export-n", type=int, default=27,
                    help="fib(n) of the export measurement (default 27: 1.27M events)")
    ap.add_argument("--export-runs", type=int, default=5,
                    help="runs of each export (default 5)")
    ap.add_argument("--no-loss", dest="loss", action="store_false",
                    help="skip the lost-events measurements (bench_loss.py)")
    ap.add_argument("--only-loss", action="store_true",
                    help="measure lost events only")
    ap.add_argument("--loss-runs", type=int, default=20,
                    help="runs of each lost-events shape (default 20)")
    ap.add_argument("--loss-rounds", type=int, default=250,
                    help="rounds of the standard-library workload in the d_printf shape "
                         "(default 250: about 1.2 to 1.4 million events)")
    ap.add_argument("--loss-secs", type=float, default=3.0,
                    help="seconds of each calls -p run on the service (default 3)")
    ap.add_argument("--loss-shape", action="append", metavar="SHAPE",
                    help="lost-events shapes to run (repeatable; default all)")
    ap.add_argument("--only-profile", action="store_true",
                    help="only the stack sampler's figures (bench_profile.py): slowdown at 99 and "
                         "999 Hz against py-spy, program time per sample, dump of 50 threads")
    ap.add_argument("--profile-runs", type=int, default=7,
                    help="interleaved rounds of the sampler's slowdown (default 7)")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        fail("needs root (BPF)")
    if not os.access(args.pytap, os.X_OK):
        fail(f"{args.pytap} not found: run `cargo build --release` first")
    if args.bpftrace and not shutil.which("bpftrace"):
        print("bench: bpftrace not installed, measuring without it", file=sys.stderr)
        args.bpftrace = False
    if args.only_profile:
        import bench_profile
        python = (args.python or [os.path.join(ROOT, "target", "pythons", "python3.13")])[0]
        result = bench_profile.bench(python, args.pytap, runs=args.profile_runs)
        if args.json:
            json.dump(result, sys.stdout, indent=2, default=str)
            print()
            sys.exit(0)
        sys.exit(0 if bench_profile.report(result) else 1)
    pythons = args.python or default_pythons()
    if not pythons:
        fail("no interpreter: fetch the fixtures (scripts/fetch-pythons.sh) or pass --python")
    if args.only_capture or args.only_record or args.only_loss:
        args.startup_runs = 0
        args.only_startup = True
    if args.only_record or args.only_loss:
        args.capture = False
    if args.only_loss:
        args.record = False
    if args.only_capture or args.only_record:
        args.loss = False
    startup = None
    if args.startup_runs > 0:
        startup = bench_startup(pythons[0], args)
    results = []
    capture = []
    if args.capture and (not args.only_startup or args.only_capture):
        import bench_capture
        fixtures = os.path.join(ROOT, "target", "pythons")
        every = [os.path.join(fixtures, f"python{v}") for v in ("3.9", "3.11", "3.13", "3.14", "3.15")]
        every = args.python or ([p for p in every if os.path.exists(p)]
                                + bench_capture.unmarked_pythons())
        with tempfile.TemporaryDirectory(prefix="pytap-bench-capture-") as tmp:
            capture = bench_capture.bench(every, args, tmp, PINNED_ENV, pin_tracer,
                                          version_of, real_binary)
    recording = None
    if args.record and (not args.only_startup or args.only_record):
        import bench_record
        recording = bench_record.bench(pythons, args, PINNED_ENV, pin_tracer)
    loss = None
    load = None
    if args.loss and (not args.only_startup or args.only_loss):
        import bench_loss
        loss = bench_loss.bench(pythons, args, version_of, real_binary)
        load = bench_loss.script_load(args.pytap, real_binary(pythons[0]))
    if not args.only_startup:
        with tempfile.TemporaryDirectory(prefix="pytap-bench-") as tmp:
            runner = Runner(args, tmp)
            results = [bench_one(runner, p, args) for p in pythons]
    if args.json:
        json.dump({"startup": startup, "calls": results, "capture": capture,
                   "recording": recording, "loss": loss, "script_load": load}, sys.stdout,
                  indent=2, default=str)
        print()
        ok = all(r["trace_over_empty"] <= TRACE_TARGET and r["trace_lost"] == 0
                 and r.get("bpftrace_over_trace", BPFTRACE_TARGET) >= BPFTRACE_TARGET
                 and r.get("top_over_empty1", 0) <= TOP_TARGET
                 and r.get("calls_over_empty", 0) <= CALLS_TARGET
                 and r.get("pytap_cpu_ns_per_event", {}).get("trace", 0) <= CONSUMER_NS
                 and r.get("stap_hier_over_flow", 0) <= TOOL_TARGET
                 and r.get("stap_top_over_top", 0) <= TOOL_TARGET
                 and r.get("d_stack_over_flow_within", 0) <= TOOL_TARGET
                 and r.get("d_count_over_top", 0) <= TOOL_TARGET
                 for r in results)
        ok &= startup is None or startup_ok(startup)
        ok &= not loss or all(not any(r["lost"]) for r in loss)
        if recording:
            import bench_record
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                ok &= bench_record.report(recording)
    else:
        ok = True
        if startup is not None:
            ok &= report_startup(startup)
        ok &= all([report(r) for r in results])
        if capture:
            import bench_capture
            ok &= bench_capture.report(capture)
        if recording:
            import bench_record
            ok &= bench_record.report(recording)
        if loss:
            import bench_loss
            ok &= bench_loss.report(loss)
        if load:
            ok &= bench_loss.report_load(load)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
