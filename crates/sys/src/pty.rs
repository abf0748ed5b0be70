//! Pseudo-terminals, for a traced command whose output must neither be
//! drawn over pytap's full-screen view nor lost: the command gets the
//! terminal side ([`Pty::slave`]) as its controlling terminal and stdio, so
//! it still sees a terminal (and keeps its line buffering), and pytap reads
//! what it writes from [`Pty::master`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::SysError;
use crate::sys;

/// A pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    /// pytap's side: reads what the command writes, writes what it reads.
    pub master: OwnedFd,
    /// The command's side.
    pub slave: OwnedFd,
}

impl Pty {
    /// `posix_openpt`, `grantpt`, `unlockpt` and the slave opened
    /// (close-on-exec, not pytap's controlling terminal).
    pub fn open() -> Result<Pty, SysError> {
        let (master, slave) = sys::openpty().map_err(|e| SysError::new("openpty", e))?;
        Ok(Pty { master, slave })
    }

    /// Gives the pty the size of the terminal `like` (a no-op when `like`
    /// is not a terminal).
    pub fn copy_size(&self, like: BorrowedFd<'_>) {
        if let Ok((rows, cols)) = sys::window_size(like) {
            let _ = sys::set_window_size(self.master.as_fd(), rows, cols);
        }
    }
}

/// A terminal's size, rows and columns (`TIOCGWINSZ`).
pub fn window_size(fd: BorrowedFd<'_>) -> Result<(u16, u16), SysError> {
    sys::window_size(fd).map_err(|e| SysError::new("ioctl(TIOCGWINSZ)", e))
}
