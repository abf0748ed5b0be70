//! The one event loop's body, over every [`EventSource`]: each pass reads
//! the sources, merges them by timestamp, and hands every item to the
//! [`Consumer`] in its place (task records applied where they happened,
//! a script's records offered first, lean records named, output flushed
//! while events keep coming), and cuts the run into ticks: by wall time
//! live, by the events' timestamps when replaying. The drivers only say
//! when a pass is due: [`super::live`] when the kernel wakes it, [`super::replay`]
//! until the recording ends.
//!
//! **The merge.** Alone, a source's items are delivered as they are read,
//! nothing copied. Merged, the sources that hand out records (the
//! kernel's rings) are read first and their records held back, copied once
//! into one buffer; then the one source of borrowed events (the in-process
//! capture) is read up to `cutoff`, a time every earlier item of every
//! source has been read by, and before each of its events the held records
//! of the same process stamped earlier are delivered; last, the held
//! records up to `cutoff`. Later ones wait for the next pass. Only the
//! order within a process matters: each thread's events reach the
//! consumer in the order they happened.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

mod held;
mod ticks;

use held::Held;
pub use ticks::Ticks;

use super::source::{EventSource, Item};
use crate::engine::consumer::Consumer;
use crate::engine::decode::{self, Event, TaskKind, TaskRecord};
use crate::engine::names::SentNames;
use crate::engine::source::Source;

/// How long a consumer's buffered output may wait while events keep
/// arriving (it is flushed too whenever the loop goes idle).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Items delivered between two looks at the flush clock.
const FLUSH_CHECK_EVERY: u32 = 1024;

/// What one pass saw that its driver acts on.
#[derive(Debug, Default)]
pub struct Pass {
    /// Processes whose exec a task record told (a run by pid may end).
    pub execs: Vec<u32>,
    /// The consumer asked to stop (only with [`Pump::stop_when_asked`]).
    pub stopped: bool,
}

/// The loop's state across passes.
#[derive(Debug)]
pub struct Pump {
    events: u64,
    malformed: u64,
    /// Names of the function records sent without them.
    names: SentNames,
    last_flush: Option<Instant>,
    since_flush_check: u32,
    /// Records held back for a merge.
    held: Held,
    ticks: Ticks,
    stop_when_asked: bool,
    pass: Pass,
}

impl Pump {
    /// A loop cut into `ticks`.
    pub fn new(ticks: Ticks) -> Pump {
        Pump {
            events: 0,
            malformed: 0,
            names: SentNames::default(),
            last_flush: None,
            since_flush_check: 0,
            held: Held::default(),
            ticks,
            stop_when_asked: false,
            pass: Pass::default(),
        }
    }

    /// Stops reading at the event after which the consumer asks to stop
    /// (a replay; live, what the rings hold is still delivered once the
    /// probes are gone).
    pub fn stop_when_asked(mut self) -> Pump {
        self.stop_when_asked = true;
        self
    }

    /// Events delivered.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Records that did not decode.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Lean records that no full record had named.
    pub fn unnamed(&self) -> u64 {
        self.names.unnamed.get()
    }

    /// One pass: every source read up to `until` (or everything, `last`),
    /// merged, delivered.
    pub fn pass(
        &mut self,
        sources: &mut [&mut dyn EventSource],
        consumer: &mut dyn Consumer,
        until: u64,
        last: bool,
    ) -> Result<Pass> {
        let borrowed: Vec<usize> = (0..sources.len())
            .filter(|&i| !sources[i].hands_out_records())
            .collect();
        ensure!(
            borrowed.len() <= 1,
            "internal: two sources of borrowed events cannot be merged"
        );
        if let [source] = sources {
            // Alone: delivered as read, nothing copied.
            source.read(until, last, &mut |item, context| {
                self.deliver(item, context, consumer)
            })?;
        } else {
            self.merge(sources, borrowed.first().copied(), consumer, until, last)?;
        }
        self.last_flush = Some(Instant::now());
        Ok(std::mem::take(&mut self.pass))
    }

    /// [`Pump::pass`] over several sources (see the module's doc).
    fn merge(
        &mut self,
        sources: &mut [&mut dyn EventSource],
        borrowed: Option<usize>,
        consumer: &mut dyn Consumer,
        until: u64,
        last: bool,
    ) -> Result<()> {
        let mut held = std::mem::take(&mut self.held);
        let mut cutoff = until;
        let mut holding = 0;
        for (index, source) in sources.iter_mut().enumerate() {
            if Some(index) == borrowed {
                continue;
            }
            source.read(until, last, &mut |item, context| {
                self.hold(index, item, context, consumer, &mut held)
            })?;
            cutoff = cutoff.min(source.settled_before());
            holding += 1;
        }
        if holding > 1 {
            // Each source's records are in order; together they are not.
            held.sort_by_time();
        }
        let (before, rest) = sources.split_at_mut(borrowed.unwrap_or(sources.len()));
        let (streamed, after) = match rest.split_first_mut() {
            Some((streamed, after)) => (Some(streamed), after),
            None => (None, rest),
        };
        // Each held record's context, by the index of its source.
        let contexts: Vec<Option<&dyn Source>> = before
            .iter()
            .map(|s| Some(s.context()))
            .chain(borrowed.map(|_| None))
            .chain(after.iter().map(|s| Some(s.context())))
            .collect();
        if let Some(streamed) = streamed {
            streamed.read(cutoff, last, &mut |item, context| {
                if let Item::Event(event) = &item {
                    // This process's held records from before it, first.
                    let (pid, ts) = (event.header.pid, event.header.ts_ns);
                    self.deliver_held(&mut held, &contexts, Some(pid), ts, consumer)?;
                }
                self.deliver(item, context, consumer)
            })?;
        }
        self.deliver_held(&mut held, &contexts, None, cutoff, consumer)?;
        held.compact();
        self.held = held;
        Ok(())
    }

    /// A record read for a merge: a script's record the consumer takes at
    /// once, anything else waits in `held`.
    fn hold(
        &mut self,
        index: usize,
        item: Item<'_>,
        context: &dyn Source,
        consumer: &mut dyn Consumer,
        held: &mut Held,
    ) -> Result<ControlFlow<()>> {
        let Item::Record(record) = item else {
            return self.deliver(item, context, consumer);
        };
        match decode::task(record) {
            Some(Ok(task)) => {
                if task.kind == TaskKind::Exec {
                    self.pass.execs.push(task.pid);
                }
                // A task record waits its turn like the others: what it
                // ends must come after the thread's last events.
                held.push(index, record);
            }
            Some(Err(_)) => self.malformed += 1,
            None if consumer.record(record, context)? => self.events += 1,
            None => held.push(index, record),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Delivers the held records up to `until` (of process `pid` only,
    /// when given), in order.
    fn deliver_held(
        &mut self,
        held: &mut Held,
        contexts: &[Option<&dyn Source>],
        pid: Option<u32>,
        until: u64,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        let damaged = held.deliver_due(pid, until, &mut |record, source| {
            let Some(context) = contexts.get(source).copied().flatten() else {
                bail!("internal: a held record without the source it came from");
            };
            match decode::task(record) {
                Some(Ok(task)) => self.apply_task(&task, context, consumer),
                _ => self.deliver_event_record(record, context, consumer),
            }
        })?;
        self.malformed += damaged;
        Ok(())
    }

    /// One item, in its place.
    fn deliver(
        &mut self,
        item: Item<'_>,
        context: &dyn Source,
        consumer: &mut dyn Consumer,
    ) -> Result<ControlFlow<()>> {
        match item {
            Item::Record(record) => match decode::task(record) {
                Some(Ok(task)) => {
                    if task.kind == TaskKind::Exec {
                        self.pass.execs.push(task.pid);
                    }
                    self.apply_task(&task, context, consumer)?;
                    return Ok(ControlFlow::Continue(()));
                }
                Some(Err(_)) => {
                    self.malformed += 1;
                    return Ok(ControlFlow::Continue(()));
                }
                None if consumer.record(record, context)? => self.events += 1,
                None => self.deliver_event_record(record, context, consumer)?,
            },
            Item::Event(event) => self.deliver_event(event, context, consumer)?,
            Item::Stack(record) => {
                match crate::engine::samples::decode(record) {
                    Ok(sample) => consumer.stack(&sample, context)?,
                    Err(_) => self.malformed += 1,
                }
                return Ok(ControlFlow::Continue(()));
            }
            Item::StacksDrained(before) => {
                consumer.stacks_drained(before)?;
                return Ok(ControlFlow::Continue(()));
            }
            Item::Ended { pid, tid, exec } => {
                if exec {
                    consumer.process_executed(pid, tid)?;
                } else {
                    consumer.thread_exited(pid, tid)?;
                }
                return Ok(ControlFlow::Continue(()));
            }
        }
        self.flush_if_due(consumer)?;
        if self.stop_when_asked && (consumer.wants_stop() || consumer.exit_requested()) {
            self.pass.stopped = true;
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// A probe's event record, decoded and named.
    fn deliver_event_record(
        &mut self,
        record: &[u8],
        context: &dyn Source,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        match decode::decode(record) {
            Ok(event) => {
                self.events += 1;
                self.ticks.passed(event.header.ts_ns, context, consumer)?;
                let event = self.names.resolve(event);
                consumer.event(&event, context)
            }
            Err(_) => {
                self.malformed += 1;
                Ok(())
            }
        }
    }

    /// A decoded event.
    fn deliver_event(
        &mut self,
        event: &Event<'_>,
        context: &dyn Source,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        self.events += 1;
        self.ticks.passed(event.header.ts_ns, context, consumer)?;
        consumer.event(event, context)
    }

    /// What a task record tells, applied in its place among the events: a
    /// name, an exec (the process's old names and pointers mean nothing
    /// now, and its frames are gone), a thread's end (what was kept for it
    /// goes). Task records come from a live session's rings.
    fn apply_task(
        &mut self,
        task: &TaskRecord,
        context: &dyn Source,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        let comm = task.comm.clone().unwrap_or_default();
        if let Some(session) = context.session() {
            let mut names = session.tasks.borrow_mut();
            match task.kind {
                TaskKind::Rename => names.renamed(task.pid, task.tid, comm),
                TaskKind::Exec => names.executed(task.pid, comm),
                TaskKind::Exit => names.exited(task.pid, task.tid),
            }
        }
        match task.kind {
            TaskKind::Rename => Ok(()),
            TaskKind::Exec => {
                self.names.executed(task.pid);
                consumer.process_executed(task.pid, task.old_tid)
            }
            TaskKind::Exit => consumer.thread_exited(task.pid, task.tid),
        }
    }

    /// Flushes the consumer's output at least every [`FLUSH_EVERY`].
    fn flush_if_due(&mut self, consumer: &mut dyn Consumer) -> Result<()> {
        self.since_flush_check += 1;
        if self.since_flush_check < FLUSH_CHECK_EVERY {
            return Ok(());
        }
        self.since_flush_check = 0;
        if self.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY) {
            self.last_flush = Some(Instant::now());
            consumer.flush()?;
        }
        Ok(())
    }

    /// When the next wall-time tick is due, if ticks are wall time.
    pub fn next_wall_tick(&self) -> Option<Instant> {
        self.ticks.next_wall()
    }

    /// Live, before a pass: what must happen before a due tick's last
    /// records are read ([`Consumer::before_tick`]).
    pub fn before_wall_tick(
        &self,
        consumer: &mut dyn Consumer,
        context: &dyn Source,
    ) -> Result<()> {
        self.ticks.before_tick_if_due(consumer, context)
    }

    /// Live, after a pass: the tick, when due; `true` if it ran.
    pub fn wall_tick(&mut self, consumer: &mut dyn Consumer, context: &dyn Source) -> Result<bool> {
        self.ticks.tick_if_due(consumer, context)
    }

    /// The end: the last tick, then [`Consumer::finish`] and a flush.
    pub fn finish(&mut self, consumer: &mut dyn Consumer, context: &dyn Source) -> Result<()> {
        self.ticks.last(consumer, context)?;
        consumer.finish(context)?;
        consumer.flush()
    }
}

#[cfg(test)]
mod tests;
