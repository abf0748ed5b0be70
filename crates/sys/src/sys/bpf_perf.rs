//! `bpf(2)` and `perf_event_open(2)` with its ioctls: the calls that hand
//! the kernel attribute structs, some of them carrying pointers it follows.

use std::ffi::{c_int, c_long};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{errno, owned_fd};

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
/// Any pointer `attr` carries (the uprobe PMU's `config1` path) must point
/// to a NUL-terminated string that lives for the duration of the call.
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

/// The perf ioctls used here; all take an integer, not a pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PerfIoctl {
    /// `PERF_EVENT_IOC_SET_BPF`: `_IOW('$', 8, __u32)`, argument a prog fd.
    SetBpf,
    /// `PERF_EVENT_IOC_ENABLE`: `_IO('$', 0)`, argument 0.
    Enable,
    /// `PERF_EVENT_IOC_DISABLE`: `_IO('$', 1)`, argument 0.
    Disable,
}

/// `ioctl(fd, request, arg)` for a [`PerfIoctl`].
pub(crate) fn perf_ioctl(fd: BorrowedFd<'_>, request: PerfIoctl, arg: c_int) -> io::Result<()> {
    let req: libc::c_ulong = match request {
        PerfIoctl::SetBpf => 0x4004_2408,
        PerfIoctl::Enable => 0x2400,
        PerfIoctl::Disable => 0x2401,
    };
    // SAFETY: every request here takes its argument by value (an int), so the
    // kernel dereferences no user memory; `fd` is a live descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}
