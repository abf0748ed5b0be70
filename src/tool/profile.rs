//! `pytap profile`: where a Python program spends its time, by sampling
//! its stacks in the kernel (`codegen::pystack`) at a rate, on every
//! CPython 3.8–3.15 with or without markers, nothing run in the target.
//!
//! [`Profiler`] is the samples' consumer: it names each frame from the
//! process's memory (code objects cached by address and checked by the
//! fingerprint the kernel read, so a frame is never given another
//! function's name; what cannot be named shows as unknown and is
//! counted), counts the stacks in a [`Profile`], and at the end writes the
//! output asked for: the top table, or a file in a profile format. With
//! `-i FILE` the profile is a recording's samples replayed
//! ([`crate::runner::replay::profile`]), and the output is the one the
//! live run would have written; `pytap record --profile` taps the
//! profiler ([`SampleTap`]) to write those samples.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use pytap_abi::sample::{
    FLAG_FAULT, FLAG_NO_THREAD, FLAG_TRUNCATED, MAX_NATIVE, NativeEntry, SampleFrame,
};

use crate::cpython::stack::code::Symbols;
use crate::cpython::stack::sampled::{self, MixedFrame, NativeLike, SampledFrame, Unknown};
use crate::cpython::stack::walk::RawThread;
use crate::cpython::stack::{Memory, code};
use crate::engine::consumer::SampleConsumer;
use crate::engine::samples::RawSample;
use crate::error::ExitCode;
use crate::export::profile::{self as formats, ProfileFormat};
use crate::model::profile::{Frame, FrameId, FrameKind, Mode, Profile, ThreadInfo, ThreadKey};
use crate::process::native::{self, NativeFrame, NativeSymbols};
use crate::process::proc;
use crate::process::python::Interpreter;
use crate::runner::sampling::{self, SampleEnd, SampleOutcome, SampleTargets, SamplingOptions};

/// What `pytap profile` was asked.
#[derive(Debug, Clone)]
pub struct ProfileRequest {
    /// A recording of samples to read instead of sampling `targets`.
    pub input: Option<std::path::PathBuf>,
    /// What to sample.
    pub targets: SampleTargets,
    /// How.
    pub options: SamplingOptions,
    /// What to write; `None`: the top table.
    pub format: Option<ProfileFormat>,
    /// Rows of the top table.
    pub top_rows: usize,
    /// Redraw the top table every second (stdout is a terminal).
    pub live: bool,
}

/// What is told of every sample counted, as it is counted, besides the
/// profile (`pytap record --profile` writes each one to a recording: its
/// frames are named now, while their code objects can still be read).
pub trait SampleTap {
    /// A sample of `thread` with `frames` (innermost first, ids of
    /// `profile`), weighing `weight_ns`, taken at `ts_ns`; `truncated`:
    /// its stack was cut at the depth limit.
    fn sample(&mut self, profile: &Profile, sample: &Counted<'_>) -> Result<()>;

    /// `thread` is named `info` from here on.
    fn thread(&mut self, thread: ThreadKey, info: &ThreadInfo) -> Result<()>;
}

/// A sample as counted ([`SampleTap::sample`]).
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    /// Its thread.
    pub thread: ThreadKey,
    /// Its frames, innermost first.
    pub frames: &'a [FrameId],
    /// What it weighs.
    pub weight_ns: u64,
    /// When it was taken (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Its stack was cut at the depth limit.
    pub truncated: bool,
}

/// A native frame and the lowest address of its stack area.
#[derive(Debug, Clone)]
struct Placed(NativeFrame, u64);

impl NativeLike for Placed {
    fn stack(&self) -> u64 {
        self.1
    }

    fn is_eval(&self) -> Option<bool> {
        (self.0.function.as_deref()).map(|f| f.starts_with("_PyEval_EvalFrameDefault"))
    }
}

/// Names frames and counts stacks.
pub struct Profiler {
    /// The profile so far.
    pub profile: Profile,
    symbols: HashMap<u32, Symbols>,
    period_ns: u64,
    /// Samples of threads that run no Python (native threads).
    pub without_python: u64,
    frames: Vec<FrameId>,
    named: Vec<SampledFrame>,
    tap: Option<Box<dyn SampleTap>>,
    /// Native frames, per process: `None` for an interpreter built without
    /// frame pointers (its samples keep their Python frames only).
    natives: HashMap<u32, Option<NativeSymbols>>,
    /// Samples whose native stack did not agree with the Python one (shown
    /// with Python frames only).
    pub native_refused: u64,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("samples", &self.profile.samples())
            .field("without_python", &self.without_python)
            .field("tapped", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

impl Profiler {
    /// A profiler of samples taken at `rate_hz`.
    pub fn new(mode: Mode, rate_hz: u32) -> Profiler {
        Profiler {
            profile: Profile::new(mode, rate_hz),
            symbols: HashMap::new(),
            period_ns: 1_000_000_000 / u64::from(rate_hz.max(1)),
            without_python: 0,
            frames: Vec::new(),
            named: Vec::new(),
            tap: None,
            natives: HashMap::new(),
            native_refused: 0,
        }
    }

    /// Tells `tap` of every sample counted and every thread named from now
    /// on.
    pub fn tap(&mut self, tap: Box<dyn SampleTap>) {
        self.tap = Some(tap);
    }

    /// Names `thread`, and tells the tap.
    fn name_thread(&mut self, thread: ThreadKey, info: ThreadInfo) -> Result<()> {
        if let Some(tap) = &mut self.tap {
            tap.thread(thread, &info)?;
        }
        self.profile.name_thread(thread, info);
        Ok(())
    }

    /// Names `frames` (innermost first, then what `flags` say was not
    /// read) into `self.frames`, with the `native` stack mixed in when
    /// there is one.
    fn name_frames(
        &mut self,
        interpreter: &Interpreter,
        frames: &[SampleFrame],
        flags: u16,
        native: &[NativeEntry],
    ) {
        let mem = interpreter.memory();
        let symbols = self.symbols.entry(interpreter.process.pid).or_default();
        sampled::name_frames(
            symbols,
            &mem,
            &interpreter.runtime,
            frames,
            flags,
            &mut self.named,
        );
        if !native.is_empty() && self.mix_native(interpreter, native) {
            return;
        }
        self.frames.clear();
        for i in 0..self.named.len() {
            let frame = self.named[i].clone();
            if let Some(id) = self.python_frame(&frame) {
                self.frames.push(id);
            }
        }
    }

    fn python_frame(&mut self, frame: &SampledFrame) -> Option<FrameId> {
        let frame = match frame {
            SampledFrame::Code { code, line } => Frame {
                function: code.function().clone(),
                file: code.filename.clone(),
                line: *line,
                kind: FrameKind::Python,
            },
            SampledFrame::Unknown(why) => {
                if *why == Unknown::PastLimit {
                    self.profile.truncated += 1;
                }
                Frame {
                    function: Arc::from(why.label()),
                    file: Arc::from(""),
                    line: 0,
                    kind: FrameKind::Unknown,
                }
            }
            SampledFrame::Boundary(_) => return None,
        };
        Some(self.profile.intern(frame))
    }

    /// Mixes the native stack into `self.frames` from `self.named`; false
    /// when the process's interpreter has no frame pointers or the stacks
    /// disagree.
    fn mix_native(&mut self, interpreter: &Interpreter, native: &[NativeEntry]) -> bool {
        let pid = interpreter.process.pid;
        let symbols = self.natives.entry(pid).or_insert_with(|| {
            if native::has_frame_pointers(&interpreter.module) {
                Some(NativeSymbols::new(pid))
            } else {
                crate::notice!(
                    "{}: built without frame pointers, so its native stack cannot be \
                     unwound: its samples show Python frames only",
                    interpreter.module.path.display()
                );
                None
            }
        });
        let Some(symbols) = symbols else {
            return false;
        };
        let addresses: Vec<u64> = native.iter().map(|e| e.address).collect();
        let named: Vec<Placed> = symbols
            .name(&addresses)
            .into_iter()
            .zip(native)
            .map(|(frame, e)| Placed(frame, e.stack))
            .collect();
        // Cut where the walk left the mapped code, or at the kernel's limit.
        let complete = named.len() < native.len() || native.len() < MAX_NATIVE;
        let per_frame = interpreter.runtime.layout.minor <= 10;
        let Some(mixed) = sampled::mix(&self.named, &named, per_frame, complete) else {
            self.native_refused += 1;
            return false;
        };
        self.frames.clear();
        for frame in mixed {
            let id = match frame {
                MixedFrame::Python(f) => self.python_frame(&f),
                MixedFrame::Native(Placed(n, _)) => Some(self.profile.intern(Frame {
                    function: Arc::from(n.label()),
                    file: n.file.clone(),
                    line: 0,
                    kind: FrameKind::Native,
                })),
            };
            self.frames.extend(id);
        }
        true
    }

    fn count(&mut self, pid: u32, tid: u32, flags: u16, weight_ns: u64, ts_ns: u64) -> Result<()> {
        let frames = std::mem::take(&mut self.frames);
        let key = ThreadKey { pid, tid };
        if self.profile.thread(key).is_none() {
            // Named when first seen: a thread (or the whole program) may be
            // gone by the end.
            let comm = |t: u32| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default()
            };
            let info = ThreadInfo {
                name: comm(tid),
                process: comm(pid),
            };
            self.name_thread(key, info)?;
        }
        self.profile.add(key, &frames, weight_ns, ts_ns);
        let told = match &mut self.tap {
            Some(tap) => tap.sample(
                &self.profile,
                &Counted {
                    thread: key,
                    frames: &frames,
                    weight_ns,
                    ts_ns,
                    truncated: flags & FLAG_TRUNCATED != 0,
                },
            ),
            None => Ok(()),
        };
        self.frames = frames;
        told
    }

    /// Names the threads seen, from `/proc` (threads gone keep no name).
    pub fn name_threads(&mut self) -> Result<()> {
        let keys: Vec<ThreadKey> = self.profile.threads().map(|(k, _)| *k).collect();
        let mut by_pid: HashMap<u32, Vec<(u32, String)>> = HashMap::new();
        for key in keys {
            if self.profile.thread(key).is_some_and(|t| !t.name.is_empty()) {
                continue;
            }
            let names = by_pid
                .entry(key.pid)
                .or_insert_with(|| proc::thread_names(key.pid));
            let process = names
                .iter()
                .find(|(t, _)| *t == key.pid)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            if let Some((_, name)) = names.iter().find(|(t, _)| *t == key.tid) {
                let info = ThreadInfo {
                    name: name.clone(),
                    process,
                };
                self.name_thread(key, info)?;
            }
        }
        Ok(())
    }
}

impl SampleConsumer for Profiler {
    fn sample(&mut self, sample: &RawSample, interpreter: &Interpreter) -> Result<()> {
        let h = &sample.header;
        if h.flags & FLAG_NO_THREAD != 0 || (sample.frames.is_empty() && h.tstate == 0) {
            self.without_python += 1;
            return Ok(());
        }
        self.name_frames(interpreter, &sample.frames, h.flags, &sample.native);
        self.count(h.pid, h.tid, h.flags, self.period_ns, h.ts_ns)
    }

    fn wall_sample(
        &mut self,
        thread: &RawThread,
        tid: Option<u32>,
        interpreter: &Interpreter,
        period: Duration,
    ) -> Result<()> {
        let mem = interpreter.memory();
        let rt = &interpreter.runtime;
        let frames: Vec<SampleFrame> = thread
            .frames
            .iter()
            .map(|f| {
                let fingerprint = code::identity(&mem as &dyn Memory, &rt.layout, f.code)
                    .map_or(0, code::fingerprint);
                SampleFrame {
                    code: f.code,
                    offset: rt.layout.byte_offset(f.position, f.code) as i32,
                    fingerprint,
                }
            })
            .collect();
        let mut flags = 0;
        if thread.truncated {
            flags |= FLAG_TRUNCATED;
        }
        if thread.error.is_some() {
            flags |= FLAG_FAULT;
        }
        self.name_frames(interpreter, &frames, flags, &[]);
        let tid = tid.unwrap_or(thread.thread_id as u32);
        // Read now, on the clock the kernel's samples are stamped with.
        let now = pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64;
        self.count(
            interpreter.process.pid,
            tid,
            flags,
            period.as_nanos() as u64,
            now,
        )
    }
}

/// The live view: the top table since the start, redrawn at each tick
/// (the terminal's width and height permitting).
struct LiveTop<'a> {
    profiler: Profiler,
    out: &'a mut dyn Write,
    rows: usize,
}

impl SampleConsumer for LiveTop<'_> {
    fn sample(&mut self, sample: &RawSample, interpreter: &Interpreter) -> Result<()> {
        self.profiler.sample(sample, interpreter)
    }

    fn wall_sample(
        &mut self,
        thread: &RawThread,
        tid: Option<u32>,
        interpreter: &Interpreter,
        period: Duration,
    ) -> Result<()> {
        self.profiler.wall_sample(thread, tid, interpreter, period)
    }

    fn tick(&mut self) -> Result<()> {
        let p = &self.profiler.profile;
        let lines =
            crate::output::profile::top_lines(p, crate::output::fit::terminal_width(), self.rows);
        // Home and clear, then the table: a redraw, not a scroll.
        write!(self.out, "\x1b[H\x1b[2J")?;
        writeln!(
            self.out,
            "pytap profile: {} samples ({} mode, {} Hz), Ctrl-C stops\n",
            p.samples(),
            p.mode.name(),
            p.rate_hz
        )?;
        for line in lines {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Writes the output asked for: a profile format, or the top table.
fn write_output(request: &ProfileRequest, profile: &Profile, out: &mut dyn Write) -> Result<()> {
    match request.format {
        Some(format) => formats::write(profile, format, "pytap profile", out)?,
        None => {
            for line in crate::output::profile::top_lines(profile, None, request.top_rows) {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `pytap profile -i FILE`: the recording's samples, written as the live
/// run would have written them.
fn replay(
    input: &std::path::Path,
    request: &ProfileRequest,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let replayed = crate::runner::replay::profile(input)?;
    let p = &replayed.profile;
    write_output(request, p, out)?;
    let why = match replayed.reason.as_str() {
        "" => String::new(),
        reason => format!("; recorded until {reason}"),
    };
    crate::notice!(
        "{} samples in {:.1} s at {} Hz ({} mode), {} lost, {} of threads without Python, \
         {} unknown frames, {} stacks past the depth limit{why}",
        p.samples(),
        p.duration_ns as f64 / 1e9,
        p.rate_hz,
        p.mode.name(),
        replayed.lost,
        replayed.without_python,
        p.unknown_frames,
        p.truncated,
    );
    // As live: samples of threads without Python are samples taken.
    Ok(if p.samples() + replayed.without_python == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    })
}

/// Runs `pytap profile`, writing to `out`.
pub fn run(request: &ProfileRequest, out: &mut dyn Write) -> Result<ExitCode> {
    if let Some(input) = &request.input {
        return replay(input, request, out);
    }
    let signals = crate::runner::tool_run::signals()?;
    let profiler = Profiler::new(request.options.mode, request.options.rate_hz);
    let (outcome, mut profiler) = if request.live && request.format.is_none() {
        let mut options = request.options.clone();
        options.tick = Some(Duration::from_secs(1));
        let mut live = LiveTop {
            profiler,
            out: &mut *out,
            rows: request.top_rows,
        };
        let outcome = sampling::run(&request.targets, &options, &signals, &mut live)?;
        write!(live.out, "\x1b[H\x1b[2J")?;
        (outcome, live.profiler)
    } else {
        let mut profiler = profiler;
        let outcome = sampling::run(&request.targets, &request.options, &signals, &mut profiler)?;
        (outcome, profiler)
    };
    profiler.name_threads()?;
    profiler.profile.duration_ns = outcome.elapsed.as_nanos() as u64;
    write_output(request, &profiler.profile, out)?;
    report(&outcome, &profiler);
    Ok(if outcome.samples == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    })
}

/// Why a sampling run ended, as the summary says it.
pub fn end_reason(end: &SampleEnd) -> String {
    match end {
        SampleEnd::Exited(Some(code)) => format!("the program exited with status {code}"),
        SampleEnd::Exited(None) => "the program exited".to_string(),
        SampleEnd::Signal(s) => format!("stopped by {}", pytap_sys::signal::name(*s)),
        SampleEnd::Duration => "the duration elapsed".to_string(),
    }
}

/// The summary on stderr.
pub fn report(outcome: &SampleOutcome, profiler: &Profiler) {
    let p = &profiler.profile;
    let why = end_reason(&outcome.end);
    crate::notice!(
        "{} samples in {:.1} s at {} Hz ({} mode), {} lost, {} of threads without Python, \
         {} unknown frames, {} stacks past the depth limit; {why}",
        p.samples(),
        outcome.elapsed.as_secs_f64(),
        p.rate_hz,
        p.mode.name(),
        outcome.lost,
        profiler.without_python,
        p.unknown_frames,
        p.truncated,
    );
    if profiler.native_refused > 0 {
        crate::notice!(
            "{} samples kept Python frames only: their native stack did not agree with it \
             (unwound through code without frame pointers)",
            profiler.native_refused
        );
    }
}
