//! Running pytap to its end: its status and output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{fixture, pytap_bin, scratch, script};

/// A finished pytap run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "pytap failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Parses stdout as JSON after asserting success.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts pytap failed the way users are promised: exit 2, one line on
    /// stderr starting with `pytap: `, no panic, nothing on stdout. Returns
    /// the message.
    #[track_caller]
    pub fn one_line_error(&self) -> &str {
        assert_eq!(
            self.code, 2,
            "expected exit 2\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "expected one line:\n{}",
            self.stderr
        );
        assert!(self.stderr.starts_with("pytap: "), "{}", self.stderr);
        assert_eq!(self.stdout, "", "stdout should be empty on error");
        self.stderr.trim_end()
    }
}

/// Runs pytap with arguments and waits for it.
pub fn pytap(args: &[&str]) -> Run {
    let out = Command::new(pytap_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pytap");
    Run::from_output(out)
}

/// Runs pytap with arguments and variables added to its environment
/// (which a command it launches inherits), and waits for it.
pub fn pytap_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Run {
    let out = Command::new(pytap_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run pytap");
    Run::from_output(out)
}

/// Runs `pytap trace --format jsonl` with `args`, returns the events and the run.
pub fn trace_jsonl(name: &str, args: &[&str]) -> (Vec<Value>, Run) {
    let out = scratch(name).join("events.jsonl");
    let mut all = vec!["trace", "--format", "jsonl", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = pytap(&all);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect();
    (events, run)
}

/// `-m` for every marker that is not a function's: gc, imports, audit.
pub const GC_IMPORT_AUDIT: [&str; 10] = [
    "-m",
    "gc__start",
    "-m",
    "gc__done",
    "-m",
    "import__find__load__start",
    "-m",
    "import__find__load__done",
    "-m",
    "audit",
];

/// Runs a tool with `--format jsonl -o FILE`; returns the JSON lines and the run.
pub fn tool_jsonl(tool: &str, args: &[&str]) -> (Vec<Value>, Run) {
    // Tests run in parallel: every run gets its own file.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = scratch(&format!("tool-{tool}-{n}")).join("out.jsonl");
    let mut all = vec![tool, "--format", "jsonl", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = pytap(&all);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect();
    (lines, run)
}

/// The recording tests' workload, with string hashing fixed so two runs
/// make the same calls.
pub fn workload(version: &str) -> String {
    format!(
        "PYTHONHASHSEED=0 {} {}",
        fixture(version).wrapper.display(),
        script("replay_work.py")
    )
}

/// Records the workload on `version`; returns the recording's path.
pub fn record(version: &str, extra: &[&str]) -> PathBuf {
    // Tests run in parallel: every recording gets its own directory.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch(&format!("recording-{version}-{n}")).join("run.pytap");
    let command = workload(version);
    let mut args = vec!["record", "-o", path.to_str().unwrap(), "-c", &command];
    args.extend_from_slice(extra);
    let run = pytap(&args);
    run.ok();
    assert!(
        run.stderr.contains("recorded ") && run.stderr.contains(" events to "),
        "{}",
        run.stderr
    );
    path
}
