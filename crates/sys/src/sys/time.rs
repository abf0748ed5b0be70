//! Clocks, and waiting out an RCU grace period (probes still running).

use std::ffi::c_long;
use std::io;

/// `clock_gettime(clock)` in nanoseconds.
pub(crate) fn clock_ns(clock: libc::clockid_t) -> io::Result<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let ret = unsafe { libc::clock_gettime(clock, &mut ts) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts
        .tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec))
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: returns after an RCU grace period.
pub(crate) fn membarrier_global() -> io::Result<()> {
    const MEMBARRIER_CMD_GLOBAL: c_long = 1;
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0 as c_long) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
