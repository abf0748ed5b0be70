//! A recording's events as a timeline of nested slices per thread, fed to
//! an export [`Sink`] (pure: events in, sink calls out).
//!
//! One stack per thread holds the open calls, gc collections and imports
//! together, so that whatever a format draws nests by construction. The
//! repairs are those of [`crate::model::stack`], which `flow` and `calls`
//! use: a return matches the innermost open frame of its function; frames
//! above it never returned and end with it, flagged [`End::Unfinished`]; a
//! return with no such frame (its entry came before the recording
//! started) is dropped and counted. A gc collection's end matches the
//! innermost open collection and an import's end the innermost import of
//! the same module, by the same rule. 3.15's generator-creation entries
//! (no frame runs) are left out, as `flow` leaves them out. What is still
//! open at the end closes at its thread's last timestamp, flagged.
//!
//! A thread's stack holds at most [`MAX_DEPTH`] slices (CPython's own
//! recursion limit is 1000 unless raised): deeper ones are left out and
//! counted, each taking the next end on its thread with it, so that a
//! damaged or hostile recording cannot make the exports quadratic.

use std::collections::HashMap;

use anyhow::Result;

use super::slice::{Audit, Call, End, Item, Sink, Thread};
use crate::engine::abi::EventKind;
use crate::engine::decode::{Body, Event, RawStr};
use crate::engine::tasks::TaskNames;
use crate::model::stack::{self, Returned, Stacks};
use crate::recording::StringTable;
use crate::recording::format::UNREADABLE;

/// What the timeline did with the events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimelineStats {
    /// Calls (function slices), the unfinished ones included.
    pub calls: u64,
    /// gc collections.
    pub collections: u64,
    /// Imports.
    pub imports: u64,
    /// Audit events.
    pub audits: u64,
    /// Slices closed at the end or when a frame below them returned.
    pub unfinished: u64,
    /// Ends (returns, gc ends, import ends) whose start came before the
    /// recording: dropped.
    pub dropped_ends: u64,
    /// 3.15 generator creations, left out.
    pub creations: u64,
    /// `line` events (not part of a timeline).
    pub lines: u64,
    /// Slices deeper than [`MAX_DEPTH`], left out.
    pub too_deep: u64,
}

/// The most slices open at once on a thread.
pub const MAX_DEPTH: usize = 4096;

/// Turns events into sink calls.
pub struct Timeline<'s> {
    sink: &'s mut dyn Sink,
    stacks: Stacks<Item>,
    /// Each thread's process and last timestamp.
    threads: HashMap<u32, (u32, u64)>,
    /// The names last given to the sink, by tid and by pid.
    thread_names: HashMap<u32, String>,
    process_names: HashMap<u32, String>,
    /// Per thread: slices begun beyond [`MAX_DEPTH`] and not ended yet.
    beyond: HashMap<u32, u64>,
    stats: TimelineStats,
}

impl std::fmt::Debug for Timeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The string id a replayed string carries (in place of its pointer).
fn id_of(s: &RawStr<'_>) -> u32 {
    s.at.table_id().unwrap_or(UNREADABLE)
}

impl<'s> Timeline<'s> {
    /// A timeline feeding `sink`.
    pub fn new(sink: &'s mut dyn Sink) -> Timeline<'s> {
        Timeline {
            sink,
            stacks: Stacks::default(),
            threads: HashMap::new(),
            thread_names: HashMap::new(),
            process_names: HashMap::new(),
            beyond: HashMap::new(),
            stats: TimelineStats::default(),
        }
    }

    /// One replayed event (its strings' pointers are string ids), with the
    /// thread names as of this event.
    pub fn event(
        &mut self,
        event: &Event<'_>,
        names: &TaskNames,
        strings: &StringTable,
    ) -> Result<()> {
        let h = &event.header;
        let thread = Thread {
            pid: h.pid,
            tid: h.tid,
        };
        self.names(thread, names)?;
        self.threads.insert(h.tid, (h.pid, h.ts_ns));
        let ts = h.ts_ns;
        match (&event.body, h.kind) {
            (
                Body::Function {
                    filename,
                    funcname,
                    lineno,
                },
                EventKind::FunctionEntry | EventKind::FunctionReturn,
            ) => {
                let call = Call {
                    funcname: id_of(funcname),
                    filename: id_of(filename),
                    lineno: *lineno,
                };
                if h.kind == EventKind::FunctionReturn {
                    // A return carries the line it returns from, not the
                    // `def` line: frames match by file and function, as
                    // `flow` matches them.
                    return self.close(thread, ts, End::Returned, strings, |i| {
                        matches!(i, Item::Call(c)
                            if c.funcname == call.funcname && c.filename == call.filename)
                    });
                }
                if stack::is_creation(h) {
                    self.stats.creations += 1;
                    return Ok(());
                }
                self.stats.calls += 1;
                self.open(thread, ts, Item::Call(call), *lineno, strings)
            }
            (Body::Function { .. }, _) => {
                self.stats.lines += 1;
                Ok(())
            }
            (Body::GcStart { generation }, _) => {
                self.stats.collections += 1;
                let item = Item::Gc {
                    generation: *generation,
                };
                self.open(thread, ts, item, 0, strings)
            }
            (Body::GcDone { collected }, _) => {
                let how = End::Collected(*collected);
                self.close(thread, ts, how, strings, |i| matches!(i, Item::Gc { .. }))
            }
            (Body::Import { module, found }, _) => {
                let module = id_of(module);
                match found {
                    None => {
                        self.stats.imports += 1;
                        self.open(thread, ts, Item::Import { module }, 0, strings)
                    }
                    Some(found) => {
                        let how = End::Imported(*found);
                        self.close(thread, ts, how, strings, |i| *i == Item::Import { module })
                    }
                }
            }
            (Body::Audit(audit), _) => {
                self.stats.audits += 1;
                let name = strings.get(id_of(&audit.event));
                let stack = self.stacks.frames(h.tid);
                let args = audit.recorded_args().flatten();
                let audit = Audit {
                    thread,
                    ts_ns: ts,
                    event: name,
                    args,
                };
                self.sink.audit(&audit, stack, strings)
            }
        }
    }

    fn names(&mut self, thread: Thread, names: &TaskNames) -> Result<()> {
        if let Some(process) = names.process(thread.pid)
            && self.process_names.get(&thread.pid).map(String::as_str) != Some(process)
        {
            self.process_names.insert(thread.pid, process.to_string());
            self.sink.process(thread.pid, process)?;
        }
        let comm = names.comm(thread.pid, thread.tid);
        if self.thread_names.get(&thread.tid).map(String::as_str) != Some(comm) {
            self.thread_names.insert(thread.tid, comm.to_string());
            self.sink.thread(thread, comm)?;
        }
        Ok(())
    }

    fn open(
        &mut self,
        thread: Thread,
        ts: u64,
        item: Item,
        line: i32,
        strings: &StringTable,
    ) -> Result<()> {
        if self.stacks.depth(thread.tid) >= MAX_DEPTH {
            self.stats.too_deep += 1;
            *self.beyond.entry(thread.tid).or_default() += 1;
            return Ok(());
        }
        self.stacks.enter(thread.tid, item, line, ts);
        let stack = self.stacks.frames(thread.tid);
        self.sink.begin(thread, ts, stack, strings)
    }

    /// Ends the innermost open slice `matches` accepts, and the slices
    /// above it first (unfinished); a close with no such slice is dropped.
    fn close(
        &mut self,
        thread: Thread,
        ts: u64,
        how: End,
        strings: &StringTable,
        matches: impl Fn(&Item) -> bool,
    ) -> Result<()> {
        if let Some(n) = self.beyond.get_mut(&thread.tid).filter(|n| **n > 0) {
            // The innermost slice left out ends.
            *n -= 1;
            return Ok(());
        }
        let Some(at) = self.stacks.innermost(thread.tid, &matches) else {
            self.stats.dropped_ends += 1;
            return Ok(());
        };
        let stack = self.stacks.frames(thread.tid);
        for top in (at + 1..stack.len()).rev() {
            self.stats.unfinished += 1;
            self.sink
                .end(thread, ts, &stack[..=top], &End::Unfinished, strings)?;
        }
        self.sink.end(thread, ts, &stack[..=at], &how, strings)?;
        let returned = self.stacks.ret_matching(thread.tid, matches, ts);
        debug_assert!(matches!(returned, Returned::Matched { .. }));
        Ok(())
    }

    /// Ends what is still open, each thread at its last timestamp, and
    /// lets the sink write the rest.
    pub fn finish(mut self, strings: &StringTable) -> Result<TimelineStats> {
        let mut threads: Vec<u32> = self.threads.keys().copied().collect();
        threads.sort_unstable();
        for tid in threads {
            self.thread_ended(tid, strings)?;
        }
        self.sink.finish(strings)?;
        Ok(self.stats)
    }

    /// Thread `tid` ended (or its process executed another program): its
    /// slices still open end unfinished at its last event, and a thread
    /// that reuses its id starts afresh.
    pub fn thread_ended(&mut self, tid: u32, strings: &StringTable) -> Result<()> {
        let Some((pid, last)) = self.threads.remove(&tid) else {
            return Ok(());
        };
        let thread = Thread { pid, tid };
        let stack = self.stacks.frames(tid);
        for top in (0..stack.len()).rev() {
            self.stats.unfinished += 1;
            self.sink
                .end(thread, last, &stack[..=top], &End::Unfinished, strings)?;
        }
        self.stacks.forget(tid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::abi::FLAG_GENERATOR_CREATION;
    use crate::engine::decode::{Header, StrRef, StrState};
    use crate::model::stack::Frame;

    /// Writes each sink call as a line.
    #[derive(Default)]
    struct Log(Vec<String>);

    fn top(stack: &[Frame<Item>], strings: &StringTable) -> String {
        match &stack.last().unwrap().func {
            Item::Call(c) => strings.get(c.funcname).to_string(),
            Item::Gc { generation } => format!("gc{generation}"),
            Item::Import { module } => format!("import {}", strings.get(*module)),
        }
    }

    impl Sink for Log {
        fn thread(&mut self, t: Thread, name: &str) -> Result<()> {
            self.0.push(format!("thread {} {name}", t.tid));
            Ok(())
        }
        fn begin(
            &mut self,
            t: Thread,
            ts: u64,
            stack: &[Frame<Item>],
            s: &StringTable,
        ) -> Result<()> {
            self.0.push(format!(
                "{ts} {} B {} @{}",
                t.tid,
                top(stack, s),
                stack.len() - 1
            ));
            Ok(())
        }
        fn end(
            &mut self,
            t: Thread,
            ts: u64,
            stack: &[Frame<Item>],
            how: &End,
            s: &StringTable,
        ) -> Result<()> {
            self.0
                .push(format!("{ts} {} E {} {how:?}", t.tid, top(stack, s)));
            Ok(())
        }
        fn audit(&mut self, a: &Audit<'_>, stack: &[Frame<Item>], _: &StringTable) -> Result<()> {
            self.0.push(format!(
                "{} {} audit {} depth {}",
                a.ts_ns,
                a.thread.tid,
                a.event,
                stack.len()
            ));
            Ok(())
        }
        fn finish(&mut self, _: &StringTable) -> Result<()> {
            self.0.push("finish".into());
            Ok(())
        }
    }

    fn raw(id: u32) -> RawStr<'static> {
        RawStr {
            bytes: b"",
            at: StrRef::Table(id),
            state: StrState::Complete,
        }
    }

    fn event(kind: EventKind, ts: u64, tid: u32, body: Body<'static>) -> Event<'static> {
        Event {
            header: Header {
                ts_ns: ts,
                pid: 1,
                tid,
                kind,
                cpu: 0,
                site: 0,
                flags: 0,
            },
            body,
        }
    }

    fn func(kind: EventKind, ts: u64, tid: u32, name: u32, lineno: i32) -> Event<'static> {
        let body = Body::Function {
            filename: raw(0),
            funcname: raw(name),
            lineno,
        };
        event(kind, ts, tid, body)
    }

    #[test]
    fn slices_nest_and_what_does_not_pair_is_repaired() {
        let mut strings = StringTable::default();
        for s in ["app.py", "main", "f", "g", "gen", "json"] {
            strings.push(s.as_bytes());
        }
        let mut names = TaskNames::default();
        names.renamed(1, 1, "python".into());
        let (entry, ret) = (EventKind::FunctionEntry, EventKind::FunctionReturn);
        let mut creation = func(entry, 35, 1, 4, 9);
        creation.header.flags = FLAG_GENERATOR_CREATION;
        let events = [
            // A return whose entry came before the recording.
            func(ret, 5, 1, 3, 7),
            func(entry, 10, 1, 1, 1),
            func(entry, 20, 1, 2, 2),
            event(EventKind::GcStart, 25, 1, Body::GcStart { generation: 2 }),
            event(EventKind::GcDone, 30, 1, Body::GcDone { collected: 4 }),
            creation,
            // g never returns; f's return (from another line) ends it.
            func(entry, 40, 1, 3, 5),
            func(ret, 50, 1, 2, 3),
            event(
                EventKind::ImportStart,
                60,
                1,
                Body::Import {
                    module: raw(5),
                    found: None,
                },
            ),
            // main stays open: closed at the thread's last timestamp.
            event(
                EventKind::ImportDone,
                70,
                1,
                Body::Import {
                    module: raw(5),
                    found: Some(true),
                },
            ),
        ];
        let mut log = Log::default();
        let mut timeline = Timeline::new(&mut log);
        for e in &events {
            timeline.event(e, &names, &strings).unwrap();
        }
        let stats = timeline.finish(&strings).unwrap();
        assert_eq!(
            log.0,
            [
                "thread 1 python",
                "10 1 B main @0",
                "20 1 B f @1",
                "25 1 B gc2 @2",
                "30 1 E gc2 Collected(4)",
                "40 1 B g @2",
                "50 1 E g Unfinished",
                "50 1 E f Returned",
                "60 1 B import json @1",
                "70 1 E import json Imported(true)",
                "70 1 E main Unfinished",
                "finish",
            ]
        );
        assert_eq!(
            stats,
            TimelineStats {
                calls: 3,
                collections: 1,
                imports: 1,
                audits: 0,
                unfinished: 2,
                dropped_ends: 1,
                creations: 1,
                lines: 0,
                too_deep: 0,
            }
        );
    }

    #[test]
    fn slices_beyond_the_depth_limit_are_left_out_with_their_ends() {
        let mut strings = StringTable::default();
        strings.push(b"app.py");
        strings.push(b"fib");
        let names = TaskNames::default();
        let mut log = Log::default();
        let mut timeline = Timeline::new(&mut log);
        let deep = MAX_DEPTH as u64 + 3;
        for ts in 0..deep {
            let e = func(EventKind::FunctionEntry, ts, 1, 1, 1);
            timeline.event(&e, &names, &strings).unwrap();
        }
        for ts in deep..2 * deep {
            let e = func(EventKind::FunctionReturn, ts, 1, 1, 2);
            timeline.event(&e, &names, &strings).unwrap();
        }
        let stats = timeline.finish(&strings).unwrap();
        assert_eq!(
            (stats.too_deep, stats.unfinished, stats.dropped_ends),
            (3, 0, 0)
        );
        let begins = log.0.iter().filter(|l| l.contains(" B ")).count();
        let ends = log.0.iter().filter(|l| l.ends_with("Returned")).count();
        assert_eq!((begins, ends), (MAX_DEPTH, MAX_DEPTH));
        // The outermost call ends last, at the last return.
        assert_eq!(
            log.0[log.0.len() - 2],
            format!("{} 1 E fib Returned", 2 * deep - 1)
        );
    }
}
