//! [`Poller`]: a thin epoll wrapper with `u64` tokens, level-triggered,
//! waiting for readability (ring buffers, signalfds, pidfds, terminals) or
//! for errors only (a pipe whose reader went away).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::SysError;
use crate::sys;

/// Events fetched per `epoll_wait`; more ready fds are reported next time.
const BATCH: usize = 64;

/// An epoll instance (`EPOLL_CLOEXEC`).
#[derive(Debug)]
pub struct Poller {
    fd: OwnedFd,
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> Result<Poller, SysError> {
        let fd = sys::epoll_create().map_err(|e| SysError::new("epoll_create1", e))?;
        Ok(Poller { fd })
    }

    /// Watches `fd` for readability (`EPOLLIN`, level-triggered); `wait`
    /// reports `token` while it is readable. The caller keeps `fd` open
    /// until it is removed (closing it also removes it).
    pub fn add(&self, fd: i32, token: u64) -> Result<(), SysError> {
        sys::epoll_ctl(
            self.fd.as_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLIN as u32,
            token,
        )
        .map_err(|e| SysError::new("epoll_ctl(EPOLL_CTL_ADD)", e))
    }

    /// Watches `fd` for readability, edge-triggered (`EPOLLIN |
    /// EPOLLET`): `wait` reports `token` when the fd's wait queue is
    /// woken, not while it stays readable. For a BPF ring buffer whose
    /// records are submitted without wakeups, that is exactly the wakeups
    /// a probe forces.
    pub fn add_edge(&self, fd: i32, token: u64) -> Result<(), SysError> {
        sys::epoll_ctl(
            self.fd.as_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            token,
        )
        .map_err(|e| SysError::new("epoll_ctl(EPOLL_CTL_ADD)", e))
    }

    /// Watches `fd` for errors and hang-ups only (`EPOLLERR`/`EPOLLHUP`,
    /// which epoll always reports): the write end of a pipe whose reader
    /// went away, for instance.
    pub fn add_for_errors(&self, fd: i32, token: u64) -> Result<(), SysError> {
        sys::epoll_ctl(self.fd.as_fd(), libc::EPOLL_CTL_ADD, fd, 0, token)
            .map_err(|e| SysError::new("epoll_ctl(EPOLL_CTL_ADD)", e))
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: i32) -> Result<(), SysError> {
        sys::epoll_ctl(self.fd.as_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0)
            .map_err(|e| SysError::new("epoll_ctl(EPOLL_CTL_DEL)", e))
    }

    /// Waits up to `timeout` (`None` = forever; rounded up to whole
    /// milliseconds) and returns the tokens of the ready fds, possibly none.
    /// An interrupted wait (`EINTR`) returns an empty vector.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Vec<u64>, SysError> {
        let timeout_ms = match timeout {
            None => -1,
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        match sys::epoll_wait(self.fd.as_fd(), &mut events, timeout_ms) {
            Ok(n) => Ok(events
                .get(..n)
                .unwrap_or(&[])
                .iter()
                // A by-value copy out of the packed struct (no reference).
                .map(|e| e.u64)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(Vec::new()),
            Err(e) => Err(SysError::new("epoll_wait", e)),
        }
    }

    /// The epoll fd (itself pollable).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
