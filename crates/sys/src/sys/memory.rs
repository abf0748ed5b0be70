//! Shared mappings (the ring buffer's and the per-CPU rings' pages) and
//! the machine's sizes they are counted in.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};

use super::{errno, invalid};

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
