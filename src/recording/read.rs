//! Reads a recording front to back, a window of the file at a time (memory
//! grows with the distinct strings and threads, not with the events): strings go to the table, names to the
//! thread names, metadata is kept, and events come out as the engine's
//! [`Event`]s, the same type a live run decodes, so every consumer reads
//! them unchanged. A replayed string's `ptr` is its id in the table.
//!
//! A recording that stops mid-record (pytap was killed) reads up to its
//! last whole record and says so ([`Reader::cut_short`]); one that is
//! malformed before its end is an error naming the byte.
//!
//! A recording of samples (version 3) also comes out sample by sample
//! ([`Reader::sample`]), with its frame table ([`Reader::frames`]) and the
//! names of its sampled threads as they come ([`Reader::sampled_threads`]);
//! a frame or sample that refers to what the recording has not defined is
//! malformed.

use std::cell::RefCell;
use std::io::Read;

use anyhow::{Context, Result};

use super::format::{
    self, Cursor, ENDED_EXEC, ENDED_EXIT, FormatError, HEADER_LEN, MAX_SAMPLE_FRAMES, Meta,
    RecordedFrame, RecordedSample, StringTable, TAG_ENDED, TAG_FRAME, TAG_META, TAG_NAME,
    TAG_SAMPLE, TAG_SAMPLED_THREAD, TAG_STRING, UNREADABLE,
};
use crate::engine::abi::EventKind;
use crate::engine::decode::{
    AuditArgs, AuditRecord, Body, Event, Header, RawStr, StrRef, StrState,
};
use crate::engine::tasks::TaskNames;

/// How much is read from the file at a time.
const CHUNK: usize = 1 << 20;
/// No record is larger (a string is at most a few KiB; metadata less).
const MAX_RECORD: usize = 16 << 20;

/// An event as parsed, before its strings are looked up.
#[derive(Debug)]
struct Parsed {
    header: Header,
    body: ParsedBody,
}

#[derive(Debug)]
enum ParsedBody {
    Function {
        filename: u64,
        funcname: u64,
        lineno: i32,
    },
    GcStart(i32),
    GcDone(i64),
    Import {
        module: u64,
        found: Option<bool>,
    },
    Audit {
        event: u64,
        args: Option<AuditArgs>,
    },
}

enum Step {
    Event(Parsed),
    Sample(RecordedSample),
    Other,
    NeedMore,
}

/// A sampled thread's names ([`Reader::sampled_threads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledThread {
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its name (empty: not known).
    pub name: String,
    /// Its process's name (empty: not known).
    pub process: String,
}

/// A recording being read.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// File offset of `buf[pos]`.
    offset: u64,
    prev_ts: u64,
    /// The event [`Reader::advance`] moved to.
    current: Option<Parsed>,
    /// The sample [`Reader::advance`] moved to.
    current_sample: Option<RecordedSample>,
    /// The frame table so far.
    pub frames: Vec<RecordedFrame>,
    /// Sampled threads named before the current sample (or the end), in
    /// order: the replay names them and clears this.
    pub sampled_threads: Vec<SampledThread>,
    /// Samples read.
    pub samples: u64,
    /// The string table so far.
    pub strings: StringTable,
    /// Thread names as of the current event.
    pub names: RefCell<TaskNames>,
    /// The `start` metadata.
    pub start: Option<Meta>,
    /// The `module` metadata records so far.
    pub modules: Vec<Meta>,
    /// The `end` metadata, once read.
    pub end: Option<Meta>,
    /// The recording stopped mid-record or without its `end` record.
    pub cut_short: bool,
    /// Events read.
    pub events: u64,
    /// Threads that ended (pid, tid, by an exec) before the current event,
    /// in order: the replay tells its consumer and clears this.
    pub ended: Vec<(u32, u32, bool)>,
}

impl<R: Read> Reader<R> {
    /// Opens a recording: checks its header (the `start` metadata is read
    /// by the first [`Reader::advance`]).
    pub fn new(mut input: R) -> Result<Reader<R>> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = input
                .read(&mut header[got..])
                .context("reading the recording")?;
            if n == 0 {
                break;
            }
            got += n;
        }
        format::check_header(&header[..got])?;
        Ok(Reader {
            input,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            eof: false,
            offset: HEADER_LEN as u64,
            prev_ts: 0,
            current: None,
            current_sample: None,
            frames: Vec::new(),
            sampled_threads: Vec::new(),
            samples: 0,
            strings: StringTable::default(),
            names: RefCell::default(),
            start: None,
            modules: Vec::new(),
            end: None,
            cut_short: false,
            events: 0,
            ended: Vec::new(),
        })
    }

    /// Moves to the next event ([`Reader::event`]) or sample
    /// ([`Reader::sample`]); false at the end of the recording. The names,
    /// strings and frames it needs are read first.
    pub fn advance(&mut self) -> Result<bool> {
        self.current = None;
        self.current_sample = None;
        let parsed = loop {
            if self.pos == self.buf.len() && !self.fill()? {
                if self.end.is_none() {
                    self.cut_short = true;
                }
                return Ok(false);
            }
            match self.step()? {
                Step::Event(p) => break p,
                Step::Sample(sample) => {
                    self.samples += 1;
                    self.current_sample = Some(sample);
                    return Ok(true);
                }
                Step::Other => {}
                Step::NeedMore => {
                    if !self.fill()? {
                        // A partial record at the end: the writer was killed.
                        self.cut_short = true;
                        return Ok(false);
                    }
                }
            }
        };
        self.events += 1;
        self.current = Some(parsed);
        Ok(true)
    }

    /// Reads more of the file; false at its end.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.len() >= MAX_RECORD {
            return Err(FormatError::Malformed {
                what: "record (too long)",
                at: self.offset,
            }
            .into());
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.input.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading the recording"),
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// Parses the record at `pos`, if it is whole.
    fn step(&mut self) -> Result<Step> {
        let at = self.offset;
        let bytes = &self.buf[self.pos..];
        let mut c = Cursor::new(bytes);
        let malformed = |what| FormatError::Malformed { what, at };
        let Some(tag) = c.u8() else {
            return Ok(Step::NeedMore);
        };
        let step = match tag {
            TAG_STRING => {
                let Some(s) = c.bytes() else {
                    return short_or_bad(&c, "string", at);
                };
                self.strings.push(s);
                Step::Other
            }
            TAG_META => {
                let Some(json) = c.bytes() else {
                    return short_or_bad(&c, "metadata", at);
                };
                // Kinds a later version adds are skipped.
                if let Ok(meta) = serde_json::from_slice::<Meta>(json) {
                    match meta {
                        Meta::Start { .. } => self.start = Some(meta),
                        Meta::Module { .. } => self.modules.push(meta),
                        Meta::End { .. } => self.end = Some(meta),
                    }
                }
                Step::Other
            }
            TAG_NAME => {
                let (Some(pid), Some(tid), Some(id)) = (c.u32(), c.u32(), c.u32()) else {
                    return short_or_bad(&c, "thread name", at);
                };
                if !self.strings.has(id) {
                    return Err(malformed("thread name").into());
                }
                let name = self.strings.get(id).to_string();
                self.names.borrow_mut().renamed(pid, tid, name);
                Step::Other
            }
            TAG_ENDED => {
                let (Some(pid), Some(tid), Some(how)) = (c.u32(), c.u32(), c.u8()) else {
                    return short_or_bad(&c, "thread end", at);
                };
                let exec = match how {
                    ENDED_EXIT => false,
                    ENDED_EXEC => true,
                    _ => return Err(malformed("thread end").into()),
                };
                let mut names = self.names.borrow_mut();
                if exec {
                    let comm = names.comm(pid, tid).to_string();
                    names.executed(pid, comm);
                } else {
                    names.exited(pid, tid);
                }
                self.ended.push((pid, tid, exec));
                Step::Other
            }
            TAG_FRAME => {
                let (Some(function), Some(file), Some(line), Some(kind)) =
                    (c.u32(), c.u32(), c.u32(), c.u8())
                else {
                    return short_or_bad(&c, "frame", at);
                };
                let defined = self.strings.has(function) && self.strings.has(file);
                if !defined || kind > format::FRAME_UNKNOWN {
                    return Err(malformed("frame").into());
                }
                self.frames.push(RecordedFrame {
                    function,
                    file,
                    line,
                    kind,
                });
                Step::Other
            }
            TAG_SAMPLED_THREAD => {
                let (Some(pid), Some(tid), Some(name), Some(process)) =
                    (c.u32(), c.u32(), c.u32(), c.u32())
                else {
                    return short_or_bad(&c, "sampled thread", at);
                };
                if !self.strings.has(name) || !self.strings.has(process) {
                    return Err(malformed("sampled thread").into());
                }
                self.sampled_threads.push(SampledThread {
                    pid,
                    tid,
                    name: self.strings.get(name).to_string(),
                    process: self.strings.get(process).to_string(),
                });
                Step::Other
            }
            TAG_SAMPLE => match parse_sample(&mut c, self.prev_ts, self.frames.len()) {
                Some(Ok(sample)) => {
                    self.prev_ts = sample.ts_ns;
                    Step::Sample(sample)
                }
                Some(Err(())) => return Err(malformed("sample").into()),
                None => return short_or_bad(&c, "sample", at),
            },
            t => {
                let Some(kind) = format::event_kind(t) else {
                    return Err(FormatError::UnknownTag { tag: t, at }.into());
                };
                match parse_event(&mut c, kind, self.prev_ts) {
                    Some(Ok(p)) => {
                        self.prev_ts = p.header.ts_ns;
                        Step::Event(p)
                    }
                    Some(Err(())) => return Err(malformed("event").into()),
                    None => return short_or_bad(&c, "event", at),
                }
            }
        };
        self.pos += c.pos;
        self.offset += c.pos as u64;
        Ok(step)
    }

    /// The sample [`Reader::advance`] moved to (`None` at an event, before
    /// the first and after the last).
    pub fn sample(&self) -> Option<&RecordedSample> {
        self.current_sample.as_ref()
    }

    /// The event [`Reader::advance`] moved to (`None` at a sample, before
    /// the first and after the last).
    pub fn event(&self) -> Option<Event<'_>> {
        let p = self.current.as_ref()?;
        let strings = &self.strings;
        let raw = |v: u64| -> RawStr<'_> {
            let (id, state) = format::parse_string_ref(v);
            match id.filter(|id| strings.has(*id)) {
                Some(id) => RawStr {
                    bytes: strings.get(id).as_bytes(),
                    at: StrRef::Table(id),
                    state,
                },
                None => RawStr {
                    bytes: b"",
                    at: StrRef::Table(UNREADABLE),
                    state: match state {
                        StrState::Unreadable(e) => StrState::Unreadable(e),
                        _ => StrState::Unreadable(0),
                    },
                },
            }
        };
        let body = match &p.body {
            ParsedBody::Function {
                filename,
                funcname,
                lineno,
            } => Body::Function {
                filename: raw(*filename),
                funcname: raw(*funcname),
                lineno: *lineno,
            },
            ParsedBody::GcStart(generation) => Body::GcStart {
                generation: *generation,
            },
            ParsedBody::GcDone(collected) => Body::GcDone {
                collected: *collected,
            },
            ParsedBody::Import { module, found } => Body::Import {
                module: raw(*module),
                found: *found,
            },
            ParsedBody::Audit { event, args } => {
                Body::Audit(AuditRecord::decoded(raw(*event), args.as_ref()))
            }
        };
        Some(Event {
            header: p.header,
            body,
        })
    }
}

/// A record that did not parse: malformed, or not whole yet.
fn short_or_bad(c: &Cursor<'_>, what: &'static str, at: u64) -> Result<Step> {
    if c.bad {
        return Err(FormatError::Malformed { what, at }.into());
    }
    Ok(Step::NeedMore)
}

/// A sample's fields after its tag: `None` when the buffer ends first,
/// `Some(Err)` when they are malformed (frames past the sampler's depth, or
/// not in the table of `frames` frames).
fn parse_sample(
    c: &mut Cursor<'_>,
    prev_ts: u64,
    frames: usize,
) -> Option<Result<RecordedSample, ()>> {
    let delta = c.ivarint()?;
    let (pid, tid, weight_ns, flags) = (c.u32()?, c.u32()?, c.uvarint()?, c.uvarint()?);
    let depth = c.uvarint()?;
    if depth > MAX_SAMPLE_FRAMES || flags & !format::SAMPLE_TRUNCATED != 0 {
        return Some(Err(()));
    }
    let mut ids = Vec::with_capacity(depth as usize);
    for _ in 0..depth {
        let id = c.u32()?;
        if id as usize >= frames {
            return Some(Err(()));
        }
        ids.push(id);
    }
    Some(Ok(RecordedSample {
        ts_ns: (prev_ts as i64).wrapping_add(delta) as u64,
        pid,
        tid,
        weight_ns,
        flags,
        frames: ids,
    }))
}

/// An event's fields after its tag: `None` when the buffer ends first,
/// `Some(Err)` when they are malformed.
fn parse_event(c: &mut Cursor<'_>, kind: EventKind, prev_ts: u64) -> Option<Result<Parsed, ()>> {
    let delta = c.ivarint()?;
    let (pid, tid, cpu, flags) = (c.uvarint()?, c.uvarint()?, c.uvarint()?, c.uvarint()?);
    let body = match kind {
        EventKind::FunctionEntry | EventKind::FunctionReturn | EventKind::Line => {
            let (filename, funcname, lineno) = (c.uvarint()?, c.uvarint()?, c.ivarint()?);
            let Ok(lineno) = i32::try_from(lineno) else {
                return Some(Err(()));
            };
            ParsedBody::Function {
                filename,
                funcname,
                lineno,
            }
        }
        EventKind::GcStart => match i32::try_from(c.ivarint()?) {
            Ok(g) => ParsedBody::GcStart(g),
            Err(_) => return Some(Err(())),
        },
        EventKind::GcDone => ParsedBody::GcDone(c.ivarint()?),
        EventKind::ImportStart | EventKind::ImportDone => {
            let module = c.uvarint()?;
            let found = match c.u8()? {
                0 => None,
                1 => Some(false),
                2 => Some(true),
                _ => return Some(Err(())),
            };
            ParsedBody::Import { module, found }
        }
        EventKind::Audit => {
            let event = c.uvarint()?;
            let args = c.args()?;
            ParsedBody::Audit { event, args }
        }
    };
    let header = (|| {
        Some(Header {
            ts_ns: (prev_ts as i64).wrapping_add(delta) as u64,
            pid: u32::try_from(pid).ok()?,
            tid: u32::try_from(tid).ok()?,
            kind,
            cpu: u16::try_from(cpu).ok()?,
            site: 0,
            flags: u16::try_from(flags).ok()?,
        })
    })();
    Some(header.map(|header| Parsed { header, body }).ok_or(()))
}
