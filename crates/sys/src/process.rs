//! Processes by pid: [`pidfd_open`] (an fd that becomes readable when a
//! process exits), [`kill`], [`try_wait`] for reaping a child of ours, and
//! [`read_memory`] (another process's memory, read without stopping it),
//! and [`default_signals`] for a command started without tracing it.
//! Launching and following a command is [`crate::ptrace`]'s.

use std::os::fd::OwnedFd;

use crate::SysError;
use crate::sys;

fn to_pid(call: &'static str, pid: u32) -> Result<libc::pid_t, SysError> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(SysError::invalid_input(call, format!("bad pid {pid}"))),
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// The death a wait status reports, if it is one.
    pub fn from_wait(status: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// As a shell's `$?` has it: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    /// `exited with status 3`, `was killed by SIGSEGV`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with status {c}"),
            ExitStatus::Signal(s) => write!(f, "was killed by {}", crate::signal::name(*s)),
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

/// pytap's effective user id (`geteuid(2)`).
pub fn effective_uid() -> u32 {
    sys::geteuid()
}

/// `kill(2)`. `pid` 0 (the process group) is refused with `InvalidInput`.
pub fn kill(pid: u32, signal: i32) -> Result<(), SysError> {
    const CALL: &str = "kill";
    let pid = to_pid(CALL, pid)?;
    sys::kill(pid, signal).map_err(|e| SysError::new(CALL, e))
}

/// Reaps child `pid` if it has exited (`waitpid(WNOHANG)`): how it
/// ended, or `None` while it runs.
pub fn try_wait(pid: u32) -> Result<Option<ExitStatus>, SysError> {
    const CALL: &str = "waitpid(WNOHANG)";
    let pid = to_pid(CALL, pid)?;
    let status = sys::waitpid(pid, libc::WNOHANG).map_err(|e| SysError::new(CALL, e))?;
    Ok(status.and_then(ExitStatus::from_wait))
}

/// Closes `fds` in a short-lived child process and returns at once.
///
/// Closing a uprobe link makes the kernel wait for RCU grace periods
/// (tens of milliseconds); when nothing can hit the probes any more (every
/// traced process has exited), the caller need not wait for that. The
/// child keeps only these descriptors, closes them and exits; it holds no
/// pipe or terminal, so readers of pytap's output see their end of file as
/// soon as pytap exits. Without `fork` the descriptors are closed here.
pub fn close_in_background(fds: Vec<OwnedFd>) {
    use std::os::fd::AsRawFd;
    if fds.is_empty() {
        return;
    }
    let mut raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    raw.sort_unstable();
    let Ok((wait, go)) = sys::pipe_cloexec() else {
        return drop(fds);
    };
    // The child closes its copies only once the parent's are gone (end of
    // file on the pipe), so that its closes are the last references, the
    // ones the kernel waits in. If fork fails, the parent's are the last.
    let _ = sys::close_in_child(&raw, wait.as_raw_fd());
    drop(fds);
    drop(go);
}

/// Copies `buf.len()` bytes of process `pid`'s memory at `address` into
/// `buf` (`process_vm_readv(2)`), without stopping it or touching it. A
/// range that is not wholly mapped is an error (`EFAULT`), never a partial
/// buffer taken for a whole one.
pub fn read_memory(pid: u32, address: u64, buf: &mut [u8]) -> Result<(), SysError> {
    const CALL: &str = "process_vm_readv";
    let pid = to_pid(CALL, pid)?;
    let mut done = 0;
    while done < buf.len() {
        let at = address.wrapping_add(done as u64);
        match sys::process_vm_readv(pid, at, &mut buf[done..]) {
            Ok(0) => {
                return Err(SysError::new(
                    CALL,
                    std::io::Error::from_raw_os_error(libc::EFAULT),
                ));
            }
            Ok(n) => done += n,
            Err(e) => return Err(SysError::new(CALL, e)),
        }
    }
    Ok(())
}

/// Makes a command pytap starts (without tracing it: the sampler's, a
/// script's) begin with an empty signal mask and the default disposition
/// of the signals pytap blocks or ignores, as [`crate::ptrace::spawn`]
/// does for the commands it follows.
pub fn default_signals(command: &mut std::process::Command) -> Result<(), SysError> {
    let mask = sys::sigset_of(&[]).map_err(|e| SysError::new("sigemptyset", e))?;
    sys::reset_signals_at_exec(command, mask, &crate::ptrace::CHILD_DEFAULT_SIGNALS);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn wait_statuses_decode() {
        let of = ExitStatus::from_wait;
        assert_eq!(of(0), Some(ExitStatus::Code(0)));
        assert_eq!(of(3 << 8), Some(ExitStatus::Code(3)));
        assert_eq!(of(9), Some(ExitStatus::Signal(9))); // killed by SIGKILL
        assert_eq!(of(0x137f), None); // stopped by SIGSTOP
        // A death by SIGSEGV and an exit with code 139 are told apart,
        // though a shell's $? is the same.
        let (segv, exit) = (of(11).unwrap(), of(139 << 8).unwrap());
        assert_eq!((segv.code(), exit.code()), (139, 139));
        assert_eq!(segv.to_string(), "was killed by SIGSEGV");
        assert_eq!(exit.to_string(), "exited with status 139");
        assert_eq!(crate::signal::name(64), "signal 64");
    }
}
