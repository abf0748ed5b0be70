//! Live processes and BPF, one test at a time.

pub mod everywhere;
pub mod lossless;
pub mod readme;
pub mod soak;

use std::sync::{Mutex, MutexGuard};

/// Held for a whole test: the tests of this binary run one at a time.
pub fn alone() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A script of tests/py.
pub fn script(name: &str) -> String {
    crate::harness::root()
        .join("tests/py")
        .join(name)
        .display()
        .to_string()
}
