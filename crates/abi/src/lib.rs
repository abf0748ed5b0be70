//! pytap's record layouts, shared by everything that writes or reads them
//! (pure: constants and `#[repr(C)]` structs, no I/O, no dependencies):
//!
//! - [`event`]: the records the BPF programs write (header, kinds, every
//!   `FLAG_*`, the per-CPU rings' layout), which pytap's code generator
//!   stores at and its decoder reads at;
//! - [`sample`]: the stack sampler's records and the process and thread
//!   maps pytap fills for it;
//! - [`capture`]: the in-process capture's ring file, which the compiled
//!   callbacks (`crates/agent-ext`) write and pytap reads.

#![forbid(unsafe_code)]

pub mod capture;
pub mod event;
pub mod sample;
