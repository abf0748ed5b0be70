//! `-i FILE`: a recording replayed into a tool's consumer, the same one a
//! live run feeds, with the tool's markers only. Ticks (`top`'s intervals)
//! are cut by the events' timestamps: the first interval starts at the
//! first event, and every interval boundary an event passes is a tick, so
//! intervals come out in order whatever the replay's speed.

use std::cell::{Cell, Ref, RefCell};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pytap_sys::process::ExitStatus;

use crate::cpython::Marker;
use crate::cpython::objects::ObjectLayout;
use crate::engine::abi::KindMarker;
use crate::engine::consumer::Consumer;
use crate::engine::consumer::End;
use crate::engine::decode::Event;
use crate::engine::recover::Recovery;
use crate::engine::session::Session;
use crate::engine::source::Source;
use crate::engine::tasks::TaskNames;
use crate::recording::format::Meta;
use crate::recording::read::Reader;
use crate::runner::live::Outcome;

/// Interval views shown in a row before the replay skips ahead.
const MAX_EMPTY_VIEWS: u32 = 100_000;

/// What a consumer learns about replayed events: the thread names as of
/// each event (the recording's), and the replay's clock for ticks.
#[derive(Debug)]
pub struct Replayed<'r> {
    names: &'r RefCell<TaskNames>,
    clock: &'r Cell<Option<u64>>,
}

impl Source for Replayed<'_> {
    fn tasks(&self) -> Ref<'_, TaskNames> {
        self.names.borrow()
    }

    fn recover(&self, _: &mut Recovery, _: &Event<'_>, _: u64) -> Option<Vec<u8>> {
        // Recovered when recorded; what stayed unreadable stays so.
        None
    }

    fn layout(&self, _: &Event<'_>) -> Option<ObjectLayout> {
        // Audit arguments were decoded when recorded.
        None
    }

    fn session(&self) -> Option<&Session> {
        None
    }

    fn clock_ns(&self) -> Option<u64> {
        self.clock.get()
    }
}

/// Opens a recording for reading, with a clear error for what is not one.
pub fn open(path: &Path) -> Result<Reader<BufReader<File>>> {
    if !path.exists() && path.to_str().is_some_and(|p| p.parse::<f64>().is_ok()) {
        // `top -i 2` from before -i was a recording everywhere.
        bail!(
            "-i {}: no such recording (-i FILE reads a recording; top's interval is --interval SECONDS)",
            path.display()
        );
    }
    let file = File::open(path).with_context(|| path.display().to_string())?;
    Reader::new(BufReader::with_capacity(1 << 16, file)).with_context(|| path.display().to_string())
}

/// The markers a recording asked for (its `start` metadata).
pub fn recorded_markers(start: Option<&Meta>) -> Option<BTreeSet<Marker>> {
    match start {
        Some(Meta::Start { markers, .. }) => Some(
            markers
                .iter()
                .filter_map(|m| Marker::from_note_name(m))
                .collect(),
        ),
        _ => None,
    }
}

/// The markers the recording at `path` asked for, from its metadata.
pub fn markers_of(path: &Path) -> Result<Option<BTreeSet<Marker>>> {
    let mut reader = open(path)?;
    reader
        .advance()
        .with_context(|| path.display().to_string())?;
    Ok(recorded_markers(reader.start.as_ref()))
}

/// With `strict` (the tool or the user named its markers), a marker the
/// recording did not record is an error.
fn check_markers(
    path: &Path,
    start: Option<&Meta>,
    wanted: &BTreeSet<Marker>,
    strict: bool,
) -> Result<()> {
    let Some(recorded) = recorded_markers(start) else {
        return Ok(());
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|m| !recorded.contains(m))
        .map(|m| m.name())
        .collect();
    if strict && !missing.is_empty() {
        let had: Vec<&str> = recorded.iter().map(|m| m.name()).collect();
        bail!(
            "{} recorded {} only: it has no {} events (record them with -m)",
            path.display(),
            had.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
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
    let mut reader = open(path)?;
    let clock = Cell::new(None);
    let tick_ns = tick.map(|t| (t.as_nanos() as u64).max(1));
    let mut next_tick: Option<u64> = None;
    let mut events = 0u64;
    let mut last_ts = None;
    let mut checked = false;
    let mut stopped = false;
    while reader
        .advance()
        .with_context(|| path.display().to_string())?
    {
        if !checked {
            checked = true;
            check_markers(path, reader.start.as_ref(), markers, strict)?;
        }
        // Threads that ended before this event, in their place.
        for (pid, tid, exec) in std::mem::take(&mut reader.ended) {
            if exec {
                consumer.process_executed(pid, tid)?;
            } else {
                consumer.thread_exited(pid, tid)?;
            }
        }
        let Some(event) = reader.event() else {
            break;
        };
        let source = Replayed {
            names: &reader.names,
            clock: &clock,
        };
        if !markers.contains(&event.header.kind.marker()) {
            continue;
        }
        let ts = event.header.ts_ns;
        if let Some(step) = tick_ns {
            let boundary = next_tick.get_or_insert(ts.saturating_add(step));
            // Every interval passed is a view, as live; past MAX_EMPTY_VIEWS
            // in a row (a timestamp far ahead: a damaged recording) the
            // rest are skipped, so a replay always ends.
            let mut views = 0;
            while ts >= *boundary && views < MAX_EMPTY_VIEWS {
                clock.set(Some(*boundary));
                consumer.before_tick(&source)?;
                consumer.tick(&source)?;
                views += 1;
                *boundary = boundary.saturating_add(step);
            }
            if ts >= *boundary {
                crate::notice!(
                    "{}: a jump of {:.0} s in the recorded time; its empty intervals are not shown",
                    path.display(),
                    (ts - *boundary) as f64 / 1e9
                );
                *boundary = ts.saturating_add(step - (ts - *boundary) % step);
            }
        }
        last_ts = Some(ts);
        consumer.event(&event, &source)?;
        events += 1;
        if consumer.wants_stop() || consumer.exit_requested() {
            stopped = true;
            break;
        }
    }
    if !stopped {
        for (pid, tid, exec) in std::mem::take(&mut reader.ended) {
            if exec {
                consumer.process_executed(pid, tid)?;
            } else {
                consumer.thread_exited(pid, tid)?;
            }
        }
    }
    if !checked {
        check_markers(path, reader.start.as_ref(), markers, strict)?;
    }
    let source = Replayed {
        names: &reader.names,
        clock: &clock,
    };
    clock.set(last_ts.or(next_tick));
    if tick_ns.is_some() {
        consumer.before_tick(&source)?;
        consumer.tick(&source)?;
    }
    consumer.finish(&source)?;
    consumer.flush()?;
    let (lost, malformed, status) = match &reader.end {
        Some(Meta::End {
            lost,
            malformed,
            status,
            signal,
            ..
        }) => (
            *lost,
            *malformed,
            match (status, signal) {
                (_, Some(s)) => Some(ExitStatus::Signal(*s)),
                (Some(c), None) => Some(ExitStatus::Code(*c)),
                (None, None) => None,
            },
        ),
        _ => (0, 0, None),
    };
    if reader.cut_short && !stopped {
        crate::notice!(
            "{} ends early (the recording was cut short): replayed what it holds",
            path.display()
        );
    }
    Ok(Outcome {
        events,
        lost,
        malformed,
        unnamed: 0,
        end: End::Exited { status },
        elapsed: started.elapsed(),
        still_running: None,
    })
}
