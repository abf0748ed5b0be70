//! `pytap record` and `-i FILE`: every view of a recording equals the
//! live view of the same workload, timestamps, pids and durations aside,
//! on 3.9, 3.11 (armed) and 3.15; recordings cut short, of another
//! version, or not recordings at all get one clear line.

use std::path::PathBuf;

use serde_json::Value;

use std::time::Duration;

use crate::harness::{
    ChildGuard, fixture, pytap, pytap_bin, record, require_kernel, scratch, script, wait_until,
    workload,
};

/// Keys that differ between two sessions on the same events: each
/// session's probes read the clock themselves.
fn varies(key: &str) -> bool {
    // `histogram`: gc's pauses by duration, as each session timed them.
    matches!(key, "seconds" | "histogram") || key.ends_with("_ns")
}

/// A text line without its leading time column.
fn untimed(line: &str) -> String {
    let trimmed = line.trim_start();
    match trimmed.split_once(' ') {
        Some((first, rest)) if first.parse::<f64>().is_ok() => rest.trim_start().to_string(),
        _ => line.to_string(),
    }
}

fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !varies(k));
            map.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// The views `-i` must reproduce, with their arguments.
const VIEWS: &[(&str, &[&str])] = &[
    ("trace", &["--format", "jsonl"]),
    ("trace", &[]),
    ("flow", &["--format", "jsonl"]),
    ("flow", &[]),
    ("calls", &["--format", "jsonl", "-n", "0"]),
    (
        "top",
        &["--format", "jsonl", "-n", "0", "--interval", "100"],
    ),
    ("gc", &["--format", "jsonl"]),
    ("imports", &["--format", "jsonl"]),
    ("audit", &["--format", "jsonl"]),
    ("audit", &[]),
];

/// How many BPF links a process holds (a pytap that has attached holds
/// one per marker at least; the kernel's semaphores do not count sessions,
/// since consumers of one probe share its reference count).
fn links(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf_link")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits until every session holds links, and holds as many 300 ms later.
fn wait_attached(sessions: &[u32]) {
    let mut last = Vec::new();
    wait_until("every pytap to attach", Duration::from_secs(30), || {
        let now: Vec<usize> = sessions.iter().map(|p| links(*p)).collect();
        let settled = now.iter().all(|n| *n > 0) && now == last;
        last = now;
        if !settled {
            // The window the counts must hold over, part of the condition
            // (a session still attaching adds links within it), not a wait
            // in place of one.
            std::thread::sleep(Duration::from_millis(300));
        }
        settled
    });
}

/// A pytap run in the background, its output to a file.
struct Background {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
}

fn background(args: &[&str], dir: &std::path::Path, n: usize) -> Background {
    let out = dir.join(format!("{n}.out"));
    let err = dir.join(format!("{n}.err"));
    let child = std::process::Command::new(pytap_bin())
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    Background { child, out, err }
}

impl Background {
    fn finish(mut self) -> (String, String) {
        let status = self.child.wait().unwrap();
        let out = std::fs::read_to_string(&self.out).unwrap();
        let err = std::fs::read_to_string(&self.err).unwrap();
        assert!(status.success(), "{status}: {err}");
        (out, err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One process, traced at once by `pytap record` and by every live view;
/// each view of the recording must then equal its live output exactly
/// (the same events: same timestamps, pids and threads), but for `top`'s
/// interval length (wall time live, recorded time replayed).
fn live_equals_replay(version: &str) {
    require_kernel();
    let dir = scratch(&format!("recording-same-run-{version}"));
    let recording = dir.join("run.pytap");
    let code = format!("exec(open({:?}).read())", script("replay_work.py"));
    let mut python = ChildGuard::spawn(
        std::process::Command::new(&fixture(version).wrapper)
            .env("PYTHONHASHSEED", "0")
            .args([
                "-c",
                &format!("import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n{code}"),
            ]),
    );
    python.wait_for_line("ready", Duration::from_secs(20));
    let pid = python.pid().to_string();
    let recorder = background(
        &["record", "-o", recording.to_str().unwrap(), "-p", &pid],
        &dir,
        0,
    );
    let mut views = Vec::new();
    for (n, (view, args)) in VIEWS.iter().enumerate() {
        let mut all = vec![*view, "-p", &pid];
        all.extend_from_slice(args);
        views.push(background(&all, &dir, n + 1));
    }
    let sessions: Vec<u32> = std::iter::once(&recorder)
        .chain(&views)
        .map(|b| b.child.id())
        .collect();
    wait_attached(&sessions);
    // Go: the workload runs and the process exits.
    python.say("go");
    let (code, _) = python.finish();
    assert_eq!(code, 0);
    let (_, recorded) = recorder.finish();
    assert!(recorded.contains("recorded "), "{recorded}");
    for ((view, args), live) in VIEWS.iter().zip(views) {
        let (live_out, live_err) = live.finish();
        let mut replay_args = vec![*view, "-i", recording.to_str().unwrap()];
        replay_args.extend_from_slice(args);
        let replay = pytap(&replay_args);
        replay.ok();
        assert!(replay.stderr.contains("replayed from"), "{}", replay.stderr);
        assert!(
            live_out.lines().count() > 0,
            "{view} {args:?} on {version}: nothing live\n{live_err}"
        );
        let json = args.contains(&"jsonl");
        let lines = |out: &str| -> Vec<Vec<String>> {
            if json {
                return vec![
                    out.lines()
                        .map(|l| {
                            let mut v: Value = serde_json::from_str(l)
                                .unwrap_or_else(|e| panic!("bad JSON ({e}): {l}"));
                            normalize(&mut v);
                            v.to_string()
                        })
                        .collect(),
                ];
            }
            vec![out.lines().map(untimed).collect()]
        };
        let (mut want, mut got) = (lines(&live_out), lines(&replay.stdout));
        if *view == "calls" {
            // Rows are ordered by time, which each session measured itself.
            want[0].sort();
            got[0].sort();
        }
        if want != got {
            let w: Vec<&String> = want.iter().flatten().collect();
            let g: Vec<&String> = got.iter().flatten().collect();
            let first = w.iter().zip(&g).position(|(a, b)| a != b);
            panic!(
                "{view} {args:?} on {version}: the replay differs from the live view ({} vs {} lines); first difference at {first:?}:\nlive:   {:?}\nreplay: {:?}",
                w.len(),
                g.len(),
                first.and_then(|i| w.get(i)),
                first.and_then(|i| g.get(i)),
            );
        }
    }
}

#[test]
fn every_view_of_a_recording_equals_the_live_view_on_3_9() {
    live_equals_replay("3.9");
}

#[test]
fn every_view_of_a_recording_equals_the_live_view_on_3_11() {
    live_equals_replay("3.11");
}

#[test]
fn every_view_of_a_recording_equals_the_live_view_on_3_15() {
    live_equals_replay("3.15");
}

/// `trace --stacks`: gc, import and audit events carry the thread's Python
/// stack, innermost first, live and replayed alike.
fn stacks_on(version: &str) {
    require_kernel();
    // It stays a moment before its exit, for the live run's walked stacks
    // (see the workload).
    let command = format!("{} linger", workload(version));
    let recording = record(version, &[]);
    for source in [
        vec!["-c", command.as_str()],
        vec!["-i", recording.to_str().unwrap()],
    ] {
        let mut args = vec!["trace", "--format", "jsonl", "--stacks"];
        args.extend_from_slice(&source);
        let run = pytap(&args);
        let lines: Vec<Value> = run
            .ok()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names = |v: &Value| -> Vec<String> {
            v["stack"]
                .as_array()
                .unwrap_or_else(|| panic!("no stack: {v}"))
                .iter()
                .map(|f| f["funcname"].as_str().unwrap().to_string())
                .collect()
        };
        let audit = |who: &str| {
            lines
                .iter()
                .find(|l| l["event"] == "pytap.replay" && l["args"][0] == who)
                .unwrap_or_else(|| panic!("{version} {source:?}: no pytap.replay {who}"))
        };
        assert_eq!(
            names(audit("main")),
            ["main", "<module>"],
            "{version} {source:?}"
        );
        let worker = names(audit("worker"));
        assert_eq!(
            worker.first().map(String::as_str),
            Some("worker"),
            "{worker:?}"
        );
        // Live, the walked stack has qualified names where the version
        // has them (3.11+); replayed, the calls' names.
        assert!(
            worker
                .last()
                .is_some_and(|f| f == "_bootstrap" || f == "Thread._bootstrap"),
            "{worker:?}"
        );
        // gc.collect(0) and gc.collect(2), from main (start-up's automatic
        // collections come before, from wherever they struck).
        let collections: Vec<Vec<String>> = lines
            .iter()
            .filter(|l| l["marker"] == "gc__start")
            .map(names)
            .filter(|s| s.first().is_some_and(|f| f == "main"))
            .collect();
        assert_eq!(
            collections,
            [["main", "<module>"], ["main", "<module>"]],
            "{version} {source:?}"
        );
        // The import of colorsys, from main; functions carry no stack.
        let import = lines
            .iter()
            .find(|l| l["marker"] == "import__find__load__start" && l["module"] == "colorsys")
            .unwrap();
        assert_eq!(names(import), ["main", "<module>"]);
        assert!(
            lines
                .iter()
                .filter(|l| l["marker"] == "function__entry")
                .all(|l| l.get("stack").is_none())
        );
    }
}

#[test]
fn stacks_on_gc_import_and_audit_events_on_3_9_3_11_3_15() {
    for version in ["3.9", "3.11", "3.15"] {
        stacks_on(version);
    }
}

/// On 3.13 and 3.14 function events come from inside the interpreter and
/// gc, import and audit events from the markers: merged in time order.
#[test]
fn stacks_on_gc_import_and_audit_events_with_the_in_process_capture() {
    for version in ["3.13", "3.14"] {
        stacks_on(version);
    }
}

/// Files that are not recordings, from a newer pytap, cut short or
/// corrupted: one clear line and exit 2, or (cut short) what the file holds
/// and a notice.
#[test]
fn bad_recordings_get_one_clear_line() {
    require_kernel();
    let recording = record("3.11", &["-m", "function__entry", "-m", "function__return"]);
    let dir = scratch("recording-hostile");
    let bytes = std::fs::read(&recording).unwrap();
    let path = |name: &str, content: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    };

    let not = path("not", b"#!/bin/sh\necho this is no recording\n");
    let msg = pytap(&["flow", "-i", &not]).one_line_error().to_string();
    assert_eq!(
        msg,
        format!("pytap: {not}: not a pytap recording (it does not start with PYTAPREC)")
    );
    pytap(&["flow", "-i", &path("empty", b"")]).one_line_error();
    let missing = dir.join("missing").display().to_string();
    pytap(&["export", "-i", &missing, "--format", "folded"]).one_line_error();

    let mut newer = bytes.clone();
    newer[8] = 4;
    let newer = path("newer", &newer);
    let msg = pytap(&["calls", "-i", &newer]).one_line_error().to_string();
    assert!(
        msg.contains("recording format version 4; this pytap reads version 3"),
        "{msg}"
    );

    // A tag no version writes, where the first record should be.
    let mut corrupt = bytes.clone();
    corrupt[12] = 0x7e;
    let corrupt = path("corrupt", &corrupt);
    // The error names the file and the byte, for every reader of it.
    for args in [
        &["flow", "-i", &corrupt][..],
        &["export", "-i", &corrupt, "--format", "folded"][..],
    ] {
        let msg = pytap(args).one_line_error().to_string();
        assert_eq!(
            msg,
            format!("pytap: {corrupt}: unknown record tag 0x7e at byte 12"),
            "{args:?}"
        );
    }

    // Cut short (pytap killed while recording): what it holds, and a notice.
    let whole = pytap(&[
        "flow",
        "--format",
        "jsonl",
        "-i",
        recording.to_str().unwrap(),
    ]);
    let whole_lines = whole.ok().lines().count();
    let cut = path("cut", &bytes[..bytes.len() * 2 / 3 + 1]);
    let run = pytap(&["flow", "--format", "jsonl", "-i", &cut]);
    let cut_lines = run.ok().lines().count();
    assert!(
        cut_lines > 0 && cut_lines < whole_lines,
        "{cut_lines} of {whole_lines}"
    );
    assert!(
        run.stderr
            .contains("ends early (the recording was cut short)"),
        "{}",
        run.stderr
    );
    // Every line it printed is a line of the whole replay.
    assert!(whole.stdout.starts_with(&run.stdout));

    // Malformed before the end: an error naming the byte, not a short read.
    let mut bad = bytes[..12].to_vec();
    bad.push(0x01);
    bad.extend_from_slice(&[0xff; 11]);
    bad.extend_from_slice(&bytes[12..]);
    let bad = path("bad-varint", &bad);
    let msg = pytap(&["flow", "-i", &bad]).one_line_error().to_string();
    assert!(msg.ends_with("malformed string at byte 12"), "{msg}");

    // Outputs are replaced only by a good run: a missing recording, or the
    // recording itself as the output, leave them as they were.
    let kept = path("kept.svg", b"an earlier export");
    let run = pytap(&["export", "-i", &missing, "--format", "svg", "-o", &kept]);
    run.one_line_error();
    assert_eq!(std::fs::read(&kept).unwrap(), b"an earlier export");
    let rec = recording.to_str().unwrap();
    let msg = pytap(&["export", "-i", rec, "--format", "folded", "-o", rec])
        .one_line_error()
        .to_string();
    assert!(msg.contains("the output is the recording itself"), "{msg}");
    assert_eq!(std::fs::read(&recording).unwrap(), bytes);
    let earlier = path("earlier.pytap", b"an earlier recording");
    pytap(&["record", "-o", &earlier, "-p", "999999999"]).one_line_error();
    assert_eq!(std::fs::read(&earlier).unwrap(), b"an earlier recording");
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary files left: {hidden:?}");

    // top's interval was -i: a number that is no file says where it went;
    // --duration and --stacks say why they do not apply.
    let msg = pytap(&["top", "-i", "2"]).one_line_error().to_string();
    assert!(
        msg.contains("top's interval is --interval SECONDS"),
        "{msg}"
    );
    let msg = pytap(&["flow", "-i", rec, "--duration", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("a recording is replayed whole"), "{msg}");
    let gc_only = record("3.11", &["-m", "gc__start", "-m", "gc__done"]);
    let msg = pytap(&[
        "trace",
        "--format",
        "jsonl",
        "--stacks",
        "-i",
        gc_only.to_str().unwrap(),
    ])
    .one_line_error()
    .to_string();
    assert!(
        msg.contains("the recording has no function__entry events"),
        "{msg}"
    );

    // A view that needs markers the recording lacks.
    let msg = pytap(&["gc", "-i", recording.to_str().unwrap()])
        .one_line_error()
        .to_string();
    assert!(
        msg.contains("it has no gc__start, gc__done events (record them with -m)"),
        "{msg}"
    );

    // -i goes with the views and export; record traces a live target.
    let msg = pytap(&[
        "record",
        "-o",
        &dir.join("x").display().to_string(),
        "-i",
        &not,
    ])
    .one_line_error()
    .to_string();
    assert!(msg.contains("record traces a live target"), "{msg}");
    let msg = pytap(&["trace", "--dump-bpf", "-i", recording.to_str().unwrap()])
        .one_line_error()
        .to_string();
    assert!(msg.contains("--dump-bpf"), "{msg}");
}
