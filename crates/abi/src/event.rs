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

use std::mem::{offset_of, size_of};

/// Capacity of a string buffer, NUL included: strings up to 511 bytes
/// arrive whole.
pub const STR_CAP: usize = 512;

/// Top-level audit arguments captured (the rest are counted, not decoded).
pub const AUDIT_ITEMS: usize = 8;
/// Elements captured of each audit argument that is itself a tuple.
pub const AUDIT_NESTED: usize = 4;
/// Bytes of each top-level audit argument object captured (header + inline data).
pub const OBJ_BYTES: usize = 256;
/// Bytes of each nested audit argument object captured.
pub const NESTED_OBJ_BYTES: usize = 128;
/// Bytes of an object's type name (`tp_name`) captured.
pub const TYPE_NAME: usize = 32;
/// Bytes of the audit argument tuple captured: header plus item pointers.
pub const AUDIT_ROOT_BYTES: usize = 32 + 8 * AUDIT_ITEMS;

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
/// full record at its first call, see [`CallKey`]) and then only need the
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

/// One slot of a CPU's names already sent
/// (`pytap::engine::codegen::named`): the process, the epoch of the
/// session's execs and exits when the record was sent, and the two string
/// pointers of a full function record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SentSlot {
    /// Process id.
    pub pid: u32,
    /// Padding.
    pub _pad: u32,
    /// The names epoch at the time.
    pub epoch: u64,
    /// `filename` pointer.
    pub filename_ptr: u64,
    /// `funcname` pointer.
    pub funcname_ptr: u64,
}

/// Slots of names already sent per CPU, in the CPU's ring region (a
/// power of two: a slot is chosen by the pointers' bits).
pub const SENT_SLOTS: usize = 256;

/// What identifies a function in the kernel-side maps of the aggregating
/// tools (`pytap top`, `pytap calls`): the process, the marker's line
/// number and the two string pointers the marker passed. The pointers point
/// into the code object's `str` objects, so they are stable while the
/// function exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct CallKey {
    /// Process id.
    pub pid: u32,
    /// Line number from the marker.
    pub lineno: i32,
    /// `filename` pointer.
    pub filename_ptr: u64,
    /// `funcname` pointer.
    pub funcname_ptr: u64,
}

impl CallKey {
    /// Size in bytes (the map's key size).
    pub const SIZE: usize = size_of::<CallKey>();

    /// Reads a key from map bytes.
    pub fn from_bytes(b: &[u8]) -> Option<CallKey> {
        let b: &[u8; 24] = b.get(..24)?.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(CallKey {
            pid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            lineno: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            filename_ptr: u64_at(8),
            funcname_ptr: u64_at(16),
        })
    }
}

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

/// `function__entry`, `function__return` and `line`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct FunctionEvent {
    /// Header.
    pub header: EventHeader,
    /// Line number (the `def` line on entry, the current line otherwise).
    pub lineno: i32,
    /// `probe_read_user_str` result for `filename`.
    pub filename_ret: i32,
    /// `probe_read_user_str` result for `funcname`.
    pub funcname_ret: i32,
    /// Padding.
    pub _pad: u32,
    /// `filename` pointer in the target.
    pub filename_ptr: u64,
    /// `funcname` pointer in the target.
    pub funcname_ptr: u64,
    /// NUL-terminated file name (packed: `packed_len(filename_ret)` bytes).
    pub filename: [u8; STR_CAP],
    /// NUL-terminated function name (packed: right after the file name).
    pub funcname: [u8; STR_CAP],
}

/// `gc__start`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct GcStartEvent {
    /// Header.
    pub header: EventHeader,
    /// Generation being collected.
    pub generation: i32,
    /// Padding.
    pub _pad: u32,
}

/// `gc__done`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct GcDoneEvent {
    /// Header.
    pub header: EventHeader,
    /// Objects collected.
    pub collected: i64,
}

/// `import__find__load__start` and `import__find__load__done`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ImportEvent {
    /// Header.
    pub header: EventHeader,
    /// `probe_read_user_str` result for `module`.
    pub module_ret: i32,
    /// `found` (done only; 0 on start).
    pub found: i32,
    /// `module` pointer in the target.
    pub module_ptr: u64,
    /// NUL-terminated module name (packed: `packed_len(module_ret)` bytes).
    pub module: [u8; STR_CAP],
}

/// One captured audit argument object.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ObjectSnapshot<const N: usize> {
    /// Object pointer (0: no object in this slot).
    pub ptr: u64,
    /// `probe_read_user_str` result for the type name.
    pub type_name_ret: i32,
    /// `probe_read_user` result for `data` (0 on success).
    pub data_ret: i32,
    /// `Py_TYPE(obj)->tp_name`.
    pub type_name: [u8; TYPE_NAME],
    /// The first `N` bytes of the object.
    pub data: [u8; N],
}

/// `audit`: the event name and a bounded snapshot of its argument tuple.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct AuditEvent {
    /// Header.
    pub header: EventHeader,
    /// `probe_read_user_str` result for `event`.
    pub event_ret: i32,
    /// `probe_read_user` result for the tuple header (0 on success).
    pub root_ret: i32,
    /// `event` pointer in the target.
    pub event_ptr: u64,
    /// Argument tuple pointer in the target.
    pub args_ptr: u64,
    /// The tuple's header and first item pointers (layout per CPython version).
    pub root: [u8; AUDIT_ROOT_BYTES],
    /// The first [`AUDIT_ITEMS`] arguments.
    pub items: [ObjectSnapshot<OBJ_BYTES>; AUDIT_ITEMS],
    /// For each argument that is a tuple, its first [`AUDIT_NESTED`] elements.
    pub nested: [[ObjectSnapshot<NESTED_OBJ_BYTES>; AUDIT_NESTED]; AUDIT_ITEMS],
    /// NUL-terminated event name.
    pub event: [u8; STR_CAP],
}

/// A script's output site: the values its kernel part computed.
pub const SCRIPT_OUTPUT: u16 = 80;
/// A new key of a script's address-keyed array, with its strings.
pub const SCRIPT_KEY: u16 = 81;
/// A run-time error in a script's kernel probe (division by zero).
pub const SCRIPT_ERROR: u16 = 82;

/// The fixed part of a script record. After it: `longs` i64s, `strings`
/// [`ScriptString`]s, `key_len` key bytes (padded to 8), then the strings'
/// bytes packed back to back, each [`packed_len`] of its `ret`.
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

/// `EventHeader.kind` of a [`TaskEvent`] from the `task_rename` tracepoint:
/// a thread's name changed (`prctl(PR_SET_NAME)`, a write to
/// `/proc/…/comm`, or an exec).
pub const TASK_RENAME: u16 = 64;
/// `EventHeader.kind` of a [`TaskEvent`] from `sched_process_exec`: the
/// process executed a new program.
pub const TASK_EXEC: u16 = 65;
/// `EventHeader.kind` of a [`TaskEvent`] from `sched_process_exit`: a
/// thread of the process ended (after its last event); what is kept for it
/// can go.
pub const TASK_EXIT: u16 = 66;

/// What the kernel tells of a traced process's threads, through the same
/// ring buffer as the markers' events (in order with them by timestamp):
/// names as they change, execs and thread exits. These records never reach
/// the tools as events; the run loop keeps the names (see
/// `pytap::engine::tasks`), follows execs, and tells the tools when a
/// thread ended or a process executed (their per-thread state goes).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct TaskEvent {
    /// Header: `kind` is [`TASK_RENAME`], [`TASK_EXEC`] or [`TASK_EXIT`],
    /// `site` 0.
    pub header: EventHeader,
    /// For an exec, the thread id that called execve (another thread than
    /// the leader takes over the process id); 0 for a rename.
    pub old_tid: u32,
    /// `probe_read_kernel_str` result for `comm` (rename).
    pub comm_ret: i32,
    /// The new name, NUL-terminated (at most 15 bytes, the kernel's limit).
    pub comm: [u8; 16],
}

/// Offsets used by the code generator and the decoder, in one place.
#[expect(
    missing_docs,
    reason = "each offset is named after the field it locates"
)]
pub mod off {
    use super::*;

    pub const TS: usize = offset_of!(EventHeader, ts_ns);
    pub const PID: usize = offset_of!(EventHeader, pid);
    pub const TID: usize = offset_of!(EventHeader, tid);
    pub const KIND: usize = offset_of!(EventHeader, kind);
    pub const CPU: usize = offset_of!(EventHeader, cpu);
    pub const SITE: usize = offset_of!(EventHeader, site);
    pub const FLAGS: usize = offset_of!(EventHeader, flags);
    pub const HEADER_SIZE: usize = size_of::<EventHeader>();

    pub const FN_LINENO: usize = offset_of!(FunctionEvent, lineno);
    pub const FN_FILENAME_RET: usize = offset_of!(FunctionEvent, filename_ret);
    pub const FN_FUNCNAME_RET: usize = offset_of!(FunctionEvent, funcname_ret);
    pub const FN_FILENAME_PTR: usize = offset_of!(FunctionEvent, filename_ptr);
    pub const SLOT_PID: usize = offset_of!(SentSlot, pid);
    pub const SLOT_EPOCH: usize = offset_of!(SentSlot, epoch);
    pub const SLOT_FILENAME_PTR: usize = offset_of!(SentSlot, filename_ptr);
    pub const SLOT_FUNCNAME_PTR: usize = offset_of!(SentSlot, funcname_ptr);
    pub const FN_FUNCNAME_PTR: usize = offset_of!(FunctionEvent, funcname_ptr);
    pub const FN_FILENAME: usize = offset_of!(FunctionEvent, filename);
    pub const FN_FUNCNAME: usize = offset_of!(FunctionEvent, funcname);

    pub const GC_GENERATION: usize = offset_of!(GcStartEvent, generation);
    pub const GC_COLLECTED: usize = offset_of!(GcDoneEvent, collected);

    pub const IMP_MODULE_RET: usize = offset_of!(ImportEvent, module_ret);
    pub const IMP_FOUND: usize = offset_of!(ImportEvent, found);
    pub const IMP_MODULE_PTR: usize = offset_of!(ImportEvent, module_ptr);
    pub const IMP_MODULE: usize = offset_of!(ImportEvent, module);

    pub const TASK_OLD_TID: usize = offset_of!(TaskEvent, old_tid);
    pub const TASK_COMM_RET: usize = offset_of!(TaskEvent, comm_ret);
    pub const TASK_COMM: usize = offset_of!(TaskEvent, comm);
    pub const TASK_SIZE: usize = size_of::<TaskEvent>();

    pub const AU_EVENT_RET: usize = offset_of!(AuditEvent, event_ret);
    pub const AU_ROOT_RET: usize = offset_of!(AuditEvent, root_ret);
    pub const AU_EVENT_PTR: usize = offset_of!(AuditEvent, event_ptr);
    pub const AU_ARGS_PTR: usize = offset_of!(AuditEvent, args_ptr);
    pub const AU_ROOT: usize = offset_of!(AuditEvent, root);
    pub const AU_ITEMS: usize = offset_of!(AuditEvent, items);
    pub const AU_NESTED: usize = offset_of!(AuditEvent, nested);
    pub const AU_EVENT: usize = offset_of!(AuditEvent, event);
    pub const ITEM_SIZE: usize = size_of::<ObjectSnapshot<OBJ_BYTES>>();
    pub const NESTED_SIZE: usize = size_of::<ObjectSnapshot<NESTED_OBJ_BYTES>>();

    pub const SNAP_PTR: usize = 0;
    pub const SNAP_TYPE_NAME_RET: usize = 8;
    pub const SNAP_DATA_RET: usize = 12;
    pub const SNAP_TYPE_NAME: usize = 16;
    pub const SNAP_DATA: usize = 16 + TYPE_NAME;
}

/// Index of the per-CPU counter of records the ring buffer had no room for.
pub const COUNTER_LOST: u32 = 0;
/// Index of the per-CPU counter of events the probes saw (every reserve attempt).
pub const COUNTER_SEEN: u32 = 1;
/// Index of the per-CPU counter of calls a full count map could not take.
pub const COUNTER_UNCOUNTED: u32 = 2;
/// Number of per-CPU counters.
pub const COUNTERS: u32 = 3;

/// Value size of the tools' per-CPU staging buffer: an 8-byte busy count
/// (a probe preempted by another on the same CPU must not build into the
/// same buffer), then room for the largest packed record. Since records
/// are written in place ([`ring`]) only the benchmark's kernel-timing
/// probe uses it (scripts have their own, sized to their records).
pub const STAGING_BYTES: usize = 8 + size_of::<FunctionEvent>();

/// The per-CPU rings function and import records are written into in
/// place (see `pytap::engine::codegen::inplace`): one region per CPU in
/// a `BPF_F_MMAPABLE` array map, element `cpu`, each laid out as below.
/// Only the probe running on that CPU (holding [`ring::BUSY`]) writes the
/// producer side; only pytap writes [`ring::TAIL`].
pub mod ring {
    use super::{FunctionEvent, SENT_SLOTS, SentSlot};
    use std::mem::size_of;

    /// `u64`: bytes ever written (the next record's position); the probe
    /// stores it after the record is complete.
    pub const HEAD: usize = 0;
    /// `u64`: the busy count, taken with an atomic fetch-add by the probe
    /// that writes (a probe preempting it on the same CPU finds it taken
    /// and sends through the shared ring buffer instead).
    pub const BUSY: usize = 8;
    /// `u64`: the clock reading of the latest probe to take the region
    /// (its record's timestamp), stored right after taking it: while the
    /// region is taken, no record it will hold is older than this.
    pub const PENDING: usize = 16;
    /// `u64`: bytes pytap has consumed (its own cache line).
    pub const TAIL: usize = 64;
    /// `u64`: 1 once a probe found the region past [`WAKE_AT`] of its
    /// size and woke pytap; pytap stores 0 when it gives space back (on
    /// pytap's cache line: a probe reads it only while the region fills).
    pub const WAKE: usize = 72;
    /// The share of a region's data area (1/N) that, once filled, makes a
    /// probe wake pytap rather than wait for its next poll: half.
    pub const WAKE_AT: u32 = 2;
    /// The CPU's [`SENT_SLOTS`] slots of names already sent, under
    /// [`BUSY`].
    pub const SENT: usize = 128;
    /// Where the data area starts (page aligned).
    pub const DATA: usize = (SENT + SENT_SLOTS * size_of::<SentSlot>()).next_multiple_of(4096);
    /// Each record is preceded by a `u32` length (and 4 bytes of padding)
    /// and padded to 8 bytes.
    pub const FRAME: usize = 8;
    /// The largest record written in place, framed.
    pub const MAX_RECORD: usize = FRAME + size_of::<FunctionEvent>();
    /// Bytes after the data area: a record that starts near its end is
    /// written on past it, so every record is contiguous; its position
    /// still advances as if it had wrapped around.
    pub const SLACK: usize = MAX_RECORD.next_multiple_of(4096);
    /// The region's size for a data area of `data` bytes (a power of two).
    pub const fn region_bytes(data: usize) -> usize {
        DATA + data + SLACK
    }
    const _: () = assert!(size_of::<super::ImportEvent>() <= size_of::<FunctionEvent>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        // Changing these changes the ABI: the decoder and codegen follow
        // automatically, but recorded payloads in tests would not.
        assert_eq!(off::HEADER_SIZE, 24);
        assert_eq!(
            (off::KIND, off::CPU, off::SITE, off::FLAGS),
            (16, 18, 20, 22)
        );
        assert_eq!(off::FN_LINENO, 24);
        assert_eq!(off::FN_FILENAME_PTR, 40);
        assert_eq!(off::FN_FILENAME, 56);
        assert_eq!(off::FN_FUNCNAME, 56 + STR_CAP);
        assert_eq!(size_of::<FunctionEvent>(), 56 + 2 * STR_CAP);
        assert_eq!(size_of::<GcStartEvent>(), 32);
        assert_eq!(size_of::<GcDoneEvent>(), 32);
        assert_eq!(off::IMP_MODULE, 40);
        // Snapshot field offsets hard-coded above match the struct.
        assert_eq!(
            offset_of!(ObjectSnapshot<OBJ_BYTES>, type_name_ret),
            off::SNAP_TYPE_NAME_RET
        );
        assert_eq!(
            offset_of!(ObjectSnapshot<OBJ_BYTES>, data_ret),
            off::SNAP_DATA_RET
        );
        assert_eq!(
            offset_of!(ObjectSnapshot<OBJ_BYTES>, type_name),
            off::SNAP_TYPE_NAME
        );
        assert_eq!(offset_of!(ObjectSnapshot<OBJ_BYTES>, data), off::SNAP_DATA);
        assert_eq!(
            offset_of!(ObjectSnapshot<NESTED_OBJ_BYTES>, data),
            off::SNAP_DATA
        );
        // Every record keeps 8-byte alignment for the ring buffer.
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.record_size() % 8, 0, "{kind:?}");
            assert_eq!(EventKind::from_u16(kind as u16), Some(kind));
            assert_eq!(kind as usize, i + 1);
        }
        assert!(size_of::<AuditEvent>() < 16 * 1024);
        assert_eq!(
            (off::TASK_OLD_TID, off::TASK_COMM, off::TASK_SIZE),
            (24, 32, 48)
        );
        for kind in [TASK_RENAME, TASK_EXEC, TASK_EXIT] {
            assert_eq!(
                EventKind::from_u16(kind),
                None,
                "task kinds are not marker kinds"
            );
        }
        assert_eq!(CallKey::SIZE, 24);
        assert_eq!(
            (
                offset_of!(CallKey, lineno),
                offset_of!(CallKey, filename_ptr),
                offset_of!(CallKey, funcname_ptr)
            ),
            (4, 8, 16)
        );
    }
}
