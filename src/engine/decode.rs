//! Ring-buffer records back into typed events.
//!
//! [`decode`] reads a record at the offsets [`crate::engine::abi`] defines
//! and borrows its strings from the record. It never panics: a record too
//! short for its kind, or of an unknown kind, is a [`DecodeError`] (the
//! fuzz target `event_decode` holds it to that). Strings the probe could
//! not read keep their pointer, so [`crate::engine::recover`] can fetch
//! them from the binary.

use crate::cpython::objects::{self, Captured, ObjectLayout, PyValue};
use crate::engine::abi::{self, EventKind, off};

/// The header of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process id (host view).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// What happened.
    pub kind: EventKind,
    /// CPU.
    pub cpu: u16,
    /// Site index in the session (the attach cookie).
    pub site: u16,
    /// `abi::FLAG_*`.
    pub flags: u16,
}

/// How much of a string the probe got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrState {
    /// All of it.
    Complete,
    /// Its first `STR_CAP - 1` bytes.
    Truncated,
    /// Its last `STR_CAP - 1` bytes (a long path keeps its file name).
    KeptEnd,
    /// Nothing: the read failed with this errno (typically EFAULT for a
    /// page that is not resident).
    Unreadable(i32),
}

/// A string as captured: bytes (without NUL), where it came from, the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStr<'a> {
    /// The bytes read.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub at: StrRef,
    /// Complete, truncated or unreadable.
    pub state: StrState,
}

/// Where a string came from, which says what else can be done with it
/// than read its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrRef {
    /// Its address in the target, where a probe read it: a string the
    /// probe could not read can be read from the binary there.
    Address(u64),
    /// Its id in a recording's string table.
    Table(u32),
    /// The in-process capture's id of the code object it names.
    Code(u32),
    /// The in-process capture's record, which carries it whole (a module's
    /// or an audit event's name).
    Carried,
}

impl StrRef {
    /// Tags of the ids in [`StrRef::key`]: above any user-space address.
    const TABLE_TAG: u64 = 1 << 62;
    const CODE_TAG: u64 = 1 << 63;

    /// One number per string of a run, for keys (the same function's
    /// names from the markers or the capture, a recording's ids): the
    /// kinds never collide.
    pub fn key(self) -> u64 {
        match self {
            StrRef::Address(address) => address,
            StrRef::Table(id) => Self::TABLE_TAG | u64::from(id),
            StrRef::Code(code) => Self::CODE_TAG | u64::from(code),
            StrRef::Carried => Self::CODE_TAG | Self::TABLE_TAG,
        }
    }

    /// The address in the target, when a probe read it there.
    pub fn address(self) -> Option<u64> {
        match self {
            StrRef::Address(address) => Some(address),
            _ => None,
        }
    }

    /// The id in a recording's string table.
    pub fn table_id(self) -> Option<u32> {
        match self {
            StrRef::Table(id) => Some(id),
            _ => None,
        }
    }
}

/// A decoded event, borrowing from its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Header.
    pub header: Header,
    /// Marker-specific part.
    pub body: Body<'a>,
}

/// The marker-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// `function__entry`, `function__return`, `line`.
    Function {
        /// File name.
        filename: RawStr<'a>,
        /// Function name.
        funcname: RawStr<'a>,
        /// Line number.
        lineno: i32,
    },
    /// `gc__start`.
    GcStart {
        /// Generation.
        generation: i32,
    },
    /// `gc__done`.
    GcDone {
        /// Objects collected.
        collected: i64,
    },
    /// `import__find__load__start` (`found` is `None`) and `..._done`.
    Import {
        /// Module name.
        module: RawStr<'a>,
        /// Whether it was found (done only).
        found: Option<bool>,
    },
    /// `audit`.
    Audit(AuditRecord<'a>),
}

/// An audit event: its name, and its arguments decoded on demand (that
/// needs the target's object layout).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord<'a> {
    /// Event name, e.g. `open`.
    pub event: RawStr<'a>,
    args: AuditData<'a>,
}

/// Where an audit event's arguments are.
#[derive(Debug, Clone, PartialEq)]
enum AuditData<'a> {
    /// In the ring-buffer record, to be decoded with the target's layout.
    Record(&'a [u8]),
    /// Already decoded (a recording keeps them so); `None` when the
    /// probe could not read them.
    Decoded(Option<&'a AuditArgs>),
}

/// The decoded arguments of an audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditArgs {
    /// The first arguments (up to `abi::AUDIT_ITEMS`).
    pub values: Vec<PyValue>,
    /// How many more the tuple had.
    pub more: usize,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its kind's layout.
    #[error("record of {len} bytes is too short for its kind")]
    Short {
        /// Its length.
        len: usize,
    },
    /// A kind this version of pytap does not know.
    #[error("record of unknown kind {0}")]
    UnknownKind(u16),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A [`abi::TaskEvent`]: a thread's new name, an exec or a thread's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// What happened.
    pub kind: TaskKind,
    /// For an exec, the thread id that called execve.
    pub old_tid: u32,
    /// The thread's name from now on (`None` if it could not be read).
    pub comm: Option<String>,
}

/// What a task record tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// The thread's name changed.
    Rename,
    /// The process executed a program (this thread is its only one now).
    Exec,
    /// The thread ended.
    Exit,
}

/// Decodes a task record: `None` when the record is not one (a marker's
/// event), an error when it is one but too short.
pub fn task(record: &[u8]) -> Option<Result<TaskRecord, DecodeError>> {
    if record.len() < off::HEADER_SIZE {
        return None;
    }
    let kind = u16_at(record, off::KIND);
    let kind = match kind {
        abi::TASK_RENAME => TaskKind::Rename,
        abi::TASK_EXEC => TaskKind::Exec,
        abi::TASK_EXIT => TaskKind::Exit,
        _ => return None,
    };
    if record.len() < off::TASK_SIZE {
        return Some(Err(DecodeError::Short { len: record.len() }));
    }
    let comm_ok = i32_at(record, off::TASK_COMM_RET) >= 0;
    let raw = &record[off::TASK_COMM..off::TASK_COMM + 16];
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    Some(Ok(TaskRecord {
        ts_ns: u64_at(record, off::TS),
        pid: u32_at(record, off::PID),
        tid: u32_at(record, off::TID),
        kind,
        old_tid: u32_at(record, off::TASK_OLD_TID),
        comm: comm_ok.then(|| String::from_utf8_lossy(raw).into_owned()),
    }))
}

/// Reads only the header (for consumers that route by kind first).
pub fn header(record: &[u8]) -> Result<Header, DecodeError> {
    if record.len() < off::HEADER_SIZE {
        return Err(DecodeError::Short { len: record.len() });
    }
    let raw_kind = u16_at(record, off::KIND);
    let kind = EventKind::from_u16(raw_kind).ok_or(DecodeError::UnknownKind(raw_kind))?;
    if record.len() < kind.fixed_size() {
        return Err(DecodeError::Short { len: record.len() });
    }
    Ok(Header {
        ts_ns: u64_at(record, off::TS),
        pid: u32_at(record, off::PID),
        tid: u32_at(record, off::TID),
        kind,
        cpu: u16_at(record, off::CPU),
        site: u16_at(record, off::SITE),
        flags: u16_at(record, off::FLAGS),
    })
}

/// A string field at `at`: `ret` is the helper's answer (length with NUL,
/// or -errno), and the string takes `abi::packed_len(ret)` bytes there.
fn raw_str(
    record: &[u8],
    at: usize,
    ret: i32,
    ptr: u64,
    truncated: StrState,
) -> Result<RawStr<'_>, DecodeError> {
    let len = abi::packed_len(ret);
    let bytes = record
        .get(at..at + len)
        .ok_or(DecodeError::Short { len: record.len() })?;
    if ret <= 0 {
        return Ok(RawStr {
            bytes: &[],
            at: StrRef::Address(ptr),
            state: StrState::Unreadable(ret.unsigned_abs() as i32),
        });
    }
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    Ok(RawStr {
        bytes,
        at: StrRef::Address(ptr),
        state: truncated,
    })
}

/// Decodes one record.
pub fn decode(record: &[u8]) -> Result<Event<'_>, DecodeError> {
    let header = header(record)?;
    let flag = |bit: u16| {
        if header.flags & bit == 0 {
            StrState::Complete
        } else if bit == abi::FLAG_TRUNCATED_0 && header.flags & abi::FLAG_KEPT_END_0 != 0 {
            StrState::KeptEnd
        } else {
            StrState::Truncated
        }
    };
    let body = match header.kind {
        EventKind::FunctionEntry | EventKind::FunctionReturn | EventKind::Line => {
            let filename_ret = i32_at(record, off::FN_FILENAME_RET);
            Body::Function {
                filename: raw_str(
                    record,
                    off::FN_FILENAME,
                    filename_ret,
                    u64_at(record, off::FN_FILENAME_PTR),
                    flag(abi::FLAG_TRUNCATED_0),
                )?,
                funcname: raw_str(
                    record,
                    off::FN_FILENAME + abi::packed_len(filename_ret),
                    i32_at(record, off::FN_FUNCNAME_RET),
                    u64_at(record, off::FN_FUNCNAME_PTR),
                    flag(abi::FLAG_TRUNCATED_1),
                )?,
                lineno: i32_at(record, off::FN_LINENO),
            }
        }
        EventKind::GcStart => Body::GcStart {
            generation: i32_at(record, off::GC_GENERATION),
        },
        EventKind::GcDone => Body::GcDone {
            collected: u64_at(record, off::GC_COLLECTED) as i64,
        },
        EventKind::ImportStart | EventKind::ImportDone => Body::Import {
            module: raw_str(
                record,
                off::IMP_MODULE,
                i32_at(record, off::IMP_MODULE_RET),
                u64_at(record, off::IMP_MODULE_PTR),
                flag(abi::FLAG_TRUNCATED_0),
            )?,
            found: (header.kind == EventKind::ImportDone)
                .then(|| i32_at(record, off::IMP_FOUND) != 0),
        },
        EventKind::Audit => Body::Audit(AuditRecord {
            event: raw_str(
                record,
                off::AU_EVENT,
                i32_at(record, off::AU_EVENT_RET),
                u64_at(record, off::AU_EVENT_PTR),
                flag(abi::FLAG_TRUNCATED_0),
            )?,
            args: AuditData::Record(record),
        }),
    };
    Ok(Event { header, body })
}

/// One snapshot slot: the type name (if read) and the bytes captured.
fn snapshot(record: &[u8], at: usize, cap: usize) -> Captured<'_> {
    let name_ret = i32_at(record, at + off::SNAP_TYPE_NAME_RET);
    let data_ret = i32_at(record, at + off::SNAP_DATA_RET);
    let name = (name_ret > 0).then(|| {
        let len = (name_ret as usize).min(abi::TYPE_NAME);
        let raw = &record[at + off::SNAP_TYPE_NAME..at + off::SNAP_TYPE_NAME + len];
        std::str::from_utf8(raw.strip_suffix(&[0]).unwrap_or(raw)).unwrap_or("?")
    });
    let data_len = if data_ret > 0 {
        (data_ret as usize).min(cap)
    } else {
        0
    };
    Captured {
        type_name: if data_len > 0 { name } else { None },
        data: &record[at + off::SNAP_DATA..at + off::SNAP_DATA + data_len],
    }
}

impl<'a> AuditRecord<'a> {
    /// An audit event whose arguments were decoded when it was recorded.
    pub fn decoded(event: RawStr<'a>, args: Option<&'a AuditArgs>) -> AuditRecord<'a> {
        AuditRecord {
            event,
            args: AuditData::Decoded(args),
        }
    }

    /// The arguments decoded when the event was recorded (a replayed
    /// event: `Some`, holding `None` when they were not captured); `None`
    /// for a live record, which needs the target's layout ([`Self::args`]).
    pub fn recorded_args(&self) -> Option<Option<&'a AuditArgs>> {
        match self.args {
            AuditData::Decoded(args) => Some(args),
            AuditData::Record(_) => None,
        }
    }

    /// The pointer to the argument tuple in the target (0 once decoded).
    pub fn args_ptr(&self) -> u64 {
        match self.args {
            AuditData::Record(r) => u64_at(r, off::AU_ARGS_PTR),
            AuditData::Decoded(_) => 0,
        }
    }

    /// Decodes the arguments with the target's object layout. `None` when
    /// the probe could not read the tuple (or had no layout to read it with).
    pub fn args(&self, layout: &ObjectLayout) -> Option<AuditArgs> {
        let r = match self.args {
            AuditData::Record(r) => r,
            AuditData::Decoded(args) => return args.cloned(),
        };
        if i32_at(r, off::AU_ROOT_RET) != 0 {
            return None;
        }
        let len = u64_at(r, off::AU_ROOT + usize::from(layout.var_size)) as i64;
        let len = len.max(0) as usize;
        let captured = len.min(abi::AUDIT_ITEMS);
        let values = (0..captured)
            .map(|i| {
                let at = off::AU_ITEMS + i * off::ITEM_SIZE;
                let item = snapshot(r, at, abi::OBJ_BYTES);
                let is_whole_tuple =
                    item.type_name == Some("tuple") && item.data.len() == abi::OBJ_BYTES;
                let elements: Vec<Captured<'_>> = if is_whole_tuple {
                    let n = u64_at(item.data, usize::from(layout.var_size)) as i64;
                    (0..(n.max(0) as usize).min(abi::AUDIT_NESTED))
                        .map(|j| {
                            let at =
                                off::AU_NESTED + (i * abi::AUDIT_NESTED + j) * off::NESTED_SIZE;
                            snapshot(r, at, abi::NESTED_OBJ_BYTES)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                objects::decode(layout, item, &elements)
            })
            .collect();
        Some(AuditArgs {
            values,
            more: len - captured,
        })
    }
}

#[cfg(test)]
mod tests;
