//! Live processes and BPF, one test at a time.

pub mod everywhere;
pub mod lossless;
pub mod readme;
pub mod soak;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held for a whole test: the tests of this binary run one at a time, on
/// a quiet machine (what the tests before left running, processes being
/// reaped or killed, has ended).
pub fn alone() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    let guard = ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
