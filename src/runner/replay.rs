//! `-i FILE`: a recording replayed into a tool's consumer, the same one a
//! live run feeds, with the tool's markers only: the [`Pump`] over one
//! [`Recorded`] source, with ticks (`top`'s intervals) cut by the events'
//! timestamps. A recording's samples are replayed apart ([`profile`]),
//! into a profile, as the sampler's live driver does not go through the
//! pump either.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::pump::{Pump, Ticks};
use super::recorded::{Recorded, recorded_markers};
use super::source::EventSource;
use crate::cpython::Marker;
use crate::engine::consumer::{Consumer, End};
use crate::model::profile::Profile;
use crate::model::profile::recorded::FromRecording;
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

/// A recording of samples, replayed into a profile ([`profile`]).
#[derive(Debug)]
pub struct ReplayedProfile {
    /// The profile, as the live run's was.
    pub profile: Profile,
    /// Samples of threads that ran no Python, not recorded.
    pub without_python: u64,
    /// Samples the sampler's ring had no room for, when recorded.
    pub lost: u64,
    /// Why the recorded run ended (empty when the recording does not say).
    pub reason: String,
}

/// Replays the samples of the recording at `path` into a profile, as the
/// live profiler built its own: frames as they were named when recorded,
/// threads named where they were, samples in their order.
pub fn profile(path: &Path) -> Result<ReplayedProfile> {
    let shown = path.display().to_string();
    let mut reader = open(path)?;
    let mut rebuilt: Option<FromRecording> = None;
    // The samples' first and last times: a recording cut short has no end
    // to say how long it sampled.
    let mut span = (u64::MAX, 0u64);
    loop {
        let more = reader.advance().with_context(|| shown.clone())?;
        // The start metadata is read by the first advance.
        if rebuilt.is_none() {
            let meta = match &reader.start {
                Some(Meta::Start {
                    profile: Some(meta),
                    ..
                }) => meta,
                _ => bail!(
                    "{shown} holds no samples: it was recorded without --profile (its events \
                     are for flow, top, calls... -i and pytap export; record samples with pytap \
                     record --profile)"
                ),
            };
            rebuilt = Some(FromRecording::new(meta).with_context(|| {
                format!(
                    "{shown}: samples of mode {:?}, which this pytap does not know",
                    meta.mode
                )
            })?);
        }
        let Some(r) = rebuilt.as_mut() else {
            unreachable!("made above")
        };
        for thread in std::mem::take(&mut reader.sampled_threads) {
            r.thread(&thread);
        }
        if !more {
            break;
        }
        if let Some(sample) = reader.sample() {
            r.sample(sample, &reader.frames, &reader.strings);
            span = (span.0.min(sample.ts_ns), span.1.max(sample.ts_ns));
        }
    }
    let mut profile = rebuilt.map(|r| r.profile).unwrap_or_default();
    profile.duration_ns = span.1.saturating_sub(span.0);
    if reader.cut_short {
        crate::notice!("{shown} ends early (the recording was cut short): replayed what it holds");
    }
    let (mut without_python, mut lost, mut reason) = (0, 0, String::new());
    if let Some(Meta::End {
        without_python: w,
        lost: l,
        reason: why,
        sampled_ns,
        ..
    }) = &reader.end
    {
        (without_python, lost, reason) = (w.unwrap_or(0), *l, why.clone());
        if let Some(ns) = sampled_ns {
            profile.duration_ns = *ns;
        }
    }
    Ok(ReplayedProfile {
        profile,
        without_python,
        lost,
        reason,
    })
}
