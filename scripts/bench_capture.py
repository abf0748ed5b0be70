"""The in-process capture's part of pytap's benchmark (see bench.py).

Two workloads, each interleaved --runs times per interpreter, medians and
interquartile ranges of the time the work took as the program measures it:

  fib      tests/py/fib.py: about half a million calls
  stdlib   tests/py/stdlib_work.py: the standard library's own pure-Python
           code (textwrap, difflib, fractions, statistics, pprint, shlex,
           email), about 100,000 calls

Modes: untraced; `floor` and `floor1` (3.13-3.15: monitoring_floor.py
registers the built-in `slice` as the callback of PY_START and PY_RETURN,
or of PY_START only, and records nothing: what CPython's call of a compiled
callback costs, below which no in-process capture can go); `pytap top`,
`pytap calls`, `pytap trace -m function__entry -m function__return` with
the default capture (markers on 3.9, 3.11 and 3.15; the agent inside the
interpreter on 3.13 and 3.14, where the markers are gone); on 3.15 also the same three with `--capture in-process`, and the
empty BPF probe (`trace --empty-probe`, the uprobe trap alone); on 3.9
and 3.11 the same three with `--capture in-process` (a profile function
instead of the markers); on 3.13,
3.14 and 3.15 `top_py` and `trace_py`, the agent with its Python callbacks
(its fallback) instead of the compiled ones. Builds without markers (each
fixture's twin, this machine's pyenv builds): the three tools through the
agent, which is what `auto` takes there (a compiled profile function on
3.8-3.11, `sys.monitoring` on 3.12+), and `top_py` and `trace_py` with its
Python callbacks.

Reported: each mode's slowdown (median / untraced median) and its cost per
event (or per call for top) over the untraced run. The issue's targets,
with PASS/FAIL:

  3.15, fib: in-process trace overhead <= 0.25 x the empty probe's
  in-process top and calls: <= 100 ns per event (3.13, 3.14, 3.15), the
  floor printed beside them
  stdlib, every interpreter, the path `auto` takes for a launched
  command: top <= 1.5 x untraced, calls <= 2 x
"""

import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "tests", "py", "fib.py")
STDLIB = os.path.join(ROOT, "tests", "py", "stdlib_work.py")
TRACE_OVER_EMPTY = 0.25
TOOL_NS = 100.0
# The stdlib workload's slowdown under the path `auto` takes.
AUTO_TOP = 1.5
AUTO_CALLS = 2.0


def fib_calls(n):
    """Calls recursive fib(n) makes."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def timed(argv, elapsed, env, preexec):
    if os.path.exists(elapsed):
        os.unlink(elapsed)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, preexec_fn=preexec)
    if proc.returncode != 0 or not os.path.exists(elapsed):
        raise SystemExit(f"bench: {argv[:4]} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    with open(elapsed) as f:
        return float(f.read()), proc.stderr


def modes_for(version, pytap, marked=True):
    tools = {
        "top": [pytap, "top", "--plain", "-n", "5", "-o", os.devnull],
        "calls": [pytap, "calls", "-o", os.devnull],
        "trace": [pytap, "trace", "-m", "function__entry", "-m", "function__return",
                  "-o", os.devnull],
    }
    modes = {"untraced": None}
    modes.update(tools)
    if not marked:
        # The agent, as auto gives it, and its Python callbacks.
        for name in ("top", "trace"):
            modes[name + "_py"] = tools[name] + [PURE]
        return modes
    if version in ("3.9", "3.11", "3.15"):
        # In-process where markers exist: sys.monitoring on 3.15, a profile
        # function on 3.9 and 3.11.
        for name, argv in tools.items():
            modes[name + "_ip"] = argv + ["--capture", "in-process"]
        modes["empty"] = [pytap, "trace", "-m", "function__entry", "-m", "function__return",
                          "--empty-probe", "-o", os.devnull]
    if version in ("3.13", "3.14", "3.15"):
        # The floor: CPython calling a compiled callback that records nothing.
        modes["floor"] = [FLOOR_SCRIPT, "both"]
        modes["floor1"] = [FLOOR_SCRIPT, "entry"]
        # The agent's Python callbacks (its fallback), for comparison.
        extra = ["--capture", "in-process"] if version == "3.15" else []
        for name in ("top", "trace"):
            modes[name + "_py"] = tools[name] + extra + [PURE]
    return modes


# Marks a mode run with the agent's Python callbacks (PYTAP_CAPTURE_PURE=1).
PURE = "<pure>"
# Runs the workload under monitoring_floor.py (no pytap): modes "floor"
# (PY_START and PY_RETURN) and "floor1" (PY_START only).
FLOOR_SCRIPT = os.path.join(ROOT, "scripts", "monitoring_floor.py")


def has_markers(pytap, python):
    """Whether pytap finds python markers in the interpreter (`pytap info`
    says so with exit 0)."""
    return subprocess.run([pytap, "info", python], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def unmarked_pythons():
    """The builds without markers the benchmark measures too: each fixture's
    twin, and this machine's pyenv builds."""
    fixtures = os.path.join(ROOT, "target", "pythons")
    found = [os.path.join(fixtures, f"python{v}-nomarkers")
             for v in ("3.9", "3.11", "3.13", "3.14", "3.15")]
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for v in ("3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"):
        found.append(os.path.join(pyenv, "versions", v, "bin", "python" + v.rsplit(".", 1)[0]))
    return [p for p in found if os.path.exists(p)]


def bench(pythons, args, tmp, env, preexec, version_of, real_binary):
    """Runs both workloads on each interpreter; returns the results."""
    results = []
    elapsed = os.path.join(tmp, "elapsed")
    for python in pythons:
        version = version_of(python)
        binary = real_binary(python)
        marked = has_markers(args.pytap, binary)
        for workload, work in (("fib", [FIB, str(args.n)]), ("stdlib", [STDLIB, "30"])):
            modes = modes_for(version, args.pytap, marked)
            times = {m: [] for m in modes}
            for _ in range(args.runs):
                for mode, argv in modes.items():
                    cmd = [binary] + work + [elapsed]
                    run_env = env
                    if argv is not None and argv[0] == FLOOR_SCRIPT:
                        cmd = [binary] + argv + work + [elapsed]
                    elif argv is not None:
                        if PURE in argv:
                            argv = [a for a in argv if a != PURE]
                            run_env = dict(env, PYTAP_CAPTURE_PURE="1")
                        cmd = argv + ["--"] + cmd
                    times[mode].append(timed(cmd, elapsed, run_env, preexec)[0])
            med = {m: statistics.median(v) for m, v in times.items()}
            results.append({
                "python": python,
                "version": version,
                "markers": marked,
                "workload": workload,
                "calls": fib_calls(args.n) if workload == "fib" else None,
                "runs": args.runs,
                "median_seconds": med,
                "interquartile_seconds": {m: quartiles(v) for m, v in times.items()},
            })
    return results


def report(results):
    ok = True
    for r in results:
        med = r["median_seconds"]
        base = med["untraced"]
        build = "" if r.get("markers", True) else " without markers"
        print(f"\n== capture: Python {r['version']}{build} ({r['python']}), {r['workload']}, "
              f"median [interquartile range] of {r['runs']} interleaved runs")
        for mode, t in med.items():
            lo, hi = r["interquartile_seconds"][mode]
            line = f"  {mode:<9} {t:8.3f} s [{lo:.3f}, {hi:.3f}]"
            if mode != "untraced":
                line += f"  {t / base:5.2f}x untraced"
                if r["workload"] == "fib":
                    per_call = mode.startswith("top") or mode == "floor1"
                    per = r["calls"] if per_call else 2 * r["calls"]
                    ns = (t - base) / per * 1e9
                    unit = "call" if per_call else "event"
                    line += f", {ns:6.0f} ns per {unit}"
            print(line)
        if r["workload"] == "stdlib":
            # The goal, through the path auto takes (the default).
            for mode, goal in (("top", AUTO_TOP), ("calls", AUTO_CALLS)):
                ratio = med[mode] / base
                verdict = ratio <= goal
                ok &= verdict
                print(f"  {mode} through auto's path: {ratio:5.2f}x untraced (goal <= {goal}x) "
                      f"{'PASS' if verdict else 'FAIL'}")
        if r["workload"] != "fib":
            continue
        monitoring = r["version"] in ("3.12", "3.13", "3.14", "3.15")
        in_process = [m for m in ("top", "calls") if r["version"] in ("3.13", "3.14")
                      or (monitoring and not r.get("markers", True))]
        in_process += [m for m in ("top_ip", "calls_ip") if m in med and monitoring]
        for mode in in_process:
            per = r["calls"] if mode.startswith("top") else 2 * r["calls"]
            ns = (med[mode] - base) / per * 1e9
            verdict = ns <= TOOL_NS
            ok &= verdict
            floor = "floor1" if mode.startswith("top") else "floor"
            beside = ""
            if floor in med:
                per_floor = r["calls"] if floor == "floor1" else 2 * r["calls"]
                beside = (f"; the floor, a built-in callback recording nothing: "
                          f"{(med[floor] - base) / per_floor * 1e9:.0f} ns")
            print(f"  {mode} in-process: {ns:6.0f} ns per {'call' if mode.startswith('top') else 'event'} "
                  f"(target <= {TOOL_NS:.0f} ns) {'PASS' if verdict else 'FAIL'}{beside}")
        if "trace_ip" in med:
            ratio = (med["trace_ip"] - base) / (med["empty"] - base)
            verdict = ratio <= TRACE_OVER_EMPTY
            ok &= verdict
            print(f"  trace in-process / empty probe overhead {ratio:5.2f}x "
                  f"(target <= {TRACE_OVER_EMPTY}x) {'PASS' if verdict else 'FAIL'}")
    return ok
