//! The in-process capture's ring file: the one definition of its layout.
//! The compiled callbacks (`crates/agent-ext`) index these words and
//! pytap's reader (`pytap::capture::ring`) decodes with them; the Python
//! callbacks (`agent.py`) pack the same offsets, and a test in pytap reads
//! `agent.py`'s constants and holds them to these.
//!
//! ```text
//! header (HEADER_BYTES):
//!   0  magic "PYTAPRNG"      8  version u32     12 header bytes u32
//!  16  data size u64 (a power of two)
//!  24  tail u64   bytes the agent has written (published after each record)
//!  32  head u64   bytes pytap has read (written by pytap)
//!  40  lost u64   events the agent dropped (ring full, or its recursion limit)
//!  48  beat u64   pytap's heartbeat (u64::MAX: pytap is gone)
//!  56  pid u32    60 state u32 (AgentState)
//!  64  callbacks u32 (1 compiled, 2 Python: the extension did not load,
//!      3 Python as asked)
//! records, 8-byte aligned, never crossing the end (a pad fills it):
//!   u32 length, u16 kind, then
//!   pad:    nothing more
//!   def:    u16 filename length, u32 code id, i32 first line,
//!           u16 name length, u16 0, the file name, the function name
//!   entry, return, line: u16 0, u32 code id, i32 line, u64 CLOCK_MONOTONIC
//!           ns, u32 native thread id, u32 0 (32 bytes)
//!   gc start, gc done, import start, import done, audit (the markers'
//!   other events, where a build has none): u16 0, i64 value, u64
//!   CLOCK_MONOTONIC ns, u32 native thread id, u32 payload bytes, then the
//!   payload, padded to 8 bytes (MARK_BYTES before it):
//!     gc start     value: the generation
//!     gc done      value: objects collected + uncollectable (as gc__done)
//!     import start payload: the module name (UTF-8)
//!     import done  value: found (0, 1); payload: the module name
//!     audit        payload: u16 name length, the event name, u32 the
//!                  argument tuple's length, u8 how many follow, then
//!                  those arguments as values:
//! values: a u8 tag, then
//!   0 None | 1 bool: u8 | 2 int: u16 length, its decimal text |
//!   3 float: f64 | 4 str: u8 truncated, u32 code points, each as a u32 |
//!   5 bytes: u8 truncated, u32 length, the bytes |
//!   6 tuple: u32 length, u8 how many follow, those values |
//!   7 another type: u8 length, its tp_name | 8 unreadable
//! (the agent captures what the markers' probe would: the same object
//! bytes, items and type name lengths, from `event::records`)
//! ```

/// The header word (a `u64` index) of a byte offset in the header.
pub const fn word(offset: u64) -> usize {
    (offset / 8) as usize
}

/// The header's size; records start there.
pub const HEADER_BYTES: u64 = 4096;
/// What the file starts with.
pub const MAGIC: &[u8; 8] = b"PYTAPRNG";
/// The layout's version.
pub const VERSION: u32 = 1;
/// Where the agent publishes its tail.
pub const TAIL: u64 = 24;
/// Where pytap writes its head.
pub const HEAD: u64 = 32;
/// Where the agent counts the events it dropped.
pub const LOST: u64 = 40;
/// Where pytap writes its heartbeat.
pub const BEAT: u64 = 48;
/// The agent's process id.
pub const PID: u64 = 56;
/// The agent's state (0 active, then detached, no tool, failed, forked:
/// `pytap::capture::ring::AgentState`).
pub const STATE: u64 = 60;
/// Which callbacks record (1 compiled, 2 Python, 3 Python as asked, 4 a
/// Python profile function, 5 the compiled profile function).
pub const CALLBACKS: u64 = 64;
/// The heartbeat that tells the agent pytap is gone.
pub const BEAT_GONE: u64 = u64::MAX;
/// Size of an entry, return or line record.
pub const EVENT_BYTES: usize = 32;
/// Size of a def record before its strings.
pub const DEF_BYTES: usize = 24;
/// Largest ring pytap accepts (a file claiming more is refused).
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// Record kinds (`u16` after the record's length).
pub const KIND_PAD: u16 = 0;
pub const KIND_DEF: u16 = 1;
pub const KIND_ENTRY: u16 = 2;
pub const KIND_RETURN: u16 = 3;
pub const KIND_LINE: u16 = 4;

/// The markers' other events, where a build has none.
pub const KIND_GC_START: u16 = 5;
pub const KIND_GC_DONE: u16 = 6;
pub const KIND_IMPORT_START: u16 = 7;
pub const KIND_IMPORT_DONE: u16 = 8;
pub const KIND_AUDIT: u16 = 9;
/// Size of a gc, import or audit record before its payload.
pub const MARK_BYTES: usize = 32;

/// The tags of an audit argument's value.
pub mod value {
    pub const NONE: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const STR: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const TUPLE: u8 = 6;
    pub const OTHER: u8 = 7;
    pub const UNREADABLE: u8 = 8;
}

/// The agents look at pytap's heartbeat every this many events.
pub const CHECK_EVERY: u32 = 256;
/// A heartbeat older than this (ns) means pytap is gone: the agents stop.
pub const STALE_NS: u64 = 1_000_000_000;
