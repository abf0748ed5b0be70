//! Every system call pytap makes, and the only crate of the project allowed
//! to contain `unsafe`.
//!
//! - [`bpf`]: maps, program loading (with the verifier log), links
//!   (uprobe_multi and perf-event) and the uprobe_multi feature probe;
//! - [`perf`]: `perf_event_open` on the uprobe PMU, and sampling clocks
//!   running `perf_event` programs: [`perf::CpuSamplers`] samples every
//!   online CPU ([`online_cpu_ids`]) at one frequency, the base of a stack
//!   sampler; [`perf::Sampler`] runs one clock, such as a thread's own
//!   ([`perf::PerfEvent::task_clock_sampler`]);
//! - [`ringbuf`]: the mmap-based ring-buffer consumer;
//! - [`cpuring`]: the consumer of per-CPU rings the probes write in place;
//! - [`poll`]: epoll with `u64` tokens;
//! - [`signal`]: termination signals through a signalfd;
//! - [`ptrace`]: following a process tree (PTRACE_SEIZE): spawning a
//!   command held at its exec, fork and exec stops;
//! - [`process`]: `pidfd_open`, `kill`;
//! - [`clock`]: the monotonic and wall clocks, and waiting out running probes;
//! - [`pty`]: pseudo-terminals for a traced command's output;
//! - this root: CPU counts, the online CPUs' ids and the page size.
//!
//! A stack sampler is built from: a program loaded as
//! [`bpf::ProgType::PerfEvent`] that reads the sampled task
//! (`bpf_get_current_task` plus an offset found in the kernel's BTF with
//! `pytap_ebpf::btf::Btf`, e.g. `task_struct.thread.fsbase`) and writes
//! records to a ring buffer ([`bpf::Map`] of [`bpf::MapType::RingBuf`],
//! read with [`ringbuf::RingBuf`]); then [`perf::CpuSamplers::attach`] on
//! that program.
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

/// Most CPU ids [`parse_cpu_ids`] expands a list to (Linux's `NR_CPUS` is
/// at most 8192).
const MAX_CPU_IDS: usize = 1 << 16;

/// Parses a kernel CPU list such as `0-1`, `0,2-3` or `0-3,8-11\n` into the
/// CPU ids it names, ascending and without duplicates. `None` for an empty
/// or malformed list, or one naming more than 65536 CPUs.
pub fn parse_cpu_ids(list: &str) -> Option<Vec<u32>> {
    let list = list.trim();
    if list.is_empty() {
        return None;
    }
    let mut ids = std::collections::BTreeSet::new();
    for part in list.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim().parse::<u32>().ok()?, hi.trim().parse().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if lo > hi || (hi - lo) as usize >= MAX_CPU_IDS {
            return None;
        }
        ids.extend(lo..=hi);
        if ids.len() > MAX_CPU_IDS {
            return None;
        }
    }
    Some(ids.into_iter().collect())
}

/// The ids of the CPUs online now (`/sys/devices/system/cpu/online`), read
/// afresh on every call: CPUs come and go with hotplug. What per-CPU perf
/// events are opened on ([`perf::CpuSamplers`]).
pub fn online_cpu_ids() -> Result<Vec<u32>, SysError> {
    const CALL: &str = "read(/sys/devices/system/cpu/online)";
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| SysError::new(CALL, e))?;
    parse_cpu_ids(&text).ok_or_else(|| {
        SysError::new(
            CALL,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?}")),
        )
    })
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
/// information only: per-CPU maps are sized by [`possible_cpus`], per-CPU
/// events are opened on [`online_cpu_ids`].
pub fn online_cpus() -> usize {
    sys::sysconf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::{parse_cpu_ids, parse_cpu_list};

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
    fn cpu_id_lists() {
        assert_eq!(parse_cpu_ids("0"), Some(vec![0]));
        assert_eq!(parse_cpu_ids("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_ids("0,2-3"), Some(vec![0, 2, 3]));
        assert_eq!(parse_cpu_ids("8-9,0-1"), Some(vec![0, 1, 8, 9]));
        assert_eq!(parse_cpu_ids("1,1,0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_ids(" 5 \n"), Some(vec![5]));
        for bad in ["", "\n", "a-b", "3-1", "0-", "0,,1", "-1", "4294967296"] {
            assert_eq!(parse_cpu_ids(bad), None, "{bad:?}");
        }
        // Bounded: a list cannot make it allocate without end.
        assert_eq!(parse_cpu_ids("0-4294967295"), None);
        assert_eq!(parse_cpu_ids("0-65535").map(|v| v.len()), Some(65536));
        assert_eq!(parse_cpu_ids("0-65535,70000"), None);
    }

    #[test]
    fn machine_values_are_sane() {
        let possible = super::possible_cpus().unwrap();
        assert!(possible >= 1);
        assert!(super::online_cpus() >= 1);
        assert!(super::online_cpus() <= possible);
        assert!(super::page_size().is_power_of_two());
        let online = super::online_cpu_ids().unwrap();
        assert!(!online.is_empty());
        assert!(online.iter().all(|c| (*c as usize) < possible));
    }
}
