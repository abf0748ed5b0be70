//! The event ABI: the one definition of every record the BPF programs (and
//! the in-process capture, through pytap's reader) write into the ring
//! buffer or the per-CPU rings ([`ring`]) and the decoder reads back.
//!
//! Each record is a `#[repr(C)]` struct below. The code generator stores at
//! `offset_of!` these structs and the decoder reads at the same offsets, so
//! the two sides cannot drift apart; the tests at the bottom pin the layout.
//! Records start with [`EventHeader`]; its `kind` says which struct follows.
//!
//! Strings are copied in the probe with `bpf_probe_read_user_str`, and
//! their `*_ret` field keeps the helper's answer: the length including the
//! NUL, or a negative errno when the target's page was not readable (then
//! the pointer, kept beside it, lets userspace recover the string from the
//! ELF file). A string that filled its [`STR_CAP`] bytes is checked once
//! more in the probe, and a really truncated string sets its bit in `flags`.
//!
//! Function and import records are *packed*: their strings follow the fixed
//! part back to back, each taking [`packed_len`] of its `*_ret` bytes, so a
//! typical entry/return record is about 100 bytes instead of the 1080 its
//! struct below spells out (the struct is the worst case, and the room a
//! probe makes for a record before it knows its size). A record may be
//! longer than its packed content; the decoder goes by the `*_ret` fields.

mod header;
mod names;
/// Offsets used by the code generator and the decoder, in one place.
#[expect(
    missing_docs,
    reason = "each offset is named after the field it locates"
)]
pub mod off;
mod records;
/// The per-CPU rings function and import records are written into in
/// place (see `pytap::engine::codegen::inplace`): one region per CPU in
/// a `BPF_F_MMAPABLE` array map, element `cpu`, each laid out as below.
/// Only the probe running on that CPU (holding [`ring::BUSY`]) writes the
/// producer side; only pytap writes [`ring::TAIL`].
pub mod ring;
mod script;
mod task;
#[cfg(test)]
mod tests;

use std::mem::size_of;

pub use self::header::*;
pub use self::names::*;
pub use self::records::*;
pub use self::script::*;
pub use self::task::*;

/// Capacity of a string buffer, NUL included: strings up to 511 bytes
/// arrive whole.
pub const STR_CAP: usize = 512;

/// Index of the per-CPU counter of records the ring buffer had no room for.
pub const COUNTER_LOST: u32 = 0;
/// Index of the per-CPU counter of events the probes saw (every reserve attempt).
pub const COUNTER_SEEN: u32 = 1;
/// Index of the per-CPU counter of calls a full count map could not take.
pub const COUNTER_UNCOUNTED: u32 = 2;
/// Index of the per-CPU counter of the stacks of events (`trace --stacks`)
/// the stack ring had no room for.
pub const COUNTER_STACKS_LOST: u32 = 3;
/// Number of per-CPU counters.
pub const COUNTERS: u32 = 4;

/// Value size of the tools' per-CPU staging buffer: an 8-byte busy count
/// (a probe preempted by another on the same CPU must not build into the
/// same buffer), then room for the largest packed record. Since records
/// are written in place ([`ring`]) only the benchmark's kernel-timing
/// probe uses it (scripts have their own, sized to their records).
pub const STAGING_BYTES: usize = 8 + size_of::<FunctionEvent>();
