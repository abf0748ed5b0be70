//! The views on CPython builds without markers (this machine's pyenv
//! builds, 3.8 to 3.13, and each Debian fixture's twin with its
//! `.note.stapsdt` removed): function events from pytap's agent inside the
//! interpreter, exactly as the markers give them elsewhere, against the
//! same `sys.setprofile` oracle; a running one is attached on 3.14 and
//! refused with its reason before.

use std::process::Command;
use std::time::Duration;

use super::in_process::{counts_are_exact, flow_sequences};
use crate::harness::{
    ChildGuard, fib_calls, fixture_without_markers, fixtures_without_markers, oracle, pyenv_python,
    pyenv_versions, pytap, require_kernel, scratch, script, tool_jsonl,
};

/// Every interpreter without markers: (label, path).
fn unmarked() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pyenv_versions()
        .iter()
        .map(|v| (format!("pyenv {v}"), pyenv_python(v).display().to_string()))
        .collect();
    assert_eq!(
        fixtures_without_markers().len(),
        5,
        "prerequisite missing: the fixtures' marker-less twins (scripts/fetch-pythons.sh makes them)"
    );
    for (version, twin) in fixtures_without_markers() {
        all.push((format!("twin {version}"), twin.binary.display().to_string()));
    }
    all
}

#[test]
fn flow_matches_the_setprofile_oracle_on_every_build_without_markers() {
    require_kernel();
    for (label, py) in unmarked() {
        let (lines, run) = tool_jsonl("flow", &["--", &py, &script("threaded.py")]);
        run.ok();
        let want = oracle::threaded(&py);
        assert_eq!(want.len(), 4, "{label}: four threads in the oracle");
        assert_eq!(
            flow_sequences(&lines, &script("threaded.py")),
            want,
            "{label}"
        );
        assert!(run.stderr.contains(" 0 lost"), "{label}: {}", run.stderr);
        assert!(
            !run.stderr.contains("returns without an entry"),
            "{label}: {}",
            run.stderr
        );
    }
}

#[test]
fn calls_and_top_count_exactly_on_every_build_without_markers() {
    require_kernel();
    let sink = scratch("unmarked-counts").join("elapsed");
    let sink = sink.to_str().unwrap();
    for (label, py) in unmarked() {
        counts_are_exact(&label, &py, sink, 16, 14);
    }
}

#[test]
fn trace_gives_every_event_on_a_build_without_markers() {
    require_kernel();
    let py = pyenv_python("3.12").display().to_string();
    let sink = scratch("unmarked-trace").join("elapsed");
    let (lines, run) = tool_jsonl(
        "trace",
        &[
            "--",
            &py,
            "-c",
            &format!(
                "import runpy, sys, gc\nsys.argv = ['fib.py', '5', {sink:?}]\n\
                 runpy.run_path({fib:?}, run_name='__main__')\ngc.collect()",
                sink = sink.to_str().unwrap(),
                fib = script("fib.py"),
            ),
        ],
    );
    run.ok();
    let entries = lines
        .iter()
        .filter(|l| l["marker"] == "function__entry" && l["funcname"] == "fib")
        .count() as u64;
    assert_eq!(entries, fib_calls(5), "{}", run.stderr);
    // Every event came from the agent, which records no CPU: function
    // events and the others alike.
    for marker in [
        "function__entry",
        "gc__start",
        "gc__done",
        "import__find__load__start",
        "import__find__load__done",
        "audit",
    ] {
        let of: Vec<_> = lines.iter().filter(|l| l["marker"] == marker).collect();
        assert!(!of.is_empty(), "no {marker}: {}", run.stderr);
        assert!(
            of.iter().all(|l| l["cpu"].is_null()),
            "{marker}: {:?}",
            of[0]
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["marker"] == "import__find__load__done" && l["module"] == "runpy"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not traced"), "{}", run.stderr);
}

/// A trace of `tests/py/marks.py`'s gc, import and audit events, from its
/// `pytap.begin` audit event to its `pytap.end` one, without what differs
/// from run to run (times, ids, CPUs); the interpreter's own record of
/// them (`argv[1]`) and its stderr (`-X importtime` there).
fn marks_between(python: &str, label: &str) -> (Vec<serde_json::Value>, serde_json::Value, String) {
    let oracle = scratch(&format!("marks-{}", label.replace(' ', "-"))).join("oracle.json");
    let program = script("marks.py");
    let mut args = crate::harness::GC_IMPORT_AUDIT.to_vec();
    args.extend([
        "--",
        python,
        "-X",
        "importtime",
        &program,
        oracle.to_str().unwrap(),
    ]);
    let (lines, run) = tool_jsonl("trace", &args);
    run.ok();
    assert!(run.stderr.contains(" 0 lost"), "{label}: {}", run.stderr);
    let begin = lines
        .iter()
        .position(|l| l["event"] == "pytap.begin")
        .unwrap_or_else(|| panic!("{label}: no pytap.begin\n{}", run.stderr));
    let end = lines
        .iter()
        .position(|l| l["event"] == "pytap.end")
        .unwrap_or_else(|| panic!("{label}: no pytap.end\n{}", run.stderr));
    let events = lines[begin..=end]
        .iter()
        .map(|l| {
            let mut l = l.clone();
            let o = l.as_object_mut().unwrap();
            for k in ["pid", "tid", "ts_ns", "cpu"] {
                o.remove(k);
            }
            l
        })
        .collect();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&oracle).unwrap()).unwrap();
    (events, record, run.stderr)
}

/// `got` is `want`, where the markers read everything (a value their probe
/// could not read, `{"unreadable": true}`, matches any).
fn same_but_unreadable(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), _)
            if w.len() == 1 && w.get("unreadable") == Some(&Value::Bool(true)) =>
        {
            true
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(w, g)| same_but_unreadable(w, g))
        }
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len()
                && w.iter()
                    .all(|(k, w)| g.get(k).is_some_and(|g| same_but_unreadable(w, g)))
        }
        _ => want == got,
    }
}

#[test]
fn gc_imports_and_audit_from_the_agent_are_the_markers_events() {
    require_kernel();
    // Each Debian fixture and its twin: the same interpreter, with its
    // markers and without, so the agent's events are held to the markers'
    // one for one, in order, values decoded and cut alike.
    assert_eq!(fixtures_without_markers().len(), 5, "the fixtures' twins");
    for (version, twin) in fixtures_without_markers() {
        let marked = crate::harness::fixture(version)
            .wrapper
            .display()
            .to_string();
        let (want, _, _) = marks_between(&marked, &format!("{version} markers"));
        let (got, _, _) = marks_between(
            &twin.wrapper.display().to_string(),
            &format!("{version} agent"),
        );
        assert_eq!(want.len(), got.len(), "{version}: {want:#?}\n{got:#?}");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(
                same_but_unreadable(w, g),
                "{version}, event {i}: {w} != {g}"
            );
        }
        for marker in [
            "gc__start",
            "gc__done",
            "import__find__load__start",
            "import__find__load__done",
            "audit",
        ] {
            assert!(
                got.iter().any(|l| l["marker"] == marker),
                "{version}: no {marker}"
            );
        }
    }
}

#[test]
fn the_gc_imports_and_audit_views_are_the_same_from_the_agent() {
    require_kernel();
    for version in ["3.11", "3.15"] {
        let marked = crate::harness::fixture(version)
            .wrapper
            .display()
            .to_string();
        let twin = fixture_without_markers(version)
            .wrapper
            .display()
            .to_string();
        let view = |tool: &str, py: &str| -> Vec<serde_json::Value> {
            let oracle = scratch(&format!("marks-view-{tool}-{version}")).join("o.json");
            let (lines, run) = tool_jsonl(
                tool,
                &["--", py, &script("marks.py"), oracle.to_str().unwrap()],
            );
            run.ok();
            let keep: Vec<serde_json::Value> = lines
                .into_iter()
                .map(|mut l| {
                    let o = l.as_object_mut().unwrap();
                    for k in [
                        "pid",
                        "tid",
                        "ts_ns",
                        "cpu",
                        "self_ns",
                        "cumulative_ns",
                        "pause_ns",
                    ] {
                        o.remove(k);
                    }
                    l
                })
                .collect();
            // What happened before the workload differs: the markers saw
            // the interpreter's start, the agent starts later.
            match tool {
                "imports" => {
                    let from = keep.iter().position(|l| l["module"] == "colorsys").unwrap();
                    keep[from..].to_vec()
                }
                "audit" => {
                    let from = keep
                        .iter()
                        .position(|l| l["event"] == "pytap.begin")
                        .unwrap();
                    let to = keep.iter().position(|l| l["event"] == "pytap.end").unwrap();
                    keep[from..=to].to_vec()
                }
                _ => {
                    // The workload's collections: the last five.
                    let c: Vec<_> = keep
                        .into_iter()
                        .filter(|l| l["type"] == "collection")
                        .collect();
                    c[c.len() - 5..].to_vec()
                }
            }
        };
        for tool in ["imports", "audit", "gc"] {
            let want = view(tool, &marked);
            let got = view(tool, &twin);
            assert_eq!(
                want.len(),
                got.len(),
                "{tool} {version}: {want:#?}\n{got:#?}"
            );
            for (w, g) in want.iter().zip(&got) {
                assert!(same_but_unreadable(w, g), "{tool} {version}: {w} != {g}");
            }
        }
    }
}

#[test]
fn gc_imports_and_audit_on_the_pyenv_builds_are_the_interpreters_own_record() {
    require_kernel();
    for version in pyenv_versions() {
        let py = pyenv_python(version).display().to_string();
        let (events, record, stderr) = marks_between(&py, &format!("pyenv {version}"));
        // Audit: the program's own hook saw the same events, in order.
        let audit: Vec<&serde_json::Value> =
            events.iter().filter(|l| l["marker"] == "audit").collect();
        let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
        let profiled = (minor < 12).then_some(());
        // On 3.8 to 3.11 the agent sets a profile function while an import
        // runs (to see it end); the program's own hooks see those
        // `sys.setprofile` events, pytap does not show them.
        let hooked: Vec<&serde_json::Value> = record["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| profiled.is_none() || e[0] != "sys.setprofile")
            .collect();
        assert_eq!(
            audit.len(),
            hooked.len(),
            "{version}: {audit:#?}\n{hooked:#?}"
        );
        for (got, want) in audit.iter().zip(hooked) {
            assert_eq!(got["event"], want[0], "{version}");
            let (g, w) = (got["args"].as_array().unwrap(), want[1].as_array().unwrap());
            // The first eight, and how many more (as the markers' probe).
            assert_eq!(g.len(), w.len().min(9), "{version}: {got} {want}");
            if w.len() > 8 {
                assert_eq!(g[8]["more"], w.len() - 8, "{version}: {got} {want}");
            }
            for (g, w) in g.iter().zip(w).take(8) {
                assert!(w == "*" || g == w, "{version}: {got} against {want}");
            }
        }
        // gc: each generation's collections and what they collected, as
        // `gc.get_stats()` counts them.
        for generation in 0..3 {
            let stat = |when: &str, key: &str| record[when][generation][key].as_i64().unwrap();
            let delta = |key: &str| stat("after", key) - stat("before", key);
            let starts = events
                .iter()
                .filter(|l| l["marker"] == "gc__start" && l["generation"] == generation)
                .count() as i64;
            assert_eq!(
                starts,
                delta("collections"),
                "{version}: generation {generation}"
            );
        }
        let stats_collected: i64 = (0..3)
            .map(|g| {
                let d = |k: &str| {
                    record["after"][g][k].as_i64().unwrap()
                        - record["before"][g][k].as_i64().unwrap()
                };
                d("collected") + d("uncollectable")
            })
            .sum();
        let done_collected: i64 = events
            .iter()
            .filter(|l| l["marker"] == "gc__done")
            .map(|l| l["collected"].as_i64().unwrap())
            .sum();
        assert_eq!(done_collected, stats_collected, "{version}");
        assert!(stats_collected >= 3, "{version}: the three cycles");
        // Imports: the modules looked for, nested, as `-X importtime` lists
        // them (post-order, after `colorsys`, where the workload starts).
        let mut open = Vec::new();
        let mut found = Vec::new();
        for l in &events {
            if l["marker"] == "import__find__load__start" {
                open.push(l["module"].as_str().unwrap().to_string());
            } else if l["marker"] == "import__find__load__done" {
                let name = open.pop().unwrap();
                assert_eq!(l["module"], name.as_str(), "{version}");
                // `-X importtime` lists the modules not found too.
                found.push((open.len(), name));
            }
        }
        let timed: Vec<(usize, String)> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("import time:"))
            .filter_map(|l| l.rsplit('|').next())
            .filter(|name| !name.contains("imported package"))
            .map(|name| {
                let depth = (name.len() - name.trim_start().len() - 1) / 2;
                (depth, name.trim().to_string())
            })
            .collect();
        let from = timed.iter().position(|(_, n)| n == "colorsys").unwrap() + 1;
        assert_eq!(found, timed[from..], "{version}");
        assert!(
            found.iter().any(|(d, n)| *d == 0 && n == "difflib"),
            "{version}"
        );
        assert!(
            events
                .iter()
                .any(|l| l["module"] == "pytap_test_none" && l["found"] == false),
            "{version}: the module not found"
        );
        assert!(
            found.iter().any(|(d, _)| *d > 0),
            "{version}: nested imports: {found:?}"
        );
    }
}

/// A program's own audit hook sees what it sees untraced: the agent
/// raises no audit event of its own (its profile function on 3.8–3.11 is
/// compiled: no audited `frame.f_code` read), except the `sys.setprofile`
/// around an import on 3.8–3.11 when only imports are traced (said in
/// docs/capture.md).
#[test]
fn the_programs_own_audit_hook_sees_what_it_sees_untraced() {
    require_kernel();
    let dir = scratch("own-hook");
    for version in pyenv_versions() {
        let py = pyenv_python(version).display().to_string();
        let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
        let record = |name: &str, pytap_args: Option<&[&str]>| -> Vec<String> {
            let out = dir.join(format!("{version}-{name}.json"));
            let out_arg = out.display().to_string();
            let program = script("own_hook.py");
            match pytap_args {
                None => {
                    let status = Command::new(&py)
                        .args([&program, &out_arg])
                        .status()
                        .unwrap();
                    assert!(status.success(), "{version} untraced");
                }
                Some(args) => {
                    let mut all = args.to_vec();
                    all.extend(["-o", "/dev/null", "--", &py, &program, &out_arg]);
                    pytap(&all).ok();
                }
            }
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
        };
        let untraced = record("untraced", None);
        assert!(
            untraced.iter().any(|e| e == "import"),
            "{version}: {untraced:?}"
        );
        for (name, args) in [
            ("calls", &["calls"][..]),
            (
                "gc-audit",
                &["trace", "-m", "gc__start", "-m", "gc__done", "-m", "audit"][..],
            ),
            (
                "imports",
                &[
                    "trace",
                    "-m",
                    "import__find__load__start",
                    "-m",
                    "import__find__load__done",
                ][..],
            ),
        ] {
            let mut traced = record(name, Some(args));
            if name == "imports" && minor < 12 {
                traced.retain(|e| e != "sys.setprofile");
            }
            assert_eq!(traced, untraced, "{version} {name}");
        }
    }
}

/// The agent giving gc, import and audit events leaves as it does with
/// function events: pytap killed or done, within a second the program's
/// `gc.callbacks`, profile function and `sys.monitoring` tools are its own
/// again, the capture directory is gone, and it goes on to its end.
#[test]
fn the_agent_of_gc_imports_and_audit_leaves_when_pytap_is_killed_or_done() {
    require_kernel();
    for version in ["3.10", "3.12"] {
        let py = pyenv_python(version).display().to_string();
        for how in ["kill", "duration"] {
            let out = scratch(&format!("marks-leave-{version}-{how}")).join("rounds.txt");
            let out_arg = out.display().to_string();
            let mut args = vec![
                "trace",
                "-m",
                "gc__start",
                "-m",
                "import__find__load__done",
                "-m",
                "audit",
                "-o",
                "/dev/null",
            ];
            if how == "duration" {
                args.extend(["--duration", "1"]);
            }
            let program = script("marks_loop.py");
            args.extend(["--", &py, &program, &out_arg, "3000"]);
            let mut tracer = ChildGuard::start(
                Command::new(crate::harness::pytap_bin())
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            );
            let dir = format!("/dev/shm/pytap-capture-{}", tracer.pid());
            let last = || {
                std::fs::read_to_string(&out)
                    .unwrap_or_default()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_string()
            };
            crate::harness::wait_until("the agent's gc callback", Duration::from_secs(10), || {
                last().contains("callbacks=1")
            });
            if version == "3.12" {
                assert!(last().contains("'pytap imports'"), "{version}: {}", last());
            }
            if how == "kill" {
                tracer.kill();
            } else {
                tracer.wait();
            }
            crate::harness::wait_until(
                &format!("{version} {how}: the agent to leave"),
                Duration::from_millis(1500),
                || last().contains("callbacks=0 profile=False tools=[]"),
            );
            crate::harness::wait_until(
                &format!("{version} {how}: the capture directory to go"),
                Duration::from_secs(2),
                || !std::path::Path::new(&dir).exists(),
            );
            let rounds = std::fs::read_to_string(&out).unwrap().lines().count();
            crate::harness::wait_until(
                &format!("{version} {how}: the program to go on"),
                Duration::from_secs(2),
                || std::fs::read_to_string(&out).unwrap().lines().count() > rounds + 2,
            );
            std::fs::write(format!("{out_arg}.stop"), "").unwrap();
        }
    }
}

/// `-p` on a 3.14 without markers: PEP 768 as with them; the agent's own
/// frames are never shown.
#[test]
fn a_running_3_14_without_markers_is_attached() {
    require_kernel();
    let py = fixture_without_markers("3.14").binary.display().to_string();
    let mut target = ChildGuard::spawn(Command::new(&py).args([
        "-c",
        "import time\ndef tick(i):\n    return i\nprint('ready', flush=True)\n\
         for i in range(400):\n    tick(i)\n    time.sleep(0.01)\nprint('done')",
    ]));
    target.wait_for_line("ready", Duration::from_secs(10));
    let pid = target.pid().to_string();
    let (rows, run) = tool_jsonl("calls", &["-n", "0", "-p", &pid, "--duration", "1.5"]);
    run.ok();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["funcname"].as_str()).collect();
    // Only the program's function: none of the agent's, though 3.14 runs
    // the attached agent as `<string>`, the file name of `-c` code too.
    assert_eq!(names, ["tick"], "{rows:?}\n{}", run.stderr);
    let ticks = rows.iter().find(|r| r["funcname"] == "tick").unwrap()["calls"]
        .as_u64()
        .unwrap();
    assert!((50..=160).contains(&ticks), "{ticks} ticks in 1.5 s");
    let (code, rest) = target.finish();
    assert_eq!((code, rest.as_str()), (0, "done\n"));
}

#[test]
fn a_running_build_without_markers_before_3_14_is_refused_with_its_reason() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13"] {
        let py = pyenv_python(version);
        let child = crate::harness::spawn_waiting_python(&py, "def f(): pass");
        let pid = child.pid().to_string();
        let run = pytap(&["flow", "-p", &pid]);
        assert_eq!(run.code, 2, "{version}: {}", run.stderr);
        let line = run.one_line_error().to_string();
        assert!(
            line.contains(&format!("pid {pid} runs CPython {version} from "))
                && line.contains("built without markers")
                && line.contains(&format!("a running {version} has no way to load it"))
                && line.contains("`pytap profile -p`"),
            "{version}: {line}"
        );
    }
}
