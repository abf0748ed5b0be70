//! Output arrives while pytap runs and is never torn: files and pipes are
//! flushed within a fraction of a second, a reader that goes away ends the
//! run quietly, JSON Lines stay whole when the traced command writes to
//! the same pipe, and output errors never panic and name their file.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    ChildGuard, nothing_armed, pytap, pytap_bin, require_kernel, scratch, script, system_python,
    wait_until,
};

/// A Python that calls sys.audit("pytap.tick", i) every 50 ms until stdin closes.
fn ticking() -> ChildGuard {
    let code = "import sys, threading, time\nstop = threading.Event()\nthreading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()\nprint('ready', flush=True)\ni = 0\nwhile not stop.is_set():\n    sys.audit('pytap.tick', i)\n    i += 1\n    time.sleep(0.05)\n";
    let mut guard = ChildGuard::spawn(Command::new(system_python()).args(["-c", code]));
    guard.wait_for_line("ready", Duration::from_secs(20));
    guard
}

#[test]
fn a_file_fills_while_pytap_runs() {
    require_kernel();
    let target = ticking();
    let out = scratch("timely-file").join("audit.txt");
    let mut tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["audit", "-e", "pytap.*", "-o"])
            .arg(&out)
            .args(["-p", &target.pid().to_string()])
            .stderr(Stdio::null()),
    );
    // Events every 50 ms: lines must show up within a second, with pytap
    // still running (they used to wait for an 8 KiB or 1 MiB buffer).
    wait_until("lines in the -o file", Duration::from_secs(5), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.matches("pytap.tick(").count() >= 3)
    });
    assert!(tracer.try_wait().is_none(), "pytap ended early");
    pytap_sys::process::kill(tracer.pid(), pytap_sys::signal::SIGINT).unwrap();
    assert_eq!(tracer.wait().code(), Some(0));
}

#[test]
fn a_pipe_gets_each_line_soon_and_a_closed_pipe_ends_the_run_quietly() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let target = ticking();
    let mut tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["trace", "-m", "audit", "-p", &target.pid().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut reader = BufReader::new(tracer.child.stdout.take().unwrap());
    // The lines come while pytap runs (it runs on until its reader leaves);
    // how soon is not timed here.
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        lines.push(line);
    }
    assert!(lines[1].contains("pytap.tick("), "{lines:?}");
    // `| head -2`: the reader goes away; pytap detaches and exits 0,
    // without a word, even though the target goes on.
    drop(reader);
    let mut status = None;
    wait_until(
        "pytap to end after its reader left",
        Duration::from_secs(5),
        || {
            status = tracer.try_wait();
            status.is_some()
        },
    );
    let status = status.unwrap();
    let mut stderr = String::new();
    tracer
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    // The probes went with it.
    assert!(nothing_armed(target.pid()));
}

#[test]
fn json_lines_stay_whole_when_the_command_shares_the_pipe() {
    require_kernel();
    let py = crate::harness::fixture("3.9").binary.display().to_string();
    for round in 0..3 {
        let out = Command::new(pytap_bin())
            .args([
                "trace",
                "-m",
                "function__entry",
                "--format",
                "jsonl",
                "--",
                &py,
            ])
            .arg(script("chatty.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("use -o FILE to keep them apart"),
            "round {round}: {stderr}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut program = 0;
        let mut work = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("program line ") {
                assert_eq!(rest.len(), 6 + 40, "round {round}: torn line {line:?}");
                program += 1;
            } else {
                let event: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("round {round}: torn JSON ({e}): {line:?}"));
                if event["funcname"] == "work" {
                    work += 1;
                }
            }
        }
        assert_eq!((program, work), (2000, 2000), "round {round}");
    }
}

#[test]
fn output_errors_name_their_file_and_never_panic() {
    require_kernel();
    let py = system_python().display().to_string();
    let run = pytap(&[
        "trace",
        "-m",
        "audit",
        "-o",
        "/dev/full",
        "--",
        &py,
        "-c",
        "pass",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("pytap: writing /dev/full: No space left on device"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // stdout and stderr both on a pipe whose reader leaves after one line
    // (`pytap calls … 2>&1 | head -1` used to panic with status 101).
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} calls -- {py} {} 18 /dev/null 2>&1 | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            pytap_bin().display(),
            script("fib.py")
        ))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(code == "0" || code == "1", "pytap exited {code}");
}
