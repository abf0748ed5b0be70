//! A sampled profile: Python stacks taken at a rate, each counted with a
//! weight, per thread. `pytap profile` fills one from the stack sampler
//! (or a recording of its samples) and every profile output draws from
//! it: the live top view, folded stacks, the SVG flame graph, speedscope,
//! pprof.
//!
//! Frames are interned once ([`FrameId`]); a stack is counted by its
//! thread and its frames, so memory grows with the distinct stacks, not
//! with the samples. Pure: no I/O.

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

/// The names of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadInfo {
    /// The thread's name (`comm`).
    pub name: String,
    /// Its process's name.
    pub process: String,
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
    frames: Vec<Frame>,
    frame_ids: HashMap<Frame, FrameId>,
    /// Frames innermost first, per thread.
    stacks: HashMap<(ThreadKey, Vec<FrameId>), Totals>,
    threads: BTreeMap<ThreadKey, ThreadInfo>,
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

    /// Counts one sample of `thread` with `frames` (innermost first).
    pub fn add(&mut self, thread: ThreadKey, frames: &[FrameId], weight_ns: u64) {
        self.unknown_frames += frames
            .iter()
            .filter(|f| self.frame(**f).kind == FrameKind::Unknown)
            .count() as u64;
        self.threads.entry(thread).or_default();
        let totals = self.stacks.entry((thread, frames.to_vec())).or_default();
        totals.samples += 1;
        totals.weight_ns += weight_ns;
    }

    /// Names a thread (samples of unnamed threads show their ids).
    pub fn name_thread(&mut self, thread: ThreadKey, info: ThreadInfo) {
        self.threads.insert(thread, info);
    }

    /// The threads sampled, by pid and tid.
    pub fn threads(&self) -> impl Iterator<Item = (&ThreadKey, &ThreadInfo)> {
        self.threads.iter()
    }

    /// Every distinct stack of every thread (frames innermost first) and
    /// its totals, in a stable order: by thread, then by frames.
    pub fn stacks(&self) -> Vec<(ThreadKey, &[FrameId], Totals)> {
        let mut all: Vec<_> = self
            .stacks
            .iter()
            .map(|((t, f), totals)| (*t, f.as_slice(), *totals))
            .collect();
        all.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all
    }

    /// Samples in all.
    pub fn samples(&self) -> u64 {
        self.stacks.values().map(|t| t.samples).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(function: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: "app.py".into(),
            line,
            kind: FrameKind::Python,
        }
    }

    #[test]
    fn stacks_are_counted_per_thread_and_frames_interned_once() {
        let mut p = Profile::new(Mode::Cpu, 99);
        let main = py("main", 3);
        let work = py("work", 9);
        let (m, w) = (p.intern(main.clone()), p.intern(work));
        assert_eq!(p.intern(main), m);
        let t1 = ThreadKey { pid: 1, tid: 1 };
        let t2 = ThreadKey { pid: 1, tid: 2 };
        p.add(t1, &[w, m], 10);
        p.add(t1, &[w, m], 10);
        p.add(t2, &[m], 10);
        assert_eq!(p.samples(), 3);
        let stacks = p.stacks();
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[0].0, t1);
        assert_eq!(
            stacks[0].2,
            Totals {
                samples: 2,
                weight_ns: 20
            }
        );
        assert_eq!(p.frame(stacks[1].1[0]).function.as_ref(), "main");
        assert_eq!(p.threads().count(), 2);
    }
}
