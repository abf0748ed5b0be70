//! pytap: trace CPython's static markers (USDT) with eBPF.
//!
//! The binary (`src/main.rs`) parses arguments with [`cli`] and runs one of
//! the [`tool`]s. Everything here is safe Rust: the syscalls live in
//! `pytap-sys`, ELF parsing in `pytap-elf`, BPF instructions in `pytap-ebpf`.
//!
//! - [`cpython`]: marker catalog, version detection, per-version verdicts.
//! - [`process`]: the files that carry markers, and finding them for a
//!   path, a process or a command.
//! - [`tool`]: the subcommands; [`output`]: shared rendering.

#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod cpython;
pub mod engine;
pub mod error;
pub mod export;
pub mod model;
pub mod output;
pub mod process;
pub mod recording;
pub mod runner;
pub mod script;
pub mod tool;
