//! The [`Timeline`] as a [`Consumer`]: any run's events, live or replayed,
//! become nested slices for an export sink. Their strings are interned in
//! the feed's own table (by their bytes: a recording's table has one id
//! per distinct string, so a replayed export draws exactly what the
//! recording's ids would; a live one names a function once however many
//! addresses its names have), unreadable ones read from the binary where
//! the run is live, and audit arguments decoded as the views decode them.

use std::collections::HashMap;

use anyhow::Result;

use super::timeline::{Timeline, TimelineStats};
use crate::engine::consumer::Consumer;
use crate::engine::decode::{AuditRecord, Body, Event, RawStr, StrRef, StrState};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;
use crate::recording::StringTable;
use crate::recording::format::UNREADABLE;

/// Strings by id, each distinct string once.
#[derive(Debug, Default)]
struct Interned {
    table: StringTable,
    ids: HashMap<Box<[u8]>, u32>,
}

impl Interned {
    /// The id of `bytes`, added if new.
    fn id(&mut self, bytes: &[u8]) -> u32 {
        if let Some(id) = self.ids.get(bytes) {
            return *id;
        }
        let id = self.table.push(bytes);
        self.ids.insert(bytes.into(), id);
        id
    }
}

/// Feeds a [`Timeline`] from a run.
pub struct TimelineFeed<'s> {
    timeline: Option<Timeline<'s>>,
    strings: Interned,
    recovery: Recovery,
    stats: Option<TimelineStats>,
}

impl std::fmt::Debug for TimelineFeed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimelineFeed")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'s> TimelineFeed<'s> {
    /// A feed into `timeline`.
    pub fn new(timeline: Timeline<'s>) -> TimelineFeed<'s> {
        TimelineFeed {
            timeline: Some(timeline),
            strings: Interned::default(),
            recovery: Recovery::default(),
            stats: None,
        }
    }

    /// What the timeline did, once the run has finished.
    pub fn stats(&self) -> Option<&TimelineStats> {
        self.stats.as_ref()
    }

    /// `raw` as an id of the feed's table: unreadable strings are read
    /// from the binary where they can be, or stay `<unreadable>`.
    fn intern(
        &mut self,
        raw: &RawStr<'_>,
        event: &Event<'_>,
        source: &dyn Source,
    ) -> RawStr<'static> {
        let id = match raw.state {
            StrState::Unreadable(_) => raw
                .at
                .address()
                .and_then(|at| source.recover(&mut self.recovery, event, at))
                .map_or(UNREADABLE, |bytes| self.strings.id(&bytes)),
            _ => self.strings.id(raw.bytes),
        };
        RawStr {
            bytes: b"",
            at: StrRef::Table(id),
            state: raw.state,
        }
    }
}

impl Consumer for TimelineFeed<'_> {
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let args;
        let body = match &event.body {
            Body::Function {
                filename,
                funcname,
                lineno,
            } => Body::Function {
                filename: self.intern(filename, event, source),
                funcname: self.intern(funcname, event, source),
                lineno: *lineno,
            },
            Body::Import { module, found } => Body::Import {
                module: self.intern(module, event, source),
                found: *found,
            },
            Body::Audit(audit) => {
                args = source.audit_args(event, audit);
                Body::Audit(AuditRecord::decoded(
                    self.intern(&audit.event, event, source),
                    args.as_ref(),
                ))
            }
            other => other.clone(),
        };
        let interned = Event {
            header: event.header,
            body,
        };
        let Some(timeline) = &mut self.timeline else {
            return Ok(());
        };
        timeline.event(&interned, &source.tasks(), &self.strings.table)
    }

    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        match &mut self.timeline {
            Some(timeline) => timeline.thread_ended(tid, &self.strings.table),
            None => Ok(()),
        }
    }

    /// Every frame of the old program is gone: its main thread's (now the
    /// process's id) and those of the thread that executed.
    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        let Some(timeline) = &mut self.timeline else {
            return Ok(());
        };
        timeline.thread_ended(pid, &self.strings.table)?;
        if old_tid != pid {
            timeline.thread_ended(old_tid, &self.strings.table)?;
        }
        Ok(())
    }

    fn finish(&mut self, _source: &dyn Source) -> Result<()> {
        if let Some(timeline) = self.timeline.take() {
            self.stats = Some(timeline.finish(&self.strings.table)?);
        }
        Ok(())
    }

    fn describe(&self, events: u64) -> String {
        format!("{events} events")
    }
}
