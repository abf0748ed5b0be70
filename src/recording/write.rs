//! `pytap record`'s consumer: every event, as the ABI decodes it, appended
//! to a recording ([`super::format`]) as it arrives.
//!
//! What a live view would look up at the event's moment is stored with it:
//! strings the probe could not read are recovered from the binary now (it
//! may be gone when the recording is read), audit arguments are decoded
//! with the target's layout now, and a thread's name is written before its
//! first event and again whenever it changes. Each string is written once;
//! events refer to it by id.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use super::format::{self, Meta, TAG_EVENT, TAG_META, TAG_NAME, TAG_STRING};
use crate::engine::decode::{Body, Event, RawStr, StrState};
use crate::engine::recover::Recovery;
use crate::engine::run::Consumer;
use crate::engine::source::Source;

/// Writes a recording.
pub struct Recorder<W: Write> {
    out: W,
    /// The record being built (reused).
    record: Vec<u8>,
    strings: HashMap<Box<[u8]>, u32>,
    prev_ts: u64,
    /// Each thread's name as last written.
    names: HashMap<u32, (u32, Box<str>)>,
    /// Processes whose modules were written.
    processes: HashMap<u32, ()>,
    recovery: Recovery,
    /// Events written.
    pub events: u64,
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
            prev_ts: 0,
            names: HashMap::new(),
            processes: HashMap::new(),
            recovery: Recovery::default(),
            events: 0,
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
        let id = self.strings.len() as u32;
        let mut rec = Vec::with_capacity(bytes.len() + 4);
        rec.push(TAG_STRING);
        format::put_bytes(&mut rec, bytes);
        self.out.write_all(&rec)?;
        self.strings.insert(bytes.into(), id);
        Ok(id)
    }

    /// A string reference, recovering an unreadable string from the binary.
    fn string(&mut self, raw: &RawStr<'_>, event: &Event<'_>, source: &dyn Source) -> Result<u64> {
        if let StrState::Unreadable(_) = raw.state
            && let Some(bytes) = source.recover(&mut self.recovery, event, raw.ptr)
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
        if let Some(comm) = changed {
            let id = self.intern(comm.as_bytes())?;
            self.record.clear();
            self.record.push(TAG_NAME);
            format::put_uvarint(&mut self.record, u64::from(pid));
            format::put_uvarint(&mut self.record, u64::from(tid));
            format::put_uvarint(&mut self.record, u64::from(id));
            self.out.write_all(&self.record)?;
            self.names.insert(tid, (pid, comm.into()));
        }
        if self.processes.insert(pid, ()).is_none()
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

impl<W: Write> Consumer for Recorder<W> {
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
