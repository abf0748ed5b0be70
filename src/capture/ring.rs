//! Reading the ring file the in-process agent writes: its header and
//! records, decoded with the layout `crates/abi` defines
//! (`pytap_abi::capture`, re-exported here; the compiled extension uses the
//! same crate, and a test holds `agent.py`'s constants to it). Pure: bytes
//! in, values out; a hostile or torn file is an error or a stop, never a
//! panic (the fuzz target `capture_ring` holds it to that).

use pytap_abi::capture::value as tag;
pub use pytap_abi::capture::{
    BEAT, BEAT_GONE, CALLBACKS, DEF_BYTES, EVENT_BYTES, HEAD, HEADER_BYTES, KIND_AUDIT, KIND_DEF,
    KIND_ENTRY, KIND_GC_DONE, KIND_GC_START, KIND_IMPORT_DONE, KIND_IMPORT_START, KIND_LINE,
    KIND_PAD, KIND_RETURN, LOST, MAGIC, MARK_BYTES, MAX_DATA_BYTES, PID, STATE, TAIL, VERSION,
};

use crate::cpython::objects::{PyValue, compact_chars};
use crate::engine::decode::AuditArgs;

/// What the agent says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Capturing.
    Active,
    /// It stopped: pytap's heartbeat went stale or pytap said it was gone.
    Detached,
    /// Every sys.monitoring tool id it may take was in use.
    NoTool,
    /// It stopped on an error of its own (the message is in `PID.error`).
    Failed,
    /// A forked child could not open a ring of its own and stopped.
    Forked,
    /// A value this pytap does not know.
    Unknown(u32),
}

impl AgentState {
    fn from_u32(v: u32) -> AgentState {
        match v {
            1 => AgentState::Active,
            2 => AgentState::Detached,
            3 => AgentState::NoTool,
            4 => AgentState::Failed,
            5 => AgentState::Forked,
            v => AgentState::Unknown(v),
        }
    }
}

/// A ring's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Size of the record area (a power of two).
    pub data_bytes: u64,
    /// Bytes written.
    pub tail: u64,
    /// Bytes read.
    pub head: u64,
    /// Events dropped.
    pub lost: u64,
    /// The writing process.
    pub pid: u32,
    /// The agent's state.
    pub state: AgentState,
    /// Which callbacks record: 1 compiled, 2 Python (the extension did
    /// not load), 3 Python as asked, 4 a Python profile function, 5 the
    /// compiled profile function (both 3.8 to 3.11, which have no
    /// `sys.monitoring`); 0 in a file too short to say.
    pub callbacks: u32,
}

/// Why a ring file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Shorter than its header.
    #[error("shorter than a ring header")]
    Short,
    /// Not a ring.
    #[error("not a pytap ring file")]
    Magic,
    /// Another layout.
    #[error("ring layout version {0}, this pytap reads version {VERSION}")]
    Version(u32),
    /// A size that is not a power of two, or too large.
    #[error("a record area of {0} bytes")]
    Size(u64),
    /// The agent's counters make no sense (tail behind head, or further
    /// ahead than the ring holds).
    #[error("tail {tail} and head {head} do not fit a ring of {size} bytes")]
    Counters {
        /// Written.
        tail: u64,
        /// Read.
        head: u64,
        /// Ring size.
        size: u64,
    },
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a header (the first 64 bytes of the file are enough).
pub fn header(b: &[u8]) -> Result<Header, RingError> {
    if b.len() < 64 {
        return Err(RingError::Short);
    }
    // (The callbacks word at 64 is read when the bytes reach it.)
    if &b[..8] != MAGIC {
        return Err(RingError::Magic);
    }
    let version = u32_at(b, 8).ok_or(RingError::Short)?;
    if version != VERSION || u32_at(b, 12) != Some(HEADER_BYTES as u32) {
        return Err(RingError::Version(version));
    }
    let data_bytes = u64_at(b, 16).ok_or(RingError::Short)?;
    if !data_bytes.is_power_of_two() || !(4096..=MAX_DATA_BYTES).contains(&data_bytes) {
        return Err(RingError::Size(data_bytes));
    }
    let tail = u64_at(b, TAIL as usize).ok_or(RingError::Short)?;
    let head = u64_at(b, HEAD as usize).ok_or(RingError::Short)?;
    if tail < head || tail - head > data_bytes {
        return Err(RingError::Counters {
            tail,
            head,
            size: data_bytes,
        });
    }
    Ok(Header {
        data_bytes,
        tail,
        head,
        lost: u64_at(b, LOST as usize).ok_or(RingError::Short)?,
        pid: u32_at(b, PID as usize).ok_or(RingError::Short)?,
        state: AgentState::from_u32(u32_at(b, STATE as usize).ok_or(RingError::Short)?),
        callbacks: u32_at(b, CALLBACKS as usize).unwrap_or(0),
    })
}

/// What a function event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A frame starts or resumes (PY_START, PY_RESUME, PY_THROW).
    Entry,
    /// A frame returns, yields or unwinds (PY_RETURN, PY_YIELD, PY_UNWIND).
    Return,
    /// A new line (LINE).
    Line,
}

/// What a gc, import or audit record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// `gc__start` (value: the generation).
    GcStart,
    /// `gc__done` (value: objects collected).
    GcDone,
    /// `import__find__load__start` (payload: the module).
    ImportStart,
    /// `import__find__load__done` (value: found; payload: the module).
    ImportDone,
    /// `audit` (payload: [`audit`] reads it).
    Audit,
}

/// A record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A code object's names, before its first event.
    Def {
        /// The agent's id for it.
        code: u32,
        /// `co_firstlineno`.
        first_line: i32,
        /// `co_filename`, UTF-8 (surrogates escaped).
        filename: &'a [u8],
        /// `co_name`.
        funcname: &'a [u8],
    },
    /// An event.
    Event {
        /// What.
        kind: EventKind,
        /// The code object's id.
        code: u32,
        /// The line (the def line on a start, the current one otherwise).
        line: i32,
        /// CLOCK_MONOTONIC nanoseconds.
        ts_ns: u64,
        /// The native thread id.
        tid: u32,
    },
    /// A gc, import or audit event.
    Mark {
        /// What.
        kind: MarkKind,
        /// Its number (see [`MarkKind`]).
        value: i64,
        /// CLOCK_MONOTONIC nanoseconds.
        ts_ns: u64,
        /// The native thread id.
        tid: u32,
        /// Its bytes (see [`MarkKind`]).
        payload: &'a [u8],
    },
}

impl Record<'_> {
    /// When an event happened (`None`: a def, which has no time).
    pub fn ts_ns(&self) -> Option<u64> {
        match self {
            Record::Def { .. } => None,
            Record::Event { ts_ns, .. } | Record::Mark { ts_ns, .. } => Some(*ts_ns),
        }
    }
}

/// Why the records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A length that is zero, unaligned or runs past the data.
    #[error("a record of {0} bytes at a bad place")]
    Length(u32),
    /// A kind this pytap does not know.
    #[error("a record of unknown kind {0}")]
    Kind(u16),
    /// A def whose strings do not fit its length.
    #[error("a def record whose names do not fit it")]
    Def,
    /// A gc, import or audit record whose payload does not fit its length.
    #[error("a gc, import or audit record whose payload does not fit it")]
    Mark,
}

/// The records in `data` (bytes the agent wrote, starting at a record),
/// each with its length; pads are skipped but counted in the lengths.
/// Stops at the first bad record with its error: what came before it is
/// still returned (by the iterator).
pub fn records(data: &[u8]) -> Records<'_> {
    Records { data, at: 0 }
}

/// Iterator over [`records`].
#[derive(Debug)]
pub struct Records<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    /// Bytes consumed so far.
    pub fn consumed(&self) -> usize {
        self.at
    }

    fn next_record(&mut self) -> Option<Result<Record<'a>, RecordError>> {
        loop {
            let b = &self.data[self.at..];
            if b.is_empty() {
                return None;
            }
            let (Some(len), Some(kind)) = (u32_at(b, 0), u16_at(b, 4)) else {
                return Some(Err(RecordError::Length(0)));
            };
            let n = len as usize;
            if n < 8 || !n.is_multiple_of(8) || n > b.len() {
                return Some(Err(RecordError::Length(len)));
            }
            let rec = &b[..n];
            self.at += n;
            let kind = match kind {
                KIND_PAD => continue,
                KIND_DEF => {
                    let (Some(flen), Some(code), Some(first), Some(nlen)) = (
                        u16_at(rec, 6),
                        u32_at(rec, 8),
                        u32_at(rec, 12),
                        u16_at(rec, 16),
                    ) else {
                        return Some(Err(RecordError::Def));
                    };
                    let (flen, nlen) = (flen as usize, nlen as usize);
                    let Some(names) = rec.get(DEF_BYTES..DEF_BYTES + flen + nlen) else {
                        return Some(Err(RecordError::Def));
                    };
                    return Some(Ok(Record::Def {
                        code,
                        first_line: first as i32,
                        filename: &names[..flen],
                        funcname: &names[flen..],
                    }));
                }
                KIND_GC_START | KIND_GC_DONE | KIND_IMPORT_START | KIND_IMPORT_DONE
                | KIND_AUDIT => {
                    let kind = match kind {
                        KIND_GC_START => MarkKind::GcStart,
                        KIND_GC_DONE => MarkKind::GcDone,
                        KIND_IMPORT_START => MarkKind::ImportStart,
                        KIND_IMPORT_DONE => MarkKind::ImportDone,
                        _ => MarkKind::Audit,
                    };
                    let (Some(value), Some(ts_ns), Some(tid), Some(len)) = (
                        u64_at(rec, 8),
                        u64_at(rec, 16),
                        u32_at(rec, 24),
                        u32_at(rec, 28),
                    ) else {
                        return Some(Err(RecordError::Mark));
                    };
                    let Some(payload) = rec.get(MARK_BYTES..MARK_BYTES + len as usize) else {
                        return Some(Err(RecordError::Mark));
                    };
                    return Some(Ok(Record::Mark {
                        kind,
                        value: value as i64,
                        ts_ns,
                        tid,
                        payload,
                    }));
                }
                KIND_ENTRY => EventKind::Entry,
                KIND_RETURN => EventKind::Return,
                KIND_LINE => EventKind::Line,
                k => return Some(Err(RecordError::Kind(k))),
            };
            if n != EVENT_BYTES {
                return Some(Err(RecordError::Length(len)));
            }
            return Some(Ok(Record::Event {
                kind,
                code: u32_at(rec, 8)?,
                line: u32_at(rec, 12)? as i32,
                ts_ns: u64_at(rec, 16)?,
                tid: u32_at(rec, 24)?,
            }));
        }
    }
}

/// An audit record's payload: the event's name and its arguments
/// (`None` when the payload is malformed).
pub fn audit(payload: &[u8]) -> Option<(&[u8], AuditArgs)> {
    let mut c = Cursor { b: payload, at: 0 };
    let n = usize::from(c.u16()?);
    let name = c.take(n)?;
    let len = c.u32()? as usize;
    let sent = usize::from(c.u8()?);
    let values = (0..sent).map(|_| c.value(1)).collect::<Option<Vec<_>>>()?;
    Some((
        name,
        AuditArgs {
            more: len.checked_sub(values.len())?,
            values,
        },
    ))
}

/// Reading a payload, every step bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// One value; `depth` more levels of tuples may follow inside it.
    fn value(&mut self, depth: u8) -> Option<PyValue> {
        Some(match self.u8()? {
            tag::NONE => PyValue::None,
            tag::BOOL => PyValue::Bool(self.u8()? != 0),
            tag::INT => {
                let n = usize::from(self.u16()?);
                let text = std::str::from_utf8(self.take(n)?).ok()?;
                let digits = text.strip_prefix('-').unwrap_or(text);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                PyValue::Int(text.to_string())
            }
            tag::FLOAT => PyValue::Float(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            tag::STR => {
                let truncated = self.u8()? != 0;
                let n = self.u32()? as usize;
                let text = compact_chars(4, self.take(n.checked_mul(4)?)?);
                PyValue::Str { text, truncated }
            }
            tag::BYTES => {
                let truncated = self.u8()? != 0;
                let n = self.u32()? as usize;
                PyValue::Bytes {
                    data: self.take(n)?.to_vec(),
                    truncated,
                }
            }
            tag::TUPLE => {
                let len = self.u32()? as usize;
                let sent = usize::from(self.u8()?);
                // A nested tuple is its length only, as the probe reads it.
                if sent > 0 && depth == 0 {
                    return None;
                }
                let items = (0..sent)
                    .map(|_| self.value(depth - 1))
                    .collect::<Option<Vec<_>>>()?;
                PyValue::Tuple {
                    more: len.checked_sub(items.len())?,
                    items,
                }
            }
            tag::OTHER => {
                let n = usize::from(self.u8()?);
                let name = self.take(n)?;
                PyValue::Other(std::str::from_utf8(name).unwrap_or("?").to_string())
            }
            tag::UNREADABLE => PyValue::Unreadable,
            _ => return None,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u32, line: i32, ts: u64, tid: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&32u32.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&line.to_le_bytes());
        b.extend_from_slice(&ts.to_le_bytes());
        b.extend_from_slice(&tid.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    fn def(code: u32, first: i32, file: &[u8], name: &[u8]) -> Vec<u8> {
        let len = (DEF_BYTES + file.len() + name.len()).div_ceil(8) * 8;
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&KIND_DEF.to_le_bytes());
        b.extend_from_slice(&(file.len() as u16).to_le_bytes());
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&first.to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(file);
        b.extend_from_slice(name);
        b.resize(len, 0);
        b
    }

    #[test]
    fn records_as_the_agent_packs_them() {
        let mut data = def(1, 8, b"/app/fib.py", b"fib");
        data.extend(event(KIND_ENTRY, 1, 8, 1000, 42));
        // A pad to the end of the ring, then the next record.
        data.extend_from_slice(&16u32.to_le_bytes());
        data.extend_from_slice(&KIND_PAD.to_le_bytes());
        data.extend_from_slice(&[0; 10]);
        data.extend(event(KIND_RETURN, 1, 9, 2000, 42));
        let got: Vec<_> = records(&data).collect();
        assert_eq!(
            got,
            [
                Ok(Record::Def {
                    code: 1,
                    first_line: 8,
                    filename: b"/app/fib.py",
                    funcname: b"fib"
                }),
                Ok(Record::Event {
                    kind: EventKind::Entry,
                    code: 1,
                    line: 8,
                    ts_ns: 1000,
                    tid: 42
                }),
                Ok(Record::Event {
                    kind: EventKind::Return,
                    code: 1,
                    line: 9,
                    ts_ns: 2000,
                    tid: 42
                }),
            ]
        );
    }

    fn mark(kind: u16, value: i64, ts: u64, tid: u32, payload: &[u8]) -> Vec<u8> {
        let len = (MARK_BYTES + payload.len()).div_ceil(8) * 8;
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&value.to_le_bytes());
        b.extend_from_slice(&ts.to_le_bytes());
        b.extend_from_slice(&tid.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b.resize(len, 0);
        b
    }

    #[test]
    fn gc_import_and_audit_records_as_the_agent_packs_them() {
        let mut data = mark(KIND_GC_START, 2, 10, 7, b"");
        data.extend(mark(KIND_IMPORT_DONE, 1, 20, 7, b"json.decoder"));
        let got: Vec<_> = records(&data).collect();
        assert_eq!(
            got,
            [
                Ok(Record::Mark {
                    kind: MarkKind::GcStart,
                    value: 2,
                    ts_ns: 10,
                    tid: 7,
                    payload: b"",
                }),
                Ok(Record::Mark {
                    kind: MarkKind::ImportDone,
                    value: 1,
                    ts_ns: 20,
                    tid: 7,
                    payload: b"json.decoder",
                }),
            ]
        );
        // A payload longer than its record.
        let mut bad = mark(KIND_AUDIT, 0, 1, 1, b"open");
        bad[28] = 200;
        assert_eq!(records(&bad).next(), Some(Err(RecordError::Mark)));
    }

    #[test]
    fn audit_payloads_decode_to_the_values_the_markers_give() {
        // `open("/x", "r", 8)` and then one of each other kind, as
        // agent.py's encoder packs them.
        let mut p = Vec::new();
        p.extend_from_slice(&5u16.to_le_bytes());
        p.extend_from_slice(b"event");
        p.extend_from_slice(&10u32.to_le_bytes());
        p.push(8);
        p.push(tag::NONE);
        p.extend_from_slice(&[tag::BOOL, 1]);
        p.push(tag::INT);
        p.extend_from_slice(&3u16.to_le_bytes());
        p.extend_from_slice(b"-42");
        p.push(tag::FLOAT);
        p.extend_from_slice(&1.5f64.to_le_bytes());
        p.extend_from_slice(&[tag::STR, 1]);
        p.extend_from_slice(&2u32.to_le_bytes());
        for c in ['\u{e9}' as u32, 0xD800] {
            p.extend_from_slice(&c.to_le_bytes());
        }
        p.extend_from_slice(&[tag::BYTES, 0]);
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(b"ab");
        p.push(tag::TUPLE);
        p.extend_from_slice(&5u32.to_le_bytes());
        p.push(1);
        p.push(tag::TUPLE);
        p.extend_from_slice(&3u32.to_le_bytes());
        p.push(0);
        p.extend_from_slice(&[tag::OTHER, 4]);
        p.extend_from_slice(b"list");
        let (name, args) = audit(&p).unwrap();
        assert_eq!(name, b"event");
        assert_eq!(args.more, 2);
        assert_eq!(
            args.values,
            [
                PyValue::None,
                PyValue::Bool(true),
                PyValue::Int("-42".into()),
                PyValue::Float(1.5),
                PyValue::Str {
                    text: "\u{e9}\u{fffd}".into(),
                    truncated: true
                },
                PyValue::Bytes {
                    data: b"ab".to_vec(),
                    truncated: false
                },
                PyValue::Tuple {
                    items: vec![PyValue::Tuple {
                        items: vec![],
                        more: 3
                    }],
                    more: 4
                },
                PyValue::Other("list".into()),
            ]
        );
        // Cut anywhere, or a tuple nested deeper than the probe reads: no
        // value, never a panic.
        for n in 0..p.len() {
            assert!(audit(&p[..n]).is_none(), "cut at {n}");
        }
        let mut deep = p[..12].to_vec();
        deep[7..11].copy_from_slice(&1u32.to_le_bytes());
        deep[11] = 1;
        deep.push(tag::TUPLE);
        deep.extend_from_slice(&1u32.to_le_bytes());
        deep.push(1);
        deep.push(tag::TUPLE);
        deep.extend_from_slice(&1u32.to_le_bytes());
        deep.push(1);
        deep.push(tag::NONE);
        assert!(audit(&deep).is_none());
        let mut bad_int = p[..12].to_vec();
        bad_int[7..11].copy_from_slice(&1u32.to_le_bytes());
        bad_int[11] = 1;
        bad_int.push(tag::INT);
        bad_int.extend_from_slice(&2u16.to_le_bytes());
        bad_int.extend_from_slice(b"4x");
        assert!(audit(&bad_int).is_none());
    }

    #[test]
    fn bad_records_stop_without_panicking() {
        let mut data = event(KIND_ENTRY, 1, 8, 1000, 42);
        data.extend_from_slice(&[24, 0, 0, 0, 9, 0, 0, 0]);
        let mut it = records(&data);
        assert!(matches!(it.next(), Some(Ok(Record::Event { .. }))));
        assert_eq!(it.next(), Some(Err(RecordError::Length(24))));
        let mut unknown = event(KIND_ENTRY, 1, 8, 1000, 42);
        unknown[4] = 77;
        assert_eq!(records(&unknown).next(), Some(Err(RecordError::Kind(77))));
        let mut short_def = def(1, 8, b"f", b"g");
        short_def[6] = 200;
        assert_eq!(records(&short_def).next(), Some(Err(RecordError::Def)));
        assert_eq!(
            records(&[1, 0, 0]).next(),
            Some(Err(RecordError::Length(0)))
        );
    }

    #[test]
    fn the_agents_write_this_layout() {
        // agent.py packs the same byte offsets and kinds: a Python file
        // cannot import crates/abi, so its constants are read here and
        // held to the crate's.
        // `1_000_000_000` in both languages.
        let number = |v: &str| -> u64 { v.trim().replace('_', "").parse().unwrap() };
        let names = |line: &str| -> Vec<(String, u64)> {
            let (left, right) = line.split_once(" = ").unwrap();
            left.split(", ")
                .zip(right.split(", "))
                .map(|(n, v)| (n.trim().to_string(), number(v)))
                .collect()
        };
        let python: Vec<(String, u64)> = crate::capture::AGENT
            .lines()
            .filter(|l| l.starts_with('_') && l.contains(" = ") && !l.contains('('))
            .filter(|l| {
                let values = l.split(" = ").nth(1).unwrap();
                values
                    .split(", ")
                    .all(|v| v.trim().replace('_', "").parse::<u64>().is_ok())
            })
            .flat_map(names)
            .collect();
        let py = |name: &str| {
            python
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("agent.py has no {name}"))
                .1
        };
        assert_eq!(py("_HEADER"), HEADER_BYTES);
        for (name, offset) in [
            ("_TAIL", TAIL),
            ("_HEAD", HEAD),
            ("_LOST", LOST),
            ("_BEAT", BEAT),
            ("_PID", PID),
            ("_STATE", STATE),
            ("_CALLBACKS", CALLBACKS),
        ] {
            assert_eq!(py(name), offset, "{name}");
        }
        for (name, kind) in [
            ("_PAD", KIND_PAD),
            ("_DEF", KIND_DEF),
            ("_ENTRY", KIND_ENTRY),
            ("_RETURN", KIND_RETURN),
            ("_LINE", KIND_LINE),
            ("_GC_START", KIND_GC_START),
            ("_GC_DONE", KIND_GC_DONE),
            ("_IMPORT_START", KIND_IMPORT_START),
            ("_IMPORT_DONE", KIND_IMPORT_DONE),
            ("_AUDIT", KIND_AUDIT),
        ] {
            assert_eq!(py(name), u64::from(kind), "{name}");
        }
        for (name, value) in [
            ("_V_NONE", tag::NONE),
            ("_V_BOOL", tag::BOOL),
            ("_V_INT", tag::INT),
            ("_V_FLOAT", tag::FLOAT),
            ("_V_STR", tag::STR),
            ("_V_BYTES", tag::BYTES),
            ("_V_TUPLE", tag::TUPLE),
            ("_V_OTHER", tag::OTHER),
            ("_V_UNREADABLE", tag::UNREADABLE),
        ] {
            assert_eq!(py(name), u64::from(value), "{name}");
        }
        // What the agent captures of an audit argument is what the
        // markers' probe reads.
        use pytap_abi::event as probe;
        for (name, value) in [
            ("_OBJ_BYTES", probe::OBJ_BYTES),
            ("_NESTED_OBJ_BYTES", probe::NESTED_OBJ_BYTES),
            ("_AUDIT_ITEMS", probe::AUDIT_ITEMS),
            ("_AUDIT_NESTED", probe::AUDIT_NESTED),
            ("_TYPE_NAME", probe::TYPE_NAME),
        ] {
            assert_eq!(py(name), value as u64, "{name}");
        }
        for (name, state) in [
            ("_ACTIVE", AgentState::Active),
            ("_DETACHED", AgentState::Detached),
            ("_NO_TOOL", AgentState::NoTool),
            ("_FAILED", AgentState::Failed),
            ("_FORKED", AgentState::Forked),
        ] {
            assert_eq!(AgentState::from_u32(py(name) as u32), state, "{name}");
        }
        assert_eq!(
            py("_CHECK_EVERY"),
            u64::from(pytap_abi::capture::CHECK_EVERY)
        );
        assert_eq!(py("_STALE_NS"), pytap_abi::capture::STALE_NS);
        // The compiled extension takes its layout from crates/abi itself.
        let ext = include_str!("../../crates/agent-ext/src/lib.rs");
        assert!(ext.contains("use pytap_abi::capture as ring;"));
        for name in ["TAIL", "HEAD", "LOST", "BEAT"] {
            let line = format!("const {name}: usize = ring::word(ring::{name});");
            assert!(ext.contains(&line), "agent-ext: {line}");
        }
    }

    #[test]
    fn headers_are_checked() {
        let mut h = vec![0u8; 64];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        h[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
        h[24..32].copy_from_slice(&96u64.to_le_bytes());
        h[32..40].copy_from_slice(&32u64.to_le_bytes());
        h[56..60].copy_from_slice(&1234u32.to_le_bytes());
        h[60..64].copy_from_slice(&1u32.to_le_bytes());
        let got = header(&h).unwrap();
        assert_eq!((got.tail, got.head, got.pid), (96, 32, 1234));
        assert_eq!(got.state, AgentState::Active);
        let mut bad = h.clone();
        bad[16..24].copy_from_slice(&1000u64.to_le_bytes());
        assert_eq!(header(&bad), Err(RingError::Size(1000)));
        let mut behind = h.clone();
        behind[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(header(&behind), Err(RingError::Counters { .. })));
        assert_eq!(header(&h[..10]), Err(RingError::Short));
        let mut magic = h;
        magic[0] = b'X';
        assert_eq!(header(&magic), Err(RingError::Magic));
    }
}
