//! The Perfetto export: Perfetto's native protobuf trace (`Trace`, as
//! ui.perfetto.dev and trace processor read it), written as a stream of
//! `TracePacket`s while the timeline goes, never held whole.
//!
//! Everything is on one packet sequence. Its first packet clears the
//! sequence's incremental state and carries a `ClockSnapshot` making
//! `CLOCK_MONOTONIC` (the recording's clock) the trace's clock, packet
//! defaults with that clock, and the fixed interned names; every later
//! packet needs that state. Names (functions, `import NAME`, audit events)
//! and the file and module strings of annotations are interned the first
//! time they are used, in the packet that uses them. Each process and each
//! thread has a track (a `TrackDescriptor`, written before the thread's
//! first event and again when its name changes); calls, gc collections and
//! imports are `TYPE_SLICE_BEGIN`/`TYPE_SLICE_END` events on their
//! thread's track, audit events `TYPE_INSTANT` ones. Field numbers are
//! those of `perfetto/protos/perfetto/trace/perfetto_trace.proto`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::Result;

use super::protobuf::Encoder;
use crate::model::label;
use crate::model::slice::{Audit, Call, End, Item, Sink, Thread};
use crate::model::stack::Frame;
use crate::recording::StringTable;
use crate::recording::format::UNREADABLE;
use proto::*;

pub(crate) mod proto;

/// Bytes buffered before they are written out.
const FLUSH_AT: usize = 1 << 20;

/// Event name iids: a function name is its string id + 1 (ids are u32, so
/// these stay below `1 << 32`); synthetic names are above.
const GC_IID: u64 = 1 << 33;
const IMPORT_IID: u64 = 2 << 33;
const AUDIT_IID: u64 = 3 << 33;

/// Categories (interned in the first packet).
const CATEGORIES: [&str; 4] = ["python", "gc", "import", "audit"];
const CAT_PYTHON: u64 = 1;
const CAT_GC: u64 = 2;
const CAT_IMPORT: u64 = 3;
const CAT_AUDIT: u64 = 4;

/// Debug annotation names (interned in the first packet); `argN` is
/// `ANN_ARG0 + N`, interned when first used.
const ANNOTATIONS: &str = "file line unfinished generation collected module found stack more";
const ANN_FILE: u64 = 1;
const ANN_LINE: u64 = 2;
const ANN_UNFINISHED: u64 = 3;
const ANN_GENERATION: u64 = 4;
const ANN_COLLECTED: u64 = 5;
const ANN_MODULE: u64 = 6;
const ANN_FOUND: u64 = 7;
const ANN_STACK: u64 = 8;
const ANN_MORE: u64 = 9;
const ANN_ARG0: u64 = 100;

/// Which string ids have been interned. Ids the table does not define all
/// stand for one, [`UNDEFINED`] (whose text is `""`); [`UNREADABLE`] is
/// itself.
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<bool>,
    /// [`UNDEFINED`], [`UNREADABLE`].
    special: [bool; 2],
}

/// What an id the string table does not define is interned as.
const UNDEFINED: u32 = UNREADABLE - 1;

impl Seen {
    /// The id to intern `id` as.
    fn canon(id: u32, strings: &StringTable) -> u32 {
        if strings.has(id) || id == UNREADABLE {
            id
        } else {
            UNDEFINED
        }
    }

    /// Marks `id` (canonical) seen: whether it was not yet.
    fn insert(&mut self, id: u32) -> bool {
        let seen = match id.checked_sub(UNDEFINED) {
            Some(i) => self.special.get_mut(i as usize),
            None => {
                let i = id as usize;
                if i >= self.ids.len() {
                    self.ids.resize(i + 1, false);
                }
                self.ids.get_mut(i)
            }
        };
        seen.is_some_and(|s| !std::mem::replace(s, true))
    }
}

/// A track (a process's or a thread's): its uuid, its name, and whether
/// its descriptor was written.
#[derive(Debug)]
struct Track {
    uuid: u64,
    name: Option<String>,
    written: bool,
}

/// The Perfetto sink: writes to `out` as it goes (buffered by up to a
/// MiB), and flushes at [`Sink::finish`].
#[derive(Debug)]
pub struct PerfettoSink<W: Write> {
    out: W,
    enc: Encoder,
    with_stacks: bool,
    started: bool,
    next_uuid: u64,
    processes: HashMap<u32, Track>,
    threads: HashMap<Thread, Track>,
    /// The last thread an event was on, and its track's uuid.
    last: Option<(Thread, u64)>,
    names: Seen,
    values: Seen,
    imports: Seen,
    audits: HashMap<Box<str>, u64>,
    arg_names: u64,
    scratch: String,
}

impl<W: Write> PerfettoSink<W> {
    /// A sink writing to `out`; with `with_stacks`, gc and import slices
    /// and audit instants carry the Python stack (annotation `stack`).
    pub fn new(out: W, with_stacks: bool) -> Self {
        PerfettoSink {
            out,
            enc: Encoder::new(),
            with_stacks,
            started: false,
            next_uuid: 0,
            processes: HashMap::new(),
            threads: HashMap::new(),
            last: None,
            names: Seen::default(),
            values: Seen::default(),
            imports: Seen::default(),
            audits: HashMap::new(),
            arg_names: 0,
            scratch: String::new(),
        }
    }

    /// The output (call after [`Sink::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The first packet, once: clears the sequence's state, sets the
    /// clock, interns the fixed names.
    fn start(&mut self, ts: u64) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let e = &mut self.enc;
        e.begin(TRACE_PACKET);
        e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
        e.uint(P_SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
        monotonic_clock(e, ts);
        e.begin(P_INTERNED_DATA);
        for (i, name) in CATEGORIES.iter().enumerate() {
            entry(e, I_EVENT_CATEGORIES, i as u64 + 1, name.as_bytes());
        }
        entry(e, I_EVENT_NAMES, GC_IID, b"gc");
        for (i, name) in ANNOTATIONS.split(' ').enumerate() {
            entry(e, I_ANNOTATION_NAMES, i as u64 + 1, name.as_bytes());
        }
        e.end();
        e.end();
    }

    /// Closes the packet; writes the buffer out when it is big enough.
    fn close(&mut self) -> Result<()> {
        self.enc.end();
        if self.enc.len() >= FLUSH_AT && self.enc.depth() == 0 {
            self.out.write_all(self.enc.as_bytes())?;
            self.enc.clear();
        }
        Ok(())
    }

    /// Writes the descriptor of a process (`thread: None`) or a thread.
    fn describe(&mut self, pid: u32, thread: Option<Thread>) -> Result<()> {
        let parent = match thread {
            Some(_) => Some(self.process_track(pid)?),
            None => None,
        };
        let track = match thread {
            Some(t) => self.threads.get_mut(&t),
            None => self.processes.get_mut(&pid),
        };
        let Some(track) = track else {
            return Ok(());
        };
        track.written = true;
        let e = &mut self.enc;
        e.begin(TRACE_PACKET);
        e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
        e.begin(P_TRACK_DESCRIPTOR);
        e.uint(TD_UUID, track.uuid);
        match (parent, thread) {
            (Some(parent), Some(t)) => {
                e.uint(TD_PARENT_UUID, parent);
                e.begin(TD_THREAD);
                e.int(THD_PID, i64::from(t.pid as i32));
                e.int(THD_TID, i64::from(t.tid as i32));
                if let Some(name) = &track.name {
                    e.string(THD_NAME, name);
                }
            }
            _ => {
                e.begin(TD_PROCESS);
                e.int(PD_PID, i64::from(pid as i32));
                if let Some(name) = &track.name {
                    e.string(PD_NAME, name);
                }
            }
        }
        e.end();
        e.end();
        self.close()
    }

    /// The process's track uuid, described first if it was not.
    fn process_track(&mut self, pid: u32) -> Result<u64> {
        let p = track_of(&mut self.processes, &mut self.next_uuid, pid);
        let (uuid, written) = (p.uuid, p.written);
        if !written {
            self.describe(pid, None)?;
        }
        Ok(uuid)
    }

    /// The thread's track uuid for an event at `ts`, described first if it
    /// was not.
    fn track(&mut self, thread: Thread, ts: u64) -> Result<u64> {
        self.start(ts);
        if let Some((t, uuid)) = self.last
            && t == thread
        {
            return Ok(uuid);
        }
        let t = track_of(&mut self.threads, &mut self.next_uuid, thread);
        let (uuid, written) = (t.uuid, t.written);
        if !written {
            self.describe(thread.pid, Some(thread))?;
        }
        self.last = Some((thread, uuid));
        Ok(uuid)
    }

    /// The `stack` annotation (the calls of `stack`, innermost first, one
    /// `funcname (file:line)` a line), when stacks are wanted.
    fn stack_annotation(&mut self, stack: &[Frame<Item>], strings: &StringTable) {
        if !self.with_stacks {
            return;
        }
        self.scratch.clear();
        for frame in stack.iter().rev() {
            if let Item::Call(c) = &frame.func {
                if !self.scratch.is_empty() {
                    self.scratch.push('\n');
                }
                let (func, file) = (strings.get(c.funcname), strings.get(c.filename));
                self.scratch
                    .push_str(&label::call_site(func, file, c.lineno));
            }
        }
        string_annotation(&mut self.enc, ANN_STACK, &self.scratch);
    }

    /// A call's begin event.
    fn begin_call(&mut self, at: (u64, u64, u64), c: &Call, strings: &StringTable) {
        let func = Seen::canon(c.funcname, strings);
        let file = Seen::canon(c.filename, strings);
        let (func_iid, file_iid) = (u64::from(func) + 1, u64::from(file) + 1);
        let name = self
            .names
            .insert(func)
            .then(|| (func_iid, strings.get(func).as_bytes()));
        let value = self
            .values
            .insert(file)
            .then(|| (file_iid, strings.get(file).as_bytes()));
        let e = &mut self.enc;
        open_event(e, at, name, value);
        e.uint(TE_CATEGORY_IIDS, CAT_PYTHON);
        e.uint(TE_NAME_IID, func_iid);
        annotation(e, ANN_FILE, DA_STRING_IID, file_iid);
        annotation(e, ANN_LINE, DA_INT, i64::from(c.lineno) as u64);
    }

    /// An import's begin event.
    fn begin_import(&mut self, at: (u64, u64, u64), module: u32, strings: &StringTable) {
        let module = Seen::canon(module, strings);
        let (name_iid, value_iid) = (IMPORT_IID + u64::from(module), u64::from(module) + 1);
        let text = strings.get(module);
        let new_name = self.imports.insert(module);
        if new_name {
            self.scratch.clear();
            let name = label::slice(&Item::Import { module }, strings, label::Style::Viewer);
            self.scratch.push_str(&name);
        }
        let name = new_name.then_some((name_iid, self.scratch.as_bytes()));
        let value = self
            .values
            .insert(module)
            .then_some((value_iid, text.as_bytes()));
        let e = &mut self.enc;
        open_event(e, at, name, value);
        e.uint(TE_CATEGORY_IIDS, CAT_IMPORT);
        e.uint(TE_NAME_IID, name_iid);
        annotation(e, ANN_MODULE, DA_STRING_IID, value_iid);
    }
}

/// The track of `key` in `tracks`, created (not yet described) if new.
fn track_of<'a, K: std::hash::Hash + Eq>(
    tracks: &'a mut HashMap<K, Track>,
    next_uuid: &mut u64,
    key: K,
) -> &'a mut Track {
    tracks.entry(key).or_insert_with(|| {
        *next_uuid += 1;
        Track {
            uuid: *next_uuid,
            name: None,
            written: false,
        }
    })
}

impl<W: Write> Sink for PerfettoSink<W> {
    fn process(&mut self, pid: u32, name: &str) -> Result<()> {
        let p = track_of(&mut self.processes, &mut self.next_uuid, pid);
        if p.name.as_deref() != Some(name) {
            p.name = Some(name.to_owned());
            if p.written {
                self.describe(pid, None)?;
            }
        }
        Ok(())
    }

    fn thread(&mut self, thread: Thread, name: &str) -> Result<()> {
        let t = track_of(&mut self.threads, &mut self.next_uuid, thread);
        if t.name.as_deref() != Some(name) {
            t.name = Some(name.to_owned());
            if t.written {
                self.describe(thread.pid, Some(thread))?;
            }
        }
        Ok(())
    }

    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()> {
        let at = (ts_ns, self.track(thread, ts_ns)?, TYPE_SLICE_BEGIN);
        match stack.last().map(|f| &f.func) {
            Some(Item::Call(c)) => self.begin_call(at, c, strings),
            Some(&Item::Gc { generation }) => {
                let e = &mut self.enc;
                open_event(e, at, None, None);
                e.uint(TE_CATEGORY_IIDS, CAT_GC);
                e.uint(TE_NAME_IID, GC_IID);
                annotation(e, ANN_GENERATION, DA_INT, i64::from(generation) as u64);
                self.stack_annotation(stack, strings);
            }
            Some(&Item::Import { module }) => {
                self.begin_import(at, module, strings);
                self.stack_annotation(stack, strings);
            }
            // Nothing to name it by: the slice still begins, so ends pair.
            None => open_event(&mut self.enc, at, None, None),
        }
        self.enc.end();
        self.close()
    }

    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        _stack: &[Frame<Item>],
        how: &End,
        _strings: &StringTable,
    ) -> Result<()> {
        let at = (ts_ns, self.track(thread, ts_ns)?, TYPE_SLICE_END);
        let e = &mut self.enc;
        open_event(e, at, None, None);
        match *how {
            End::Returned => {}
            End::Collected(n) => annotation(e, ANN_COLLECTED, DA_INT, n as u64),
            End::Imported(found) => annotation(e, ANN_FOUND, DA_BOOL, u64::from(found)),
            End::Unfinished => annotation(e, ANN_UNFINISHED, DA_BOOL, 1),
        }
        e.end();
        self.close()
    }

    fn audit(
        &mut self,
        audit: &Audit<'_>,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()> {
        let Audit {
            thread,
            ts_ns,
            event,
            args,
        } = *audit;
        let at = (ts_ns, self.track(thread, ts_ns)?, TYPE_INSTANT);
        let new_name = !self.audits.contains_key(event);
        if new_name {
            let iid = AUDIT_IID + self.audits.len() as u64;
            self.audits.insert(event.into(), iid);
        }
        let iid = self.audits.get(event).copied().unwrap_or(AUDIT_IID);
        let values = args.map_or(&[][..], |a| &a.values[..]);
        let new_args = self.arg_names..values.len() as u64;
        let e = &mut self.enc;
        open_packet(e, Some(ts_ns));
        if new_name || !new_args.is_empty() {
            e.begin(P_INTERNED_DATA);
            if new_name {
                entry(e, I_EVENT_NAMES, iid, event.as_bytes());
            }
            for i in new_args {
                self.scratch.clear();
                let _ = write!(self.scratch, "arg{i}");
                entry(e, I_ANNOTATION_NAMES, ANN_ARG0 + i, self.scratch.as_bytes());
                self.arg_names = i + 1;
            }
            e.end();
        }
        e.begin(P_TRACK_EVENT);
        e.uint(TE_TYPE, at.2);
        e.uint(TE_TRACK_UUID, at.1);
        e.uint(TE_CATEGORY_IIDS, CAT_AUDIT);
        e.uint(TE_NAME_IID, iid);
        for (i, v) in values.iter().enumerate() {
            self.scratch.clear();
            let _ = write!(self.scratch, "{v}");
            string_annotation(&mut self.enc, ANN_ARG0 + i as u64, &self.scratch);
        }
        if let Some(a) = args.filter(|a| a.more > 0) {
            annotation(&mut self.enc, ANN_MORE, DA_UINT, a.more as u64);
        }
        self.stack_annotation(stack, strings);
        self.enc.end();
        self.close()
    }

    fn finish(&mut self, _strings: &StringTable) -> Result<()> {
        self.start(0);
        // Processes and threads that were named but had no event.
        let mut pids: Vec<u32> = (self.processes.iter())
            .filter_map(|(&pid, p)| (!p.written).then_some(pid))
            .collect();
        pids.sort_unstable();
        for pid in pids {
            self.describe(pid, None)?;
        }
        let mut threads: Vec<Thread> = (self.threads.iter())
            .filter_map(|(&t, track)| (!track.written).then_some(t))
            .collect();
        threads.sort_unstable();
        for thread in threads {
            self.describe(thread.pid, Some(thread))?;
        }
        self.out.write_all(self.enc.as_bytes())?;
        self.enc.clear();
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "perfetto_tests.rs"]
mod tests;
