"""Recordings' part of pytap's benchmark (see bench.py).

Writing: tests/py/fib.py under three modes, interleaved --runs times per
interpreter, pinned as bench.py pins (workload on the last CPU, pytap on
the first):

  untraced     the program alone
  trace_jsonl  `pytap trace -m function__entry -m function__return
               --format jsonl -o FILE`
  record       `pytap record -m function__entry -m function__return -o FILE`

Reported: the median (and interquartile range) of each mode's time for
the calls, the ratio record / trace_jsonl (the median of the interleaved
rounds' ratios, with their interquartile range), and the CPU time of the
whole run beyond the untraced program's, per event (user + system from
the run's rusage: the traced program's extra cost and pytap's together).

Exporting: a recording of fib(--export-n) (1.27 million events at 27) is
exported to each format; the wall time and peak RSS of each export are
medians of --export-runs runs. The same exports of fib(--export-n - 1), a
recording 0.62 times as long, show whether memory grows with the length
(the report gives the ratio of peak RSS).

Targets (the recordings issue), with PASS/FAIL:

  record overhead <= 1.05 x trace_jsonl overhead
  perfetto export of >= 1,000,000 events: <= 2 s and <= 100 MiB RSS
"""

import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "tests", "py", "fib.py")
RECORD_OVER_TRACE = 1.05
EXPORT_SECONDS = 2.0
EXPORT_MIB = 100.0
FORMATS = ("perfetto", "chrome", "speedscope", "folded", "svg")


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def run_measured(argv, env=None, preexec=None):
    """Runs argv to success; returns (wall s, peak RSS KiB, CPU s)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env, preexec_fn=preexec)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(argv[:4])} failed:\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, stderr


def fib_events(n):
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * (2 * a - 1)


def bench_writing(python, args, tmp, env, preexec):
    elapsed = os.path.join(tmp, "elapsed")
    work = [python, FIB, str(args.n), elapsed]
    markers = ["-m", "function__entry", "-m", "function__return"]
    out = os.path.join(tmp, "out")
    modes = {
        "untraced": work,
        "trace_jsonl": [args.pytap, "trace", *markers, "--format", "jsonl", "-o", out, "--", *work],
        "record": [args.pytap, "record", *markers, "-o", out, "--", *work],
    }
    times = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    for _ in range(args.runs):
        for mode, argv in modes.items():
            if os.path.exists(elapsed):
                os.unlink(elapsed)
            _, _, used, _ = run_measured(argv, env, preexec)
            with open(elapsed) as f:
                times[mode].append(float(f.read()))
            cpu[mode].append(used)
    med = {m: statistics.median(v) for m, v in times.items()}
    ratios = [(r - u) / (t - u) for r, t, u in
              zip(times["record"], times["trace_jsonl"], times["untraced"]) if t != u]
    events = fib_events(args.n)
    # The run's CPU beyond the untraced program's.
    pytap_cpu = {m: statistics.median(cpu[m]) - statistics.median(cpu["untraced"])
                 for m in ("trace_jsonl", "record")}
    return {
        "python": python,
        "events": events,
        "median_seconds": med,
        "interquartile_seconds": {m: quartiles(v) for m, v in times.items()},
        "record_over_trace_jsonl": statistics.median(ratios),
        "record_over_trace_jsonl_iqr": quartiles(ratios),
        "run_cpu_ns_per_event": {m: v / events * 1e9 for m, v in pytap_cpu.items()},
        "recording_bytes": os.path.getsize(out),
    }


def bench_export(python, args, tmp, env, preexec):
    results = {}
    for n in (args.export_n - 1, args.export_n):
        rec = os.path.join(tmp, f"fib{n}.pytap")
        elapsed = os.path.join(tmp, "elapsed")
        run_measured([args.pytap, "record", "-m", "function__entry", "-m", "function__return",
                      "-o", rec, "--", python, FIB, str(n), elapsed], env, preexec)
        for fmt in FORMATS:
            out = os.path.join(tmp, f"out.{fmt}")
            walls, rss = [], []
            for _ in range(args.export_runs):
                wall, kib, _, _ = run_measured(
                    [args.pytap, "export", "-i", rec, "--format", fmt, "-o", out],
                    env, preexec)
                walls.append(wall)
                rss.append(kib / 1024)
            results[(n, fmt)] = {
                "events": fib_events(n),
                "recording_bytes": os.path.getsize(rec),
                "seconds": statistics.median(walls),
                "seconds_iqr": quartiles(walls),
                "rss_mib": statistics.median(rss),
                "output_bytes": os.path.getsize(out),
            }
    return {"python": python, "n": args.export_n,
            "runs": {f"{n}/{fmt}": r for (n, fmt), r in results.items()}}


def bench(pythons, args, env, preexec):
    with tempfile.TemporaryDirectory(prefix="pytap-bench-record-") as tmp:
        writing = [bench_writing(p, args, tmp, env, preexec) for p in pythons]
        export = bench_export(pythons[0], args, tmp, env, preexec)
    return {"writing": writing, "export": export}


def report(r):
    ok = True
    print("\n== Recordings: writing (fib, median [interquartile range])")
    for w in r["writing"]:
        med, iqr = w["median_seconds"], w["interquartile_seconds"]
        print(f"  {w['python']}: {w['events']} events, recording of "
              f"{w['recording_bytes'] / 2**20:.1f} MiB")
        for mode, t in med.items():
            lo, hi = iqr[mode]
            cpu = w["run_cpu_ns_per_event"].get(mode)
            extra = f", CPU beyond the program {cpu:.0f} ns/event" if cpu is not None else ""
            print(f"    {mode:<12} {t:7.3f} s [{lo:.3f}, {hi:.3f}]{extra}")
        verdict = w["record_over_trace_jsonl"] <= RECORD_OVER_TRACE
        ok &= verdict
        lo, hi = w["record_over_trace_jsonl_iqr"]
        print(f"    record / trace_jsonl overhead {w['record_over_trace_jsonl']:5.2f}x "
              f"[IQR {lo:.2f}-{hi:.2f}] (target <= {RECORD_OVER_TRACE}x) "
              f"{'PASS' if verdict else 'FAIL'}")
    e = r["export"]
    print(f"\n== Recordings: exports ({e['python']}, median of runs)")
    for key, x in e["runs"].items():
        n, fmt = key.split("/")
        line = (f"  fib({n}) {x['events']:>8} events -> {fmt:<10} {x['seconds']:6.3f} s "
                f"[{x['seconds_iqr'][0]:.3f}, {x['seconds_iqr'][1]:.3f}] "
                f"{x['rss_mib']:6.1f} MiB RSS, {x['output_bytes'] / 2**20:7.1f} MiB written")
        shorter = e["runs"].get(f"{int(n) - 1}/{fmt}")
        if shorter and int(n) == e["n"]:
            line += f", RSS {x['rss_mib'] / shorter['rss_mib']:.2f}x the shorter one's"
        if fmt == "perfetto" and int(n) == e["n"]:
            verdict = (x["events"] >= 1_000_000 and x["seconds"] <= EXPORT_SECONDS
                       and x["rss_mib"] <= EXPORT_MIB)
            ok &= verdict
            line += (f"  (target >= 1M events in <= {EXPORT_SECONDS} s and "
                     f"<= {EXPORT_MIB:.0f} MiB) {'PASS' if verdict else 'FAIL'}")
        print(line)
    return ok
