//! Clocks, and waiting for the probes already running to finish.

use crate::SysError;
use crate::sys;

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> Result<i64, SysError> {
    sys::clock_ns(libc::CLOCK_MONOTONIC).map_err(|e| SysError::new("clock_gettime", e))
}

/// `CLOCK_REALTIME` in nanoseconds since the epoch.
pub fn realtime_ns() -> Result<i64, SysError> {
    sys::clock_ns(libc::CLOCK_REALTIME).map_err(|e| SysError::new("clock_gettime", e))
}

/// The CPU time this process has used, all its threads, in nanoseconds
/// (`CLOCK_PROCESS_CPUTIME_ID`): what pytap itself costs, apart from the
/// processes it traces.
pub fn process_cpu_ns() -> Result<i64, SysError> {
    sys::clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).map_err(|e| SysError::new("clock_gettime", e))
}

/// Returns once every BPF program that was running when it was called has
/// finished (`membarrier(MEMBARRIER_CMD_GLOBAL)` waits for an RCU grace
/// period, and non-sleepable uprobe programs run inside RCU read-side
/// sections). After switching which map probes write, this is when the
/// old map has stopped changing.
pub fn wait_for_running_probes() -> Result<(), SysError> {
    sys::membarrier_global().map_err(|e| SysError::new("membarrier", e))
}
