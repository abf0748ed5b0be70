//! `pytap record --profile`: the stack sampler's run of `pytap profile`,
//! its [`Profiler`] tapped ([`SampleTap`]) so that every sample it counts
//! is written to a recording as it is counted, its frames as the profiler
//! named them (code objects cannot be read once the program has exited,
//! and a name read later could be another function's), each frame once,
//! and each sampled thread's names where the profiler took them. `pytap
//! profile -i` rebuilds the very profile from it.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Context, Result};

use crate::error::ExitCode;
use crate::model::profile::recorded::recorded_kind;
use crate::model::profile::{Profile, ThreadInfo, ThreadKey};
use crate::output::replace::OutputFile;
use crate::output::sink::Blocks;
use crate::recording::format::{Meta, ProfileMeta};
use crate::recording::write::{Recorder, SampleRecord};
use crate::runner::sampling::{self, SampleEnd, SampleTargets, SamplingOptions};
use crate::tool::profile::{self as profile_tool, Counted, Profiler, SampleTap};

/// The recording being written, shared by the tap and the run that ends it.
struct Recording {
    recorder: Recorder<Blocks>,
    /// Put at its path at the first sample (the target is sampled: a
    /// mistyped one leaves what was there).
    file: OutputFile,
    committed: bool,
}

impl Recording {
    fn commit(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.committed, true) {
            self.file.commit()?;
        }
        Ok(())
    }
}

/// Writes what the profiler counts.
struct Tap {
    recording: Rc<RefCell<Recording>>,
    /// The recording's id of each of the profile's frames written.
    ids: Vec<Option<u32>>,
    frames: Vec<u32>,
}

impl SampleTap for Tap {
    fn sample(&mut self, profile: &Profile, s: &Counted<'_>) -> Result<()> {
        let mut r = self.recording.borrow_mut();
        r.commit()?;
        self.frames.clear();
        // Innermost first, as the profiler interned them: the recording's
        // frame table is in the profile's order of frames.
        for id in s.frames {
            let i = id.0 as usize;
            if i >= self.ids.len() {
                self.ids.resize(i + 1, None);
            }
            let recorded = match self.ids[i] {
                Some(recorded) => recorded,
                None => {
                    let f = profile.frame(*id);
                    let kind = recorded_kind(f.kind);
                    let recorded = r.recorder.frame(&f.function, &f.file, f.line, kind)?;
                    self.ids[i] = Some(recorded);
                    recorded
                }
            };
            self.frames.push(recorded);
        }
        r.recorder.sample(&SampleRecord {
            ts_ns: s.ts_ns,
            pid: s.thread.pid,
            tid: s.thread.tid,
            weight_ns: s.weight_ns,
            truncated: s.truncated,
            frames: &self.frames,
        })
    }

    fn thread(&mut self, thread: ThreadKey, info: &ThreadInfo) -> Result<()> {
        let mut r = self.recording.borrow_mut();
        r.commit()?;
        (r.recorder).sampled_thread(thread.pid, thread.tid, &info.name, &info.process)
    }
}

/// Records the samples of `targets` to `output`.
pub fn run(
    output: &std::path::Path,
    targets: &SampleTargets,
    options: &SamplingOptions,
    target: Vec<String>,
) -> Result<ExitCode> {
    let file = OutputFile::create(output)?;
    let start = Meta::Start {
        pytap: env!("CARGO_PKG_VERSION").into(),
        realtime_ns: pytap_sys::clock::realtime_ns().unwrap_or(0).max(0) as u64,
        monotonic_ns: pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64,
        target,
        markers: Vec::new(),
        profile: Some(ProfileMeta {
            mode: options.mode.name().into(),
            rate_hz: options.rate_hz,
        }),
    };
    let shown = output.display().to_string();
    let recorder = Recorder::new(file.blocks()?, &start).with_context(|| shown.clone())?;
    let recording = Rc::new(RefCell::new(Recording {
        recorder,
        file,
        committed: false,
    }));
    let signals = crate::runner::tool_run::signals()?;
    let mut profiler = Profiler::new(options.mode, options.rate_hz);
    profiler.tap(Box::new(Tap {
        recording: recording.clone(),
        ids: Vec::new(),
        frames: Vec::new(),
    }));
    let outcome = sampling::run(targets, options, &signals, &mut profiler)?;
    profiler.name_threads()?;
    profiler.profile.duration_ns = outcome.elapsed.as_nanos() as u64;
    let without_python = profiler.without_python;
    profile_tool::report(&outcome, &profiler);
    drop(profiler);
    let Ok(recording) = Rc::try_unwrap(recording).map(RefCell::into_inner) else {
        anyhow::bail!("internal: the recording is still shared at the end");
    };
    let Recording {
        recorder, mut file, ..
    } = recording;
    let samples = recorder.samples;
    let end = Meta::End {
        events: 0,
        lost: outcome.lost,
        malformed: outcome.malformed,
        reason: profile_tool::end_reason(&outcome.end),
        status: match outcome.end {
            SampleEnd::Exited(status) => status,
            _ => None,
        },
        signal: None,
        monotonic_ns: pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64,
        samples: Some(samples),
        without_python: Some(without_python),
        sampled_ns: Some(outcome.elapsed.as_nanos() as u64),
    };
    recorder
        .end(&end)
        .and_then(|mut blocks| Ok(blocks.settle()?))
        .with_context(|| shown.clone())?;
    file.commit()?;
    crate::notice!("recorded {samples} samples to {shown}");
    Ok(if outcome.samples == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    })
}
