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
use crate::runner::live::Outcome;

pub use super::recorded::open;

/// The markers the recording at `path` asked for, from its metadata.
pub fn markers_of(path: &Path) -> Result<Option<BTreeSet<Marker>>> {
    let mut reader = open(path)?;
    reader
        .advance()
        .with_context(|| path.display().to_string())?;
    Ok(recorded_markers(reader.start.as_ref()))
}

/// Replays `path` into `consumer`: the events of `markers`, in recorded
/// order, with a tick every `tick` of recorded time and once more at the
/// end. With `strict`, a marker the recording did not record is an error.
pub fn run(
    path: &Path,
    consumer: &mut dyn Consumer,
    markers: &BTreeSet<Marker>,
    strict: bool,
    tick: Option<Duration>,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut recorded = Recorded::open(path, markers, strict)?;
    let mut pump = Pump::new(Ticks::recorded(tick, path.display().to_string())).stop_when_asked();
    let pass = pump.pass(&mut [&mut recorded], consumer, u64::MAX, true)?;
    pump.finish(consumer, recorded.context())?;
    if recorded.cut_short() && !pass.stopped {
        crate::notice!(
            "{} ends early (the recording was cut short): replayed what it holds",
            path.display()
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
