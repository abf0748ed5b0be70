"""Validates a file written by `pytap export` and summarizes it.

Usage: check_export.py FORMAT FILE, FORMAT one of perfetto, chrome,
speedscope, folded, perfetto-samples (a sampled profile's trace). Prints one JSON object on stdout describing what the
file holds; on any violation of the format (or of what pytap promises about
it) prints a message on stderr and exits 1. Exits 2 when a module it needs
is missing.

Only the standard library is used, plus, for perfetto, the `perfetto`
package from PyPI (`pip install perfetto`, which brings `protobuf`; tested
with perfetto 0.59.1, which the tests install). Its compiled trace protos are
imported as:

    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace

Summaries:

- perfetto, chrome: {"processes": {pid: name}, "tracks": {"PID/TID":
  {"name", "slices", "calls", "max_depth", "names": {name: count},
  "unfinished"}}, "calls", "gc", "imports", "instants"} (calls: slices that
  are Python function calls); perfetto also "instant_stacks": {instant
  name: [its `stack` annotations]} (`--stacks`).
- speedscope: {"name", "exporter", "frames": N, "profiles": {name:
  {"events", "max_depth", "opens": {frame name: count}}}}.
- folded: {"lines", "total", "leaves": {leaf frame: weight},
  "leaf_functions": {function name: weight}}.
- perfetto-samples: {"samples": N, "threads": {"PID/TID": name},
  "processes": {pid: name}, "stacks": {"PID/TID;outer;...;inner": count},
  "lines": {frame name: its line_number}} (each PerfSample's callstack
  resolved through the interned frames and function names; timestamps
  never go back).
"""

import json
import re
import sys
from collections import Counter, defaultdict


class Violation(Exception):
    pass


def fail(message):
    raise Violation(message)


def track_summary():
    return {"name": None, "slices": 0, "calls": 0, "max_depth": 0,
            "names": Counter(), "unfinished": 0}


def finish_tracks(tracks):
    out = {}
    for key, t in sorted(tracks.items()):
        t["names"] = dict(sorted(t["names"].items()))
        out[key] = t
    return out


def totals(tracks, instants):
    kinds = Counter()
    for t in tracks.values():
        kinds.update(t.pop("_kinds"))
    return {"calls": kinds["python"], "gc": kinds["gc"],
            "imports": kinds["import"], "instants": instants}


# --- perfetto ---------------------------------------------------------------

SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT = 1, 2, 3


def read_trace(path):
    """The file as Perfetto's own `Trace` message."""
    try:
        from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace
    except ImportError as e:
        print(f"check_export.py: needs the perfetto package "
              f"(pip install perfetto): {e}", file=sys.stderr)
        sys.exit(2)
    trace = Trace()
    with open(path, "rb") as f:
        data = f.read()
    try:
        trace.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError, whichever runtime
        fail(f"not a Trace: {e}")
    return trace


def check_perfetto(path):
    trace = read_trace(path)

    # Per sequence: interned tables, valid once state was cleared.
    interned = {}
    descriptors = {}  # uuid -> (pid, tid or None, name)
    processes = {}
    open_slices = defaultdict(list)  # uuid -> [(ts, name, kind, depth)]
    last_ts = {}
    tracks = defaultdict(track_summary)
    instants = 0
    stacks = {}  # instant name -> the `stack` annotations it carried

    def table(seq):
        state = interned.get(seq)
        if state is None:
            fail(f"sequence {seq}: interned data used before "
                 f"SEQ_INCREMENTAL_STATE_CLEARED")
        return state

    def lookup(seq, kind, iid):
        names = table(seq)[kind]
        if iid not in names:
            fail(f"sequence {seq}: {kind} iid {iid} was never interned")
        return names[iid]

    def key_of(uuid):
        if uuid not in descriptors:
            fail(f"track uuid {uuid} has no TrackDescriptor before its events")
        pid, tid, _ = descriptors[uuid]
        if tid is None:
            fail(f"event on process track {uuid} (pid {pid}), not a thread's")
        return f"{pid}/{tid}"

    for i, packet in enumerate(trace.packet):
        seq = packet.trusted_packet_sequence_id
        if not seq:
            fail(f"packet {i} has no trusted_packet_sequence_id")
        if packet.sequence_flags & SEQ_INCREMENTAL_STATE_CLEARED:
            interned[seq] = {k: {} for k in (
                "event_names", "debug_annotation_names", "event_categories",
                "debug_annotation_string_values")}
        elif packet.sequence_flags & SEQ_NEEDS_INCREMENTAL_STATE:
            table(seq)
        if packet.HasField("interned_data"):
            data = packet.interned_data
            state = table(seq)
            for kind in ("event_names", "debug_annotation_names",
                         "event_categories"):
                for entry in getattr(data, kind):
                    state[kind][entry.iid] = entry.name
            for entry in data.debug_annotation_string_values:
                state["debug_annotation_string_values"][entry.iid] = \
                    entry.str.decode("utf-8", "replace")
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            if d.HasField("thread"):
                if d.parent_uuid not in descriptors:
                    fail(f"thread track {d.uuid}: parent {d.parent_uuid} "
                         f"not described first")
                th = d.thread
                descriptors[d.uuid] = (th.pid, th.tid, th.thread_name)
                tracks[f"{th.pid}/{th.tid}"]["name"] = th.thread_name or None
            elif d.HasField("process"):
                pr = d.process
                descriptors[d.uuid] = (pr.pid, None, pr.process_name)
                if pr.process_name:
                    processes[str(pr.pid)] = pr.process_name
            else:
                fail(f"track {d.uuid} is neither a process's nor a thread's")
        if not packet.HasField("track_event"):
            continue
        ev = packet.track_event
        ts = packet.timestamp
        uuid = ev.track_uuid
        key = key_of(uuid)
        t = tracks[key]
        t.setdefault("_kinds", Counter())
        if ts < last_ts.get(uuid, 0):
            fail(f"track {key}: time goes back to {ts}")
        last_ts[uuid] = ts
        args = {}
        for a in ev.debug_annotations:
            name = lookup(seq, "debug_annotation_names", a.name_iid) \
                if a.HasField("name_iid") else a.name
            which = a.WhichOneof("value")
            if which == "string_value_iid":
                value = lookup(seq, "debug_annotation_string_values",
                               a.string_value_iid)
            else:
                value = getattr(a, which) if which else None
            args[name] = value
        name = lookup(seq, "event_names", ev.name_iid) \
            if ev.HasField("name_iid") else ev.name
        cats = [lookup(seq, "event_categories", c) for c in ev.category_iids]
        if ev.type == TYPE_SLICE_BEGIN:
            kind = cats[0] if cats else (
                "python" if "file" in args else
                "gc" if "generation" in args else
                "import" if "module" in args else "?")
            depth = len(open_slices[uuid]) + 1
            open_slices[uuid].append((ts, name, kind))
            t["max_depth"] = max(t["max_depth"], depth)
        elif ev.type == TYPE_SLICE_END:
            if not open_slices[uuid]:
                fail(f"track {key}: slice end at {ts} without a begin")
            begun, name, kind = open_slices[uuid].pop()
            t["slices"] += 1
            t["names"][name] += 1
            t["_kinds"][kind] += 1
            if kind == "python":
                t["calls"] += 1
            if args.get("unfinished"):
                t["unfinished"] += 1
        elif ev.type == TYPE_INSTANT:
            instants += 1
            if "stack" in args:
                stacks.setdefault(name, []).append(args["stack"])
        else:
            fail(f"track {key}: unexpected event type {ev.type}")
    for uuid, stack in open_slices.items():
        if stack:
            fail(f"track {key_of(uuid)}: {len(stack)} slices never end "
                 f"(first: {stack[0][1]!r} at {stack[0][0]})")
    for t in tracks.values():
        t.setdefault("_kinds", Counter())
    summary = totals(tracks, instants)
    return {"processes": processes, "tracks": finish_tracks(tracks),
            "instant_stacks": stacks, **summary}


# --- chrome -----------------------------------------------------------------

def ns(value, what):
    if not isinstance(value, (int, float)) or value < 0:
        fail(f"{what}: {value!r} is not a time")
    return round(value * 1000)


def check_chrome(path):
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        fail("no traceEvents list")
    if doc.get("displayTimeUnit") != "ns":
        fail(f"displayTimeUnit is {doc.get('displayTimeUnit')!r}")
    processes = {}
    tracks = defaultdict(track_summary)
    slices = defaultdict(list)
    instants = 0
    for i, e in enumerate(doc["traceEvents"]):
        for field in ("ph", "pid", "tid", "name"):
            if field not in e:
                fail(f"event {i} has no {field}: {e}")
        key = f"{e['pid']}/{e['tid']}"
        if e["ph"] == "M":
            if e["name"] == "process_name":
                processes[str(e["pid"])] = e["args"]["name"]
            elif e["name"] == "thread_name":
                tracks[key]["name"] = e["args"]["name"]
            else:
                fail(f"event {i}: unknown metadata {e['name']!r}")
        elif e["ph"] == "X":
            ts, dur = ns(e.get("ts"), f"event {i} ts"), ns(e.get("dur"), f"event {i} dur")
            if e.get("cat") not in ("python", "gc", "import"):
                fail(f"event {i}: category {e.get('cat')!r}")
            slices[key].append((ts, ts + dur, e["name"], e["cat"], e.get("args", {})))
        elif e["ph"] == "i":
            if e.get("s") != "t":
                fail(f"event {i}: instant not thread-scoped")
            ns(e.get("ts"), f"event {i} ts")
            instants += 1
        else:
            fail(f"event {i}: unexpected phase {e['ph']!r}")
    for key, items in slices.items():
        t = tracks[key]
        kinds = t.setdefault("_kinds", Counter())
        stack = []
        # Outer slices first: by start, then longest.
        for start, end, name, cat, args in sorted(items, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1][1] <= start and not (stack[-1][1] == start == end):
                stack.pop()
            if stack and end > stack[-1][1]:
                fail(f"thread {key}: {name!r} [{start}, {end}] overlaps "
                     f"{stack[-1][2]!r} [{stack[-1][0]}, {stack[-1][1]}]")
            stack.append((start, end, name))
            t["max_depth"] = max(t["max_depth"], len(stack))
            t["slices"] += 1
            t["names"][name] += 1
            kinds[cat] += 1
            if cat == "python":
                t["calls"] += 1
            if args.get("unfinished"):
                t["unfinished"] += 1
    for t in tracks.values():
        t.setdefault("_kinds", Counter())
    summary = totals(tracks, instants)
    return {"processes": processes, "tracks": finish_tracks(tracks), **summary}


# --- speedscope -------------------------------------------------------------

def check_speedscope(path):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("$schema") != "https://www.speedscope.app/file-format-schema.json":
        fail(f"$schema is {doc.get('$schema')!r}")
    frames = doc.get("shared", {}).get("frames")
    if not isinstance(frames, list):
        fail("no shared.frames list")
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
            fail(f"frame {i} has no name: {fr!r}")
        if "line" in fr and not isinstance(fr["line"], int):
            fail(f"frame {i}: line {fr['line']!r}")
    profiles = doc.get("profiles")
    if not isinstance(profiles, list):
        fail("no profiles list")
    active = doc.get("activeProfileIndex", 0)
    if profiles and not (isinstance(active, int) and 0 <= active < len(profiles)):
        fail(f"activeProfileIndex {active!r} out of range")
    summary = {}
    for p in profiles:
        name = p.get("name")
        if p.get("type") != "evented":
            fail(f"profile {name!r}: type {p.get('type')!r}")
        if p.get("unit") != "nanoseconds":
            fail(f"profile {name!r}: unit {p.get('unit')!r}")
        start, end = p.get("startValue"), p.get("endValue")
        if not all(isinstance(v, (int, float)) for v in (start, end)) or start > end:
            fail(f"profile {name!r}: startValue {start!r}, endValue {end!r}")
        stack, last, opens, depth = [], start, Counter(), 0
        for j, e in enumerate(p.get("events", [])):
            at, frame = e.get("at"), e.get("frame")
            if not isinstance(frame, int) or not 0 <= frame < len(frames):
                fail(f"profile {name!r} event {j}: frame {frame!r}")
            if not isinstance(at, (int, float)) or not last <= at <= end:
                fail(f"profile {name!r} event {j}: at {at!r} not in [{last}, {end}]")
            last = at
            if e.get("type") == "O":
                stack.append(frame)
                opens[frames[frame]["name"]] += 1
                depth = max(depth, len(stack))
            elif e.get("type") == "C":
                if not stack or stack[-1] != frame:
                    fail(f"profile {name!r} event {j}: closes frame {frame}, "
                         f"open is {stack[-1] if stack else None}")
                stack.pop()
            else:
                fail(f"profile {name!r} event {j}: type {e.get('type')!r}")
        if stack:
            fail(f"profile {name!r}: {len(stack)} frames never close")
        if name in summary:
            fail(f"two profiles named {name!r}")
        summary[name] = {"events": len(p.get("events", [])), "max_depth": depth,
                         "opens": dict(sorted(opens.items()))}
    return {"name": doc.get("name"), "exporter": doc.get("exporter"),
            "frames": len(frames), "profiles": summary}


# --- folded -----------------------------------------------------------------

LINE = re.compile(r"^(\S.*) (\d+)$")


def check_folded(path):
    leaves, functions = Counter(), Counter()
    total = lines = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = LINE.match(line)
            if not m:
                fail(f"line {n}: not `stack N`: {line!r}")
            frames = m.group(1).split(";")
            if any(not fr for fr in frames):
                fail(f"line {n}: empty frame: {line!r}")
            weight = int(m.group(2))
            if weight <= 0:
                fail(f"line {n}: weight {weight}")
            lines += 1
            total += weight
            leaves[frames[-1]] += weight
            functions[frames[-1].split(" (", 1)[0]] += weight
    return {"lines": lines, "total": total, "leaves": dict(sorted(leaves.items())),
            "leaf_functions": dict(sorted(functions.items()))}


def check_perfetto_samples(path):
    trace = read_trace(path)
    tables = None
    threads, processes, stacks, lines = {}, {}, Counter(), {}
    samples, last_ts = 0, 0
    for i, packet in enumerate(trace.packet):
        if packet.sequence_flags & SEQ_INCREMENTAL_STATE_CLEARED:
            tables = defaultdict(dict)
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            if d.HasField("thread"):
                threads[f"{d.thread.pid}/{d.thread.tid}"] = d.thread.thread_name
            elif d.HasField("process"):
                processes[str(d.process.pid)] = d.process.process_name
        if packet.HasField("interned_data"):
            if tables is None:
                fail(f"packet {i}: interned data before the state was cleared")
            data = packet.interned_data
            for kind in ("function_names", "mapping_paths", "source_paths"):
                for e in getattr(data, kind):
                    tables[kind][e.iid] = e.str.decode()
            for m in data.mappings:
                tables["mappings"][m.iid] = m
            for fr in data.frames:
                if fr.mapping_id not in tables["mappings"]:
                    fail(f"frame {fr.iid}: mapping {fr.mapping_id} not interned")
                name = tables["function_names"][fr.function_name_id]
                lines[name] = fr.line_number
                tables["frames"][fr.iid] = name
            for c in data.callstacks:
                tables["callstacks"][c.iid] = [
                    tables["frames"][f] for f in c.frame_ids]
        if packet.HasField("perf_sample"):
            s = packet.perf_sample
            if packet.timestamp < last_ts:
                fail(f"packet {i}: time goes back to {packet.timestamp}")
            last_ts = packet.timestamp
            if s.callstack_iid not in tables["callstacks"]:
                fail(f"packet {i}: callstack {s.callstack_iid} not interned")
            frames = tables["callstacks"][s.callstack_iid]
            stacks[";".join([f"{s.pid}/{s.tid}"] + frames)] += 1
            samples += 1
    return {"samples": samples, "threads": threads, "processes": processes,
            "stacks": dict(sorted(stacks.items())), "lines": lines}


CHECKS = {"perfetto": check_perfetto, "chrome": check_chrome,
          "speedscope": check_speedscope, "folded": check_folded,
          "perfetto-samples": check_perfetto_samples}


def main(argv):
    if len(argv) != 3 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} {{{','.join(CHECKS)}}} FILE", file=sys.stderr)
        return 2
    try:
        summary = CHECKS[argv[1]](argv[2])
    except Violation as e:
        print(f"check_export.py: {argv[1]} {argv[2]}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"check_export.py: {argv[1]} {argv[2]}: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
