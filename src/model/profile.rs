//! A sampled profile: Python stacks taken at a rate, each counted with a
//! weight, per thread. `pytap profile` fills one from the stack sampler
//! (or a recording of its samples) and every profile output draws from
//! it: the live top view, folded stacks, the SVG flame graph, speedscope,
//! pprof.
//!
//! Frames are interned once ([`FrameId`]); a stack is counted by its
//! thread and its frames, so memory grows with the distinct stacks, not
//! with the samples. The one exception is the time order of the samples
//! ([`Profile::timeline`], for speedscope's time-order view, and
//! [`Profile::in_time`], for Perfetto's samples): runs of samples
//! repeating their thread's last stack, at most [`TIMELINE_RUNS`] of them
//! (24 bytes each), and each sample's timestamp, at most
//! [`TIMELINE_SAMPLES`] (8 bytes each), dropped whole past either, as a
//! part of a timeline would show less than the profile holds.
//! Also the aggregation per function of the top view
//! ([`Profile::functions`]), and a profile rebuilt from a recording of
//! samples ([`recorded`]). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameKind {
    /// A Python function.
    Python,
    /// A native (C) function, from a frame-pointer walk.
    Native,
    /// A frame pytap could not name (its code object was freed or could not
    /// be read): never another function's name.
    Unknown,
}

/// One frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The function: its qualified name where the version has one
    /// (3.11+), else its name; a native symbol; or what an unknown frame
    /// is (`<unknown 0x…>`).
    pub function: Arc<str>,
    /// The file (a Python file name, or the native module's path).
    pub file: Arc<str>,
    /// The line being run, 0 when not known.
    pub line: u32,
    /// What the frame is.
    pub kind: FrameKind,
}

/// An interned frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(pub u32);

/// A thread of a profiled process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadKey {
    /// The process (init namespace).
    pub pid: u32,
    /// The thread (init namespace).
    pub tid: u32,
}

/// What samples mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Threads on a CPU when the sample was taken.
    #[default]
    Cpu,
    /// Every thread, running or not, weighted by wall time.
    Wall,
    /// Only the thread holding the GIL.
    Gil,
}

impl Mode {
    /// The mode's name, as `--mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cpu => "cpu",
            Mode::Wall => "wall",
            Mode::Gil => "gil",
        }
    }

    /// The mode [`Mode::name`] spells `name`.
    pub fn from_name(name: &str) -> Option<Mode> {
        [Mode::Cpu, Mode::Wall, Mode::Gil]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// What one stack of one thread added up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Samples.
    pub samples: u64,
    /// Their weight in nanoseconds (the sampling period, or the time a
    /// thread was off CPU in `wall` mode).
    pub weight_ns: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.samples = self.samples.saturating_add(other.samples);
        self.weight_ns = self.weight_ns.saturating_add(other.weight_ns);
    }
}

/// What the outputs that show one number per stack count it in
/// ([`Profile::unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Samples (`cpu` and `gil`: every sample weighs one period).
    Samples,
    /// Nanoseconds (`wall`: a sample weighs the time its thread was off
    /// CPU, so counting samples would understate sleeps).
    Nanoseconds,
}

/// The names of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadInfo {
    /// The thread's name (`comm`).
    pub name: String,
    /// Its process's name.
    pub process: String,
}

/// Runs of samples kept for [`Profile::timeline`] at most, in all threads
/// (24 MiB): past that, the timeline is dropped.
pub const TIMELINE_RUNS: usize = 1 << 20;

/// Samples whose timestamps are kept at most, in all threads (32 MiB: at
/// 99 Hz on 8 busy CPUs, an hour and a half): past that, the timeline is
/// dropped.
pub const TIMELINE_SAMPLES: usize = 1 << 22;

/// Consecutive samples of one thread with the same stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    stack: u32,
    totals: Totals,
}

/// One thread's part of the timeline: its runs, and the timestamp of
/// each of their samples, in order (run after run).
#[derive(Debug, Clone, Default)]
struct ThreadRuns {
    runs: Vec<Run>,
    times: Vec<u64>,
}

/// The samples in the order they were added, per thread, bounded.
#[derive(Debug, Clone)]
struct Timeline {
    threads: HashMap<ThreadKey, ThreadRuns>,
    runs: usize,
    samples: usize,
    limit: usize,
    dropped: bool,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            threads: HashMap::new(),
            runs: 0,
            samples: 0,
            limit: TIMELINE_RUNS,
            dropped: false,
        }
    }
}

impl Timeline {
    fn add(&mut self, thread: ThreadKey, stack: u32, weight_ns: u64, ts_ns: u64) {
        if self.dropped {
            return;
        }
        if self.samples >= TIMELINE_SAMPLES {
            self.drop_all();
            return;
        }
        let sample = Totals {
            samples: 1,
            weight_ns,
        };
        let t = self.threads.entry(thread).or_default();
        match t.runs.last_mut() {
            Some(run) if run.stack == stack => run.totals.add(sample),
            _ if self.runs >= self.limit => {
                self.drop_all();
                return;
            }
            _ => {
                t.runs.push(Run {
                    stack,
                    totals: sample,
                });
                self.runs += 1;
            }
        }
        t.times.push(ts_ns);
        self.samples += 1;
    }

    fn drop_all(&mut self) {
        self.threads = HashMap::new();
        self.dropped = true;
    }
}

/// One thread's samples in the order they were taken ([`Profile::timeline`]):
/// runs of one stack (frames innermost first) and what they add up to.
pub type ThreadTimeline<'p> = (ThreadKey, Vec<(&'p [FrameId], Totals)>);

/// One sample in time ([`Profile::in_time`]): its timestamp (the clock
/// the samples were taken on, CLOCK_MONOTONIC for pytap's sampler), its
/// thread and its frames, innermost first.
pub type TimedSample<'p> = (u64, ThreadKey, &'p [FrameId]);

/// What one function (its name, file and kind, whatever the line) adds up
/// to ([`Profile::functions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTotals {
    /// The function's name.
    pub function: Arc<str>,
    /// Its file.
    pub file: Arc<str>,
    /// What it is.
    pub kind: FrameKind,
    /// Samples it was the innermost frame of.
    pub own: Totals,
    /// Samples it was anywhere on the stack of, once per sample however
    /// often it recurses.
    pub total: Totals,
}

/// A profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// What the samples mean.
    pub mode: Mode,
    /// Samples a second per CPU (or per thread in `wall` mode).
    pub rate_hz: u32,
    /// Nanoseconds the profile covers.
    pub duration_ns: u64,
    /// When the profile began, in nanoseconds since the Unix epoch (0:
    /// not known).
    pub start_unix_ns: u64,
    frames: Vec<Frame>,
    frame_ids: HashMap<Frame, FrameId>,
    /// Frames innermost first, per thread: the stack's id (its place in
    /// the order of first samples) and totals.
    stacks: HashMap<(ThreadKey, Vec<FrameId>), (u32, Totals)>,
    threads: BTreeMap<ThreadKey, ThreadInfo>,
    timeline: Timeline,
    /// Samples whose stack was cut at the depth limit.
    pub truncated: u64,
    /// Frames shown as unknown.
    pub unknown_frames: u64,
}

impl Profile {
    /// An empty profile.
    pub fn new(mode: Mode, rate_hz: u32) -> Profile {
        Profile {
            mode,
            rate_hz,
            ..Profile::default()
        }
    }

    /// Keeps at most `runs` runs of samples for [`Profile::timeline`]
    /// instead of [`TIMELINE_RUNS`] (0: keeps no timeline, for a run whose
    /// outputs do not show time). Call before adding samples.
    pub fn limit_timeline(&mut self, runs: usize) {
        self.timeline.limit = runs;
        self.timeline.dropped = runs == 0;
    }

    /// The id of `frame`, interning it the first time.
    pub fn intern(&mut self, frame: Frame) -> FrameId {
        if let Some(id) = self.frame_ids.get(&frame) {
            return *id;
        }
        let id = FrameId(self.frames.len() as u32);
        self.frames.push(frame.clone());
        self.frame_ids.insert(frame, id);
        id
    }

    /// The frame an id stands for.
    pub fn frame(&self, id: FrameId) -> &Frame {
        &self.frames[id.0 as usize]
    }

    /// Every frame interned, in the order of their ids.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Counts one sample of `thread` with `frames` (innermost first), taken
    /// at `ts_ns` (kept in the bounded timeline only).
    pub fn add(&mut self, thread: ThreadKey, frames: &[FrameId], weight_ns: u64, ts_ns: u64) {
        self.unknown_frames += frames
            .iter()
            .filter(|f| self.frame(**f).kind == FrameKind::Unknown)
            .count() as u64;
        self.threads.entry(thread).or_default();
        let next = self.stacks.len() as u32;
        let (id, totals) = self
            .stacks
            .entry((thread, frames.to_vec()))
            .or_insert((next, Totals::default()));
        totals.add(Totals {
            samples: 1,
            weight_ns,
        });
        self.timeline.add(thread, *id, weight_ns, ts_ns);
    }

    /// Names a thread (samples of unnamed threads show their ids).
    pub fn name_thread(&mut self, thread: ThreadKey, info: ThreadInfo) {
        self.threads.insert(thread, info);
    }

    /// The threads sampled, by pid and tid.
    pub fn threads(&self) -> impl Iterator<Item = (&ThreadKey, &ThreadInfo)> {
        self.threads.iter()
    }

    /// The names of `thread` (empty ones for a thread sampled but never
    /// named, `None` for one neither sampled nor named).
    pub fn thread(&self, thread: ThreadKey) -> Option<&ThreadInfo> {
        self.threads.get(&thread)
    }

    /// Every distinct stack of every thread (frames innermost first) and
    /// its totals, in a stable order: by thread, then by frames.
    pub fn stacks(&self) -> Vec<(ThreadKey, &[FrameId], Totals)> {
        let mut all: Vec<_> = self
            .stacks
            .iter()
            .map(|((t, f), (_, totals))| (*t, f.as_slice(), *totals))
            .collect();
        all.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all
    }

    /// Each thread's samples in the order they were added (threads by pid
    /// and tid), consecutive samples of one stack merged; `None` when the
    /// timeline was not kept (past its limit, or limited to 0).
    pub fn timeline(&self) -> Option<Vec<ThreadTimeline<'_>>> {
        if self.timeline.dropped {
            return None;
        }
        let by_id = self.stacks_by_id();
        let mut threads: Vec<ThreadTimeline<'_>> = (self.timeline.threads.iter())
            .map(|(thread, t)| {
                let runs = (t.runs.iter()).map(|r| (by_id[r.stack as usize], r.totals));
                (*thread, runs.collect())
            })
            .collect();
        threads.sort_by_key(|(thread, _)| *thread);
        Some(threads)
    }

    /// Every sample in the order of its timestamp (samples of one time in
    /// the order of their threads, then as added); `None` when the
    /// timeline was not kept.
    pub fn in_time(&self) -> Option<Vec<TimedSample<'_>>> {
        if self.timeline.dropped {
            return None;
        }
        let by_id = self.stacks_by_id();
        let mut all = Vec::with_capacity(self.timeline.samples);
        for (thread, t) in &self.timeline.threads {
            let mut times = t.times.iter();
            for run in &t.runs {
                let frames = by_id[run.stack as usize];
                for ts in times.by_ref().take(run.totals.samples as usize) {
                    all.push((*ts, *thread, frames));
                }
            }
        }
        all.sort_by_key(|(ts, thread, _)| (*ts, *thread));
        Some(all)
    }

    /// Each stack's frames, by its id.
    fn stacks_by_id(&self) -> Vec<&[FrameId]> {
        let mut by_id: Vec<&[FrameId]> = vec![&[]; self.stacks.len()];
        for ((_, frames), (id, _)) in &self.stacks {
            by_id[*id as usize] = frames;
        }
        by_id
    }

    /// Samples in all.
    pub fn samples(&self) -> u64 {
        self.stacks.values().map(|(_, t)| t.samples).sum()
    }

    /// What every sample adds up to.
    pub fn totals(&self) -> Totals {
        let mut all = Totals::default();
        for (_, t) in self.stacks.values() {
            all.add(*t);
        }
        all
    }

    /// What the profile's stacks are counted in by the outputs that show
    /// one number: samples, or nanoseconds in `wall` mode.
    pub fn unit(&self) -> Unit {
        match self.mode {
            Mode::Wall => Unit::Nanoseconds,
            Mode::Cpu | Mode::Gil => Unit::Samples,
        }
    }

    /// `totals` in the profile's [`Profile::unit`].
    pub fn value(&self, totals: Totals) -> u64 {
        match self.unit() {
            Unit::Samples => totals.samples,
            Unit::Nanoseconds => totals.weight_ns,
        }
    }

    /// The totals of each function: own (innermost frame) and total
    /// (anywhere on the stack, once per sample), sorted by own then total
    /// in the profile's [`Profile::unit`] (largest first), then by name
    /// and file.
    pub fn functions(&self) -> Vec<FunctionTotals> {
        let mut rows: Vec<FunctionTotals> = Vec::new();
        let mut index: HashMap<(&str, &str, FrameKind), usize> = HashMap::new();
        // Each frame's function, found once.
        let of_frame: Vec<usize> = (self.frames.iter())
            .map(|f| {
                let key = (f.function.as_ref(), f.file.as_ref(), f.kind);
                *index.entry(key).or_insert_with(|| {
                    rows.push(FunctionTotals {
                        function: f.function.clone(),
                        file: f.file.clone(),
                        kind: f.kind,
                        own: Totals::default(),
                        total: Totals::default(),
                    });
                    rows.len() - 1
                })
            })
            .collect();
        // The last stack each function was counted in, so that a recursive
        // function counts once per stack.
        let mut counted = vec![usize::MAX; rows.len()];
        for (n, ((_, frames), (_, totals))) in self.stacks.iter().enumerate() {
            if let Some(leaf) = frames.first() {
                rows[of_frame[leaf.0 as usize]].own.add(*totals);
            }
            for frame in frames {
                let function = of_frame[frame.0 as usize];
                if counted[function] != n {
                    counted[function] = n;
                    rows[function].total.add(*totals);
                }
            }
        }
        rows.retain(|r| r.total.samples > 0);
        rows.sort_by(|a, b| {
            let key = |r: &FunctionTotals| (self.value(r.own), self.value(r.total));
            (key(b).cmp(&key(a)))
                .then_with(|| (&a.function, &a.file, a.kind).cmp(&(&b.function, &b.file, b.kind)))
        });
        rows
    }
}

pub mod recorded;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
