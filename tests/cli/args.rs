//! Usage errors say what is wrong in one line (exit 2), before anything is
//! attached; and pytap never panics on its own output streams.

use std::process::{Command, Stdio};

use crate::harness::{ChildGuard, pytap, pytap_bin};

#[test]
fn intervals_depths_and_filters_are_checked() {
    let msg = pytap(&["top", "--interval", "0", "-p", "1"])
        .one_line_error()
        .to_string();
    assert_eq!(
        msg,
        "pytap: --interval must be between 0.01 and 3600 seconds, not 0"
    );
    pytap(&["top", "--interval", "0.000001", "-p", "1"]).one_line_error();
    let msg = pytap(&["flow", "--max-depth", "0", "-p", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("--max-depth must be at least 1"), "{msg}");
    let msg = pytap(&["flow", "--within", "[", "-p", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.starts_with("pytap: --within '[': "), "{msg}");
    let msg = pytap(&["flow", "--filter", "[", "-p", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.starts_with("pytap: --filter '[': "), "{msg}");
    let msg = pytap(&["trace", "--children", "--no-children", "-p", "1"])
        .one_line_error()
        .to_string();
    assert!(msg.contains("opposites"), "{msg}");
}

#[test]
fn a_full_or_closed_stderr_never_panics() {
    // Errors printed to a full stderr: the message is lost, the exit code is not.
    let status = Command::new(pytap_bin())
        .args(["info", "/nonexistent"])
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    // A full stdout: one line naming it, status 2.
    let out = Command::new(pytap_bin())
        .args(["list", "/usr/bin/python3.11"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pytap: writing stdout: No space left on device (os error 28)\n"
    );
    // A closed stdout pipe (`pytap list … | head -0`): status 0, nothing said.
    let mut child = ChildGuard::start(
        Command::new(pytap_bin())
            .args(["list", "/usr/bin/python3.11"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    drop(child.child.stdout.take());
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stderr, b"");
}

#[test]
fn help_lists_the_commands_as_a_user_meets_them() {
    // Finding a Python, tracing it, its views, scripts, recordings, then
    // the set-up helpers (completions and man were between top and calls).
    let help = pytap(&["--help"]);
    let commands: Vec<&str> = help
        .ok()
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "info",
            "list",
            "dump",
            "profile",
            "trace",
            "flow",
            "top",
            "calls",
            "gc",
            "imports",
            "audit",
            "stap",
            "dtrace",
            "record",
            "export",
            "completions",
            "man",
            "help"
        ]
    );
}
