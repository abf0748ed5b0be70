//! `pytap record`'s consumer: every event, as the ABI decodes it, appended
//! to a recording ([`super::format`]) as it arrives.
//!
//! What a live view would look up at the event's moment is stored with it:
//! strings the probe could not read are recovered from the binary now (it
//! may be gone when the recording is read), audit arguments are decoded
//! with the target's layout now, and a thread's name is written before its
//! first event and again whenever it changes. Each string is written once
//! (an ended thread's name is forgotten: see [`Recorder::forget`]); events
//! refer to it by id. A recording of samples (`pytap record --profile`)
//! goes through the same writer ([`samples`]): frames as the profiler named
//! them, each once, and samples that refer to them.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::Result;

use super::format::{self, Meta, TAG_EVENT, TAG_META, TAG_NAME, TAG_STRING};
use crate::engine::consumer::Consumer;
use crate::engine::decode::{Body, Event, RawStr, StrState};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;

mod samples;
pub use samples::SampleRecord;

/// Writes a recording.
pub struct Recorder<W: Write> {
    out: W,
    /// The record being built (reused).
    record: Vec<u8>,
    /// The ids of the strings written and still remembered (see
    /// [`Recorder::forget`]).
    strings: HashMap<Box<[u8]>, u32>,
    /// The id the next string written gets: ids are the strings' order in
    /// the file.
    next_string: u32,
    prev_ts: u64,
    /// Each thread's name as last written.
    names: HashMap<u32, (u32, Box<str>)>,
    /// Processes whose modules were written.
    processes: HashSet<u32>,
    recovery: Recovery,
    /// Events written.
    pub events: u64,
    /// The id the next frame written gets ([`Recorder::frame`]).
    next_frame: u32,
    /// Samples written.
    pub samples: u64,
}

impl<W: Write> std::fmt::Debug for Recorder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("events", &self.events)
            .field("strings", &self.strings.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> Recorder<W> {
    /// Starts a recording on `out`: the header and the `start` metadata.
    pub fn new(mut out: W, start: &Meta) -> Result<Recorder<W>> {
        out.write_all(&format::header())?;
        let mut r = Recorder {
            out,
            record: Vec::with_capacity(256),
            strings: HashMap::new(),
            next_string: 0,
            prev_ts: 0,
            names: HashMap::new(),
            processes: HashSet::new(),
            recovery: Recovery::default(),
            events: 0,
            next_frame: 0,
            samples: 0,
        };
        r.meta(start)?;
        Ok(r)
    }

    /// Appends a metadata record.
    pub fn meta(&mut self, meta: &Meta) -> Result<()> {
        let json = serde_json::to_vec(meta)?;
        self.record.clear();
        self.record.push(TAG_META);
        format::put_bytes(&mut self.record, &json);
        self.out.write_all(&self.record)?;
        Ok(())
    }

    /// Writes the `end` metadata and flushes: the recording is complete.
    pub fn end(mut self, end: &Meta) -> Result<W> {
        self.meta(end)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// The id of `bytes`, writing it to the table first if it is new.
    fn intern(&mut self, bytes: &[u8]) -> Result<u32> {
        if let Some(id) = self.strings.get(bytes) {
            return Ok(*id);
        }
        let id = self.next_string;
        self.next_string += 1;
        let mut rec = Vec::with_capacity(bytes.len() + 4);
        rec.push(TAG_STRING);
        format::put_bytes(&mut rec, bytes);
        self.out.write_all(&rec)?;
        self.strings.insert(bytes.into(), id);
        Ok(id)
    }

    /// Drops an ended thread's name from the string table: names are
    /// mostly unique (`Thread-24000 (work`), and a program that keeps
    /// starting threads would grow the table without end. A string the
    /// recording needs again is written again, with a new id (the ids a
    /// reader has already read stay valid).
    fn forget(&mut self, name: &str) {
        self.strings.remove(name.as_bytes());
    }

    /// A string reference, recovering an unreadable string from the binary.
    fn string(&mut self, raw: &RawStr<'_>, event: &Event<'_>, source: &dyn Source) -> Result<u64> {
        if let StrState::Unreadable(_) = raw.state
            && let Some(bytes) = raw
                .at
                .address()
                .and_then(|at| source.recover(&mut self.recovery, event, at))
        {
            let id = self.intern(&bytes)?;
            return Ok(format::string_ref(id, StrState::Complete));
        }
        let id = match raw.state {
            StrState::Unreadable(_) => 0,
            _ => self.intern(raw.bytes)?,
        };
        Ok(format::string_ref(id, raw.state))
    }

    /// Writes the thread's name if it is new or changed, and the modules of
    /// a process seen for the first time.
    fn context(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let (pid, tid) = (event.header.pid, event.header.tid);
        let changed = {
            let tasks = source.tasks();
            let comm = tasks.comm(pid, tid);
            match self.names.get(&tid) {
                Some((p, name)) if *p == pid && **name == *comm => None,
                _ => Some(comm.to_string()),
            }
        };
        // A thread's name is looked at on every event; the rest only when
        // it is new or changed (a new process's first thread always is).
        let Some(comm) = changed else {
            return Ok(());
        };
        let id = self.intern(comm.as_bytes())?;
        self.record.clear();
        self.record.push(TAG_NAME);
        format::put_uvarint(&mut self.record, u64::from(pid));
        format::put_uvarint(&mut self.record, u64::from(tid));
        format::put_uvarint(&mut self.record, u64::from(id));
        self.out.write_all(&self.record)?;
        self.names.insert(tid, (pid, comm.into()));
        if self.processes.insert(pid)
            && let Some(session) = source.session()
        {
            for module in session.modules_of(pid) {
                self.meta(&Meta::Module {
                    pid,
                    path: module.path.display().to_string(),
                    version: module.py_version().map(|v| v.to_string()),
                })?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Recorder<W> {
    /// A thread end (see [`format::TAG_ENDED`]), in its place among the
    /// events.
    fn ended(&mut self, pid: u32, tid: u32, how: u8) -> Result<()> {
        self.record.clear();
        self.record.push(format::TAG_ENDED);
        format::put_uvarint(&mut self.record, u64::from(pid));
        format::put_uvarint(&mut self.record, u64::from(tid));
        self.record.push(how);
        Ok(self.out.write_all(&self.record)?)
    }
}

impl<W: Write> Consumer for Recorder<W> {
    fn thread_exited(&mut self, pid: u32, tid: u32) -> Result<()> {
        if let Some((_, name)) = self.names.remove(&tid) {
            self.forget(&name);
        }
        self.ended(pid, tid, format::ENDED_EXIT)
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        let gone: Vec<u32> = self
            .names
            .iter()
            .filter(|(_, (p, _))| *p == pid)
            .map(|(tid, _)| *tid)
            .collect();
        for tid in gone {
            if let Some((_, name)) = self.names.remove(&tid) {
                self.forget(&name);
            }
        }
        self.ended(pid, old_tid, format::ENDED_EXEC)
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.context(event, source)?;
        let h = &event.header;
        // Strings first: each new one is its own record, before the event.
        let mut refs = [0u64; 2];
        match &event.body {
            Body::Function {
                filename, funcname, ..
            } => {
                refs = [
                    self.string(filename, event, source)?,
                    self.string(funcname, event, source)?,
                ];
            }
            Body::Import { module, .. } => refs[0] = self.string(module, event, source)?,
            Body::Audit(audit) => refs[0] = self.string(&audit.event, event, source)?,
            Body::GcStart { .. } | Body::GcDone { .. } => {}
        }
        let r = &mut self.record;
        r.clear();
        r.push(TAG_EVENT + h.kind as u8);
        format::put_ivarint(r, h.ts_ns.wrapping_sub(self.prev_ts) as i64);
        format::put_uvarint(r, u64::from(h.pid));
        format::put_uvarint(r, u64::from(h.tid));
        format::put_uvarint(r, u64::from(h.cpu));
        format::put_uvarint(r, u64::from(h.flags));
        match &event.body {
            Body::Function { lineno, .. } => {
                format::put_uvarint(r, refs[0]);
                format::put_uvarint(r, refs[1]);
                format::put_ivarint(r, i64::from(*lineno));
            }
            Body::GcStart { generation } => format::put_ivarint(r, i64::from(*generation)),
            Body::GcDone { collected } => format::put_ivarint(r, *collected),
            Body::Import { found, .. } => {
                format::put_uvarint(r, refs[0]);
                r.push(match found {
                    None => 0,
                    Some(false) => 1,
                    Some(true) => 2,
                });
            }
            Body::Audit(audit) => {
                format::put_uvarint(r, refs[0]);
                let args = source.audit_args(event, audit);
                format::put_args(r, args.as_ref());
            }
        }
        self.out.write_all(&self.record)?;
        self.prev_ts = h.ts_ns;
        self.events += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn recovered(&self) -> u64 {
        self.recovery.recovered
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Ref, RefCell};

    use super::*;
    use crate::cpython::objects::{ObjectLayout, PyValue};
    use crate::engine::abi::EventKind;
    use crate::engine::decode::{AuditArgs, AuditRecord, Header, StrRef};
    use crate::engine::session::Session;
    use crate::engine::tasks::TaskNames;
    use crate::recording::read::Reader;

    /// What a live run would tell the recorder, without a session.
    struct Names(RefCell<TaskNames>);

    impl Source for Names {
        fn tasks(&self) -> Ref<'_, TaskNames> {
            self.0.borrow()
        }
        fn recover(&self, _: &mut Recovery, _: &Event<'_>, _: u64) -> Option<Vec<u8>> {
            Some(b"recovered".to_vec())
        }
        fn layout(&self, _: &Event<'_>) -> Option<ObjectLayout> {
            None
        }
        fn session(&self) -> Option<&Session> {
            None
        }
    }

    fn header(kind: EventKind, ts_ns: u64, tid: u32) -> Header {
        Header {
            ts_ns,
            pid: 7,
            tid,
            kind,
            cpu: 1,
            site: 3,
            flags: 0,
        }
    }

    /// A recorder writing to memory, its start metadata empty.
    fn recorder() -> Recorder<Vec<u8>> {
        let start = Meta::Start {
            pytap: "test".into(),
            realtime_ns: 1,
            monotonic_ns: 2,
            target: vec![],
            markers: vec![],
            profile: None,
        };
        Recorder::new(Vec::new(), &start).unwrap()
    }

    fn s(bytes: &[u8], state: StrState) -> RawStr<'_> {
        RawStr {
            bytes,
            at: StrRef::Address(0xdead),
            state,
        }
    }

    #[test]
    fn a_recording_reads_back_as_the_events_written() {
        let names = Names(RefCell::default());
        names.0.borrow_mut().renamed(7, 7, "python3".into());
        names.0.borrow_mut().renamed(7, 8, "worker".into());
        let args = AuditArgs {
            values: vec![PyValue::Str {
                text: "/etc/hosts".into(),
                truncated: false,
            }],
            more: 1,
        };
        let events = [
            Event {
                header: header(EventKind::FunctionEntry, 1000, 7),
                body: Body::Function {
                    filename: s(b"app.py", StrState::Complete),
                    funcname: s(b"main", StrState::Complete),
                    lineno: 3,
                },
            },
            Event {
                // Earlier than the one before (another CPU): a negative delta.
                header: header(EventKind::FunctionEntry, 900, 8),
                body: Body::Function {
                    filename: s(b"app.py", StrState::Complete),
                    funcname: s(b"very_long_na", StrState::Truncated),
                    lineno: -1,
                },
            },
            Event {
                header: header(EventKind::ImportDone, 1500, 7),
                body: Body::Import {
                    module: s(b"", StrState::Unreadable(14)),
                    found: Some(true),
                },
            },
            Event {
                header: header(EventKind::GcDone, 1600, 7),
                body: Body::GcDone { collected: -5 },
            },
            Event {
                header: header(EventKind::Audit, 1700, 8),
                body: Body::Audit(AuditRecord::decoded(
                    s(b"open", StrState::Complete),
                    Some(&args),
                )),
            },
        ];
        let start = Meta::Start {
            pytap: "test".into(),
            realtime_ns: 1,
            monotonic_ns: 2,
            target: vec!["python3".into(), "prog".into()],
            markers: vec!["function__entry".into()],
            profile: None,
        };
        let mut recorder = Recorder::new(Vec::new(), &start).unwrap();
        for e in &events {
            recorder.event(e, &names).unwrap();
        }
        let end = Meta::End {
            events: 5,
            lost: 2,
            malformed: 0,
            reason: "exited".into(),
            status: Some(0),
            signal: None,
            monotonic_ns: 3,
            samples: None,
            without_python: None,
            sampled_ns: None,
        };
        let bytes = recorder.end(&end).unwrap();
        // Each name once: app.py, main, python3, worker, very_long_na,
        // recovered, open.
        assert_eq!(bytes.windows(6).filter(|w| w == b"app.py").count(), 1);

        let mut reader = Reader::new(&bytes[..]).unwrap();
        let mut read = Vec::new();
        while reader.advance().unwrap() {
            let e = reader.event().unwrap();
            let comm = reader
                .names
                .borrow()
                .comm(e.header.pid, e.header.tid)
                .to_string();
            let body = match &e.body {
                Body::Function {
                    filename,
                    funcname,
                    lineno,
                } => format!(
                    "{}:{}:{lineno}:{:?}",
                    String::from_utf8_lossy(filename.bytes),
                    String::from_utf8_lossy(funcname.bytes),
                    funcname.state
                ),
                Body::Import { module, found } => {
                    format!("{}:{found:?}", String::from_utf8_lossy(module.bytes))
                }
                Body::GcDone { collected } => collected.to_string(),
                Body::Audit(a) => format!(
                    "{}:{:?}",
                    String::from_utf8_lossy(a.event.bytes),
                    a.recorded_args()
                ),
                Body::GcStart { .. } => unreachable!(),
            };
            read.push((e.header.ts_ns, e.header.tid, e.header.kind, comm, body));
        }
        assert_eq!(
            read,
            [
                (
                    1000,
                    7,
                    EventKind::FunctionEntry,
                    "python3".into(),
                    "app.py:main:3:Complete".into()
                ),
                (
                    900,
                    8,
                    EventKind::FunctionEntry,
                    "worker".into(),
                    "app.py:very_long_na:-1:Truncated".into()
                ),
                // Unreadable, recovered when recorded.
                (
                    1500,
                    7,
                    EventKind::ImportDone,
                    "python3".into(),
                    "recovered:Some(true)".into()
                ),
                (1600, 7, EventKind::GcDone, "python3".into(), "-5".into()),
                (
                    1700,
                    8,
                    EventKind::Audit,
                    "worker".into(),
                    format!("open:Some(Some({args:?}))")
                ),
            ]
        );
        assert_eq!(reader.start, Some(start));
        assert_eq!(reader.end, Some(end));
        assert!(!reader.cut_short);
        // Cut anywhere, it reads a prefix of the events and says so.
        for cut in 12..bytes.len() {
            let mut reader = Reader::new(&bytes[..cut]).unwrap();
            let mut n = 0;
            while reader.advance().unwrap() {
                n += 1;
            }
            assert!(n <= 5 && reader.cut_short, "cut at {cut}: {n} events");
        }
    }

    #[test]
    fn thread_ends_come_back_before_the_next_event() {
        let names = Names(RefCell::default());
        names.0.borrow_mut().renamed(7, 7, "python3".into());
        names.0.borrow_mut().renamed(7, 8, "worker".into());
        let entry = |ts, tid| Event {
            header: header(EventKind::FunctionEntry, ts, tid),
            body: Body::Function {
                filename: s(b"app.py", StrState::Complete),
                funcname: s(b"f", StrState::Complete),
                lineno: 1,
            },
        };
        let mut recorder = recorder();
        recorder.event(&entry(10, 8), &names).unwrap();
        recorder.thread_exited(7, 8).unwrap();
        recorder.event(&entry(20, 7), &names).unwrap();
        recorder.process_executed(7, 7).unwrap();
        recorder.event(&entry(30, 7), &names).unwrap();
        let bytes = recorder.out;
        assert_eq!(
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
            format::VERSION
        );
        let mut reader = Reader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while reader.advance().unwrap() {
            let ended = std::mem::take(&mut reader.ended);
            seen.push((ended, reader.event().unwrap().header.ts_ns));
        }
        assert_eq!(
            seen,
            [
                (vec![], 10),
                (vec![(7, 8, false)], 20),
                (vec![(7, 7, true)], 30)
            ]
        );
        // The ended thread's name went with it.
        assert_eq!(reader.names.borrow().comm(7, 8), "python3");
    }

    #[test]
    fn ended_threads_names_do_not_stay_in_the_string_table() {
        let names = Names(RefCell::default());
        let mut recorder = recorder();
        let entry = |ts, tid| Event {
            header: header(EventKind::FunctionEntry, ts, tid),
            body: Body::Function {
                filename: s(b"app.py", StrState::Complete),
                funcname: s(b"work", StrState::Complete),
                lineno: 1,
            },
        };
        // 10,000 threads, each with its own name, one event, then its end;
        // the last one takes the name of one that ended.
        for tid in 100..10_100u32 {
            names
                .0
                .borrow_mut()
                .renamed(7, tid, format!("Thread-{tid}"));
            recorder.event(&entry(u64::from(tid), tid), &names).unwrap();
            recorder.thread_exited(7, tid).unwrap();
        }
        names.0.borrow_mut().renamed(7, 20_000, "Thread-100".into());
        recorder.event(&entry(20_000, 20_000), &names).unwrap();
        // The file's name, the function's, the last thread's.
        assert_eq!(recorder.strings.len(), 3);
        let mut reader = Reader::new(&recorder.out[..]).unwrap();
        let mut seen = Vec::new();
        while reader.advance().unwrap() {
            let event = reader.event().unwrap();
            let tid = event.header.tid;
            let Body::Function { funcname, .. } = event.body else {
                panic!("{:?}", event.body)
            };
            assert_eq!(funcname.bytes, b"work");
            seen.push((tid, reader.names.borrow().comm(7, tid).to_string()));
        }
        assert_eq!(seen.len(), 10_001);
        assert_eq!(seen[0], (100, "Thread-100".to_string()));
        assert_eq!(seen[9_999], (10_099, "Thread-10099".to_string()));
        assert_eq!(seen[10_000], (20_000, "Thread-100".to_string()));
    }
}
