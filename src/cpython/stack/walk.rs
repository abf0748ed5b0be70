//! From `_PyRuntime` to every thread's frames.
//!
//! `_PyRuntime.interpreters.head` → each `PyInterpreterState` (`next`) →
//! its thread states (`threads.head`, `next`) → the innermost frame
//! ([`FrameAnchor`]) → each frame's code object and position, and its
//! caller (`previous`/`f_back`). Interpreter shims (3.12+: frames owned by
//! the C stack or the interpreter) are skipped; they are no Python code.
//!
//! Bounds: a process with more interpreters, threads or frames than the
//! limits below is cut there and the cut is reported, as a running
//! target's torn list could otherwise loop.

use super::{Memory, Runtime, Unreadable, read_u8, read_u32, read_u64};
use crate::cpython::layout::{FrameAnchor, GilHolder, StackLayout};

/// Interpreters read at most.
pub const MAX_INTERPRETERS: usize = 64;
/// Thread states read per interpreter at most.
pub const MAX_THREADS: usize = 4096;
/// Frames read per thread at most by default.
pub const DEFAULT_MAX_DEPTH: usize = 1024;

/// Where glibc keeps a thread's kernel id in its `struct pthread` on
/// x86-64 (`tid`, after the 704-byte `tcbhead_t` and the 16-byte list
/// node), and `pthread_t` points at that struct: how a 3.8–3.10 thread
/// state, which keeps only the `pthread_t`, leads to the thread's id. The
/// reader checks it on the main thread before believing it for others.
pub const GLIBC_PTHREAD_TID: u64 = 0x2d0;

/// One frame as memory holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawFrame {
    /// The frame's address.
    pub frame: u64,
    /// The code object's address.
    pub code: u64,
    /// The position field's raw value (`f_lasti`, or the instruction
    /// pointer).
    pub position: u64,
}

/// Why a thread's walk stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame's memory could not be read (the thread moved on, or freed it).
    #[error("frame {0:#x} could not be read")]
    Unreadable(u64),
    /// A frame's code is not a code object: the frame changed under the
    /// reader, or the layout is wrong.
    #[error("frame {frame:#x} does not point to a code object ({code:#x})")]
    NotCode {
        /// The frame.
        frame: u64,
        /// What it pointed to.
        code: u64,
    },
}

/// One thread state and its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawThread {
    /// The `PyThreadState`'s address.
    pub tstate: u64,
    /// The interpreter it belongs to.
    pub interp: u64,
    /// `thread_id`: the `pthread_t`.
    pub thread_id: u64,
    /// `native_thread_id` (3.11+), in the process's pid namespace.
    pub native_thread_id: Option<u32>,
    /// Whether it holds its interpreter's GIL.
    pub holds_gil: bool,
    /// Frames, innermost first.
    pub frames: Vec<RawFrame>,
    /// Whether the walk stopped at the depth limit.
    pub truncated: bool,
    /// Why the walk stopped before the outermost frame, if it did.
    pub error: Option<FrameError>,
}

/// Why no threads could be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The runtime's memory could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// No interpreter (the process has not initialised Python, or has
    /// finalised it).
    #[error("no Python interpreter is running in the process (not started, or finalised)")]
    NoInterpreter,
}

/// Every thread state of every interpreter, with up to `max_depth` frames
/// each; the second value says whether a limit cut the list.
pub fn threads(
    mem: &dyn Memory,
    rt: &Runtime,
    max_depth: usize,
) -> Result<(Vec<RawThread>, bool), WalkError> {
    let l = &rt.layout;
    let mut interp = read_u64(mem, rt.address + u64::from(l.interpreters_head))?;
    if interp == 0 {
        return Err(WalkError::NoInterpreter);
    }
    let mut out = Vec::new();
    let mut cut = false;
    for _ in 0..MAX_INTERPRETERS {
        let holder = gil_holder(mem, rt, interp).unwrap_or(0);
        let mut tstate = read_u64(mem, interp + u64::from(l.threads_head))?;
        let mut n = 0;
        while tstate != 0 {
            if n == MAX_THREADS {
                cut = true;
                break;
            }
            n += 1;
            out.push(thread(mem, rt, interp, tstate, holder, max_depth)?);
            tstate = read_u64(mem, tstate + u64::from(l.thread_next))?;
        }
        interp = read_u64(mem, interp + u64::from(l.interp_next))?;
        if interp == 0 {
            return Ok((out, cut));
        }
    }
    Ok((out, true))
}

fn thread(
    mem: &dyn Memory,
    rt: &Runtime,
    interp: u64,
    tstate: u64,
    gil_holder: u64,
    max_depth: usize,
) -> Result<RawThread, WalkError> {
    let l = &rt.layout;
    let thread_id = read_u64(mem, tstate + u64::from(l.thread_id))?;
    let native_thread_id = match l.native_thread_id {
        Some(off) => Some(read_u32(mem, tstate + u64::from(off))?),
        None => None,
    };
    let mut raw = RawThread {
        tstate,
        interp,
        thread_id,
        native_thread_id,
        holds_gil: gil_holder != 0 && gil_holder == tstate,
        frames: Vec::new(),
        truncated: false,
        error: None,
    };
    let first = match innermost_frame(mem, l, tstate) {
        Ok(f) => f,
        Err(Unreadable(at)) => {
            raw.error = Some(FrameError::Unreadable(at));
            return Ok(raw);
        }
    };
    let (frames, truncated, error) = frames(mem, rt, first, max_depth);
    raw.frames = frames;
    raw.truncated = truncated;
    raw.error = error;
    Ok(raw)
}

/// The thread state's innermost frame (0: none).
pub fn innermost_frame(mem: &dyn Memory, l: &StackLayout, tstate: u64) -> Result<u64, Unreadable> {
    match l.frame {
        FrameAnchor::Direct(off) => read_u64(mem, tstate + u64::from(off)),
        FrameAnchor::ViaCFrame {
            cframe,
            current_frame,
        } => {
            let cframe = read_u64(mem, tstate + u64::from(cframe))?;
            if cframe == 0 {
                return Ok(0);
            }
            read_u64(mem, cframe + u64::from(current_frame))
        }
    }
}

/// The frames from `frame` outwards: innermost first, whether the depth
/// limit cut them, and what stopped the walk early.
pub fn frames(
    mem: &dyn Memory,
    rt: &Runtime,
    mut frame: u64,
    max_depth: usize,
) -> (Vec<RawFrame>, bool, Option<FrameError>) {
    let l = &rt.layout;
    let mut out = Vec::new();
    // Shims do not count toward the depth, but they are bounded too.
    let mut steps = 0;
    while frame != 0 {
        if out.len() == max_depth || steps == 4 * max_depth.max(1) {
            return (out, true, None);
        }
        steps += 1;
        let read = || -> Result<(u64, Option<RawFrame>), Unreadable> {
            let previous = read_u64(mem, frame + u64::from(l.frame_previous))?;
            if let Some(owner) = l.frame_owner
                && l.is_shim(read_u8(mem, frame + u64::from(owner))?)
            {
                return Ok((previous, None));
            }
            let code = read_u64(mem, frame + u64::from(l.frame_code))? & !l.code_tag_bits;
            let position = if l.position_bytes() == 4 {
                u64::from(read_u32(mem, frame + u64::from(l.frame_position))?)
            } else {
                read_u64(mem, frame + u64::from(l.frame_position))?
            };
            Ok((
                previous,
                Some(RawFrame {
                    frame,
                    code,
                    position,
                }),
            ))
        };
        match read() {
            Ok((previous, Some(raw))) => {
                match read_u64(mem, raw.code + u64::from(l.object_type)) {
                    Ok(t) if t == rt.code_type => {}
                    _ => {
                        return (
                            out,
                            false,
                            Some(FrameError::NotCode {
                                frame,
                                code: raw.code,
                            }),
                        );
                    }
                }
                out.push(raw);
                frame = previous;
            }
            Ok((previous, None)) => frame = previous,
            Err(_) => return (out, false, Some(FrameError::Unreadable(frame))),
        }
    }
    (out, false, None)
}

/// The thread state holding `interp`'s GIL (0: none).
pub fn gil_holder(mem: &dyn Memory, rt: &Runtime, interp: u64) -> Result<u64, Unreadable> {
    match rt.layout.gil {
        GilHolder::Runtime(off) => read_u64(mem, rt.address + u64::from(off)),
        GilHolder::InterpPointer {
            gil,
            holder,
            locked,
        } => {
            let gil = read_u64(mem, interp + u64::from(gil))?;
            if gil == 0 || read_u32(mem, gil + u64::from(locked))? == 0 {
                return Ok(0);
            }
            read_u64(mem, gil + u64::from(holder))
        }
        GilHolder::Interp { holder, locked } => {
            if read_u32(mem, interp + u64::from(locked))? == 0 {
                return Ok(0);
            }
            read_u64(mem, interp + u64::from(holder))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpython::stack::fake::{FakeProcess, runtime};

    #[test]
    fn threads_and_frames_of_every_kind_of_layout() {
        for minor in [8, 10, 11, 12, 14] {
            let mut p = FakeProcess::new(minor);
            let f = p.code("f", "app.py", 3);
            let g = p.code("g", "app.py", 7);
            let main = p.thread(1000, Some(11), &[(f, 4), (g, 8)]);
            let worker = p.thread(2000, Some(12), &[(g, 2)]);
            p.hold_gil(worker);
            let rt = runtime(&p);
            let (threads, cut) = threads(&p, &rt, 16).unwrap();
            assert!(!cut);
            assert_eq!(threads.len(), 2, "3.{minor}");
            let t = threads.iter().find(|t| t.tstate == main).unwrap();
            assert_eq!(t.thread_id, 1000);
            assert_eq!(t.native_thread_id, (minor >= 11).then_some(11));
            assert_eq!(t.frames.iter().map(|f| f.code).collect::<Vec<_>>(), [f, g]);
            assert!(!t.holds_gil && t.error.is_none());
            let w = threads.iter().find(|t| t.tstate == worker).unwrap();
            assert!(w.holds_gil, "3.{minor}");
            assert_eq!(rt.layout.byte_offset(w.frames[0].position, g), 2);
        }
    }

    #[test]
    fn shims_are_skipped_and_limits_cut() {
        let mut p = FakeProcess::new(14);
        let f = p.code("f", "app.py", 3);
        let t = p.thread(1, Some(1), &[(f, 0), (0, 0), (f, 2), (f, 4)]);
        let rt = runtime(&p);
        let (threads, _) = threads(&p, &rt, 16).unwrap();
        assert_eq!(threads[0].tstate, t);
        assert_eq!(threads[0].frames.len(), 3, "the shim is not a frame");
        let (threads, _) = super::threads(&p, &rt, 2).unwrap();
        assert_eq!(threads[0].frames.len(), 2);
        assert!(threads[0].truncated);
    }

    #[test]
    fn a_frame_that_is_not_code_ends_the_walk_with_an_error() {
        let mut p = FakeProcess::new(12);
        let f = p.code("f", "app.py", 3);
        let bogus = p.object(0xdead);
        p.thread(1, Some(1), &[(f, 0), (bogus, 0), (f, 0)]);
        let rt = runtime(&p);
        let (threads, _) = threads(&p, &rt, 16).unwrap();
        assert_eq!(threads[0].frames.len(), 1);
        assert!(matches!(threads[0].error, Some(FrameError::NotCode { .. })));
    }

    #[test]
    fn no_interpreter() {
        let p = FakeProcess::new(9);
        let rt = runtime(&p);
        let mut empty = p.clone();
        empty.clear_interpreters();
        assert_eq!(threads(&empty, &rt, 1), Err(WalkError::NoInterpreter));
    }
}
