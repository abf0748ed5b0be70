//! Processes and their threads: ptrace, waiting, forking with an exec or
//! a close, signals sent, pidfds.

use std::ffi::{CStr, c_int, c_long, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::{errno, owned_fd};

// ---- processes ------------------------------------------------------------

/// The ptrace requests used on an existing tracee; none passes a pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ptrace {
    /// `PTRACE_SETOPTIONS` with the options in `data`.
    SetOptions,
    /// `PTRACE_CONT` injecting the signal in `data` (0 = none).
    Cont,
    /// `PTRACE_DETACH` injecting the signal in `data` (0 = none).
    Detach,
    /// `PTRACE_LISTEN` (seized tracees in a group-stop; `data` 0).
    Listen,
    /// `PTRACE_INTERRUPT` (seized tracees; `data` 0).
    Interrupt,
}

/// `ptrace(request, pid, 0, data)` for a [`Ptrace`] request.
pub(crate) fn ptrace(request: Ptrace, pid: libc::pid_t, data: c_int) -> io::Result<()> {
    let req = match request {
        Ptrace::SetOptions => libc::PTRACE_SETOPTIONS,
        Ptrace::Cont => libc::PTRACE_CONT,
        Ptrace::Detach => libc::PTRACE_DETACH,
        Ptrace::Listen => libc::PTRACE_LISTEN,
        Ptrace::Interrupt => libc::PTRACE_INTERRUPT,
    };
    // SAFETY: these requests treat `data` as an integer (options or a signal
    // number), never as an address, and ignore `addr`.
    let ret = unsafe {
        libc::ptrace(
            req,
            pid,
            ptr::null_mut::<c_void>(),
            data as usize as *mut c_void,
        )
    };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// `PTRACE_SEIZE` with `options` (the options go in `data`; no pointer).
pub(crate) fn ptrace_seize(pid: libc::pid_t, options: c_int) -> io::Result<()> {
    // SAFETY: PTRACE_SEIZE takes its options by value in `data` and
    // ignores `addr` (which must be 0).
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            ptr::null_mut::<c_void>(),
            options as usize as *mut c_void,
        )
    };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// `PTRACE_GETEVENTMSG`: the message of the event stop the tracee is in
/// (a new task's id, or the former thread id of an exec).
pub(crate) fn ptrace_event_message(pid: libc::pid_t) -> io::Result<u64> {
    let mut message: libc::c_ulong = 0;
    // SAFETY: the kernel writes one unsigned long at `data`, which points
    // to `message`.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            ptr::null_mut::<c_void>(),
            &mut message as *mut libc::c_ulong,
        )
    };
    if ret < 0 { Err(errno()) } else { Ok(message) }
}

/// `waitpid(pid, &status, flags)`: `Ok(None)` when `WNOHANG` found nothing.
/// `EINTR` is retried.
pub(crate) fn waitpid(pid: libc::pid_t, flags: c_int) -> io::Result<Option<c_int>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a writable int.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret > 0 {
            return Ok(Some(status));
        }
        if ret == 0 {
            return Ok(None);
        }
        let err = errno();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `waitpid(-1, &status, flags)`: the task and its status, `Ok(None)` when
/// `WNOHANG` found nothing. `EINTR` is retried.
pub(crate) fn waitpid_any(flags: c_int) -> io::Result<Option<(libc::pid_t, c_int)>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a writable int.
        let ret = unsafe { libc::waitpid(-1, &mut status, flags) };
        if ret > 0 {
            return Ok(Some((ret, status)));
        }
        if ret == 0 {
            return Ok(None);
        }
        let err = errno();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: the kernel writes two descriptors into `fds`.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if ret < 0 {
        return Err(errno());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Everything the child of [`fork_exec_stopped`] needs, prepared before the
/// fork (the child must not allocate).
pub(crate) struct ChildExec<'a> {
    /// The program's path.
    pub path: &'a CStr,
    /// argv (without the terminating NULL).
    pub argv: &'a [std::ffi::CString],
    /// envp (without the terminating NULL).
    pub envp: &'a [std::ffi::CString],
    /// An empty signal set, to clear the mask.
    pub empty_mask: &'a libc::sigset_t,
    /// Signals reset to their default action.
    pub default_signals: &'a [c_int],
    /// A terminal to make the child's controlling terminal and stdio.
    pub terminal: Option<RawFd>,
    /// Close-on-exec write end where a failed execve leaves its errno.
    pub error_pipe: RawFd,
}

/// Makes `command`'s child, between its fork and its exec, empty its
/// signal mask and give `signals` their default disposition: a process
/// started by pytap must not inherit the signals pytap blocks for its
/// signalfd (a command that ignores Ctrl-C and SIGTERM behaves otherwise).
pub(crate) fn reset_signals_at_exec(
    command: &mut std::process::Command,
    empty_mask: libc::sigset_t,
    signals: &'static [c_int],
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child after fork, before exec; it makes
    // only async-signal-safe calls (sigprocmask, signal) on a mask copied
    // into the closure before the fork and a static list, with no
    // allocation and no lock.
    unsafe {
        command.pre_exec(move || {
            libc::sigprocmask(libc::SIG_SETMASK, &empty_mask, ptr::null_mut());
            for &sig in signals {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// Forks; the child resets its signals, takes the terminal if any, stops
/// itself with `SIGSTOP` (so the parent can seize it) and executes. Returns
/// the child's pid in the parent.
pub(crate) fn fork_exec_stopped(child: &ChildExec<'_>) -> io::Result<libc::pid_t> {
    // The pointer arrays are built before forking: the child only reads.
    let mut argv: Vec<*const libc::c_char> = child.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(ptr::null());
    let mut envp: Vec<*const libc::c_char> = child.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(ptr::null());
    // SAFETY: fork duplicates the process. In the child only
    // async-signal-safe calls follow (sigprocmask, signal, setsid, ioctl,
    // dup2, raise, execve, write, _exit), all on memory prepared above,
    // with no allocation and no lock, so this is sound even if other
    // threads existed in the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // In the child now. The calls below are async-signal-safe; every
    // pointer passed is to memory built before the fork.
    // SAFETY: each call takes only integers or pointers to that memory,
    // alive until execve replaces the process or _exit ends it.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, child.empty_mask, ptr::null_mut());
        for &sig in child.default_signals {
            libc::signal(sig, libc::SIG_DFL);
        }
        if let Some(tty) = child.terminal {
            libc::setsid();
            libc::ioctl(tty, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(tty, fd);
            }
        }
        libc::raise(libc::SIGSTOP);
        libc::execve(child.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let err = *libc::__errno_location();
        let bytes = err.to_ne_bytes();
        libc::write(child.error_pipe, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127);
    }
}

/// Forks a child that keeps only `fds` (sorted ascending) and `wait` (the
/// read end of a pipe), waits for end of file on `wait` (the parent closed
/// its copies of `fds` and then the pipe's write end), closes `fds` (now
/// the last references) and exits. Returns in the parent.
pub(crate) fn close_in_child(fds: &[RawFd], wait: RawFd) -> io::Result<()> {
    let mut keep: Vec<RawFd> = fds.iter().copied().chain([wait]).collect();
    keep.sort_unstable();
    // SAFETY: fork duplicates the process; the child makes only
    // async-signal-safe system calls on descriptors listed before the fork
    // and exits without running any destructor.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno());
    }
    if pid > 0 {
        return Ok(());
    }
    let mut next: c_long = 0;
    for &fd in &keep {
        let fd = c_long::from(fd);
        if fd > next {
            // SAFETY: close_range takes integers only.
            unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0 as c_long) };
        }
        next = fd + 1;
    }
    // SAFETY: as above; every remaining descriptor above the last kept one.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            next,
            c_long::from(u32::MAX),
            0 as c_long,
        )
    };
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into `byte`; returns 0 at end of file.
    while unsafe { libc::read(wait, (&mut byte as *mut u8).cast(), 1) } > 0 {}
    for &fd in fds {
        // SAFETY: closes a descriptor this child owns (its copy of `fd`).
        unsafe { libc::close(fd) };
    }
    // SAFETY: ends the child at once, as after a failed exec.
    unsafe { libc::_exit(0) }
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: libc::pid_t, sig: c_int) -> io::Result<()> {
    // SAFETY: no pointers; the caller has already refused pid <= 0.
    let ret = unsafe { libc::kill(pid, sig) };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// `geteuid()`: it cannot fail.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: no arguments, no pointers; POSIX says it always succeeds.
    unsafe { libc::geteuid() }
}

/// `pidfd_open(pid, 0)`; pidfds are always close-on-exec.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as c_long, 0 as c_long) };
    // SAFETY: a non-negative return is the new pidfd.
    unsafe { owned_fd(ret) }
}

/// `process_vm_readv(pid, [buf], [address, len])`: copies another
/// process's memory into `buf` without stopping it. Returns the bytes
/// copied (fewer than asked when the range crosses into unmapped memory).
pub(crate) fn process_vm_readv(
    pid: libc::pid_t,
    address: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is valid for writes of its
    // whole length for the duration of the call; the kernel writes at most
    // that many bytes into it. `remote` is only an address in the other
    // process, which the kernel checks and never dereferences in ours.
    let ret = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if ret < 0 {
        return Err(errno());
    }
    Ok(ret as usize)
}
