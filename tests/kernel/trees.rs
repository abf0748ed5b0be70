//! Whole process trees: a command's forked workers and the interpreters it
//! runs are traced with their own probes (another CPython version with
//! that version's plan), `-p --children` does the same for a running
//! process, `--no-children` turns it off, and nothing stays armed in a
//! child that outlives pytap.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    ChildGuard, alive, fixture, nothing_armed, pytap, pytap_bin, require_kernel, script,
    sites_named, system_python, tool_jsonl, trace_jsonl, wait_until,
};

/// Calls of `func` per pid in a JSON Lines trace.
fn entries_by_pid(events: &[Value], func: &str) -> BTreeMap<u64, usize> {
    let mut by_pid = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["marker"] == "function__entry" && e["funcname"] == func)
    {
        *by_pid.entry(e["pid"].as_u64().unwrap()).or_default() += 1;
    }
    by_pid
}

/// The pid of the launched command itself: the one that ran `<module>` of `file`.
fn pid_running(events: &[Value], file: &str) -> u64 {
    events
        .iter()
        .find(|e| e["funcname"] == "<module>" && e["filename"] == file)
        .unwrap_or_else(|| panic!("no <module> of {file}"))["pid"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_pools_workers_are_traced_each_under_its_own_pid() {
    require_kernel();
    // 3.9 with the fork start method; 3.15 with its default (forkserver
    // from 3.14 on: workers are children of the server process).
    for (version, method) in [("3.9", Some("fork")), ("3.15", None)] {
        let py = fixture(version).binary.display().to_string();
        let mut args = vec!["-m", "function__entry", "--", &py];
        let pool = script("pool.py");
        args.push(&pool);
        if let Some(m) = method {
            args.push(m);
        }
        let (events, run) = trace_jsonl("pool", &args);
        run.ok();
        let main = pid_running(&events, &pool);
        let f = entries_by_pid(&events, "f");
        assert_eq!(f.values().sum::<usize>(), 400, "{version}: {f:?}");
        assert!(
            !f.contains_key(&main),
            "{version}: f ran in the parent: {f:?}"
        );
        assert!(
            run.stderr.contains("processes traced"),
            "{version}: {}",
            run.stderr
        );
        // Aggregated over the tree by `calls`: the same 400, exactly.
        let (rows, run) = tool_jsonl("calls", &[&["-n", "0", "--"][..], &args[3..]].concat());
        run.ok();
        let f_rows: Vec<&Value> = rows.iter().filter(|r| r["funcname"] == "f").collect();
        assert_eq!(f_rows.len(), 1, "{version}: {f_rows:?}");
        assert_eq!(f_rows[0]["calls"], 400, "{version}");
        assert!(f_rows[0].get("pid").is_none());
        // Split by process with --by-pid.
        let (rows, run) = tool_jsonl(
            "calls",
            &[&["-n", "0", "--by-pid", "--"][..], &args[3..]].concat(),
        );
        run.ok();
        let split: u64 = rows
            .iter()
            .filter(|r| r["funcname"] == "f")
            .map(|r| {
                assert!(r["pid"].as_u64().is_some(), "{r}");
                r["calls"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(split, 400, "{version}");
        // top: the same 400 over its intervals, added up over the workers
        // (one row per interval) or split by process with --by-pid.
        for by_pid in [false, true] {
            let mut top_args = vec!["-n", "0", "--interval", "0.05"];
            if by_pid {
                top_args.push("--by-pid");
            }
            top_args.push("--");
            let (views, run) = tool_jsonl("top", &[&top_args[..], &args[3..]].concat());
            run.ok();
            let f_rows: Vec<&Value> = views
                .iter()
                .flat_map(|v| v["rows"].as_array().unwrap())
                .filter(|r| r["funcname"] == "f")
                .collect();
            let total: u64 = f_rows.iter().map(|r| r["calls"].as_u64().unwrap()).sum();
            assert_eq!(total, 400, "{version} by_pid={by_pid}");
            if by_pid {
                assert!(f_rows.iter().all(|r| r.get("processes").is_none()));
            }
        }
    }
}

#[test]
fn a_child_of_another_version_is_traced_with_its_own_plan() {
    require_kernel();
    let child = fixture("3.15").binary.display().to_string();
    let parent = system_python().display().to_string();
    // subprocess.run (fork + exec) and os.execv (the parent becomes the child).
    let spawner = script("spawner.py");
    let child_py = script("child.py");
    for how in ["subprocess", "exec"] {
        // The markers on both (3.11's default would be the agent).
        let mut args = vec![
            "-m",
            "function__entry",
            "--capture",
            "markers",
            "--",
            &parent,
            &spawner,
        ];
        args.push(&child);
        args.push(&child_py);
        if how == "exec" {
            args.push("exec");
        }
        let (events, run) = trace_jsonl("tree-versions", &args);
        run.ok();
        let parent_fn = entries_by_pid(&events, "parent_fn");
        let child_fn = entries_by_pid(&events, "child_fn");
        assert_eq!(parent_fn.values().sum::<usize>(), 1, "{how}");
        assert_eq!(child_fn.values().sum::<usize>(), 7, "{how}: {child_fn:?}");
        let same_process = parent_fn.keys().next() == child_fn.keys().next();
        assert_eq!(same_process, how == "exec", "{how}");
        // 3.11 is armed for the parent; the 3.15 child needs no arming.
        assert!(
            run.stderr.contains("so pytap turned it on"),
            "{}",
            run.stderr
        );
        // What exited last is what the summary names.
        let last = if how == "exec" {
            "python3.15"
        } else {
            "python3.11"
        };
        assert!(
            run.stderr.contains(&format!("{last} exited with status 0")),
            "{how}: {}",
            run.stderr
        );
    }
}

#[test]
fn no_children_traces_only_the_command() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let (events, run) = trace_jsonl(
        "no-children",
        &[
            "-m",
            "function__entry",
            "--no-children",
            "--",
            &py,
            &script("pool.py"),
            "fork",
        ],
    );
    run.ok();
    assert_eq!(entries_by_pid(&events, "f"), BTreeMap::new());
    // The program itself ran to completion unchanged.
    assert_eq!(run.stdout.trim(), "21253400");
    assert!(!run.stderr.contains("processes traced"), "{}", run.stderr);
}

#[test]
fn children_of_a_running_process_with_children() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let py = fixture("3.9").binary.display().to_string();
    let mut target = ChildGuard::spawn(Command::new(&py).arg(script("forker.py")));
    target.wait_for_line("ready", Duration::from_secs(20));
    let pid = target.pid();
    let out = crate::harness::scratch("children-p").join("events.jsonl");
    let tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args([
                "trace",
                "-m",
                "function__entry",
                "--children",
                "--format",
                "jsonl",
                "-o",
            ])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::piped()),
    );
    // Attached once the kernel raised the entry semaphore.
    wait_until("pytap to attach", Duration::from_secs(10), || {
        let json = pytap(&["list", "--json", "-p", &pid.to_string()]).json();
        json["modules"][0]["sites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "function__entry" && s["semaphore"]["value"] == 1)
    });
    target.say("go");
    let (code, rest) = target.finish();
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("parent done"), "{rest}");
    let result = tracer.wait_with_output();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_child = entries_by_pid(&events, "in_child");
    assert_eq!(in_child.values().sum::<usize>(), 5, "{in_child:?}");
    assert!(!in_child.contains_key(&u64::from(pid)));
    // The run ended when both processes had exited.
    assert!(stderr.contains("the traced processes exited"), "{stderr}");
}

#[test]
fn a_child_that_outlives_pytap_keeps_no_probe() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let py = system_python().display().to_string();
    let out = crate::harness::scratch("outlive").join("events.jsonl");
    // The parent forks a child that lingers on stdin after its calls; the
    // parent waits for it. pytap is killed while both run.
    let mut tracer = ChildGuard::start(
        Command::new(pytap_bin())
            // The markers (3.11's default is the agent): their probes and
            // semaphores are what must not outlive pytap here.
            .args([
                "trace",
                "--capture",
                "markers",
                "-m",
                "function__entry",
                "-m",
                "function__return",
                "--format",
                "jsonl",
                "-o",
            ])
            .arg(&out)
            .args(["--", &py, &script("forker.py"), "linger"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdout = std::io::BufReader::new(tracer.child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let mut stdin = tracer.child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let child: u32 = line
        .trim()
        .strip_prefix("child pid ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    // The child has probes of its own while pytap runs.
    let names = ["function__entry", "function__return", "line"];
    let sites = sites_named(child, &names);
    assert!(sites.iter().all(|(_, _, sem)| *sem >= 1), "{sites:?}");
    // pytap writes what it drained on its own timer: let the child's calls
    // reach the file before the kill (a fast test run can kill first).
    let in_child = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .matches("\"funcname\":\"in_child\"")
            .count()
    };
    wait_until(
        "the child's calls to be written",
        Duration::from_secs(5),
        || in_child() == 10,
    );
    pytap_sys::process::kill(tracer.pid(), pytap_sys::signal::SIGKILL).unwrap();
    tracer.wait();
    // Both run on, and the kernel took every probe and semaphore away.
    wait_until("probes to be gone", Duration::from_secs(5), || {
        nothing_armed(child)
    });
    assert!(alive(child));
    // Let them finish: the child reads its line, the parent reaps it.
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("parent done"), "{rest}");
    assert_eq!(in_child(), 10);
}

#[test]
fn flow_marks_lines_with_their_pid_once_a_second_process_appears() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let run = pytap(&[
        "flow",
        "--filter",
        "f",
        "--",
        &py,
        &script("pool.py"),
        "fork",
    ]);
    let text = run.ok();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("=> f in")).collect();
    assert_eq!(lines.len(), 400);
    let pids: BTreeSet<&str> = lines
        .iter()
        .map(|l| {
            let pid = l.strip_prefix('[').and_then(|r| r.split_once("] "));
            pid.unwrap_or_else(|| panic!("no pid: {l}")).0
        })
        .collect();
    assert!(!pids.is_empty() && pids.len() <= 4, "{pids:?}");
}
