//! Live processes and BPF, one test at a time: each holds
//! `harness::alone()` for its whole run.

pub mod everywhere;
pub mod lossless;
pub mod readme;
pub mod soak;
