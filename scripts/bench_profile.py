"""The stack sampler's benchmark (run by bench.py --only-profile, or alone).

  slowdown  tests/py/stdlib_work.py (after two warm-up runs) (the standard library's own code) untraced,
            under `pytap profile` at 99 and 999 Hz, and under py-spy 0.4.3's
            `record` at the same rates (installed from PyPI into
            target/bench-venv; its default, blocking mode, as users run it);
            interleaved rounds, the median of each round's ratio to the
            untraced run of the same round, with the interquartile range.
            Targets: pytap at most 1.01x at 99 Hz and 1.03x at 999 Hz, and at
            999 Hz at most a quarter of what py-spy adds; no sample lost
            (pytap's summary, every run).
  per sample  the sampler's program time per sample from the kernel's own
            BPF statistics (kernel.bpf_stats_enabled: run_time_ns / run_cnt in
            pytap's program fds' fdinfo), on a thread spinning 64 frames deep
            at 999 Hz: one recursive function (a frame running the code of
            the frame before it needs no code read), and 62 distinct
            functions. Target: at most 10 us.
  dump      `pytap dump` of a process with 50 threads each 12 frames deep,
            wall time. Target: under 50 ms.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDLIB = os.path.join(ROOT, "tests", "py", "stdlib_work.py")
SAMPLED = os.path.join(ROOT, "tests", "py", "sampled.py")
PY_SPY_VERSION = "0.4.3"
SLOW_99, SLOW_999, SPY_SHARE, SAMPLE_US, DUMP_MS = 1.01, 1.03, 0.25, 10.0, 50.0


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def py_spy():
    """py-spy from PyPI, in a venv of its own."""
    venv = os.path.join(ROOT, "target", "bench-venv")
    exe = os.path.join(venv, "bin", "py-spy")
    if not os.path.exists(exe):
        subprocess.run(["/usr/bin/python3.11", "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--quiet",
                        f"py-spy=={PY_SPY_VERSION}"], check=True)
    return exe


def work_time(argv, out, lost=None):
    """The workload's own elapsed time; with `lost`, the samples pytap's
    summary says were lost are appended to it."""
    if os.path.exists(out):
        os.unlink(out)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        raise SystemExit(f"bench: {argv[:5]} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    if lost is not None:
        m = re.search(r" samples in .*?, (\d+) lost,", proc.stderr)
        if not m:
            raise SystemExit(f"bench: no summary from {argv[:5]}: {proc.stderr[-1500:]}")
        lost.append(int(m.group(1)))
    with open(out) as f:
        return float(f.read())


def slowdown(python, pytap, runs, rounds, tmp):
    spy = py_spy()
    out = os.path.join(tmp, "elapsed")
    work = [python, STDLIB, str(rounds), out]
    modes = {
        "untraced": [],
        "pytap_99": [pytap, "profile", "--rate", "99", "--format", "folded", "-o", "/dev/null", "--"],
        "pytap_999": [pytap, "profile", "--rate", "999", "--format", "folded", "-o", "/dev/null", "--"],
        "py-spy_99": [spy, "record", "-r", "99", "-f", "raw", "-o", os.path.join(tmp, "spy"), "--"],
        "py-spy_999": [spy, "record", "-r", "999", "-f", "raw", "-o", os.path.join(tmp, "spy"), "--"],
    }
    times = {m: [] for m in modes}
    lost = []
    # Warm the page cache and the CPU first; then each round runs the modes
    # in a rotated order, so that no mode always runs first or after the
    # same one.
    for _ in range(2):
        work_time(work, out)
    names = list(modes)
    for r in range(runs):
        for mode in names[r % len(names):] + names[:r % len(names)]:
            pytap_run = mode.startswith("pytap")
            times[mode].append(work_time(modes[mode] + work, out, lost if pytap_run else None))
    ratios = {m: [t / u for t, u in zip(times[m], times["untraced"])] for m in modes}
    return times, ratios, lost


def program_stats(pid):
    """(run_time_ns, run_cnt) summed over the BPF programs pid holds."""
    total = [0, 0]
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                text = f.read()
        except OSError:
            continue
        if "prog_type:\t7" not in text:  # BPF_PROG_TYPE_PERF_EVENT
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("prog_tag") and "run_cnt" in fields:
            # The dispatch program's time includes the walker it tail-calls;
            # the walkers' own counters stay 0 (they are not entered alone).
            total[0] += int(fields["run_time_ns"])
            total[1] += int(fields["run_cnt"])
    return total


def per_sample(python, pytap, shape=("depth", "61")):
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        before = f.read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    target = subprocess.Popen([python, SAMPLED, *shape], stdout=subprocess.PIPE, text=True)
    try:
        target.stdout.readline()
        prof = subprocess.Popen([pytap, "profile", "-p", str(target.pid), "--rate", "999", "-d", "4",
                                 "--format", "folded", "-o", "/dev/null"],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        ns, cnt = program_stats(prof.pid)
        prof.wait()
    finally:
        target.kill()
        target.wait()
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(before)
    return (ns / cnt / 1000 if cnt else float("nan")), cnt


def dump_time(python, pytap, runs):
    code = ("import threading, sys\n"
            "def d(n, e):\n    return d(n - 1, e) if n else e.wait()\n"
            "e = threading.Event()\n"
            "for _ in range(49): threading.Thread(target=d, args=(10, e), daemon=True).start()\n"
            "print('ready', flush=True)\nd(10, e)\n")
    target = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        target.stdout.readline()
        time.sleep(0.3)
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.run([pytap, "dump", "-p", str(target.pid)], capture_output=True, text=True)
            walls.append((time.perf_counter() - t) * 1000)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.count("Thread ") == 50, proc.stdout[:500]
    finally:
        target.kill()
        target.wait()
    return walls


def bench(python, pytap, runs=7, rounds=250):
    with tempfile.TemporaryDirectory(prefix="pytap-bench-profile-") as tmp:
        times, ratios, lost = slowdown(python, pytap, runs, rounds, tmp)
    sample_us, samples = per_sample(python, pytap)
    chain_us, chain_samples = per_sample(python, pytap, ("chain", "62"))
    walls = dump_time(python, pytap, 21)
    return {"python": python, "times": times, "ratios": ratios, "lost": lost, "sample_us": sample_us,
            "samples": samples, "chain_us": chain_us, "chain_samples": chain_samples,
            "dump_ms": walls}


def report(r):
    ok = True
    print(f"\n== Stack sampler ({r['python']}), stdlib workload, median [IQR] of "
          f"{len(r['times']['untraced'])} interleaved rounds")
    for mode, ts in r["times"].items():
        lo, hi = quartiles(r["ratios"][mode])
        print(f"  {mode:11s} {statistics.median(ts):.3f} s   {statistics.median(r['ratios'][mode]):.3f}x "
              f"[{lo:.3f}, {hi:.3f}]")
    med = {m: statistics.median(v) for m, v in r["ratios"].items()}
    for mode, target in (("pytap_99", SLOW_99), ("pytap_999", SLOW_999)):
        good = med[mode] <= target
        ok &= good
        print(f"  {mode} slowdown {med[mode]:.3f}x (target <= {target}x) {'PASS' if good else 'FAIL'}")
    share = (med["pytap_999"] - 1) / (med["py-spy_999"] - 1) if med["py-spy_999"] > 1 else float("nan")
    good = share <= SPY_SHARE
    ok &= good
    print(f"  pytap / py-spy overhead at 999 Hz {share:.2f} (target <= {SPY_SHARE}) {'PASS' if good else 'FAIL'}")
    good = sum(r["lost"]) == 0
    ok &= good
    print(f"  samples lost over {len(r['lost'])} pytap runs: {sum(r['lost'])} (target 0) "
          f"{'PASS' if good else 'FAIL'}")
    good = r["sample_us"] <= SAMPLE_US
    ok &= good
    print(f"  program time per sample, 64 frames of one recursive function: {r['sample_us']:.2f} us "
          f"over {r['samples']} samples (target <= {SAMPLE_US} us) {'PASS' if good else 'FAIL'}")
    good = r["chain_us"] <= SAMPLE_US
    ok &= good
    print(f"  program time per sample, 64 frames of distinct functions: {r['chain_us']:.2f} us "
          f"over {r['chain_samples']} samples (target <= {SAMPLE_US} us) {'PASS' if good else 'FAIL'}")
    lo, hi = quartiles(r["dump_ms"])
    med_dump = statistics.median(r["dump_ms"])
    good = med_dump <= DUMP_MS
    ok &= good
    print(f"  pytap dump of 50 threads: {med_dump:.1f} ms [{lo:.1f}, {hi:.1f}] (target <= {DUMP_MS} ms) "
          f"{'PASS' if good else 'FAIL'}")
    return ok


if __name__ == "__main__":
    pytap = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "pytap")
    python = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target", "pythons", "python3.13")
    sys.exit(0 if report(bench(python, pytap)) else 1)
