//! Child processes: [`TracedChild`] starts a program under ptrace so probes
//! can be attached before it runs any of its own instructions, then lets it go
//! ([`TracedChild::detach`]) as a plain [`ChildProcess`]. Also [`pidfd_open`]
//! and [`kill`].
//!
//! ptrace is used only to hold the child at exec boundaries: no registers or
//! memory are read or written.

use std::ffi::{OsStr, OsString};
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::SysError;
use crate::sys::{self, Ptrace};

/// Signals whose disposition the child gets back to default before exec:
/// the tracer may ignore or catch them, and exec keeps "ignored".
const CHILD_DEFAULT_SIGNALS: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
];

/// Where a traced child stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stopped right after an execve (the first exec, or a later one: the
    /// tracer sets `PTRACE_O_TRACEEXEC`). [`TracedChild::exe`] tells which
    /// program is now loaded.
    Exec,
    /// Exited: the exit code, or 128 + the signal number for a signal death.
    Exited(i32),
}

/// The exit code encoded in a wait status, if the status is a death.
fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

fn to_pid(call: &'static str, pid: u32) -> Result<libc::pid_t, SysError> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(SysError::invalid_input(call, format!("bad pid {pid}"))),
    }
}

/// A child started under ptrace, stopped at an exec (or exited).
///
/// ptrace requests may only come from the tracer *thread*, the one that
/// called [`spawn`](TracedChild::spawn), so `TracedChild` is not `Send`; if
/// that thread exits, the kernel kills the child (`PTRACE_O_EXITKILL`), as
/// it does when the whole tracer dies before detaching. Dropping a
/// `TracedChild` that was neither detached nor seen to exit kills and reaps
/// the child.
#[derive(Debug)]
pub struct TracedChild {
    pid: libc::pid_t,
    exited: Option<i32>,
    released: bool,
    _tracer_thread: PhantomData<*const ()>,
}

impl TracedChild {
    /// Starts `program` (looked up in `PATH` like `execvp`) with `args`, the
    /// inherited environment plus `env`, and inherited stdio. In the child,
    /// after fork: empty signal mask, default dispositions for SIGINT,
    /// SIGTERM, SIGHUP, SIGQUIT and SIGPIPE, `PTRACE_TRACEME`, then exec.
    /// Returns once the child sits in the stop that follows its successful
    /// exec, with `PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL` set.
    ///
    /// A failed exec is reported as `execvp(PROGRAM): <errno>` (the `call`
    /// string is leaked: this is meant for a failure that ends the tracer).
    pub fn spawn(
        program: &OsStr,
        args: &[OsString],
        env: &[(OsString, OsString)],
    ) -> Result<TracedChild, SysError> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: the closure runs in the forked child before exec. It only
        // makes async-signal-safe system calls (sigprocmask, signal, ptrace)
        // on a constant array, allocates nothing and touches no lock, which
        // is what pre_exec requires in a possibly multi-threaded parent.
        unsafe {
            cmd.pre_exec(|| sys::child_prepare_exec(&CHILD_DEFAULT_SIGNALS));
        }
        let child = cmd.spawn().map_err(|e| {
            let call = format!("execvp({})", program.to_string_lossy());
            SysError::new(Box::leak(call.into_boxed_str()), e)
        })?;
        // std reported success only after the exec itself succeeded (its
        // close-on-exec pipe closed). From here on the pid is managed with
        // waitpid/ptrace directly; dropping std's handle neither waits nor
        // kills.
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| SysError::invalid_input("spawn", "pid out of range"))?;
        drop(child);
        let mut traced = TracedChild {
            pid,
            exited: None,
            released: false,
            _tracer_thread: PhantomData,
        };
        // The exec raised SIGTRAP (legacy exec stop of PTRACE_TRACEME). It is
        // synchronous, so it is dequeued before any other pending signal;
        // anything else seen first is re-injected.
        loop {
            let status = wait_traced(pid)?;
            if let Some(code) = exit_code(status) {
                traced.exited = Some(code);
                return Err(SysError::new(
                    "waitpid(exec stop)",
                    std::io::Error::other(format!("child exited ({code}) before its exec stop")),
                ));
            }
            if libc::WIFSTOPPED(status) {
                let sig = libc::WSTOPSIG(status);
                if sig == libc::SIGTRAP {
                    break;
                }
                resume(pid, sig)?;
            }
        }
        sys::ptrace(
            Ptrace::SetOptions,
            pid,
            libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL,
        )
        .map_err(|e| SysError::new("PTRACE_SETOPTIONS", e))?;
        Ok(traced)
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The program the child runs now (`/proc/PID/exe`).
    pub fn exe(&self) -> Result<PathBuf, SysError> {
        std::fs::read_link(format!("/proc/{}/exe", self.pid))
            .map_err(|e| SysError::new("readlink(/proc/PID/exe)", e))
    }

    /// Lets the child run until its next execve (returns [`Stop::Exec`],
    /// stopped again) or its death ([`Stop::Exited`]). Signals it receives
    /// meanwhile are passed on (`PTRACE_CONT` with the signal). A group-stop
    /// (SIGSTOP/SIGTSTP actually stopping it) is recognised by
    /// `PTRACE_GETSIGINFO` failing and resumed without a signal: with
    /// `PTRACE_TRACEME` (no `PTRACE_SEIZE`/`PTRACE_LISTEN`) the kernel cannot
    /// keep a tracee group-stopped, so such a stop is effectively ignored.
    pub fn continue_to_next_exec(&mut self) -> Result<Stop, SysError> {
        if let Some(code) = self.exited {
            return Ok(Stop::Exited(code));
        }
        let mut inject = 0;
        loop {
            resume(self.pid, inject)?;
            inject = 0;
            let status = wait_traced(self.pid)?;
            if let Some(code) = exit_code(status) {
                self.exited = Some(code);
                return Ok(Stop::Exited(code));
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = (status >> 16) & 0xff;
            if event == libc::PTRACE_EVENT_EXEC {
                return Ok(Stop::Exec);
            }
            if event != 0 {
                // Some other ptrace event stop: nothing to deliver.
                continue;
            }
            // Signal-delivery-stop: pass the signal on. Group-stop: no
            // siginfo; resume plainly. ESRCH: killed meanwhile, the next
            // wait reports it.
            inject = match sys::ptrace_has_siginfo(self.pid) {
                Ok(true) => sig,
                Ok(false) => 0,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => 0,
                Err(e) => return Err(SysError::new("PTRACE_GETSIGINFO", e)),
            };
        }
    }

    /// `PTRACE_DETACH`: the child runs on, untraced.
    pub fn detach(mut self) -> Result<ChildProcess, SysError> {
        self.released = true;
        if self.exited.is_none() {
            sys::ptrace(Ptrace::Detach, self.pid, 0)
                .map_err(|e| SysError::new("PTRACE_DETACH", e))?;
        }
        Ok(ChildProcess {
            pid: self.pid,
            status: self.exited,
        })
    }
}

impl Drop for TracedChild {
    fn drop(&mut self) {
        if self.released || self.exited.is_some() {
            return;
        }
        // Abandoned while stopped under ptrace: never let it run untraced.
        if sys::kill(self.pid, libc::SIGKILL).is_ok() {
            while let Ok(status) = wait_traced(self.pid) {
                if exit_code(status).is_some() {
                    break;
                }
            }
        }
    }
}

/// `waitpid(pid, __WALL)` for a traced child.
fn wait_traced(pid: libc::pid_t) -> Result<i32, SysError> {
    match sys::waitpid(pid, libc::__WALL) {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(SysError::new(
            "waitpid",
            std::io::Error::other("no status without WNOHANG"),
        )),
        Err(e) => Err(SysError::new("waitpid", e)),
    }
}

/// `PTRACE_CONT` with `sig`; `ESRCH` (killed while stopped) is left for the
/// next wait to report.
fn resume(pid: libc::pid_t, sig: i32) -> Result<(), SysError> {
    match sys::ptrace(Ptrace::Cont, pid, sig) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(SysError::new("PTRACE_CONT", e)),
        _ => Ok(()),
    }
}

/// A child of ours that is no longer traced.
#[derive(Debug)]
pub struct ChildProcess {
    pid: libc::pid_t,
    status: Option<i32>,
}

impl ChildProcess {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Non-blocking reap: `Some(exit code)` (128 + signal for a signal death)
    /// once it has exited; the result is remembered.
    pub fn try_wait(&mut self) -> Result<Option<i32>, SysError> {
        if self.status.is_none() {
            let st = sys::waitpid(self.pid, libc::WNOHANG)
                .map_err(|e| SysError::new("waitpid(WNOHANG)", e))?;
            self.status = st.and_then(exit_code);
        }
        Ok(self.status)
    }

    /// Blocks until the child exits; its exit code (128 + signal for a signal
    /// death).
    pub fn wait(&mut self) -> Result<i32, SysError> {
        loop {
            if let Some(code) = self.status {
                return Ok(code);
            }
            let st = sys::waitpid(self.pid, 0).map_err(|e| SysError::new("waitpid", e))?;
            self.status = st.and_then(exit_code);
        }
    }
}

/// `pidfd_open(2)`: an fd (close-on-exec) that becomes readable when process
/// `pid` exits. Works for any process, not only children.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, SysError> {
    const CALL: &str = "pidfd_open";
    let pid = to_pid(CALL, pid)?;
    sys::pidfd_open(pid).map_err(|e| SysError::new(CALL, e))
}

/// `kill(2)`. `pid` 0 (the process group) is refused with `InvalidInput`.
pub fn kill(pid: u32, signal: i32) -> Result<(), SysError> {
    const CALL: &str = "kill";
    let pid = to_pid(CALL, pid)?;
    sys::kill(pid, signal).map_err(|e| SysError::new(CALL, e))
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(exit_code(0), Some(0));
        assert_eq!(exit_code(3 << 8), Some(3));
        assert_eq!(exit_code(9), Some(137)); // killed by SIGKILL
        assert_eq!(exit_code(0x137f), None); // stopped by SIGSTOP
    }
}
