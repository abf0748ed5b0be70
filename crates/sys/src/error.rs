//! The two error types of this crate: [`SysError`] for every system call and
//! [`LoadError`] for `BPF_PROG_LOAD`, which also carries the verifier log.

use std::io;

/// A failed system call (or a request this crate refused before making one).
///
/// `call` names the operation, e.g. `"BPF_MAP_CREATE"`,
/// `"BPF_LINK_CREATE(uprobe_multi)"` or `"perf_event_open(uprobe)"`. `source`
/// holds the errno read right after the call, or an
/// [`io::ErrorKind::InvalidInput`] error for arguments rejected up front
/// (wrong buffer sizes, values out of range).
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SysError {
    /// The operation that failed.
    pub call: &'static str,
    /// The errno (or the reason the arguments were refused).
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// Wraps `source` under `call`.
    pub fn new(call: &'static str, source: io::Error) -> SysError {
        SysError { call, source }
    }

    /// An [`io::ErrorKind::InvalidInput`] error: the arguments were refused
    /// before any system call was made.
    pub fn invalid_input(call: &'static str, why: impl Into<String>) -> SysError {
        SysError::new(
            call,
            io::Error::new(io::ErrorKind::InvalidInput, why.into()),
        )
    }

    /// The errno, when the error came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// A failed `BPF_PROG_LOAD`: the errno of the first (log-less) attempt and
/// the verifier log of the second one, made with `log_level = 1`.
#[derive(Debug, thiserror::Error)]
#[error("BPF_PROG_LOAD: {source}")]
pub struct LoadError {
    /// The errno of the failed load (`EACCES` for most verifier rejections,
    /// `EINVAL` for malformed programs or attributes).
    #[source]
    pub source: io::Error,
    /// The verifier log, up to its NUL; empty when the kernel wrote none
    /// (or the load was refused before reaching the kernel).
    pub log: String,
}
