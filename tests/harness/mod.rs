//! Shared test machinery: the pytap binary, the fixture interpreters, the
//! embedding program, readelf, the scripts' oracles, and guards that never
//! leave a child behind. Test files import from here only, never from each
//! other.
//!
//! Every prerequisite is checked where it is used and missing ones panic with
//! the name of the prerequisite and the fix. Nothing here returns early.

#![allow(
    dead_code,
    unused_imports,
    reason = "both test binaries (integration, machine) include this, each using a part of it"
)]

pub mod fixtures;
pub mod guard;
pub mod lock;
pub mod oracle;
pub mod process;
pub mod readelf;
pub mod run;
pub mod tmux;

use std::path::Path;

pub use fixtures::*;
pub use guard::*;
pub use lock::*;
pub use oracle::{
    d_stack_frames, expected_main, expected_worker, fib_calls, oracle_lines, stack_oracle,
};
pub use process::*;
pub use readelf::*;
pub use run::*;
pub use tmux::*;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pytap binary cargo built for these tests.
pub fn pytap_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pytap"))
}
