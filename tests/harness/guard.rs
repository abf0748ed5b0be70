//! Children that never outlive a failing test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped, so a failing
/// test never leaves a Python running, nor a pytap attached: what the
/// child started (a pytap's command, a Python's forks) is killed with it.
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

    /// Spawns `cmd` with the standard streams it was given (inherited
    /// unless set); its stdout, if piped, stays in `child.stdout`.
    pub fn start(cmd: &mut Command) -> ChildGuard {
        let what = format!("spawn {cmd:?}");
        ChildGuard::start_or(cmd, &what)
    }

    /// [`ChildGuard::start`], panicking with `what` if `cmd` cannot start.
    pub fn start_or(cmd: &mut Command, what: &str) -> ChildGuard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        ChildGuard {
            child,
            stdout: None,
        }
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

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill");
        self.wait()
    }

    /// Closes stdin, reads the piped stdout and stderr to their ends and
    /// waits for the exit, as `Child::wait_with_output` does.
    pub fn wait_with_output(mut self) -> Output {
        drop(self.child.stdin.take());
        let stderr = self.child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf);
                buf
            })
        });
        let mut stdout = Vec::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        } else if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        }
        let stderr = stderr.map_or_else(Vec::new, |t| t.join().expect("stderr reader"));
        let status = self.wait();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// The processes below `pid`: its children, theirs, and so on.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                all.push(c);
                todo.push(c);
            }
        }
    }
    all
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Only a child not yet reaped: its pid is still its own, and so are
        // its children's.
        if let Ok(None) = self.child.try_wait() {
            let below = descendants(self.child.id());
            let _ = self.child.kill();
            for pid in below {
                let _ = pytap_sys::process::kill(pid, pytap_sys::signal::SIGKILL);
            }
        }
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

#[test]
fn a_dropped_guard_kills_what_its_child_started() {
    let mut guard =
        ChildGuard::spawn(Command::new("sh").args(["-c", "sleep 300 & echo $!; echo ready; wait"]));
    let reader = guard.stdout.as_mut().unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let sleeper: u32 = line.trim().parse().unwrap();
    guard.wait_for_line("ready", Duration::from_secs(10));
    assert!(super::alive(sleeper));
    drop(guard);
    super::wait_until(
        "the grandchild to be killed",
        Duration::from_secs(10),
        || !super::alive(sleeper),
    );
}
