//! [`SignalFd`]: the tracer's termination signals, blocked and read from a
//! signalfd so that the main loop can poll them next to its ring buffers and
//! leave through `Drop` (which detaches every probe) instead of dying inside
//! a signal handler.

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::SysError;
use crate::sys;

/// `SIGINT` (2).
pub const SIGINT: i32 = libc::SIGINT;
/// `SIGTERM` (15).
pub const SIGTERM: i32 = libc::SIGTERM;
/// `SIGHUP` (1).
pub const SIGHUP: i32 = libc::SIGHUP;
/// `SIGQUIT` (3).
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// `SIGKILL` (9), for [`crate::process::kill`].
pub const SIGKILL: i32 = libc::SIGKILL;
/// `SIGCHLD` (17): a traced child stopped or exited.
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// `SIGWINCH` (28): the terminal changed size.
pub const SIGWINCH: i32 = libc::SIGWINCH;
/// `SIGCONT` (18).
pub const SIGCONT: i32 = libc::SIGCONT;
/// `SIGSTOP` (19).
pub const SIGSTOP: i32 = libc::SIGSTOP;

/// A signal's name (`SIGSEGV`), or `signal N` for one without a
/// standard name (real-time signals and numbers Linux does not use).
pub fn name(sig: i32) -> String {
    const NAMES: [(i32, &str); 31] = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, name)| (*name).to_string())
}

/// The signals a [`SignalFd`] takes over: the four that end a run, and the
/// two the run loop reacts to (a tracee's stop, a terminal's new size).
const HANDLED: [i32; 6] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGWINCH];

/// `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`, `SIGCHLD` and `SIGWINCH`,
/// blocked in the creating thread and readable from a non-blocking,
/// close-on-exec signalfd.
///
/// Create it before spawning threads: threads inherit the mask, and a
/// process-directed signal goes to any thread that does not block it.
/// `SIGPIPE` is left alone. Dropping it restores the thread's previous mask;
/// a signal still pending then is delivered with its default action, so
/// drain it with [`read`](SignalFd::read) first if that is unwanted. The
/// mask is per thread, so `SignalFd` is neither `Send` nor `Sync`: it must
/// be dropped on the thread that created it.
pub struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
    _same_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for SignalFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalFd").field("fd", &self.fd).finish()
    }
}

/// Blocks, in the calling thread, the signals a [`SignalFd`] reads. For
/// pytap's helper threads: the kernel gives a process-wide signal to any
/// thread that does not block it, and one started before the main thread
/// made its `SignalFd` does not (a `SIGCHLD` taken there is discarded, and
/// the main loop never hears that its command exited).
pub fn leave_to_signalfd() -> Result<(), SysError> {
    let set = sys::sigset_of(&HANDLED).map_err(|e| SysError::new("sigaddset", e))?;
    sys::pthread_sigmask(libc::SIG_BLOCK, &set)
        .map_err(|e| SysError::new("pthread_sigmask(SIG_BLOCK)", e))?;
    Ok(())
}

/// Runs `f` with the signals a [`SignalFd`] reads blocked in the calling
/// thread, then gives the thread its mask back. A thread `f` starts
/// inherits the block from its first instruction, so a process-wide
/// signal (a `SIGTERM`) can never land in it in the moment before it could
/// call [`leave_to_signalfd`] itself, where it would take the signal's
/// default action: end pytap, leaving a command it had just forked stopped
/// before it was traced.
pub fn blocked_while<T>(f: impl FnOnce() -> T) -> Result<T, SysError> {
    let set = sys::sigset_of(&HANDLED).map_err(|e| SysError::new("sigaddset", e))?;
    let old_mask = sys::pthread_sigmask(libc::SIG_BLOCK, &set)
        .map_err(|e| SysError::new("pthread_sigmask(SIG_BLOCK)", e))?;
    let out = f();
    // Restoring a mask the kernel gave cannot fail.
    let _ = sys::pthread_sigmask(libc::SIG_SETMASK, &old_mask);
    Ok(out)
}

impl SignalFd {
    /// Blocks the signals with `pthread_sigmask` and opens the signalfd.
    pub fn new() -> Result<SignalFd, SysError> {
        let set = sys::sigset_of(&HANDLED).map_err(|e| SysError::new("sigaddset", e))?;
        let old_mask = sys::pthread_sigmask(libc::SIG_BLOCK, &set)
            .map_err(|e| SysError::new("pthread_sigmask(SIG_BLOCK)", e))?;
        match sys::signalfd(&set) {
            Ok(fd) => Ok(SignalFd {
                fd,
                old_mask,
                _same_thread: PhantomData,
            }),
            Err(e) => {
                // Best effort: undo the block before reporting.
                let _ = sys::pthread_sigmask(libc::SIG_SETMASK, &old_mask);
                Err(SysError::new("signalfd", e))
            }
        }
    }

    /// The signalfd, for epoll.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The next pending signal number, or `None` if none is pending.
    pub fn read(&self) -> Result<Option<i32>, SysError> {
        const CALL: &str = "read(signalfd)";
        // struct signalfd_siginfo is 128 bytes; ssi_signo is the first u32.
        let mut buf = [0u8; 128];
        match sys::read(self.fd.as_fd(), &mut buf) {
            Ok(128) => {
                let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                Ok(Some(signo as i32))
            }
            Ok(n) => Err(SysError::new(
                CALL,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("short read of {n} bytes"),
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(SysError::new(CALL, e)),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // Nothing useful can be done if restoring fails (it cannot with a
        // valid set).
        let _ = sys::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask);
    }
}
