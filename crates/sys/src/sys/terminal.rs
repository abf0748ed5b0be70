//! Pseudo-terminals for a traced command's output, and their sizes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{errno, owned_fd};

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
