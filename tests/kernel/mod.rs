//! Live processes and BPF, as root. Each test starts with
//! `require_kernel()`, which fails (never skips) when root or a kernel
//! interface is missing.

mod lifecycle;
mod live_list;
mod tools;
mod trace;
