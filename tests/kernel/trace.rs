//! `pytap trace` against every interpreter class: exact call sequences per
//! thread, collections, imports, audit arguments, and what a version lacks.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{
    embed_program, expected_main, expected_worker, fixture, pytap, require_kernel, script,
    system_python, trace_jsonl,
};

/// Entries and returns in `file`, per thread in order of first appearance:
/// `E:name:line` / `R:name:line`.
fn call_sequences(events: &[Value], file: &str) -> Vec<Vec<String>> {
    let mut order = Vec::new();
    let mut by_tid: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in events {
        if e["filename"] != file {
            continue;
        }
        let tid = e["tid"].as_u64().unwrap();
        if !by_tid.contains_key(&tid) {
            order.push(tid);
        }
        let kind = match e["marker"].as_str().unwrap() {
            "function__entry" => "E",
            "function__return" => "R",
            other => panic!("unexpected {other}"),
        };
        by_tid.entry(tid).or_default().push(format!(
            "{kind}:{}:{}",
            e["funcname"].as_str().unwrap(),
            e["lineno"]
        ));
    }
    order
        .into_iter()
        .map(|t| by_tid.remove(&t).unwrap())
        .collect()
}

#[track_caller]
fn assert_calls(events: &[Value], main: Vec<String>) {
    let seqs = call_sequences(events, &script("calls.py"));
    assert_eq!(
        seqs.len(),
        2,
        "expected the main thread and one worker: {seqs:?}"
    );
    assert_eq!(seqs[0], main, "main thread");
    assert_eq!(seqs[1], expected_worker(), "worker thread");
    // Two different threads.
    let tids: std::collections::BTreeSet<_> = events
        .iter()
        .filter(|e| e["filename"] == script("calls.py"))
        .map(|e| e["tid"].as_u64())
        .collect();
    assert_eq!(tids.len(), 2);
}

fn calls_cmd(python: &Path) -> String {
    format!("{} {}", python.display(), script("calls.py"))
}

const MARKERS: [&str; 4] = ["-m", "function__entry", "-m", "function-return"];

#[test]
fn calls_on_3_9_are_balanced() {
    require_kernel();
    let (events, run) = trace_jsonl(
        "calls-3.9",
        &[&MARKERS[..], &["-c", &calls_cmd(&fixture("3.9").binary)]].concat(),
    );
    run.ok();
    let generator =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24";
    assert_calls(&events, expected_main(3, 38, generator, true));
    assert!(run.stderr.contains(" 0 lost"), "{}", run.stderr);
}

#[test]
fn calls_on_3_11_are_complete_once_armed() {
    require_kernel();
    let generator =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    for python in [fixture("3.11").binary.clone(), system_python()] {
        // The markers (3.11's default is the agent).
        let (events, run) = trace_jsonl(
            "calls-3.11",
            &[
                &MARKERS[..],
                &["--capture", "markers", "-c", &calls_cmd(&python)],
            ]
            .concat(),
        );
        run.ok();
        assert!(
            run.stderr
                .contains("so pytap turned it on; no line is recorded"),
            "{}",
            run.stderr
        );
        assert_calls(&events, expected_main(0, 38, generator, true));
        // Over the whole run (stdlib included), every entry has its return.
        let count = |m: &str| events.iter().filter(|e| e["marker"] == m).count();
        assert_eq!(count("function__entry"), count("function__return"));
        assert!(count("function__entry") > 1000);
    }
}

#[test]
fn calls_on_3_11_through_an_embedding_program() {
    require_kernel();
    // Markers live in libpython3.11.so, mapped only after the program starts.
    let code = format!(
        "import runpy; runpy.run_path({:?}, run_name='__main__')",
        script("calls.py")
    );
    let (events, run) = trace_jsonl(
        "calls-embed",
        &[
            &MARKERS[..],
            &["--", embed_program().to_str().unwrap(), &code],
        ]
        .concat(),
    );
    run.ok();
    let generator =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    assert_calls(&events, expected_main(0, 38, generator, true));
}

#[test]
fn calls_on_3_15_keep_their_unmatched_events() {
    require_kernel();
    let (events, run) = trace_jsonl(
        "calls-3.15",
        &[&MARKERS[..], &["-c", &calls_cmd(&fixture("3.15").binary)]].concat(),
    );
    run.ok();
    // Generator creation fires one extra entry; list comprehensions are
    // inlined (PEP 709); the class body enters at line -1.
    let generator = "E:gen:22 E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    assert_calls(&events, expected_main(0, -1, generator, false));
    // The `__init__` shim frame returns without entering.
    let shim = |m: &str| {
        events
            .iter()
            .filter(|e| {
                e["marker"] == m && e["filename"] == "__init__" && e["funcname"] == "__init__"
            })
            .count()
    };
    assert_eq!(shim("function__entry"), 0);
    assert!(
        shim("function__return") >= 3,
        "{}",
        shim("function__return")
    );
}

#[test]
fn the_perf_event_fallback_sees_the_same_calls() {
    require_kernel();
    let python = fixture("3.15").binary.clone();
    let (events, run) = trace_jsonl(
        "calls-perf",
        &[
            &MARKERS[..],
            &["--force-perf-event", "-c", &calls_cmd(&python)],
        ]
        .concat(),
    );
    run.ok();
    let generator = "E:gen:22 E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    assert_calls(&events, expected_main(0, -1, generator, false));
}

#[test]
fn a_shell_wrapper_is_followed_to_the_python_it_execs() {
    require_kernel();
    // The fixture wrappers are `#!/bin/sh` scripts that exec the interpreter.
    let wrapper = fixture("3.9").wrapper.clone();
    let (events, run) = trace_jsonl(
        "calls-wrapper",
        &[
            &MARKERS[..],
            &["--", wrapper.to_str().unwrap(), &script("calls.py")],
        ]
        .concat(),
    );
    run.ok();
    assert_eq!(call_sequences(&events, &script("calls.py")).len(), 2);
}

#[test]
fn function_markers_on_3_13_and_3_14_are_a_clear_error() {
    require_kernel();
    // With markers only (by default 3.13's function events come from
    // inside the interpreter: tests/kernel/in_process.rs).
    for (v, version) in [("3.13", "3.13.5"), ("3.14", "3.14.8")] {
        let run = pytap(&[
            "trace",
            "--capture",
            "markers",
            "-m",
            "function__entry",
            "-c",
            &calls_cmd(&fixture(v).binary),
        ]);
        let msg = run.one_line_error();
        assert!(
            msg.contains(&format!(
                "(CPython {version}) has no function__entry marker"
            )),
            "{msg}"
        );
        assert!(msg.contains("PEP 669"), "{msg}");
    }
    let run = pytap(&[
        "trace",
        "-m",
        "line",
        "-c",
        &calls_cmd(&fixture("3.15").binary),
    ]);
    assert!(run.one_line_error().contains("has no line marker"));
}

#[test]
fn collections_have_their_generation_and_count() {
    require_kernel();
    for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let cmd = format!("{} {}", fixture(v).binary.display(), script("gcwork.py"));
        let (events, run) = trace_jsonl(
            "gc",
            &[
                "-m",
                "gc__start",
                "-m",
                "gc__done",
                "-m",
                "audit",
                "-c",
                &cmd,
            ],
        );
        run.ok();
        // Between each pytap.gc and pytap.collected audit event: exactly one
        // collection of the asked generation, collecting what gc.collect() returned.
        let mut seen = Vec::new();
        let mut inside: Option<Vec<String>> = None;
        for e in &events {
            match (e["marker"].as_str().unwrap(), e["event"].as_str()) {
                ("audit", Some("pytap.gc")) => {
                    inside = Some(vec![format!("asked {}", e["args"][0])])
                }
                ("audit", Some("pytap.collected")) => {
                    let mut s = inside.take().unwrap();
                    s.push(format!("returned {}", e["args"][0]));
                    seen.push(s.join(" "));
                }
                // Start-up and shutdown collections fall outside the brackets.
                ("gc__start", _) => {
                    if let Some(s) = inside.as_mut() {
                        s.push(format!("start {}", e["generation"]));
                    }
                }
                ("gc__done", _) => {
                    if let Some(s) = inside.as_mut() {
                        s.push(format!("done {}", e["collected"]));
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            seen,
            [0, 1, 2, 2].map(|g| format!("asked {g} start {g} done 10 returned 10")),
            "Python {v}"
        );
    }
}

#[test]
fn imports_found_and_not_found() {
    require_kernel();
    for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let cmd = format!("{} {}", fixture(v).binary.display(), script("imports.py"));
        let (events, run) = trace_jsonl(
            "imports",
            &[
                "-m",
                "import-find-load-start",
                "-m",
                "import-find-load-done",
                "-c",
                &cmd,
            ],
        );
        run.ok();
        let of = |name: &str| -> Vec<(String, Value)> {
            events
                .iter()
                .filter(|e| e["module"] == name)
                .map(|e| {
                    (
                        e["marker"].as_str().unwrap().to_string(),
                        e["found"].clone(),
                    )
                })
                .collect()
        };
        let start = "import__find__load__start".to_string();
        let done = "import__find__load__done".to_string();
        assert_eq!(
            of("colorsys"),
            [(start.clone(), Value::Null), (done.clone(), json!(true))],
            "{v}"
        );
        assert_eq!(
            of("json"),
            [(start.clone(), Value::Null), (done.clone(), json!(true))],
            "{v}"
        );
        assert_eq!(
            of("no_such_module_xyz"),
            [(start, Value::Null), (done, json!(false))],
            "{v}"
        );
        // Submodules fire too.
        assert!(events.iter().any(|e| e["module"] == "json.decoder"), "{v}");
    }
}

fn audit_args(events: &[Value], name: &str) -> Value {
    let found: Vec<_> = events.iter().filter(|e| e["event"] == name).collect();
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0]["args"].clone()
}

#[test]
fn audit_arguments_are_decoded_on_every_version() {
    require_kernel();
    let mut pythons: Vec<(String, Vec<String>)> = ["3.9", "3.11", "3.13", "3.14", "3.15"]
        .iter()
        .map(|v| {
            (
                v.to_string(),
                vec![fixture(v).binary.display().to_string(), script("audit.py")],
            )
        })
        .collect();
    let code = format!("import runpy; runpy.run_path({:?})", script("audit.py"));
    pythons.push((
        "libpython3.11".into(),
        vec![embed_program().display().to_string(), code],
    ));
    for (label, argv) in pythons {
        let mut args = vec!["-m", "audit", "--"];
        args.extend(argv.iter().map(String::as_str));
        let (events, run) = trace_jsonl("audit", &args);
        run.ok();
        assert_eq!(
            audit_args(&events, "x.y"),
            json!([1, "a", {"bytes": "b"}, null, [2, 3.5]]),
            "{label}"
        );
        let values = audit_args(&events, "pytap.values");
        // The 300-character str is captured up to what fits in the snapshot.
        let long = &values[5];
        assert_eq!(long["truncated"], true, "{label}");
        let prefix = long["str"].as_str().unwrap();
        assert!(
            prefix.len() >= 200 && prefix.chars().all(|c| c == 'x'),
            "{label}: {prefix}"
        );
        let mut rest = values.clone();
        rest.as_array_mut().unwrap().remove(5);
        assert_eq!(
            rest,
            // Nine arguments: the first eight are captured, the ninth counted.
            json!([-5, {"int": "1180591620717411303424"}, true, false, "h\u{e9}llo \u{20ac}", [1, 2, 3, 4, {"more": 1}], 1.5e300, {"more": 1}]),
            "{label}"
        );
        assert_eq!(
            audit_args(&events, "pytap.more"),
            json!([1, 2, 3, 4, 5, 6, 7, 8, {"more": 2}]),
            "{label}"
        );
        assert_eq!(audit_args(&events, "pytap.none"), json!([]), "{label}");
        // No audit event name is left unreadable: 3.14/3.15 names in pages
        // BPF cannot read are recovered from the binary.
        assert!(
            events.iter().all(|e| e.get("unreadable").is_none()),
            "{label}"
        );
    }
}

#[test]
fn names_up_to_the_capacity_are_whole_and_longer_ones_flagged() {
    require_kernel();
    // 3.9 and 3.15: the two classes of interpreters whose entries fire.
    for version in ["3.9", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let (events, run) = trace_jsonl(
            "longnames",
            &["-m", "function__entry", "--", &py, &script("longnames.py")],
        );
        run.ok();
        // (name length, file name length, whether the file name kept its
        // end, what is flagged truncated): a long function name keeps its
        // start, a long file name its end (`…` first).
        let entries: Vec<(usize, usize, bool, Value)> = events
            .iter()
            .filter(|e| e["funcname"].as_str().is_some_and(|f| f.starts_with("fff")))
            .map(|e| {
                let func = e["funcname"].as_str().unwrap();
                let file = e["filename"].as_str().unwrap();
                let (kept_end, file) = match file.strip_prefix('…') {
                    Some(end) => (true, end),
                    None => (false, file),
                };
                assert!(func.bytes().all(|c| c == b'f'), "{version}: {func}");
                assert!(file.bytes().all(|c| c == b'p'), "{version}: {file}");
                (func.len(), file.len(), kept_end, e["truncated"].clone())
            })
            .collect();
        assert_eq!(
            entries,
            [
                (510, 8, false, Value::Null),
                (511, 511, false, Value::Null),
                (511, 511, true, json!(["filename", "funcname"])),
                (511, 20, false, json!(["funcname"])),
            ],
            "{version}"
        );
    }
}

#[test]
fn text_output_of_every_marker_kind() {
    require_kernel();
    let cmd = format!("{} {}", fixture("3.9").binary.display(), script("audit.py"));
    let run = pytap(&["trace", "-c", &cmd]);
    let text = run.ok();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME(s)", "PID", "TID", "CPU", "MARKER", "ARGS"]);
    let line = text.lines().find(|l| l.contains(" x.y(")).unwrap();
    assert!(
        line.ends_with("audit                      x.y(1, 'a', b'b', None, (2, 3.5))"),
        "{line}"
    );
    for marker in [
        "function__entry",
        "function__return",
        "line",
        "import__find__load__start",
        "import__find__load__done",
        "gc__start",
        "gc__done",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(4) == Some(marker)),
            "no {marker} line"
        );
    }
    let entry = text
        .lines()
        .find(|l| l.contains(" function__entry ") && l.contains("audit.py"))
        .unwrap();
    // 3.9 reports the first statement's line on module entry.
    assert!(
        entry.ends_with(&format!("<module> ({}:2)", script("audit.py"))),
        "{entry}"
    );
    assert!(
        run.stderr.contains("exited with status 0"),
        "{}",
        run.stderr
    );
}

#[test]
fn benchmark_baselines_attach_and_record_nothing() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    // What they generate: cli::dumps.
    for flag in ["--empty-probe", "--clock-probe"] {
        let args = [
            "trace",
            flag,
            "-m",
            "function__entry",
            "-m",
            "function__return",
        ];
        // The probes fire on every call (the target still runs normally and
        // its output passes through) and nothing is recorded.
        let run = pytap(&[&args[..], &["--", &py, "-c", "print(sum(range(10)))"]].concat());
        assert_eq!(run.ok(), "45\n", "{flag}");
        assert!(
            run.stderr.contains("pytap: 0 events, 0 lost"),
            "{flag}: {}",
            run.stderr
        );
    }
}

#[test]
fn benchmark_split_probes_leave_out_one_part_each() {
    require_kernel();
    // Ten calls of f (entry and return each) on top of the interpreter's own.
    let code = "def f(): pass\nfor _ in range(10): f()";
    for version in ["3.9", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let markers = ["-m", "function__entry", "-m", "function__return"];
        let count = |extra: &[&str]| {
            let run = pytap(&[&["trace"], &markers[..], extra, &["--", &py, "-c", code]].concat());
            assert_eq!(run.code, 0, "{version} {extra:?}: {}", run.stderr);
            let events = run
                .stderr
                .split("pytap: ")
                .find_map(|l| l.split_once(" events, 0 lost"));
            let (events, _) = events.unwrap_or_else(|| panic!("{version}: {}", run.stderr));
            (events.parse::<u64>().unwrap(), run.stdout)
        };
        let (whole, text) = count(&[]);
        assert_eq!(text.matches(" f ").count(), 20, "{version}: {text}");
        for part in ["no-strings", "object-headers"] {
            // Every event still sent, none written.
            assert_eq!(
                count(&["--split-probe", part]),
                (whole, String::new()),
                "{version} {part}"
            );
        }
        assert_eq!(count(&["--split-probe", "no-output"]).0, 0, "{version}");
        assert_eq!(count(&["--split-probe", "kernel-timing"]).0, 0, "{version}");
        // What each part generates: cli::dumps.
    }
}

#[test]
fn exit_status_and_summary() {
    require_kernel();
    let code = "import sys; sys.exit(3)";
    let run = pytap(&[
        "trace",
        "-m",
        "audit",
        "--",
        system_python().to_str().unwrap(),
        "-c",
        code,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("pytap: python3.11 exited with status 3"),
        "{}",
        run.stderr
    );
    let summary = run.stderr.lines().last().unwrap();
    assert!(
        summary.starts_with("pytap: ") && summary.contains(" events, 0 lost in "),
        "{summary}"
    );
    // Nothing traced: exit 1 (a Python idle on stdin for the whole run).
    let idle = crate::harness::spawn_waiting_python(&system_python(), "");
    let run = pytap(&[
        "trace",
        "-m",
        "gc__start",
        "-p",
        &idle.pid().to_string(),
        "--duration",
        "0.5",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("duration elapsed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("pytap: 0 events, 0 lost"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_commands_and_markers() {
    require_kernel();
    let msg = pytap(&["trace", "-c", "no-such-program-pytap"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("cannot run no-such-program-pytap"), "{msg}");
    let msg = pytap(&["trace", "-c", "/bin/true"])
        .one_line_error()
        .to_string();
    assert!(
        msg.contains("/bin/true exited with status 0 without running a Python that has markers"),
        "{msg}"
    );
    let msg = pytap(&["trace", "-m", "function_entry", "-c", "python3"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("unknown marker `function_entry`"), "{msg}");
    let msg = pytap(&["trace", "-c", "/bin/ls", "-p", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("alternatives"), "{msg}");
}
