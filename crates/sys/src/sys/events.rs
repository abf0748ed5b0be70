//! Waiting for the kernel: epoll, and signals as a descriptor (masks,
//! signalfd, reading it).

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{errno, owned_fd};

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
