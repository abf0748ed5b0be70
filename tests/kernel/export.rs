//! `pytap export` of real recordings: Perfetto decoded with Perfetto's own
//! protos, Chrome JSON and speedscope checked for nesting and schema, the
//! folded stacks' weights summed, the SVG opened in headless Chromium; and
//! every count checked against `flow`'s and `trace`'s view of the same
//! recording.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    ChildGuard, chromium, export_checker, fixture, pytap, record, require_kernel, root, scratch,
    wait_until,
};

/// `tests/py/check_export.py FORMAT FILE`'s summary (it fails on any
/// violation of the format or of nesting).
fn check(format: &str, file: &Path) -> Value {
    let out = Command::new(export_checker())
        .arg(root().join("tests/py/check_export.py"))
        .args([format, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_export.py {format} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn export(recording: &Path, format: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let out = recording.with_extension(format!("{format}{}", extra.join("")));
    let mut args = vec![
        "export",
        "-i",
        recording.to_str().unwrap(),
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = pytap(&args);
    run.ok();
    (out, run.stderr)
}

/// What `flow -i` and `trace -i` say the recording holds, per thread.
#[derive(Debug, Default)]
struct Expected {
    /// Per "PID/TID": calls by function name.
    calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per "PID/TID": the deepest flow depth + 1.
    depth: BTreeMap<String, u64>,
    /// Per "PID/TID": entries that never returned (flow shows no return).
    open: BTreeMap<String, u64>,
    gc: u64,
    imports: u64,
    audits: u64,
}

fn expected(recording: &Path) -> Expected {
    let rec = recording.to_str().unwrap();
    let mut e = Expected::default();
    let flow = pytap(&["flow", "--format", "jsonl", "-i", rec]);
    for line in flow.ok().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let key = format!("{}/{}", v["pid"], v["tid"]);
        let depth = v["depth"].as_u64().unwrap();
        let d = e.depth.entry(key.clone()).or_default();
        *d = (*d).max(depth + 1);
        let open = e.open.entry(key.clone()).or_default();
        if v["type"] == "entry" {
            *e.calls
                .entry(key)
                .or_default()
                .entry(v["funcname"].as_str().unwrap().into())
                .or_default() += 1;
            *open += 1;
        } else {
            *open -= 1;
        }
    }
    let trace = pytap(&["trace", "--format", "jsonl", "-i", rec]);
    for line in trace.ok().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["marker"].as_str().unwrap() {
            "gc__start" => e.gc += 1,
            "import__find__load__start" => e.imports += 1,
            "audit" => e.audits += 1,
            _ => {}
        }
    }
    e
}

/// A summary's function calls per track, by name (gc and import slices
/// left out).
fn calls_by_track(summary: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    summary["tracks"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(track, t)| {
            let names = t["names"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(n, _)| *n != "gc" && !n.starts_with("import "))
                .map(|(n, c)| (n.clone(), c.as_u64().unwrap()))
                .collect();
            (track.clone(), names)
        })
        .filter(|(_, names): &(String, BTreeMap<String, u64>)| !names.is_empty())
        .collect()
}

/// The exact wall time of each track's outermost slices, from the Chrome
/// export (`ts` and `dur` are microseconds with nanosecond decimals).
fn outermost_ns(chrome: &Path) -> u64 {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(chrome).unwrap()).unwrap();
    let mut tracks: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in v["traceEvents"].as_array().unwrap() {
        if e["ph"] == "X" {
            let ns = |x: &Value| (x.as_f64().unwrap() * 1000.0).round() as u64;
            tracks
                .entry(format!("{}/{}", e["pid"], e["tid"]))
                .or_default()
                .push((ns(&e["ts"]), ns(&e["dur"])));
        }
    }
    let mut total = 0;
    for slices in tracks.values_mut() {
        slices.sort_by_key(|(ts, dur)| (*ts, std::cmp::Reverse(*dur)));
        let mut end = 0;
        for (ts, dur) in slices.iter() {
            if *ts >= end {
                total += dur;
                end = ts + dur;
            }
        }
    }
    total
}

fn exports_of(version: &str) {
    require_kernel();
    // The agent by default: 3.11 (its compiled profile function), 3.12-3.14.
    let in_process = matches!(version, "3.11" | "3.12" | "3.13" | "3.14");
    let recording = record(version, &[]);
    let want = expected(&recording);
    assert!(
        want.gc >= 2 && want.imports >= 1 && want.audits >= 2,
        "{want:?}"
    );

    for format in ["perfetto", "chrome"] {
        let (file, stderr) = export(&recording, format, &[]);
        let got = check(format, &file);
        assert_eq!(calls_by_track(&got), want.calls, "{version} {format}");
        let total: u64 = want.calls.values().flat_map(|c| c.values()).sum();
        assert_eq!(got["calls"], total, "{version} {format}");
        assert_eq!(got["gc"], want.gc, "{version} {format}");
        assert_eq!(got["imports"], want.imports, "{version} {format}");
        assert_eq!(got["instants"], want.audits, "{version} {format}");
        for (track, t) in got["tracks"].as_object().unwrap() {
            if let Some(depth) = want.depth.get(track) {
                // gc and import slices can sit below the deepest call.
                assert!(t["max_depth"].as_u64().unwrap() >= *depth, "{track}: {t}");
            }
            let open = want.open.get(track).copied().unwrap_or(0);
            let unfinished = t["unfinished"].as_u64().unwrap();
            if in_process {
                // The agent enters the frames running as it starts (site's
                // import of it, 7 or 8 frames) when it starts: after the
                // kernel saw that import begin, so the import's end closes
                // them (docs/export.md).
                assert!(
                    (open..=open + 8).contains(&unfinished),
                    "{version} {format} {track}: {t}"
                );
            } else {
                assert_eq!(unfinished, open, "{version} {format} {track}");
            }
            assert!(t["name"].is_string(), "{track}: every thread is named");
        }
        assert!(stderr.contains(&format!("{total} calls")), "{stderr}");
    }

    // --stacks: each audit instant carries the Python stack, innermost
    // first, as `trace --stacks` gives it.
    let (file, _) = export(&recording, "perfetto", &["--stacks"]);
    let got = check("perfetto", &file);
    let stacks = got["instant_stacks"]["pytap.replay"].as_array().unwrap();
    let firsts: Vec<&str> = stacks
        .iter()
        .map(|s| s.as_str().unwrap().lines().next().unwrap_or(""))
        .collect();
    assert_eq!(firsts.len(), 2, "{version}: {stacks:?}");
    assert!(
        firsts.iter().any(|f| f.starts_with("worker (")),
        "{version}: {firsts:?}"
    );
    assert!(
        firsts.iter().any(|f| f.starts_with("main (")),
        "{version}: {firsts:?}"
    );

    let (file, _) = export(&recording, "speedscope", &[]);
    let got = check("speedscope", &file);
    let mut opens: BTreeMap<String, u64> = BTreeMap::new();
    for p in got["profiles"].as_object().unwrap().values() {
        for (name, n) in p["opens"].as_object().unwrap() {
            *opens.entry(name.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let mut want_opens: BTreeMap<String, u64> = BTreeMap::new();
    for calls in want.calls.values() {
        for (name, n) in calls {
            *want_opens.entry(name.clone()).or_default() += n;
        }
    }
    let called: BTreeMap<String, u64> = opens
        .iter()
        .filter(|(n, _)| !n.starts_with('['))
        .map(|(n, c)| (n.clone(), *c))
        .collect();
    assert_eq!(called, want_opens, "{version} speedscope");
    assert_eq!(got["profiles"].as_object().unwrap().len(), want.calls.len());

    // Folded stacks: time weights add up to the outermost slices' time;
    // call weights count every slice.
    let (chrome, _) = export(&recording, "chrome", &[]);
    let (folded, _) = export(&recording, "folded", &[]);
    let got = check("folded", &folded);
    assert_eq!(
        got["total"].as_u64().unwrap(),
        outermost_ns(&chrome),
        "{version} folded"
    );
    let (by_calls, _) = export(&recording, "folded", &["--weight", "calls"]);
    let got = check("folded", &by_calls);
    let slices: u64 =
        want.calls.values().flat_map(|c| c.values()).sum::<u64>() + want.gc + want.imports;
    assert_eq!(
        got["total"].as_u64().unwrap(),
        slices,
        "{version} folded --weight calls"
    );
}

#[test]
fn exports_nest_and_count_every_call_on_3_9() {
    exports_of("3.9");
}

#[test]
fn exports_nest_and_count_every_call_on_3_11() {
    exports_of("3.11");
}

#[test]
fn exports_nest_and_count_every_call_on_3_15() {
    exports_of("3.15");
}

#[test]
fn exports_nest_and_count_every_call_with_the_in_process_capture() {
    exports_of("3.14");
}

/// The SVG flame graph (and flame chart), opened in headless Chromium:
/// the rendered page holds the workload's function names.
#[test]
fn the_svg_flame_graph_renders_the_workloads_functions() {
    require_kernel();
    let recording = record("3.11", &["-m", "function__entry", "-m", "function__return"]);
    // A flame chart draws every call apart: only the long ones are wide
    // enough for inferno to keep. (The workload's `fails` sums a range on
    // its one line so that its 15 calls stay wider than inferno's minimum
    // when the tests load both CPUs: without it they made about 0.05% of
    // the run, and a loaded run once left them out; now about 0.5%, 60 times the minimum.)
    let graph: &[&str] = &["work", "branch", "leaf", "worker", "fails"];
    let chart: &[&str] = &["main", "work", "worker"];
    for (extra, names) in [(&[][..], graph), (&["--flame-chart"][..], chart)] {
        let (svg, _) = export(&recording, "svg", extra);
        let out = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--dump-dom",
                &format!("file://{}", svg.display()),
            ])
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in names {
            assert!(
                dom.contains(&format!("{name} (")),
                "{extra:?}: {name} not in the rendered page ({} bytes)",
                dom.len()
            );
        }
    }
}

/// `record --format` writes the export directly, and no recording is left.
#[test]
fn record_writes_an_export_directly() {
    require_kernel();
    let dir = scratch("record-format");
    let out = dir.join("run.pftrace");
    let command = crate::harness::workload("3.15");
    let run = pytap(&[
        "record",
        "--format",
        "perfetto",
        "-o",
        out.to_str().unwrap(),
        "-c",
        &command,
    ]);
    run.ok();
    let got = check("perfetto", &out);
    assert!(got["calls"].as_u64().unwrap() > 100, "{got}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("run.pftrace")]);
}

/// A recording started inside calls and ended inside one: the returns
/// whose entry came before are dropped and counted, the frame still open
/// at the end is closed at its thread's last event and flagged.
#[test]
fn a_recording_of_a_running_process_drops_early_returns_and_flags_open_frames() {
    require_kernel();
    let dir = scratch("record-mid-run");
    let stop = dir.join("stop");
    let code = "import os, sys, time\n\
                def step():\n    time.sleep(0.2)\n\
                def loop(path):\n    while not os.path.exists(path):\n        step()\n\
                print('ready', flush=True)\n\
                loop(sys.argv[1])\n";
    let mut python = ChildGuard::spawn(Command::new(&fixture("3.11").binary).args([
        "-c",
        code,
        stop.to_str().unwrap(),
    ]));
    python.wait_for_line("ready", Duration::from_secs(20));
    let recording = dir.join("mid.pytap");
    let run = pytap(&[
        "record",
        "-m",
        "function__entry",
        "-m",
        "function__return",
        "--duration",
        "1.1",
        "-o",
        recording.to_str().unwrap(),
        "-p",
        &python.pid().to_string(),
    ]);
    run.ok();
    std::fs::write(&stop, "").unwrap();
    wait_until("the program to end", Duration::from_secs(10), || {
        !python.is_running()
    });
    let (file, stderr) = export(&recording, "perfetto", &[]);
    assert!(
        stderr.contains("returns whose entry came before the recording were dropped"),
        "{stderr}"
    );
    assert!(stderr.contains("flagged unfinished"), "{stderr}");
    let got = check("perfetto", &file);
    let track = got["tracks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(track["names"]["step"].as_u64().unwrap() >= 3, "{track}");
    assert_eq!(track["unfinished"], 1, "{track}");
    assert!(
        track["names"].get("loop").is_none(),
        "loop began before: {track}"
    );
}
