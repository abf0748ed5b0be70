//! The in-process capture on CPython 3.13 and 3.14, whose function
//! markers are gone: exact per-thread sequences against a `sys.setprofile`
//! oracle, exact counts, an unchanged program, and an agent that leaves
//! when pytap does (however it goes).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    ChildGuard, fib_calls, fixture, oracle, pytap, pytap_bin, require_kernel, scratch, script,
    tool_jsonl, wait_until,
};

const VERSIONS: [&str; 2] = ["3.13", "3.14"];

/// flow's events of `file` (its module frame aside), per thread, as the
/// oracle writes them: depths from the thread's first event.
pub(super) fn flow_sequences(lines: &[Value], file: &str) -> Vec<Vec<String>> {
    let mut threads: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for l in lines {
        if l["filename"] == file && l["funcname"] != "<module>" {
            threads
                .entry(l["tid"].as_u64().unwrap())
                .or_default()
                .push(l);
        }
    }
    let mut all: Vec<Vec<String>> = threads
        .into_values()
        .map(|events| {
            let base = events[0]["depth"].as_i64().unwrap();
            events
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {} {}",
                        if e["type"] == "entry" { "E" } else { "R" },
                        e["funcname"].as_str().unwrap(),
                        e["lineno"],
                        e["depth"].as_i64().unwrap() - base
                    )
                })
                .collect()
        })
        .collect();
    all.sort();
    all
}

#[test]
fn flow_matches_the_setprofile_oracle_per_thread() {
    require_kernel();
    for version in VERSIONS {
        let py = fixture(version).binary.display().to_string();
        let (lines, run) = tool_jsonl("flow", &["--", &py, &script("threaded.py")]);
        run.ok();
        let want = oracle::threaded(&py);
        assert_eq!(want.len(), 4, "{version}: four threads in the oracle");
        assert_eq!(
            flow_sequences(&lines, &script("threaded.py")),
            want,
            "{version}"
        );
        assert!(run.stderr.contains(" 0 lost"), "{version}: {}", run.stderr);
        assert!(
            !run.stderr.contains("compiled callbacks did not load"),
            "{version}: {}",
            run.stderr
        );
        // The agent's Python callbacks, its fallback, are exact too.
        let out = scratch("in-process-pure").join(format!("{version}.jsonl"));
        let pure = Command::new(pytap_bin())
            .args([
                "flow",
                "--format",
                "jsonl",
                "-o",
                out.to_str().unwrap(),
                "--",
            ])
            .args([&py, &script("threaded.py")])
            .env("PYTAP_CAPTURE_PURE", "1")
            .output()
            .unwrap();
        assert!(
            pure.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&pure.stderr)
        );
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            flow_sequences(&lines, &script("threaded.py")),
            want,
            "{version}: Python callbacks"
        );
        // Frames running when the agent started got their entries: every
        // return has one.
        assert!(
            !run.stderr.contains("returns without an entry"),
            "{version}: {}",
            run.stderr
        );
    }
}

#[test]
fn calls_and_top_count_exactly() {
    require_kernel();
    let sink = scratch("in-process-counts").join("elapsed");
    let sink = sink.to_str().unwrap();
    for version in VERSIONS {
        let py = fixture(version).binary.display().to_string();
        counts_are_exact(version, &py, sink, 16, 18);
    }
}

/// `calls` of fib.py `calls_n` and `top` of fib.py `top_n` under `py`, from
/// the agent: fib's exact call counts and its line (`label` names the run).
pub(super) fn counts_are_exact(label: &str, py: &str, sink: &str, calls_n: u64, top_n: u64) {
    let (calls_arg, top_arg) = (calls_n.to_string(), top_n.to_string());
    let (rows, run) = tool_jsonl(
        "calls",
        &["-n", "0", "--", py, &script("fib.py"), &calls_arg, sink],
    );
    run.ok();
    let fib = rows
        .iter()
        .flat_map(|v| v["functions"].as_array().cloned().unwrap_or_default())
        .chain(rows.iter().filter(|r| r.get("funcname").is_some()).cloned())
        .find(|r| r["funcname"] == "fib")
        .unwrap_or_else(|| panic!("{label}: no fib in {rows:?}"));
    assert_eq!(fib["calls"].as_u64(), Some(fib_calls(calls_n)), "{label}");
    assert_eq!(fib["lineno"].as_u64(), Some(8), "{label}");
    let (views, run) = tool_jsonl(
        "top",
        &["-n", "0", "--", py, &script("fib.py"), &top_arg, sink],
    );
    run.ok();
    let counted: u64 = views
        .iter()
        .flat_map(|v| v["rows"].as_array().unwrap().iter())
        .filter(|r| r["funcname"] == "fib" && r["filename"] == script("fib.py").as_str())
        .map(|r| r["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, fib_calls(top_n), "{label}");
    assert!(
        run.stderr.contains("events from inside the interpreter"),
        "{label}: {}",
        run.stderr
    );
}

#[test]
fn the_program_runs_as_it_does_untraced_next_to_its_own_monitoring_tool() {
    require_kernel();
    for version in VERSIONS {
        let py = fixture(version).binary.display().to_string();
        let alone = Command::new(&py)
            .arg(script("monitored.py"))
            .env("PYTHONPATH", "/nowhere")
            .output()
            .unwrap();
        assert!(alone.status.success());
        let alone = String::from_utf8(alone.stdout).unwrap();
        let out = Command::new(pytap_bin())
            .args([
                "flow",
                "-o",
                "/dev/null",
                "--",
                &py,
                &script("monitored.py"),
            ])
            .env("PYTHONPATH", "/nowhere")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{version}: {stderr}");
        let traced = String::from_utf8(out.stdout).unwrap();
        // Everything the program prints is the same, but that the profiler
        // tool id is pytap's while it traces.
        let differs: Vec<(&str, &str)> = alone
            .lines()
            .zip(traced.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            differs,
            [(
                "tools [None, None, None, None, None, None]",
                "tools [None, None, 'pytap', None, None, None]"
            )],
            "{version}"
        );
        assert_eq!(alone.lines().count(), traced.lines().count(), "{version}");
    }
}

#[test]
fn forked_children_write_rings_of_their_own() {
    require_kernel();
    let code = "import os\n\
def in_child(i):\n    return i\n\
def in_parent(i):\n    return i\n\
pid = os.fork()\n\
if pid == 0:\n    [in_child(i) for i in range(5)]\n    os._exit(0)\n\
os.waitpid(pid, 0)\n\
[in_parent(i) for i in range(3)]\n";
    for version in VERSIONS {
        let py = fixture(version).binary.display().to_string();
        let (views, run) = tool_jsonl("top", &["-n", "0", "--by-pid", "--", &py, "-c", code]);
        run.ok();
        let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for r in views
            .iter()
            .flat_map(|v| v["rows"].as_array().unwrap().iter())
        {
            let name = r["funcname"].as_str().unwrap().to_string();
            if name.starts_with("in_") {
                let e = seen.entry(name).or_default();
                e.0 = r["pid"].as_u64().unwrap();
                e.1 += r["calls"].as_u64().unwrap();
            }
        }
        assert_eq!(seen.len(), 2, "{version}: {seen:?}");
        assert_eq!(seen["in_child"].1, 5, "{version}: os._exit loses nothing");
        assert_eq!(seen["in_parent"].1, 3, "{version}");
        assert_ne!(seen["in_child"].0, seen["in_parent"].0, "{version}");
    }
}

/// The tool ids of the last `TOOLS` line monitor_loop.py wrote.
fn last_tools(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_agent_leaves_when_pytap_is_killed_or_done() {
    require_kernel();
    let py = fixture("3.14").binary.display().to_string();
    for how in ["kill", "duration"] {
        let tools = scratch(&format!("in-process-detach-{how}")).join("tools.txt");
        let stop = tools.with_extension("txt.stop");
        let _ = std::fs::remove_file(&tools);
        let _ = std::fs::remove_file(&stop);
        let mut args = vec!["trace", "-m", "function__entry", "-o", "/dev/null"];
        if how == "duration" {
            args.extend(["--duration", "1"]);
        }
        let tools_arg = tools.display().to_string();
        let program = script("monitor_loop.py");
        args.extend(["--", &py, &program, &tools_arg, "30"]);
        let mut tracer = ChildGuard::start(
            Command::new(pytap_bin())
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let dir = format!("/dev/shm/pytap-capture-{}", tracer.pid());
        wait_until("the agent's tool", Duration::from_secs(10), || {
            last_tools(&tools).contains("'pytap'") || last_tools(&tools).contains(" pytap ")
        });
        assert!(std::path::Path::new(&dir).is_dir(), "{how}: {dir}");
        if how == "kill" {
            tracer.kill();
        } else {
            tracer.wait();
        }
        // The tool is gone within a second and the program goes on.
        wait_until("the tool to be freed", Duration::from_millis(1500), || {
            last_tools(&tools).starts_with("TOOLS None None None")
        });
        let lines = std::fs::read_to_string(&tools).unwrap().lines().count();
        wait_until(
            &format!("the program to go on ({how})"),
            Duration::from_secs(2),
            || std::fs::read_to_string(&tools).unwrap().lines().count() > lines + 2,
        );
        // Nothing of pytap is left: the last agent removed the directory
        // (killed), or pytap did (done).
        wait_until(
            "the capture directory to go",
            Duration::from_secs(2),
            || !std::path::Path::new(&dir).exists(),
        );
        // The program (pytap's child, left running) stops at its own pace.
        std::fs::write(&stop, "").unwrap();
    }
}

#[test]
fn running_interpreters_and_isolated_ones_are_refused_with_reasons() {
    require_kernel();
    let py = &fixture("3.13").binary;
    let child = crate::harness::spawn_waiting_python(py, "def f(): pass");
    let run = pytap(&["flow", "-p", &child.pid().to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.one_line_error()
            .contains("runs CPython 3.13, whose function markers are gone")
            && run.stderr.contains("pytap flow -- python3.13 app.py"),
        "{}",
        run.stderr
    );
    let run = pytap(&["flow", "--", &py.display().to_string(), "-I", "-c", "pass"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.one_line_error()
            .contains("was started with -I, which ignores PYTHONPATH"),
        "{}",
        run.stderr
    );
    // --capture markers: nothing is injected, and 3.13 has no function markers.
    let run = pytap(&[
        "flow",
        "--capture",
        "markers",
        "--",
        &py.display().to_string(),
        "-c",
        "pass",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("has no function__entry marker"),
        "{}",
        run.stderr
    );
}

/// `-p` on a running 3.14: the agent is loaded through PEP 768, traces,
/// and leaves when pytap is done or killed; the program goes on.
#[test]
fn a_running_3_14_is_attached_through_pep_768_and_left_as_it_was() {
    require_kernel();
    let py = fixture("3.14").binary.display().to_string();
    for how in ["duration", "kill"] {
        let tools = scratch(&format!("in-process-pep768-{how}")).join("tools.txt");
        let _ = std::fs::remove_file(&tools);
        let _ = std::fs::remove_file(tools.with_extension("txt.stop"));
        let target = ChildGuard::start(
            Command::new(&py)
                .args([&script("monitor_loop.py"), tools.to_str().unwrap(), "30"])
                .stdout(Stdio::piped()),
        );
        let pid = target.pid().to_string();
        wait_until("the loop to start", Duration::from_secs(10), || {
            last_tools(&tools).starts_with("TOOLS")
        });
        let events = scratch(&format!("in-process-pep768-{how}")).join("events.jsonl");
        let mut args = vec![
            "trace",
            "-m",
            "function__entry",
            "--format",
            "jsonl",
            "-p",
            &pid,
        ];
        let events_arg = events.display().to_string();
        args.extend(["-o", &events_arg]);
        if how == "duration" {
            args.extend(["--duration", "1.5"]);
        }
        let tracer = ChildGuard::start(
            Command::new(pytap_bin())
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        wait_until("the agent's tool", Duration::from_secs(10), || {
            last_tools(&tools).contains("'pytap'") || last_tools(&tools).contains(" pytap ")
        });
        if how == "kill" {
            // Let some events through first.
            wait_until("tick events in the file", Duration::from_secs(10), || {
                std::fs::read_to_string(&events)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("\"funcname\":\"tick\""))
                    .count()
                    > 100
            });
            pytap_sys::process::kill(tracer.pid(), pytap_sys::signal::SIGKILL).unwrap();
        }
        let out = tracer.wait_with_output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        wait_until("the tool to be freed", Duration::from_millis(1500), || {
            last_tools(&tools).starts_with("TOOLS None None None")
        });
        if how == "duration" {
            assert!(out.status.success(), "{stderr}");
        }
        // Entries of the loop's tick() were traced, from the attach on.
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let ticks = text
            .lines()
            .filter(|l| l.contains("\"funcname\":\"tick\""))
            .count();
        assert!(ticks > 100, "{how}: {ticks} ticks\n{stderr}");
        // The agent's own frames (3.14 runs the attached file as
        // `<string>`) are never shown.
        assert!(
            !text.contains("\"filename\":\"<string>\""),
            "{how}: the agent's frames shown:\n{}",
            text.lines().find(|l| l.contains("<string>")).unwrap_or("")
        );
        // The program goes on to its end, unharmed.
        std::fs::write(tools.with_extension("txt.stop"), "").unwrap();
        let done = target.wait_with_output();
        assert!(done.status.success());
        assert_eq!(
            String::from_utf8_lossy(&done.stdout),
            "done True\n",
            "{how}"
        );
    }
}

#[test]
fn a_3_14_that_refuses_remote_debugging_is_said_so() {
    require_kernel();
    let py = &fixture("3.14").binary;
    let child = crate::harness::ChildGuard::spawn(
        Command::new(py)
            .env("PYTHON_DISABLE_REMOTE_DEBUG", "1")
            .args([
                "-c",
                "import sys\nprint('ready', flush=True)\nsys.stdin.read()",
            ]),
    );
    let mut child = child;
    child.wait_for_line("ready", Duration::from_secs(20));
    let run = pytap(&["flow", "-p", &child.pid().to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.one_line_error()
            .contains("does not allow remote debugging"),
        "{}",
        run.stderr
    );
}

/// The process tree: a 3.11 program that runs a 3.13 one. With `--capture
/// markers` the 3.11 program keeps its markers and is given nothing, and
/// the 3.13 child's missing function events are said; with `--capture
/// in-process` (and by default, 3.11's own events then coming from the
/// agent too) the child gets the agent through the environment it
/// inherits.
#[test]
fn a_3_13_child_of_a_3_11_parent_is_captured_too() {
    require_kernel();
    let parent = fixture("3.11").binary.display().to_string();
    let child = fixture("3.13").binary.display().to_string();
    let code = format!(
        "import subprocess\n\
def in_parent():\n    return 1\n\
in_parent()\n\
subprocess.run([{child:?}, '-c', 'def in_child():\\n    return 2\\nfor _ in range(7): in_child()'], check=True)\n"
    );
    let (views, run) = tool_jsonl(
        "top",
        &[
            "-n",
            "0",
            "--by-pid",
            "--capture",
            "markers",
            "--",
            &parent,
            "-c",
            &code,
        ],
    );
    run.ok();
    assert!(
        run.stderr
            .contains("`--capture in-process` gives it to every interpreter"),
        "{}",
        run.stderr
    );
    let (views_auto, views) = (
        views,
        tool_jsonl(
            "top",
            &[
                "-n",
                "0",
                "--by-pid",
                "--capture",
                "in-process",
                "--",
                &parent,
                "-c",
                &code,
            ],
        )
        .0,
    );
    assert!(
        !views_auto
            .iter()
            .flat_map(|v| v["rows"].as_array().unwrap().iter())
            .any(|r| r["funcname"] == "in_child")
    );
    let calls = |name: &str| -> (u64, u64) {
        views
            .iter()
            .flat_map(|v| v["rows"].as_array().unwrap().iter())
            .filter(|r| r["funcname"] == name)
            .fold((0, 0), |(pid, n), r| {
                (
                    r["pid"].as_u64().unwrap().max(pid),
                    n + r["calls"].as_u64().unwrap(),
                )
            })
    };
    let (parent_pid, in_parent) = calls("in_parent");
    let (child_pid, in_child) = calls("in_child");
    assert_eq!((in_parent, in_child), (1, 7), "{}", run.stderr);
    assert_ne!(parent_pid, child_pid);
}

/// `--capture in-process` on 3.11: the compiled profile function instead
/// of the armed markers, exact per thread and in its counts; on 3.9 too,
/// asked for (by default the markers stay there: they cost as little).
#[test]
fn in_process_on_3_11_is_a_profile_function_as_exact() {
    require_kernel();
    let sink = scratch("in-process-old").join("elapsed");
    let py39 = fixture("3.9").binary.display().to_string();
    for capture in ["in-process", "auto"] {
        let (lines, run) = tool_jsonl(
            "trace",
            &[
                "-m",
                "function__entry",
                "--capture",
                capture,
                "--",
                &py39,
                &script("fib.py"),
                "10",
                sink.to_str().unwrap(),
            ],
        );
        run.ok();
        let fib: Vec<_> = lines.iter().filter(|l| l["funcname"] == "fib").collect();
        assert_eq!(fib.len() as u64, fib_calls(10), "3.9 {capture}");
        // The agent's events have no CPU; the markers' do.
        assert!(
            fib.iter()
                .all(|l| l["cpu"].is_null() == (capture == "in-process")),
            "3.9 {capture}: {:?}",
            fib[0]
        );
    }
    let version = "3.11";
    let py = fixture(version).binary.display().to_string();
    let (lines, run) = tool_jsonl(
        "flow",
        &["--capture", "in-process", "--", &py, &script("threaded.py")],
    );
    run.ok();
    assert_eq!(
        flow_sequences(&lines, &script("threaded.py")),
        oracle::threaded(&py),
        "{version}"
    );
    // No arming of 3.11's line marker: no marker is used.
    assert!(
        !run.stderr.contains("turned it on"),
        "{version}: {}",
        run.stderr
    );
    let (rows, run) = tool_jsonl(
        "calls",
        &[
            "-n",
            "0",
            "--capture",
            "in-process",
            "--",
            &py,
            &script("fib.py"),
            "16",
            sink.to_str().unwrap(),
        ],
    );
    run.ok();
    let fib = rows
        .iter()
        .find(|r| r["funcname"] == "fib")
        .unwrap_or_else(|| panic!("{version}: {rows:?}"));
    assert_eq!(fib["calls"].as_u64(), Some(fib_calls(16)), "{version}");
}
