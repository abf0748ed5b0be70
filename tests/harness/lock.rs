//! Tests that must not overlap. Cargo runs the tests of one binary on
//! parallel threads; a session that attaches to every process of a binary
//! (`--all`, a script without a target) raises the semaphores and plants
//! the uprobes of processes other tests own, so it never runs beside a test
//! that counts a process's semaphores or armed sites exactly.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

static SYSTEM_WIDE: RwLock<()> = RwLock::new(());

/// Held for a whole test that attaches system-wide: no other test that
/// takes [`system_wide`] or [`exact_counts`] runs meanwhile.
pub fn system_wide() -> RwLockWriteGuard<'static, ()> {
    // A test that failed holding it leaves nothing to guard against.
    SYSTEM_WIDE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Held for a whole test that counts semaphores or armed sites exactly:
/// such tests run beside one another, never beside a system-wide one.
pub fn exact_counts() -> RwLockReadGuard<'static, ()> {
    SYSTEM_WIDE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held for a whole test of the `machine` binary: its tests run one at a
/// time, on a quiet machine (what the tests before left running, processes
/// being reaped or killed, has ended).
pub fn alone() -> RwLockWriteGuard<'static, ()> {
    let guard = system_wide();
    quiet();
    guard
}

/// Waits (up to 20 s) until no other task has been runnable for half a
/// second: `/proc/loadavg`'s running count is this test's own thread.
fn quiet() {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut calm_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let running = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            .and_then(|f| f.split('/').next().and_then(|n| n.parse::<u32>().ok()))
            .unwrap_or(1);
        if running <= 1 {
            let since = *calm_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(500) {
                return;
            }
        } else {
            calm_since = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
