"""Lost events' part of pytap's benchmark (see bench.py).

Runs each shape below --loss-runs times (default 20) per interpreter, in
a row, at default settings: no pinning, no --buffer-size, the machine as
a user has it. Every run's summary line says how many events were lost;
the report lists them per run. The target (the "nothing lost" issue) is
0 lost in every run of every shape, at the fastest rate CPython reaches
here (recursive fib: about 1.4 million events a second under the trap).

  trace_jsonl  `pytap trace -m function__entry -m function__return
               --format jsonl -o FILE` on fib(--n)
  trace_text   the same as text lines
  flow         `pytap flow -o FILE` on fib(--n)
  calls        `pytap calls` on fib(--n)
  record       `pytap record -o FILE` on fib(--n)
  stap_flow    a per-call SystemTap script (the HOWTO's
               show-call-hierarchy.stp, printf on every entry and return)
               on fib(--n)
  d_printf     a D program printing every entry and return with its
               timestamp (`printf("%d %s %s %s:%d\\n", timestamp, probename,
               copyinstr(arg0), copyinstr(arg1), arg2)`) on the standard
               library workload (tests/py/stdlib_work.py, --loss-rounds)
  calls_p      `pytap calls -p PID --duration --loss-secs` on a threaded
               HTTP service under load (tests/py/service.py: a thread per
               request)

Also reported: pytap's own CPU per event (from its summary), to show how
much room the consumer has; and how a script's load time grows with its
probes (`pytap stap` with 250, 1000 and 4000 probes on one marker, median
of 5 runs each; target: linear, the time per probe at 4000 at most twice
that at 250).
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(ROOT, "tests", "py")
HOWTO = os.path.join(ROOT, "tests", "scripts", "howto")
LOST = re.compile(r"pytap: (\d+) (?:events|records|calls)[^\n]*?, (\d+) lost")
CPU = re.compile(r"pytap used ([0-9.]+) ms of CPU")
D_PRINTF = """python$target:::function-entry, python$target:::function-return
{
    printf("%d %s %s %s:%d\\n", timestamp, probename, copyinstr(arg0), copyinstr(arg1), arg2);
}
"""


def shapes(pytap, python, args, tmp):
    """Each shape's name and a function that runs it once: (events, lost, cpu ms)."""
    out = os.path.join(tmp, "out")
    elapsed = os.path.join(tmp, "elapsed")
    fib = f"{python} {os.path.join(PY, 'fib.py')} {args.n} {elapsed}"
    stdlib = f"{python} {os.path.join(PY, 'stdlib_work.py')} {args.loss_rounds} {elapsed}"
    d_file = os.path.join(tmp, "every.d")
    with open(d_file, "w") as f:
        f.write(D_PRINTF)
    entry_return = ["-m", "function__entry", "-m", "function__return"]
    launched = {
        "trace_jsonl": ["trace", *entry_return, "--format", "jsonl", "-o", out, "-c", fib],
        "trace_text": ["trace", *entry_return, "-o", out, "-c", fib],
        "flow": ["flow", "-o", out, "-c", fib],
        "calls": ["calls", "-o", out, "-c", fib],
        "record": ["record", "-o", out, "-c", fib],
        "stap_flow": ["stap", os.path.join(HOWTO, "show-call-hierarchy.stp"), "-o", out,
                      "-c", fib],
        "d_printf": ["dtrace", "-q", "-s", d_file, "-o", out, "-c", stdlib],
    }
    runs = {name: (lambda argv=argv: summary(run([pytap, *argv])))
            for name, argv in launched.items()}
    runs["calls_p"] = lambda: calls_on_service(pytap, python, args, out)
    return runs


def run(argv, timeout=600):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    err = proc.stderr.decode(errors="replace")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench: {' '.join(argv[:6])} failed ({proc.returncode}):\n{err[-2000:]}")
    return err


def summary(err):
    m = LOST.search(err)
    if not m:
        raise SystemExit(f"bench: no summary in pytap's stderr:\n{err[-2000:]}")
    cpu = CPU.search(err)
    return int(m.group(1)), int(m.group(2)), float(cpu.group(1)) if cpu else None


def calls_on_service(pytap, python, args, out):
    service = os.path.join(PY, "service.py")
    server = subprocess.Popen([python, service, "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        port = server.stdout.readline().split()[1].decode()
        load = subprocess.Popen([python, service, "load", port, str(args.loss_secs + 2), "2"],
                                stdout=subprocess.DEVNULL)
        try:
            err = run([pytap, "calls", "-p", str(server.pid), "--duration", str(args.loss_secs),
                       "-o", out])
        finally:
            load.wait()
    finally:
        server.stdin.close()
        server.wait()
    return summary(err)


def bench(pythons, args, version_of, real_binary):
    results = []
    with tempfile.TemporaryDirectory(prefix="pytap-bench-loss-") as tmp:
        for python in pythons:
            elf = real_binary(python)
            version = version_of(elf)
            for name, once in shapes(args.pytap, elf, args, tmp).items():
                if args.loss_shape and name not in args.loss_shape:
                    continue
                lost, events, cpu = [], [], []
                for _ in range(args.loss_runs):
                    n, l, c = once()
                    events.append(n)
                    lost.append(l)
                    if c is not None and n:
                        cpu.append(c * 1e6 / (n + l))
                    print(f"bench: loss {version} {name}: {n} events, {l} lost", file=sys.stderr)
                results.append({"python": version, "shape": name, "events": events,
                                "lost": lost, "cpu_ns_per_event": cpu})
    return results


def script_load(pytap, python, runs=5):
    """Median wall time of `pytap stap` loading N probes on one marker."""
    import statistics
    import time
    out = {}
    with tempfile.TemporaryDirectory(prefix="pytap-bench-load-") as tmp:
        for n in (250, 1000, 4000):
            path = os.path.join(tmp, f"{n}.stp")
            with open(path, "w") as f:
                f.write("global c\n")
                f.write("probe python.function.entry { c++ }\n" * n)
                f.write("probe end { printf(\"%d\\n\", c) }\n")
            walls = []
            for _ in range(runs):
                start = time.perf_counter()
                run([pytap, "stap", path, "-o", "/dev/null", "-c", f"{python} -c pass"])
                walls.append(time.perf_counter() - start)
            out[n] = statistics.median(walls)
            print(f"bench: load {n} probes: {out[n]:.3f} s", file=sys.stderr)
    return out


def report_load(load):
    print("\nscript load time by probes on one marker (median of 5)")
    per = {n: t / n * 1e6 for n, t in load.items()}
    for n, t in load.items():
        print(f"  {n:>5} probes: {t:.3f} s, {per[n]:.0f} us per probe")
    ok = per[4000] <= 2 * per[250]
    print(f"  per probe at 4000 / at 250: {per[4000] / per[250]:.2f} (target <= 2, linear) "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def report(results):
    print("\nlost events at default settings (unpinned), per run; target: 0 in every run")
    ok = True
    for r in results:
        bad = sum(1 for l in r["lost"] if l)
        ok &= bad == 0
        cpu = sorted(r["cpu_ns_per_event"])
        cpu_text = f"pytap {cpu[len(cpu) // 2]:.0f} ns/event" if cpu else ""
        runs = " ".join(str(l) for l in r["lost"])
        print(f"  {r['python']:>5} {r['shape']:<12} {'PASS' if bad == 0 else 'FAIL'} "
              f"{bad}/{len(r['lost'])} runs lost, max {max(r['lost'])}, "
              f"events {min(r['events'])}-{max(r['events'])}; {cpu_text}\n"
              f"        lost per run: {runs}")
    return ok
