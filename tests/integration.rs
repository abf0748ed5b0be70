//! pytap's integration tests: one binary, four parts.
//!
//! - `cli`: the pytap binary on real files (fixture interpreters, libpython,
//!   hostile inputs). Needs the fixture interpreters, not root.
//! - `kernel`: live processes and BPF, run as root. These never skip: a
//!   missing prerequisite fails the test and names it. To leave them out on
//!   purpose: `cargo test -- --skip kernel::`.
//! - `harness`: fixtures, the pytap binary, child-process guards.
//! - `layout`: the source tree against ARCHITECTURE.md's rooms.

mod harness;

mod cli;
mod kernel;
mod layout;
