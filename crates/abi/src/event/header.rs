//! The start of every record ([`EventHeader`]), what its `kind` says
//! follows ([`EventKind`]) and the bits of its `flags`.

use std::mem::size_of;

use super::{AuditEvent, FunctionEvent, GcDoneEvent, GcStartEvent, ImportEvent, STR_CAP, off};

/// `EventHeader.kind` values: what follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum EventKind {
    /// [`FunctionEvent`] from `function__entry`.
    FunctionEntry = 1,
    /// [`FunctionEvent`] from `function__return`.
    FunctionReturn = 2,
    /// [`FunctionEvent`] from `line`.
    Line = 3,
    /// [`GcStartEvent`].
    GcStart = 4,
    /// [`GcDoneEvent`].
    GcDone = 5,
    /// [`ImportEvent`] from `import__find__load__start`.
    ImportStart = 6,
    /// [`ImportEvent`] from `import__find__load__done`.
    ImportDone = 7,
    /// [`AuditEvent`].
    Audit = 8,
}

impl EventKind {
    /// Every kind, in tag order (tag 1 first).
    pub const ALL: [EventKind; 8] = [
        EventKind::FunctionEntry,
        EventKind::FunctionReturn,
        EventKind::Line,
        EventKind::GcStart,
        EventKind::GcDone,
        EventKind::ImportStart,
        EventKind::ImportDone,
        EventKind::Audit,
    ];

    /// The kind with this tag, if any.
    pub fn from_u16(v: u16) -> Option<EventKind> {
        // A match, not a search: this runs for every record.
        Some(match v {
            1 => EventKind::FunctionEntry,
            2 => EventKind::FunctionReturn,
            3 => EventKind::Line,
            4 => EventKind::GcStart,
            5 => EventKind::GcDone,
            6 => EventKind::ImportStart,
            7 => EventKind::ImportDone,
            8 => EventKind::Audit,
            _ => return None,
        })
    }

    /// Whether this is a function kind (entry, return, line).
    pub fn is_function(self) -> bool {
        matches!(
            self,
            EventKind::FunctionEntry | EventKind::FunctionReturn | EventKind::Line
        )
    }

    /// Whether this kind's strings are packed (see the module docs).
    pub fn is_packed(self) -> bool {
        matches!(
            self,
            EventKind::FunctionEntry
                | EventKind::FunctionReturn
                | EventKind::Line
                | EventKind::ImportStart
                | EventKind::ImportDone
        )
    }

    /// Size of the part every record of this kind has: for packed kinds the
    /// fixed fields before the strings, else the whole record.
    pub fn fixed_size(self) -> usize {
        match self {
            EventKind::FunctionEntry | EventKind::FunctionReturn | EventKind::Line => {
                off::FN_FILENAME
            }
            EventKind::ImportStart | EventKind::ImportDone => off::IMP_MODULE,
            _ => self.record_size(),
        }
    }

    /// Largest size of a record of this kind, header included.
    pub fn record_size(self) -> usize {
        match self {
            EventKind::FunctionEntry | EventKind::FunctionReturn | EventKind::Line => {
                size_of::<FunctionEvent>()
            }
            EventKind::GcStart => size_of::<GcStartEvent>(),
            EventKind::GcDone => size_of::<GcDoneEvent>(),
            EventKind::ImportStart | EventKind::ImportDone => size_of::<ImportEvent>(),
            EventKind::Audit => size_of::<AuditEvent>(),
        }
    }
}

/// Bytes a packed string takes in its record, from its `*_ret` field: the
/// helper's answer when it is a length, 0 when it is an error. The probe
/// computes the same thing (an unsigned compare against [`STR_CAP`]).
pub fn packed_len(ret: i32) -> usize {
    let len = ret as u32 as usize;
    if len > STR_CAP { 0 } else { len }
}

/// `EventHeader.flags`: a string was longer than [`STR_CAP`] − 1 bytes.
pub const FLAG_TRUNCATED_0: u16 = 1;
/// `EventHeader.flags`: the second string was truncated.
pub const FLAG_TRUNCATED_1: u16 = 2;

/// `EventHeader.flags`: a *lean* function record: the fixed part only, no
/// strings. Sent by tools that learn each function's names once (from a
/// full record at its first call, see [`CallKey`](super::CallKey)) and then only need the
/// pointers, which identify the function.
pub const FLAG_LEAN: u16 = 4;

/// `EventHeader.flags`: a `function__entry` that created a generator,
/// coroutine or async generator instead of running it (3.15 fires one; no
/// return follows). Set only by handlers that read the frame, see
/// `pytap::cpython::frames`.
pub const FLAG_GENERATOR_CREATION: u16 = 8;

/// `EventHeader.flags`: the first string (a file name) was too long and
/// what the record holds is its *end*, the file's own name (with
/// [`FLAG_TRUNCATED_0`]); see `pytap::engine::codegen::record::read_path`.
pub const FLAG_KEPT_END_0: u16 = 16;

/// `EventHeader.flags`: a function return or line record sent without its
/// strings (the fixed part only), because the process had already sent a
/// full function record with the same two pointers: its names are those
/// of the latest such record (see `pytap::engine::codegen::named` for
/// why that is exact). The engine fills them in before any tool sees the
/// event, and clears this bit.
pub const FLAG_NAMED_BEFORE: u16 = 32;

/// `EventHeader.flags`: an event the in-process capture produced
/// (`pytap::capture`), not a probe: it has no CPU.
pub const FLAG_IN_PROCESS: u16 = 1 << 15;

/// `EventHeader.site` of an in-process event (no marker site).
pub const NO_SITE: u16 = u16::MAX;

/// The start of every record.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process id (the thread group id) as the host sees it.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// An [`EventKind`].
    pub kind: u16,
    /// CPU the probe ran on.
    pub cpu: u16,
    /// Index of the marker site in the session's site table (the attach cookie).
    pub site: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
}
