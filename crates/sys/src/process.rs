//! Processes by pid: [`pidfd_open`] (an fd that becomes readable when a
//! process exits), [`kill`], and [`try_wait`] for reaping a child of ours.
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

/// The exit code encoded in a wait status, if the status is a death: the
/// code, or 128 + the signal number for a signal death.
fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
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

/// Reaps child `pid` if it has exited (`waitpid(WNOHANG)`): its exit code
/// (128 + signal for a signal death), or `None` while it runs.
pub fn try_wait(pid: u32) -> Result<Option<i32>, SysError> {
    const CALL: &str = "waitpid(WNOHANG)";
    let pid = to_pid(CALL, pid)?;
    let status = sys::waitpid(pid, libc::WNOHANG).map_err(|e| SysError::new(CALL, e))?;
    Ok(status.and_then(exit_code))
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
