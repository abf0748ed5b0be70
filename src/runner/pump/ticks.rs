//! How a run is cut into ticks ([`Consumer::tick`]: `top`'s intervals, a
//! script's timers): by wall time live, by the events' timestamps when
//! replaying, so that a replay's intervals come out as the recorded run's
//! whatever the replay's speed.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cpython::objects::ObjectLayout;
use crate::engine::consumer::Consumer;
use crate::engine::decode::Event;
use crate::engine::recover::Recovery;
use crate::engine::session::Session;
use crate::engine::source::Source;
use crate::engine::tasks::TaskNames;

/// Interval views shown in a row before a replay skips ahead.
const MAX_EMPTY_VIEWS: u32 = 100_000;

/// How a run is cut into ticks ([`Consumer::tick`]).
#[derive(Debug, Clone)]
pub enum Ticks {
    /// No ticks.
    None,
    /// Every `every` of wall time (a live run; the driver waits for them).
    Wall {
        /// The interval.
        every: Duration,
        /// When the next is due.
        next: Instant,
    },
    /// Every `every` of the events' time (a replay): the first interval
    /// starts at the first event, and every boundary an event passes is a
    /// tick, so intervals come out in order whatever the replay's speed.
    Recorded {
        /// The interval, in ns.
        every: u64,
        /// The next boundary, once the first event set it.
        next: Option<u64>,
        /// The last event's time.
        last: Option<u64>,
        /// What is replayed (for the notice about a jump in time).
        name: String,
    },
}

impl Ticks {
    /// Ticks every `every` of wall time from now, if any.
    pub fn wall(every: Option<Duration>) -> Ticks {
        every.map_or(Ticks::None, |every| Ticks::Wall {
            every,
            next: Instant::now() + every,
        })
    }

    /// Ticks every `every` of recorded time, if any.
    pub fn recorded(every: Option<Duration>, name: String) -> Ticks {
        every.map_or(Ticks::None, |every| Ticks::Recorded {
            every: (every.as_nanos() as u64).max(1),
            next: None,
            last: None,
            name,
        })
    }

    /// When the next tick is due, if ticks are wall time.
    pub fn next_wall(&self) -> Option<Instant> {
        match self {
            Ticks::Wall { next, .. } => Some(*next),
            _ => None,
        }
    }

    /// Wall time, before a pass: what must happen before a due tick's
    /// last records are read ([`Consumer::before_tick`]).
    pub fn before_tick_if_due(
        &self,
        consumer: &mut dyn Consumer,
        context: &dyn Source,
    ) -> Result<()> {
        if self.next_wall().is_some_and(|at| Instant::now() >= at) {
            consumer.before_tick(context)?;
        }
        Ok(())
    }

    /// Wall time, after a pass: the tick, when due; `true` if it ran.
    pub fn tick_if_due(
        &mut self,
        consumer: &mut dyn Consumer,
        context: &dyn Source,
    ) -> Result<bool> {
        let Ticks::Wall { every, next } = self else {
            return Ok(false);
        };
        if Instant::now() < *next {
            return Ok(false);
        }
        *next += *every;
        consumer.tick(context)?;
        Ok(true)
    }

    /// Recorded time: every interval boundary an event at `ts` passes is
    /// a tick, before the event.
    pub fn passed(
        &mut self,
        ts: u64,
        context: &dyn Source,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        let Ticks::Recorded {
            every,
            next,
            last,
            name,
        } = self
        else {
            return Ok(());
        };
        let boundary = next.get_or_insert(ts.saturating_add(*every));
        // Every interval passed is a view, as live; past MAX_EMPTY_VIEWS
        // in a row (a timestamp far ahead: a damaged recording) the rest
        // are skipped, so a replay always ends.
        let mut views = 0;
        while ts >= *boundary && views < MAX_EMPTY_VIEWS {
            let at = AtClock {
                inner: context,
                now: *boundary,
            };
            consumer.before_tick(&at)?;
            consumer.tick(&at)?;
            views += 1;
            *boundary = boundary.saturating_add(*every);
        }
        if ts >= *boundary {
            crate::notice!(
                "{name}: a jump of {:.0} s in the recorded time; its empty intervals are not shown",
                (ts - *boundary) as f64 / 1e9
            );
            *boundary = ts.saturating_add(*every - (ts - *boundary) % *every);
        }
        *last = Some(ts);
        Ok(())
    }

    /// The last tick, at the end: live, when the run has ticks; replayed,
    /// the interval in progress, at the last event's time.
    pub fn last(&self, consumer: &mut dyn Consumer, context: &dyn Source) -> Result<()> {
        match self {
            Ticks::None => Ok(()),
            Ticks::Wall { .. } => consumer.tick(context),
            Ticks::Recorded { next, last, .. } => match last.or(*next) {
                Some(now) => {
                    let at = AtClock {
                        inner: context,
                        now,
                    };
                    consumer.before_tick(&at)?;
                    consumer.tick(&at)
                }
                None => {
                    consumer.before_tick(context)?;
                    consumer.tick(context)
                }
            },
        }
    }
}

/// A source's context at a replayed tick: the time the replay has reached.
pub(super) struct AtClock<'a> {
    inner: &'a dyn Source,
    now: u64,
}

impl Source for AtClock<'_> {
    fn tasks(&self) -> std::cell::Ref<'_, TaskNames> {
        self.inner.tasks()
    }

    fn recover(&self, recovery: &mut Recovery, event: &Event<'_>, ptr: u64) -> Option<Vec<u8>> {
        self.inner.recover(recovery, event, ptr)
    }

    fn layout(&self, event: &Event<'_>) -> Option<ObjectLayout> {
        self.inner.layout(event)
    }

    fn session(&self) -> Option<&Session> {
        self.inner.session()
    }

    fn clock_ns(&self) -> Option<u64> {
        Some(self.now)
    }
}
