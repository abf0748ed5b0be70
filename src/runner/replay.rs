//! `-i FILE`: a recording replayed into a tool's consumer, the same one a
//! live run feeds, with the tool's markers only: the [`Pump`] over one
//! [`Recorded`] source, with ticks (`top`'s intervals) cut by the events'
//! timestamps.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::pump::{Pump, Ticks};
use super::recorded::{Recorded, recorded_markers};
use super::source::EventSource;
use crate::cpython::Marker;
use crate::engine::consumer::{Consumer, End};
use crate::recording::format::Meta;
use crate::runner::live::Outcome;

pub use super::recorded::open;

/// The `start` metadata of the recording at `path` (what it traced, its
/// markers), read before the events.
pub fn start_of(path: &Path) -> Result<Option<Meta>> {
    let mut reader = open(path)?;
    reader
        .advance()
        .with_context(|| path.display().to_string())?;
    Ok(reader.start)
}

/// The markers the recording at `path` asked for, from its metadata.
pub fn markers_of(path: &Path) -> Result<Option<BTreeSet<Marker>>> {
    Ok(recorded_markers(start_of(path)?.as_ref()))
}

/// What a replay hands its consumer.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    /// The events of these markers.
    pub markers: &'a BTreeSet<Marker>,
    /// A marker the recording did not record is an error (the tool or the
    /// user named its markers).
    pub strict: bool,
    /// A tick every this much recorded time, and once more at the end.
    pub tick: Option<Duration>,
    /// What is done with it, for the notice about a recording cut short
    /// (`replayed`, `exported`).
    pub done: &'static str,
}

/// Replays `path` into `consumer` in recorded order.
pub fn run(path: &Path, consumer: &mut dyn Consumer, replay: &Replay<'_>) -> Result<Outcome> {
    let started = Instant::now();
    let mut recorded = Recorded::open(path, replay.markers, replay.strict)?;
    let ticks = Ticks::recorded(replay.tick, path.display().to_string());
    let mut pump = Pump::new(ticks).stop_when_asked();
    let pass = pump.pass(&mut [&mut recorded], consumer, u64::MAX, true)?;
    pump.finish(consumer, recorded.context())?;
    if recorded.cut_short() && !pass.stopped {
        crate::notice!(
            "{} ends early (the recording was cut short): {} what it holds",
            path.display(),
            replay.done
        );
    }
    let end = recorded.end();
    Ok(Outcome {
        events: pump.events(),
        lost: end.lost,
        malformed: end.malformed,
        unnamed: 0,
        end: End::Exited { status: end.status },
        elapsed: started.elapsed(),
        still_running: None,
    })
}
