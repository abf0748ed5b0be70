//! Attach and detach: whatever ends pytap (Ctrl-C, SIGTERM, SIGKILL), the
//! target keeps running unchanged, its probe instructions are restored and
//! its semaphores are back to 0. Also: a target that execs, `--all`, and
//! the traced program's standard streams.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pytap_sys::signal::{SIGINT, SIGKILL, SIGTERM};
use serde_json::Value;

use crate::harness::{
    ChildGuard, byte_at, descendants, fixture, pytap_bin, require_kernel, scratch, script,
    sites_named, system_python, wait_until,
};

/// The `function__entry`, `function__return` and `line` sites of a running
/// process: (marker, probe address, live semaphore value).
fn sites(pid: u32) -> Vec<(String, u64, u64)> {
    sites_named(pid, &["function__entry", "function__return", "line"])
}

/// The live semaphore value of a process's first `audit` site.
fn audit_semaphore(pid: u32) -> u64 {
    sites_named(pid, &["audit"])[0].2
}

fn spawn_busy(python: &Path) -> ChildGuard {
    let mut guard = ChildGuard::spawn(Command::new(python).arg(script("busy.py")));
    guard.wait_for_line("ready", Duration::from_secs(20));
    guard
}

/// Traces a busy Python 3.11 (with entry arming, so three semaphores are
/// raised), ends pytap with `signal`, and checks nothing is left behind.
fn detach_after(signal: i32, name: &str) {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let mut target = spawn_busy(&system_python());
    let pid = target.pid();
    let before = sites(pid);
    assert_eq!(before.len(), 3);
    for (marker, pc, sem) in &before {
        assert_eq!(*sem, 0, "{marker} semaphore before");
        assert_eq!(byte_at(pid, *pc), 0x90, "{marker} site before");
    }
    let out = scratch(name).join("events.jsonl");
    let mut tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args([
                "trace",
                "-m",
                "function__entry",
                "-m",
                "function__return",
                "--format",
                "jsonl",
                "-o",
            ])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::piped()),
    );
    // Attached once the kernel raised the semaphores (line: 3.11 arming).
    wait_until("pytap to attach", Duration::from_secs(10), || {
        sites(pid).iter().all(|(_, _, sem)| *sem == 1)
    });
    let entry = before.iter().find(|s| s.0 == "function__entry").unwrap().1;
    let ret = before.iter().find(|s| s.0 == "function__return").unwrap().1;
    let line = before.iter().find(|s| s.0 == "line").unwrap().1;
    assert_eq!(byte_at(pid, entry), 0xcc, "uprobe on function__entry");
    assert_eq!(byte_at(pid, ret), 0xcc, "uprobe on function__return");
    // Arming raises line's semaphore without a uprobe on the line site.
    assert_eq!(byte_at(pid, line), 0x90, "no uprobe on line");
    // Events flow to the file before pytap is stopped.
    let ticks_so_far = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"funcname\":\"tick\""))
            .count()
    };
    wait_until("tick events in the file", Duration::from_secs(10), || {
        ticks_so_far() > 100
    });
    pytap_sys::process::kill(tracer.pid(), signal).unwrap();
    let status = tracer.wait();
    let mut stderr = String::new();
    tracer
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    if signal == SIGKILL {
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(SIGKILL)
        );
    } else {
        assert_eq!(status.code(), Some(0), "{stderr}");
        let sig = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert!(
            stderr.contains(&format!("stopped by {sig}, probes detached")),
            "{stderr}"
        );
        assert!(stderr.contains(" 0 lost"), "{stderr}");
        let events = std::fs::read_to_string(&out).unwrap();
        let ticks = events
            .lines()
            .filter(|l| l.contains("\"funcname\":\"tick\""))
            .count();
        assert!(ticks > 100, "only {ticks} tick events");
    }
    // The kernel removes the uprobes and lowers the semaphores as the fds close.
    wait_until("probes to be gone", Duration::from_secs(5), || {
        sites(pid)
            .iter()
            .all(|(_, pc, sem)| *sem == 0 && byte_at(pid, *pc) == 0x90)
    });
    assert!(target.is_running(), "the target died");
    let (code, rest) = target.finish();
    assert_eq!((code, rest.trim()), (0, "done True"));
}

#[test]
fn ctrl_c_detaches_cleanly() {
    detach_after(SIGINT, "detach-int");
}

#[test]
fn sigterm_detaches_cleanly() {
    detach_after(SIGTERM, "detach-term");
}

#[test]
fn sigkill_leaves_nothing_behind() {
    detach_after(SIGKILL, "detach-kill");
}

#[test]
fn a_target_that_execs_something_else_ends_the_trace() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let code = "import os, sys\nprint('ready', flush=True)\nsys.stdin.readline()\nos.execv('/bin/sleep', ['sleep', '30'])";
    let mut target = ChildGuard::spawn(Command::new(system_python()).args(["-c", code]));
    target.wait_for_line("ready", Duration::from_secs(10));
    let pid = target.pid();
    let tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["trace", "-m", "audit", "-p", &pid.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    wait_until("pytap to attach", Duration::from_secs(10), || {
        audit_semaphore(pid) == 1
    });
    target.say("go");
    let out = tracer.wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "process {pid} executed /usr/bin/sleep, which is not the traced Python; stopped"
        )),
        "{stderr}"
    );
    // The exec itself was seen before the program changed.
    assert!(stdout.contains("os.exec("), "{stdout}");
    assert!(target.is_running());
}

#[test]
fn all_mode_catches_processes_that_start_later() {
    require_kernel();
    let _system_wide = crate::harness::system_wide();
    let python = fixture("3.15").binary.clone();
    let out = scratch("all-mode").join("events.jsonl");
    let mut idle = crate::harness::spawn_waiting_python(&python, "");
    let mut tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["trace", "--all", "--binary"])
            .arg(&python)
            .args(["-m", "audit", "--duration", "8", "--format", "jsonl", "-o"])
            .arg(&out)
            .stderr(Stdio::piped()),
    );
    // Without a pid filter the semaphore goes up in every process mapping the
    // binary: by one per site (3.15 has four audit sites sharing it).
    wait_until("pytap --all to attach", Duration::from_secs(10), || {
        audit_semaphore(idle.pid()) == 4
    });
    let later = Command::new(&python)
        .arg(script("audit.py"))
        .output()
        .unwrap();
    assert!(later.status.success());
    pytap_sys::process::kill(tracer.pid(), SIGINT).unwrap();
    let status = tracer.wait();
    assert_eq!(status.code(), Some(0));
    let events: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let xy: Vec<_> = events.iter().filter(|e| e["event"] == "x.y").collect();
    assert_eq!(xy.len(), 1, "{xy:?}");
    assert_ne!(xy[0]["pid"].as_u64(), Some(u64::from(idle.pid())));
    assert!(idle.is_running());
}

#[test]
fn the_programs_streams_pass_through() {
    require_kernel();
    let code = "import sys; data = sys.stdin.read(); sys.stdout.write(data.upper()); sys.stderr.write('to stderr\\n'); sys.exit(5)";
    let out = scratch("streams").join("events.jsonl");
    let mut child = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["trace", "-m", "audit", "-o"])
            .arg(&out)
            .args(["--", system_python().to_str().unwrap(), "-c", code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child
        .child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let result = child.wait_with_output();
    assert_eq!(String::from_utf8_lossy(&result.stdout), "HELLO\nWORLD\n");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("to stderr\n"), "{stderr}");
    assert!(
        stderr.contains("python3.11 exited with status 5"),
        "{stderr}"
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
}

#[test]
fn a_stop_signal_before_any_python_lets_the_command_go() {
    require_kernel();
    // The command runs no Python for a while: pytap is still waiting for
    // one when SIGTERM comes, and must end (it used to wait for the command).
    let marker = scratch("stop-before-python").join("ran");
    let _ = std::fs::remove_file(&marker);
    let command = format!("sleep 1; touch {}", marker.display());
    let tracer = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["trace", "-m", "audit", "--", "sh", "-c", &command])
            .stderr(Stdio::piped()),
    );
    // pytap has started the command (its stop signals are blocked by then)
    // and waits for a Python.
    wait_until(
        "pytap to start the command",
        Duration::from_secs(10),
        || !descendants(tracer.pid()).is_empty(),
    );
    pytap_sys::process::kill(tracer.pid(), SIGTERM).unwrap();
    let out = tracer.wait_with_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "stopped by SIGTERM before sh ran a Python with markers; it runs on, untraced"
        ),
        "{stderr}"
    );
    // The command goes on untraced, to its end.
    wait_until("the command to finish", Duration::from_secs(10), || {
        marker.exists()
    });
}
