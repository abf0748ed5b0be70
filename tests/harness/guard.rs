//! Children that never outlive a failing test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped, so a failing
/// test never leaves a Python running.
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl ChildGuard {
    /// Spawns `cmd` with piped stdout and stdin.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().map(BufReader::new);
        ChildGuard { child, stdout }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout lines until one equals `want`; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_line(&mut self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let reader = self.stdout.as_mut().expect("stdout piped");
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => panic!("child exited before printing {want:?}"),
                Ok(_) if line.trim_end() == want => return,
                Ok(_) => {}
                Err(e) => panic!("reading child stdout: {e}"),
            }
        }
        panic!("child did not print {want:?} within {timeout:?}");
    }

    /// Writes `line` and a newline to the child's stdin (a waiting script's go).
    #[track_caller]
    pub fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to the child's stdin");
    }

    /// Closes stdin and waits for the exit status; returns the rest of stdout.
    pub fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut rest);
        }
        let status = self.child.wait().expect("wait");
        (status.code().unwrap_or(-1), rest)
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python` running `code` after printing `ready`, then blocking on
/// stdin until the guard closes it.
pub fn spawn_waiting_python(python: &Path, code: &str) -> ChildGuard {
    let script = format!("{code}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n");
    let mut guard = ChildGuard::spawn(Command::new(python).args(["-c", &script]));
    guard.wait_for_line("ready", Duration::from_secs(20));
    guard
}
