//! Reading one agent's ring file: the records written since the last
//! read become [`Event`]s as the markers would have given them (names from
//! the def records, `FLAG_IN_PROCESS`, no CPU); the head and pytap's
//! heartbeat are written back. `pread`/`pwrite` on the file: no mapping,
//! no `unsafe`. A damaged ring stops being read, with the reason.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Result;

use super::ring::{self, AgentState, Record, RingError};
use crate::engine::abi::EventKind;
use crate::engine::abi::{FLAG_IN_PROCESS, NO_SITE};
use crate::engine::decode::{
    AuditArgs, AuditRecord, Body, Event, Header, RawStr, StrRef, StrState,
};
use crate::notice;

/// A process's ring, being read.
#[derive(Debug)]
pub(super) struct Ring {
    pub(super) file: File,
    pub(super) pid: u32,
    data_bytes: u64,
    head: u64,
    beat: u64,
    pub(super) lost: u64,
    /// Code ids to (file name, function name).
    codes: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    /// Set once the ring could not be read further (said once).
    pub(super) broken: bool,
    pub(super) state: AgentState,
}

/// Why a ring stopped being read.
pub(super) enum ReadError {
    /// The consumer failed (the run ends with its error).
    Consumer(anyhow::Error),
    /// The ring is damaged.
    Ring(String),
}

impl Ring {
    /// Opens a ring; `None` while its agent has not written the header.
    pub(super) fn open(path: &Path) -> Result<Option<Ring>, RingError> {
        // O_NOFOLLOW: a ring is a file an agent made, never a link to one.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(pytap_sys::O_NOFOLLOW)
            .open(path)
            .map_err(|_| RingError::Short)?;
        let mut head = [0u8; 68];
        if file.read_at(&mut head, 0).unwrap_or(0) < 68 || head[..8] == [0; 8] {
            return Ok(None);
        }
        let h = ring::header(&head)?;
        if h.callbacks == 2 {
            notice!(
                "pid {}: pytap's compiled callbacks did not load in this interpreter; its agent \
                 records with Python ones, several times slower",
                h.pid
            );
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < ring::HEADER_BYTES + h.data_bytes {
            return Err(RingError::Size(h.data_bytes));
        }
        Ok(Some(Ring {
            file,
            pid: h.pid,
            data_bytes: h.data_bytes,
            head: h.head,
            beat: 0,
            lost: h.lost,
            codes: HashMap::new(),
            broken: false,
            state: h.state,
        }))
    }

    /// Reads what was written since the last time, up to the first event
    /// stamped after `until` (left for the next read); writes the head and
    /// the heartbeat back.
    pub(super) fn read(
        &mut self,
        buf: &mut Vec<u8>,
        until: u64,
        each: &mut dyn FnMut(&Event<'_>) -> Result<()>,
    ) -> Result<u64, ReadError> {
        let mut raw = [0u8; 64];
        self.file
            .read_at(&mut raw, 0)
            .map_err(|e| ReadError::Ring(e.to_string()))?;
        let h = ring::header(&raw).map_err(|e| ReadError::Ring(e.to_string()))?;
        self.lost = h.lost;
        self.state = h.state;
        if h.data_bytes != self.data_bytes {
            return Err(ReadError::Ring("its size changed".into()));
        }
        if h.tail < self.head || h.tail - self.head > self.data_bytes {
            return Err(ReadError::Ring(format!(
                "tail {} and head {} out of step",
                h.tail, self.head
            )));
        }
        let mut count = 0;
        // Records never cross the end, so the new bytes are read as at
        // most two runs: to the end, then from the start.
        while self.head < h.tail {
            let at = self.head % self.data_bytes;
            let run = (h.tail - self.head).min(self.data_bytes - at) as usize;
            buf.resize(run, 0);
            self.file
                .read_exact_at(buf, ring::HEADER_BYTES + at)
                .map_err(|e| ReadError::Ring(e.to_string()))?;
            let mut records = ring::records(buf);
            let mut stopped = None;
            loop {
                let before = records.consumed();
                let Some(record) = records.next() else {
                    break;
                };
                match record.map_err(|e| ReadError::Ring(e.to_string()))? {
                    Record::Def {
                        code,
                        filename,
                        funcname,
                        ..
                    } => {
                        self.codes
                            .insert(code, (filename.to_vec(), funcname.to_vec()));
                    }
                    record if record.ts_ns().is_some_and(|ts| ts > until) => {
                        stopped = Some(before);
                        break;
                    }
                    Record::Event {
                        kind,
                        code,
                        line,
                        ts_ns,
                        tid,
                    } => {
                        let event = self.event(kind, code, line, ts_ns, tid);
                        each(&event).map_err(ReadError::Consumer)?;
                        count += 1;
                    }
                    Record::Mark {
                        kind,
                        value,
                        ts_ns,
                        tid,
                        payload,
                    } => {
                        let audit = match kind {
                            ring::MarkKind::Audit => {
                                Some(ring::audit(payload).ok_or_else(|| {
                                    ReadError::Ring("an audit record that does not decode".into())
                                })?)
                            }
                            _ => None,
                        };
                        let event = self.mark(kind, value, ts_ns, tid, payload, audit.as_ref());
                        each(&event).map_err(ReadError::Consumer)?;
                        count += 1;
                    }
                }
            }
            if let Some(before) = stopped {
                self.head += before as u64;
                break;
            }
            if records.consumed() != run {
                return Err(ReadError::Ring(
                    "a record runs past what was written".into(),
                ));
            }
            self.head += run as u64;
        }
        self.beat += 1;
        self.write_back();
        Ok(count)
    }

    /// Tells the agent how far pytap has read, and that it is alive.
    fn write_back(&self) {
        let mut back = [0u8; 24];
        back[..8].copy_from_slice(&self.head.to_le_bytes());
        // lost (40..48) is the agent's: write head (32) and beat (48) apart.
        let _ = self.file.write_at(&back[..8], ring::HEAD);
        let _ = self.file.write_at(&self.beat.to_le_bytes(), ring::BEAT);
    }

    /// A gc, import or audit record as the marker would have given it
    /// (`audit`: its decoded payload).
    fn mark<'a>(
        &self,
        kind: ring::MarkKind,
        value: i64,
        ts_ns: u64,
        tid: u32,
        payload: &'a [u8],
        audit: Option<&'a (&'a [u8], AuditArgs)>,
    ) -> Event<'a> {
        let carried = |bytes| RawStr {
            bytes,
            at: StrRef::Carried,
            state: StrState::Complete,
        };
        let (kind, body) = match kind {
            ring::MarkKind::GcStart => (
                EventKind::GcStart,
                Body::GcStart {
                    generation: value as i32,
                },
            ),
            ring::MarkKind::GcDone => (EventKind::GcDone, Body::GcDone { collected: value }),
            ring::MarkKind::ImportStart => (
                EventKind::ImportStart,
                Body::Import {
                    module: carried(payload),
                    found: None,
                },
            ),
            ring::MarkKind::ImportDone => (
                EventKind::ImportDone,
                Body::Import {
                    module: carried(payload),
                    found: Some(value != 0),
                },
            ),
            ring::MarkKind::Audit => {
                let (name, args) = match audit {
                    Some((name, args)) => (*name, Some(args)),
                    None => (&b""[..], None),
                };
                (
                    EventKind::Audit,
                    Body::Audit(AuditRecord::decoded(carried(name), args)),
                )
            }
        };
        Event {
            header: Header {
                ts_ns,
                pid: self.pid,
                tid,
                kind,
                cpu: 0,
                site: NO_SITE,
                flags: FLAG_IN_PROCESS,
            },
            body,
        }
    }

    /// An event record as the markers would have given it: the names its
    /// code's def record gave (empty when the def was dropped, the ring
    /// being full), no CPU, no site, flagged in-process.
    fn event(
        &self,
        kind: ring::EventKind,
        code: u32,
        line: i32,
        ts_ns: u64,
        tid: u32,
    ) -> Event<'_> {
        let (filename, funcname) = match self.codes.get(&code) {
            Some((f, n)) => (f.as_slice(), n.as_slice()),
            None => (&b""[..], &b""[..]),
        };
        let name = |bytes| RawStr {
            bytes,
            at: StrRef::Code(code),
            state: StrState::Complete,
        };
        Event {
            header: Header {
                ts_ns,
                pid: self.pid,
                tid,
                kind: match kind {
                    ring::EventKind::Entry => EventKind::FunctionEntry,
                    ring::EventKind::Return => EventKind::FunctionReturn,
                    ring::EventKind::Line => EventKind::Line,
                },
                cpu: 0,
                site: NO_SITE,
                flags: FLAG_IN_PROCESS,
            },
            body: Body::Function {
                filename: name(filename),
                funcname: name(funcname),
                lineno: line,
            },
        }
    }
}
