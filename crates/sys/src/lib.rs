//! Every system call pytap makes, and the only crate of the project allowed
//! to contain `unsafe`.
//!
//! - [`bpf`]: maps, program loading (with the verifier log), links
//!   (uprobe_multi and perf-event) and the uprobe_multi feature probe;
//! - [`perf`]: `perf_event_open` on the uprobe PMU;
//! - [`ringbuf`]: the mmap-based ring-buffer consumer;
//! - [`cpuring`]: the consumer of per-CPU rings the probes write in place;
//! - [`poll`]: epoll with `u64` tokens;
//! - [`signal`]: termination signals through a signalfd;
//! - [`ptrace`]: following a process tree (PTRACE_SEIZE): spawning a
//!   command held at its exec, fork and exec stops;
//! - [`process`]: `pidfd_open`, `kill`;
//! - [`clock`]: the monotonic and wall clocks, and waiting out running probes;
//! - [`pty`]: pseudo-terminals for a traced command's output;
//! - this root: CPU counts and the page size.
//!
//! Rules kept throughout: every raw call goes through the private wrappers of
//! `sys/` (one file per kind of call), each `unsafe` block argues its
//! soundness in a `SAFETY` comment, every fd is an
//! [`OwnedFd`](std::os::fd::OwnedFd) with close-on-exec set, and nothing
//! outlives the process: no tracefs writes, no bpffs pins, so the
//! kernel removes every probe when the process exits, even on `SIGKILL`.
//! Answers from the kernel are validated before they size a slice; nothing
//! here panics on them.

#![deny(missing_docs)]

pub mod bpf;
pub mod clock;
pub mod cpuring;
mod error;
pub mod perf;
pub mod poll;
pub mod process;
pub mod ptrace;
pub mod pty;
pub mod ringbuf;
pub mod signal;
mod sys;

use std::sync::OnceLock;

pub use error::{LoadError, SysError};

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// Parses a kernel CPU list such as `0-1`, `0,2-3` or `0-3,8-11\n` and
/// returns the highest CPU index + 1, which is how libbpf
/// (`libbpf_num_possible_cpus`) sizes per-CPU map values. `None` for an empty
/// or malformed list.
pub fn parse_cpu_list(list: &str) -> Option<usize> {
    let list = list.trim();
    if list.is_empty() {
        return None;
    }
    let mut max: Option<usize> = None;
    for part in list.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim().parse::<usize>().ok()?, hi.trim().parse().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if lo > hi {
            return None;
        }
        max = Some(max.map_or(hi, |m| m.max(hi)));
    }
    max?.checked_add(1)
}

/// Number of possible CPUs as per-CPU maps count them: the highest index in
/// `/sys/devices/system/cpu/possible` + 1. Read once, then cached.
pub fn possible_cpus() -> Result<usize, SysError> {
    static CPUS: OnceLock<usize> = OnceLock::new();
    if let Some(n) = CPUS.get() {
        return Ok(*n);
    }
    const CALL: &str = "read(/sys/devices/system/cpu/possible)";
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(|e| SysError::new(CALL, e))?;
    let n = parse_cpu_list(&text).ok_or_else(|| {
        SysError::new(
            CALL,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?}")),
        )
    })?;
    Ok(*CPUS.get_or_init(|| n))
}

/// The page size (`sysconf(_SC_PAGESIZE)`; 4096 if that fails).
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| sys::sysconf(libc::_SC_PAGESIZE).unwrap_or(4096))
}

/// Online processors (`sysconf(_SC_NPROCESSORS_ONLN)`, at least 1), for
/// information only: per-CPU maps are sized by [`possible_cpus`].
pub fn online_cpus() -> usize {
    sys::sysconf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0,2-3"), Some(4));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(parse_cpu_list("5"), Some(6));
        assert_eq!(parse_cpu_list(" 0-7 \n"), Some(8));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("\n"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-"), None);
        assert_eq!(parse_cpu_list("0,,1"), None);
        assert_eq!(parse_cpu_list("18446744073709551615"), None);
    }

    #[test]
    fn machine_values_are_sane() {
        let possible = super::possible_cpus().unwrap();
        assert!(possible >= 1);
        assert!(super::online_cpus() >= 1);
        assert!(super::online_cpus() <= possible);
        assert!(super::page_size().is_power_of_two());
    }
}
