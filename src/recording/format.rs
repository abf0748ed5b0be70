//! The recording file format, version 3 (pure: bytes in, bytes out; the
//! specification, with examples, is docs/recording.md).
//!
//! A recording is a header (`PYTAPREC`, then the format version as a
//! little-endian u32) and a stream of records, each a tag byte and its
//! payload. Integers are LEB128 varints (signed ones zigzag-encoded), so
//! a function event takes about 16 bytes. It is written as events arrive
//! and read front to back; nothing refers forward, so a recording cut
//! short (pytap killed) reads up to its last whole record.
//!
//! - [`TAG_STRING`]: the next string of the table (ids count from 0 in
//!   order of appearance): length, UTF-8 bytes. A string is stored once
//!   while the writer remembers it: an ended thread's name is forgotten,
//!   and stored again (with a new id) if it comes back.
//! - [`TAG_META`]: length, a JSON object whose `type` says what it is
//!   (`start`, `module`, `end`; see [`Meta`]).
//! - [`TAG_NAME`]: pid, tid, string id: the thread's name from here on.
//! - [`TAG_ENDED`] (version 2): pid, tid, how ([`ENDED_EXIT`]: the thread
//!   ended; [`ENDED_EXEC`]: the process executed a program through thread
//!   `tid`, and every frame of the old one is gone), after the thread's
//!   last event.
//! - [`TAG_FRAME`] (version 3): the next frame of the frame table (ids
//!   count from 0 in order of appearance): function and file (string ids),
//!   line, kind ([`FRAME_PYTHON`], [`FRAME_NATIVE`], [`FRAME_UNKNOWN`]): a
//!   sampled frame as `pytap profile` named it when it was recorded.
//! - [`TAG_SAMPLED_THREAD`] (version 3): pid, tid, the thread's name and
//!   its process's (string ids, the empty string when unknown): what a
//!   profile names the thread from here on.
//! - [`TAG_SAMPLE`] (version 3): a sample of the stack sampler: timestamp
//!   delta from the previous event or sample (signed), pid, tid, weight
//!   (ns), flags ([`SAMPLE_TRUNCATED`]), the count of frames and their ids,
//!   innermost first.
//! - `TAG_EVENT + kind` (the ABI's [`EventKind`]): timestamp delta from the
//!   previous event (signed), pid, tid, CPU, flags (the ABI's), then the
//!   kind's fields: string references (`id << 2 | state`, where state 0
//!   is complete, 1 truncated, 2 a kept end, and 3 unreadable with the
//!   errno in place of the id), line numbers and counts (signed), an
//!   import's `found` (0 unknown, 1 no, 2 yes), an audit event's decoded
//!   arguments ([`put_value`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::cpython::objects::PyValue;
use crate::engine::abi::EventKind;
use crate::engine::decode::{AuditArgs, StrState};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"PYTAPREC";
/// The format this pytap writes.
pub const VERSION: u32 = 3;
/// Header length: magic and version.
pub const HEADER_LEN: usize = 12;

/// The next string of the table.
pub const TAG_STRING: u8 = 0x01;
/// A JSON metadata object.
pub const TAG_META: u8 = 0x02;
/// A thread's name from here on.
pub const TAG_NAME: u8 = 0x03;
/// A thread ended, or its process executed a program (version 2).
pub const TAG_ENDED: u8 = 0x04;
/// [`TAG_ENDED`]'s how: the thread ended.
pub const ENDED_EXIT: u8 = 0;
/// [`TAG_ENDED`]'s how: the process executed a program through the thread.
pub const ENDED_EXEC: u8 = 1;
/// The next frame of the frame table (version 3).
pub const TAG_FRAME: u8 = 0x05;
/// A sample of the stack sampler (version 3).
pub const TAG_SAMPLE: u8 = 0x06;
/// A sampled thread's names from here on (version 3).
pub const TAG_SAMPLED_THREAD: u8 = 0x07;
/// [`TAG_FRAME`]'s kinds: a Python function, a native one, a frame that
/// could not be named.
pub const FRAME_PYTHON: u8 = 0;
/// See [`FRAME_PYTHON`].
pub const FRAME_NATIVE: u8 = 1;
/// See [`FRAME_PYTHON`].
pub const FRAME_UNKNOWN: u8 = 2;
/// [`TAG_SAMPLE`]'s flag: the stack was cut at the sampler's depth limit.
pub const SAMPLE_TRUNCATED: u64 = 1;
/// The most frames a recorded sample has (the sampler's
/// [`pytap_abi::sample::MAX_FRAMES`] and the markers the profiler adds).
pub const MAX_SAMPLE_FRAMES: u64 = pytap_abi::sample::MAX_FRAMES as u64 + 2;
/// An event: this plus its [`EventKind`].
pub const TAG_EVENT: u8 = 0x10;

/// Why a recording could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not a recording at all.
    #[error("not a pytap recording (it does not start with PYTAPREC)")]
    NotRecording,
    /// Written by a newer pytap.
    #[error(
        "recording format version {0}; this pytap reads version {VERSION} (a newer pytap wrote it: read it with that one)"
    )]
    Version(u32),
    /// A record this version does not know.
    #[error("unknown record tag {tag:#04x} at byte {at}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Its offset in the file.
        at: u64,
    },
    /// A record is malformed.
    #[error("malformed {what} at byte {at}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The record's offset in the file.
        at: u64,
    },
}

/// Checks a file's header.
pub fn check_header(header: &[u8]) -> Result<(), FormatError> {
    if header.len() < HEADER_LEN || &header[..8] != MAGIC {
        return Err(FormatError::NotRecording);
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version == 0 {
        return Err(FormatError::Malformed {
            what: "header (version 0)",
            at: 8,
        });
    }
    if version > VERSION {
        return Err(FormatError::Version(version));
    }
    Ok(())
}

/// The file header.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// A metadata record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Meta {
    /// The first record: who recorded what, and when.
    Start {
        /// The pytap version that wrote the recording.
        pytap: String,
        /// Wall-clock start, nanoseconds since the Unix epoch.
        realtime_ns: u64,
        /// CLOCK_MONOTONIC at the same moment (events' timestamps are
        /// on this clock).
        monotonic_ns: u64,
        /// What was traced: the command's words, `pid N`, or `all`.
        target: Vec<String>,
        /// The markers asked for.
        markers: Vec<String>,
        /// The stack sampler's settings, in a recording of samples
        /// (version 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<ProfileMeta>,
    },
    /// A binary traced in a process (one per process and binary).
    Module {
        /// The process.
        pid: u32,
        /// The interpreter or libpython.
        path: String,
        /// Its CPython version, when known.
        version: Option<String>,
    },
    /// The last record of a recording that ended normally.
    End {
        /// Events written.
        events: u64,
        /// Events the ring buffer (or the in-process capture) had no room
        /// for.
        lost: u64,
        /// Records that did not decode.
        malformed: u64,
        /// Why the run ended.
        reason: String,
        /// The launched command's exit status, when it exited (128 + the
        /// signal when one killed it, as a shell's `$?`).
        status: Option<i32>,
        /// The signal that killed the launched command, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// CLOCK_MONOTONIC at the end.
        monotonic_ns: u64,
        /// Samples written (a recording of samples).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        samples: Option<u64>,
        /// Samples of threads that ran no Python, not written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        without_python: Option<u64>,
        /// Nanoseconds sampled (a profile's duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sampled_ns: Option<u64>,
    },
}

/// How the samples of a recording were taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// `cpu`, `wall` or `gil`, as `--mode` spells it.
    pub mode: String,
    /// Samples a second.
    pub rate_hz: u32,
}

/// A frame of the frame table ([`TAG_FRAME`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedFrame {
    /// The function's string id.
    pub function: u32,
    /// The file's string id.
    pub file: u32,
    /// The line, 0 when not known.
    pub line: u32,
    /// [`FRAME_PYTHON`], [`FRAME_NATIVE`] or [`FRAME_UNKNOWN`].
    pub kind: u8,
}

/// A sample ([`TAG_SAMPLE`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordedSample {
    /// CLOCK_MONOTONIC when it was taken.
    pub ts_ns: u64,
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// What it weighs.
    pub weight_ns: u64,
    /// [`SAMPLE_TRUNCATED`].
    pub flags: u64,
    /// Frame ids, innermost first.
    pub frames: Vec<u32>,
}

/// Appends an unsigned varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a signed (zigzag) varint.
pub fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends length-prefixed bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A string reference: an id and its state (see the module docs).
pub fn string_ref(id: u32, state: StrState) -> u64 {
    match state {
        StrState::Complete => u64::from(id) << 2,
        StrState::Truncated => u64::from(id) << 2 | 1,
        StrState::KeptEnd => u64::from(id) << 2 | 2,
        StrState::Unreadable(errno) => u64::from(errno.unsigned_abs()) << 2 | 3,
    }
}

/// The id (none when unreadable) and state of a string reference.
pub fn parse_string_ref(v: u64) -> (Option<u32>, StrState) {
    let id = u32::try_from(v >> 2).unwrap_or(u32::MAX);
    match v & 3 {
        0 => (Some(id), StrState::Complete),
        1 => (Some(id), StrState::Truncated),
        2 => (Some(id), StrState::KeptEnd),
        _ => (None, StrState::Unreadable(id.min(i32::MAX as u32) as i32)),
    }
}

const V_NONE: u8 = 0;
const V_FALSE: u8 = 1;
const V_TRUE: u8 = 2;
const V_INT: u8 = 3;
const V_FLOAT: u8 = 4;
const V_STR: u8 = 5;
const V_STR_TRUNCATED: u8 = 6;
const V_BYTES: u8 = 7;
const V_BYTES_TRUNCATED: u8 = 8;
const V_TUPLE: u8 = 9;
const V_OTHER: u8 = 10;
const V_UNREADABLE: u8 = 11;

/// Appends an audit event's arguments: a presence byte (0: not captured),
/// then the count, each value ([`put_value`]) and how many more the tuple had.
pub fn put_args(out: &mut Vec<u8>, args: Option<&AuditArgs>) {
    let Some(args) = args else {
        out.push(0);
        return;
    };
    out.push(1);
    put_uvarint(out, args.values.len() as u64);
    for v in &args.values {
        put_value(out, v);
    }
    put_uvarint(out, args.more as u64);
}

/// Appends one decoded Python value: a type byte and its data (ints as
/// their decimal text, floats as IEEE-754 little-endian, str and bytes
/// length-prefixed, a tuple's count, items and how many more it had).
pub fn put_value(out: &mut Vec<u8>, v: &PyValue) {
    match v {
        PyValue::None => out.push(V_NONE),
        PyValue::Bool(false) => out.push(V_FALSE),
        PyValue::Bool(true) => out.push(V_TRUE),
        PyValue::Int(text) => {
            out.push(V_INT);
            put_bytes(out, text.as_bytes());
        }
        PyValue::Float(f) => {
            out.push(V_FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        PyValue::Str { text, truncated } => {
            out.push(if *truncated { V_STR_TRUNCATED } else { V_STR });
            put_bytes(out, text.as_bytes());
        }
        PyValue::Bytes { data, truncated } => {
            out.push(if *truncated {
                V_BYTES_TRUNCATED
            } else {
                V_BYTES
            });
            put_bytes(out, data);
        }
        PyValue::Tuple { items, more } => {
            out.push(V_TUPLE);
            put_uvarint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
            put_uvarint(out, *more as u64);
        }
        PyValue::Other(name) => {
            out.push(V_OTHER);
            put_bytes(out, name.as_bytes());
        }
        PyValue::Unreadable => out.push(V_UNREADABLE),
    }
}

/// Reads a record's fields from a byte slice; every read fails cleanly
/// (`None`), never panics: past the end (more bytes may come), or on
/// bytes no writer makes, which also sets [`Cursor::bad`].
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    /// Bytes consumed.
    pub pos: usize,
    /// A read failed on malformed bytes rather than at the end.
    pub bad: bool,
}

/// The most audit arguments (and elements of a nested tuple) a recording
/// holds: what the probe captures ([`crate::engine::abi::AUDIT_ITEMS`]).
const MAX_VALUES: u64 = crate::engine::abi::AUDIT_ITEMS as u64;
/// How deep decoded values nest: the arguments, a tuple among them, and
/// the (element-less) tuples a nested tuple may hold.
const MAX_DEPTH: u32 = 3;

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            bad: false,
        }
    }

    /// Marks the bytes malformed; `None` for `?`.
    fn malformed<T>(&mut self) -> Option<T> {
        self.bad = true;
        None
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// An unsigned varint (at most 10 bytes).
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.malformed();
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        self.malformed()
    }

    /// A signed (zigzag) varint.
    pub fn ivarint(&mut self) -> Option<i64> {
        let v = self.uvarint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A varint that must fit `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        let v = self.uvarint()?;
        u32::try_from(v).ok().or_else(|| self.malformed())
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let v = self.uvarint()?;
        let Some(end) = usize::try_from(v)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
        else {
            return self.malformed();
        };
        let b = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    /// Eight bytes.
    fn array8(&mut self) -> Option<[u8; 8]> {
        let b = self.bytes.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        b.try_into().ok()
    }

    /// An audit event's arguments ([`put_args`]).
    pub fn args(&mut self) -> Option<Option<AuditArgs>> {
        match self.u8()? {
            0 => return Some(None),
            1 => {}
            _ => return self.malformed(),
        }
        let values = self.values(1)?;
        let more = self.count()?;
        Some(Some(AuditArgs { values, more }))
    }

    /// A count of values and the values, at `depth`; more than the probe
    /// ever captures is malformed.
    fn values(&mut self, depth: u32) -> Option<Vec<PyValue>> {
        let n = self.uvarint()?;
        if n > MAX_VALUES {
            return self.malformed();
        }
        (0..n).map(|_| self.value(depth)).collect()
    }

    /// A count of elements left out.
    fn count(&mut self) -> Option<usize> {
        let v = self.uvarint()?;
        usize::try_from(v).ok().or_else(|| self.malformed())
    }

    /// One value ([`put_value`]) at `depth` (the arguments are at 1);
    /// nesting deeper than the probe captures is malformed.
    pub fn value(&mut self, depth: u32) -> Option<PyValue> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Some(match self.u8()? {
            V_NONE => PyValue::None,
            V_FALSE => PyValue::Bool(false),
            V_TRUE => PyValue::Bool(true),
            V_INT => PyValue::Int(text(self.bytes()?)),
            V_FLOAT => PyValue::Float(f64::from_le_bytes(self.array8()?)),
            t @ (V_STR | V_STR_TRUNCATED) => PyValue::Str {
                text: text(self.bytes()?),
                truncated: t == V_STR_TRUNCATED,
            },
            t @ (V_BYTES | V_BYTES_TRUNCATED) => PyValue::Bytes {
                data: self.bytes()?.to_vec(),
                truncated: t == V_BYTES_TRUNCATED,
            },
            V_TUPLE if depth < MAX_DEPTH => {
                let items = self.values(depth + 1)?;
                let more = self.count()?;
                PyValue::Tuple { items, more }
            }
            V_OTHER => PyValue::Other(text(self.bytes()?)),
            V_UNREADABLE => PyValue::Unreadable,
            _ => return self.malformed(),
        })
    }
}

/// The kind an event tag stands for.
pub fn event_kind(tag: u8) -> Option<EventKind> {
    tag.checked_sub(TAG_EVENT)
        .and_then(|k| EventKind::from_u16(u16::from(k)))
}

/// The id an unreadable string stands for when replayed (its text is
/// `<unreadable>`, as text output shows it).
pub const UNREADABLE: u32 = u32::MAX;

/// The strings of a recording, by id.
#[derive(Debug, Default)]
pub struct StringTable {
    strings: Vec<Box<str>>,
}

impl StringTable {
    /// Adds the next string (invalid UTF-8 is replaced, as text output
    /// shows it).
    pub fn push(&mut self, bytes: &[u8]) -> u32 {
        let s = match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into_boxed_str(),
        };
        self.strings.push(s);
        (self.strings.len() - 1) as u32
    }

    /// A string by id (`<unreadable>` for [`UNREADABLE`], `""` for an id
    /// the recording never defined).
    pub fn get(&self, id: u32) -> &str {
        if id == UNREADABLE {
            return "<unreadable>";
        }
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// Whether `id` is defined.
    pub fn has(&self, id: u32) -> bool {
        (id as usize) < self.strings.len()
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

#[cfg(test)]
mod tests;
