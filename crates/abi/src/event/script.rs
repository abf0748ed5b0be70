//! The records of a script's kernel part: its output values, new keys of
//! its arrays and its run-time errors.

use super::{EventHeader, STR_CAP};

/// A script's output site: the values its kernel part computed.
pub const SCRIPT_OUTPUT: u16 = 80;
/// A new key of a script's address-keyed array, with its strings.
pub const SCRIPT_KEY: u16 = 81;
/// A run-time error in a script's kernel probe (division by zero).
pub const SCRIPT_ERROR: u16 = 82;

/// The fixed part of a script record. After it: `longs` i64s, `strings`
/// [`ScriptString`]s, `key_len` key bytes (padded to 8), then the strings'
/// bytes packed back to back, each [`packed_len`](super::packed_len) of its `ret`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ScriptRecord {
    /// Header (`kind` is one of `SCRIPT_*`).
    pub header: EventHeader,
    /// The output site, array (global) or error site.
    pub id: u32,
    /// Numbers that follow.
    pub longs: u16,
    /// Strings that follow.
    pub strings: u16,
    /// Key bytes that follow the strings' descriptions.
    pub key_len: u32,
    /// Padding.
    pub _pad: u32,
}

/// A string of a script record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ScriptString {
    /// Its address in the traced process (0 for kernel-side bytes).
    pub ptr: u64,
    /// `bpf_probe_read_*_str`'s result: length with the NUL, or -errno.
    pub ret: i32,
    /// [`SCRIPT_STR_TRUNCATED`].
    pub flags: u32,
}

/// The string was longer than [`STR_CAP`] - 1 bytes.
pub const SCRIPT_STR_TRUNCATED: u32 = 1;

/// Bytes of a script record before its packed strings.
pub const fn script_fixed_size(longs: usize, strings: usize, key_len: usize) -> usize {
    size_of::<ScriptRecord>()
        + 8 * longs
        + size_of::<ScriptString>() * strings
        + key_len.div_ceil(8) * 8
}

/// The largest script record of this shape.
pub const fn script_record_size(longs: usize, strings: usize, key_len: usize) -> usize {
    script_fixed_size(longs, strings, key_len) + STR_CAP * strings
}
