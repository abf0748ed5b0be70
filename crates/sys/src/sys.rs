//! The raw system-call wrappers. Every `syscall`, `ioctl`, `mmap`, `ptrace`
//! and signal-mask call this crate makes is one of the small functions below;
//! the public modules build on them and never call `libc` for a system call
//! themselves. Each wrapper reads errno right after its call.
//!
//! Wrappers whose arguments are plain values are safe functions. The ones that
//! hand the kernel pointers it will follow (`bpf`, `perf_event_open`) or that
//! release memory (`munmap`) are `unsafe fn`s whose contract is spelled out in
//! their docs.

use std::ffi::{CStr, c_int, c_long, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};

/// The errno of the call that just failed.
fn errno() -> io::Error {
    io::Error::last_os_error()
}

/// Wraps the return value of a call that creates a file descriptor.
///
/// # Safety
///
/// `ret`, when non-negative, must be a descriptor that was just created by the
/// kernel for this process and is owned by nobody else.
unsafe fn owned_fd(ret: c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(errno());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the caller guarantees `fd` is a fresh descriptor nobody else
    // owns, so the OwnedFd becomes its single owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---- bpf(2) ---------------------------------------------------------------

/// An attribute struct for `bpf(2)`.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` structs made only of integers and integer
/// arrays, with no implicit padding (every byte initialised), laid out as a
/// prefix of the kernel's `union bpf_attr` member for the commands they are
/// passed with.
pub(crate) unsafe trait BpfAttr: Sized {}

/// `bpf(cmd, attr, sizeof *attr)`. Returns the kernel's non-negative result
/// (an fd for commands that create objects, 0 otherwise).
///
/// # Safety
///
/// Every pointer stored in `attr` (as a `u64`) must be valid for the reads and
/// writes `cmd` performs through it, with the sizes the kernel derives from
/// the attr and the target object (key size, value size, counts, log size).
/// Pointers that the kernel keeps beyond the call are not allowed: no command
/// used here keeps one.
pub(crate) unsafe fn bpf<A: BpfAttr>(cmd: u32, attr: &mut A) -> io::Result<c_long> {
    let size = std::mem::size_of::<A>() as u32;
    let ptr: *mut A = attr;
    // SAFETY: `ptr` points to `size` initialised, writable bytes (BpfAttr);
    // the pointers inside are valid per this function's contract. The kernel
    // copies the attr in, and for a few commands writes results back into it
    // (e.g. the batch count), which `&mut` allows.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd as c_long, ptr, size as c_long) };
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

/// [`bpf`] for a command that returns a new fd (`BPF_MAP_CREATE`,
/// `BPF_PROG_LOAD`, `BPF_LINK_CREATE`). The kernel creates every BPF object fd
/// with `O_CLOEXEC`.
///
/// # Safety
///
/// As for [`bpf`]; `cmd` must be a command whose success value is a new fd.
pub(crate) unsafe fn bpf_fd<A: BpfAttr>(cmd: u32, attr: &mut A) -> io::Result<OwnedFd> {
    // SAFETY: forwarded contract.
    let ret = unsafe { bpf(cmd, attr)? };
    // SAFETY: the caller picked an fd-creating command; a successful return
    // is a new descriptor that only we know about.
    unsafe { owned_fd(ret) }
}

// ---- perf_event_open(2) and its ioctls ------------------------------------

/// `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)`.
///
/// # Safety
///
/// Any pointer `attr` carries (the uprobe PMU's `config1` path) must point to a NUL-terminated string that
/// lives for the duration of the call.
pub(crate) unsafe fn perf_event_open(
    attr: &crate::perf::PerfEventAttr,
    pid: c_int,
    cpu: c_int,
) -> io::Result<OwnedFd> {
    const PERF_FLAG_FD_CLOEXEC: c_long = 8;
    let ptr: *const crate::perf::PerfEventAttr = attr;
    // SAFETY: per the contract the attr and the strings it points to are valid
    // for reading; the kernel copies them during the call and keeps nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            ptr,
            pid as c_long,
            cpu as c_long,
            -1 as c_long,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    // SAFETY: a non-negative return is the new event fd.
    unsafe { owned_fd(ret) }
}

/// The perf ioctls used here; both take an integer, not a pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PerfIoctl {
    /// `PERF_EVENT_IOC_SET_BPF`: `_IOW('$', 8, __u32)`, argument a prog fd.
    SetBpf,
    /// `PERF_EVENT_IOC_ENABLE`: `_IO('$', 0)`, argument 0.
    Enable,
}

/// `ioctl(fd, request, arg)` for a [`PerfIoctl`].
pub(crate) fn perf_ioctl(fd: BorrowedFd<'_>, request: PerfIoctl, arg: c_int) -> io::Result<()> {
    let req: libc::c_ulong = match request {
        PerfIoctl::SetBpf => 0x4004_2408,
        PerfIoctl::Enable => 0x2400,
    };
    // SAFETY: both requests take their argument by value (an int), so the
    // kernel dereferences no user memory; `fd` is a live descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

// ---- mmap -----------------------------------------------------------------

/// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)`: a new shared mapping at an
/// address the kernel picks (so no existing memory is replaced).
pub(crate) fn mmap_shared(
    fd: BorrowedFd<'_>,
    len: usize,
    writable: bool,
    offset: usize,
) -> io::Result<NonNull<u8>> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    let offset = libc::off_t::try_from(offset).map_err(|_| invalid("mmap offset"))?;
    // SAFETY: with a NULL hint and no MAP_FIXED the kernel chooses an unused
    // range, so this cannot alias or replace any memory Rust knows about.
    let ptr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(errno());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// `munmap(ptr, len)`.
///
/// # Safety
///
/// `ptr..ptr+len` must be exactly a mapping returned by [`mmap_shared`] that
/// is not unmapped yet, and no reference into it may be used afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: per the contract the range is our own live mapping with no
    // remaining users. munmap of a valid range cannot fail.
    unsafe { libc::munmap(ptr.as_ptr().cast::<c_void>(), len) };
}

/// `sysconf(name)`, `None` when unknown or failing.
pub(crate) fn sysconf(name: c_int) -> Option<usize> {
    // SAFETY: sysconf only reads its integer argument.
    let v = unsafe { libc::sysconf(name) };
    usize::try_from(v).ok().filter(|v| *v > 0)
}

// ---- epoll ----------------------------------------------------------------

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers involved.
    let ret = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    // SAFETY: a non-negative return is the new epoll fd.
    unsafe { owned_fd(ret.into()) }
}

/// `epoll_ctl(epfd, op, fd, {events, token})`; the event is ignored by
/// `EPOLL_CTL_DEL`.
pub(crate) fn epoll_ctl(
    epfd: BorrowedFd<'_>,
    op: c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event the kernel only reads; `fd` is just
    // a number to the kernel (a stale one gives EBADF).
    let ret = unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd, &mut ev) };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// `epoll_wait(epfd, events, len, timeout_ms)`: the number of events filled.
pub(crate) fn epoll_wait(
    epfd: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout_ms: c_int,
) -> io::Result<usize> {
    let max = c_int::try_from(events.len()).unwrap_or(c_int::MAX);
    // SAFETY: the kernel writes at most `max` events into `events`, which has
    // room for them.
    let ret = unsafe { libc::epoll_wait(epfd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
    if ret < 0 {
        Err(errno())
    } else {
        // ret <= max, checked against the slice again by the caller's get().
        Ok(ret as usize)
    }
}

// ---- signals --------------------------------------------------------------

/// A signal set holding `signals`.
pub(crate) fn sigset_of(signals: &[c_int]) -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let set_ptr = set.as_mut_ptr();
    // SAFETY: `set_ptr` points to writable storage for one sigset_t, which
    // sigemptyset initialises completely.
    if unsafe { libc::sigemptyset(set_ptr) } < 0 {
        return Err(errno());
    }
    for &sig in signals {
        // SAFETY: the set was initialised by sigemptyset above.
        if unsafe { libc::sigaddset(set_ptr, sig) } < 0 {
            return Err(errno());
        }
    }
    // SAFETY: initialised by sigemptyset.
    Ok(unsafe { set.assume_init() })
}

/// `pthread_sigmask(how, set, &old)`: changes the calling thread's mask and
/// returns the previous one.
pub(crate) fn pthread_sigmask(how: c_int, set: &libc::sigset_t) -> io::Result<libc::sigset_t> {
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is a valid set; `old` is writable storage the call fills
    // on success.
    let ret = unsafe { libc::pthread_sigmask(how, set, old.as_mut_ptr()) };
    if ret != 0 {
        // pthread functions return the error number instead of setting errno.
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: filled by the successful call.
    Ok(unsafe { old.assume_init() })
}

/// `signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC)`.
pub(crate) fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a valid sigset the kernel copies.
    let ret = unsafe { libc::signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    // SAFETY: a non-negative return is the new signalfd.
    unsafe { owned_fd(ret.into()) }
}

/// `read(fd, buf, len)`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret as usize)
    }
}

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

// ---- terminals --------------------------------------------------------------

/// A new pseudo-terminal: (master, slave), both close-on-exec and neither
/// becoming pytap's controlling terminal.
pub(crate) fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: no pointers; a non-negative return is a new descriptor.
    let master = unsafe {
        owned_fd(libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC).into())?
    };
    // SAFETY: grantpt takes the master descriptor only.
    if unsafe { libc::grantpt(master.as_raw_fd()) } < 0 {
        return Err(errno());
    }
    // SAFETY: unlockpt takes the master descriptor only.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } < 0 {
        return Err(errno());
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most `len` bytes.
    let ret = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: `name` is NUL-terminated (ptsname_r succeeded); open copies it.
    let slave = unsafe {
        owned_fd(
            libc::open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
            .into(),
        )?
    };
    Ok((master, slave))
}

/// A terminal's size (`TIOCGWINSZ`): rows, columns.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    if ret < 0 {
        Err(errno())
    } else {
        Ok((ws.ws_row, ws.ws_col))
    }
}

/// Sets a terminal's size (`TIOCSWINSZ`).
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if ret < 0 { Err(errno()) } else { Ok(()) }
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

/// An [`io::ErrorKind::InvalidInput`] error.
pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// The address of a C string, for a `u64` attr field. The caller keeps `s`
/// alive until the system call returns.
pub(crate) fn cstr_addr(s: &CStr) -> u64 {
    s.as_ptr() as u64
}

/// `clock_gettime(clock)` in nanoseconds.
pub(crate) fn clock_ns(clock: libc::clockid_t) -> io::Result<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let ret = unsafe { libc::clock_gettime(clock, &mut ts) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts
        .tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec))
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: returns after an RCU grace period.
pub(crate) fn membarrier_global() -> io::Result<()> {
    const MEMBARRIER_CMD_GLOBAL: c_long = 1;
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0 as c_long) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
