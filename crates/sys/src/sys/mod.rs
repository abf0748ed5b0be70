//! The raw system-call wrappers. Every `syscall`, `ioctl`, `mmap`, `ptrace`
//! and signal-mask call this crate makes is one of the small functions here;
//! the public modules build on them and never call `libc` for a system call
//! themselves. Each wrapper reads errno right after its call.
//!
//! Wrappers whose arguments are plain values are safe functions. The ones that
//! hand the kernel pointers it will follow (`bpf`, `perf_event_open`) or that
//! release memory (`munmap`) are `unsafe fn`s whose contract is spelled out in
//! their docs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::c_long;

mod bpf_perf;
mod events;
mod memory;
mod tasks;
mod terminal;
mod time;

pub(crate) use bpf_perf::*;
pub(crate) use events::*;
pub(crate) use memory::*;
pub(crate) use tasks::*;
pub(crate) use terminal::*;
pub(crate) use time::*;

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

/// An [`io::ErrorKind::InvalidInput`] error.
pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// The address of a C string, for a `u64` attr field. The caller keeps `s`
/// alive until the system call returns.
pub(crate) fn cstr_addr(s: &CStr) -> u64 {
    s.as_ptr() as u64
}
