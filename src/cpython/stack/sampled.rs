//! Naming the frames of a stack the kernel read (`pytap_abi::sample`): each
//! frame's code object named from the process's memory through a
//! [`Symbols`] cache checked by the fingerprint the kernel computed, and
//! what the record's flags say was not read, as frames of their own. Every
//! user of sampled stacks (the profiler, stacks on traced events, scripts'
//! stack values) names them here, so an unknown frame says the same thing
//! everywhere and a frame is never given another function's name.

use std::sync::Arc;

use pytap_abi::sample::{EVAL_BOUNDARY, FLAG_FAULT, FLAG_NOT_CODE, FLAG_TRUNCATED, SampleFrame};

use super::code::{CodeInfo, Symbols};
use super::{Memory, Runtime};

/// A frame of a sampled stack.
#[derive(Debug, Clone)]
pub enum SampledFrame {
    /// Python code, and the line its instruction is on (0: not known).
    Code {
        /// The code object.
        code: Arc<CodeInfo>,
        /// The line.
        line: u32,
    },
    /// What could not be named.
    Unknown(Unknown),
    /// Where one call of the eval loop ends and the next (outer) begins
    /// (only in samples with native frames), with the address of the entry
    /// frame that call keeps on its C stack (3.12+; 0 before).
    Boundary(u64),
}

/// Why a frame (or the rest of a stack) has no name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unknown {
    /// Its code object was freed (or replaced) before pytap read it, or
    /// cannot be read.
    Freed,
    /// The stack changed while the kernel read it: the frames before are
    /// kept.
    Changed,
    /// The stack goes on past the depth limit.
    PastLimit,
}

impl Unknown {
    /// How the frame is shown.
    pub fn label(self) -> &'static str {
        match self {
            Unknown::Freed => "<unknown: code freed or unreadable>",
            Unknown::Changed => "<unknown: stack changed while read>",
            Unknown::PastLimit => "<more frames past the depth limit>",
        }
    }
}

/// Names `frames` (innermost first) into `out`, followed by what `flags`
/// say was left unread.
pub fn name_frames(
    symbols: &mut Symbols,
    mem: &dyn Memory,
    rt: &Runtime,
    frames: &[SampleFrame],
    flags: u16,
    out: &mut Vec<SampledFrame>,
) {
    out.clear();
    for f in frames {
        if f.code == EVAL_BOUNDARY {
            let entry = u64::from(f.offset as u32) | u64::from(f.fingerprint) << 32;
            out.push(SampledFrame::Boundary(entry));
            continue;
        }
        out.push(match symbols.name(mem, rt, f.code, f.fingerprint) {
            Some(code) => {
                let line = code.lines.line_at(i64::from(f.offset)).unwrap_or(0);
                SampledFrame::Code { code, line }
            }
            None => SampledFrame::Unknown(Unknown::Freed),
        });
    }
    if flags & (FLAG_FAULT | FLAG_NOT_CODE) != 0 {
        out.push(SampledFrame::Unknown(Unknown::Changed));
    }
    if flags & FLAG_TRUNCATED != 0 {
        out.push(SampledFrame::Unknown(Unknown::PastLimit));
    }
}

/// A frame of a stack with native frames.
#[derive(Debug, Clone)]
pub enum MixedFrame<N> {
    /// A Python frame (or what could not be named of one).
    Python(SampledFrame),
    /// A native frame.
    Native(N),
}

/// What [`mix`] needs to know of a native frame.
pub trait NativeLike: Clone {
    /// The lowest address of its frame on the stack.
    fn stack(&self) -> u64;
    /// Whether it is the interpreter's eval loop, when its symbol says.
    fn is_eval(&self) -> Option<bool>;
}

/// One eval loop call's Python frames and its entry frame's address.
struct Call {
    frames: Vec<SampledFrame>,
    entry: u64,
}

/// Puts each eval loop call's Python frames in the place of its native
/// frame, innermost first. `python` is named by [`name_frames`], with a
/// [`SampledFrame::Boundary`] after each call's frames, or
/// `one_call_per_frame` (3.8–3.10, where every Python frame is its own
/// call). `native_complete`: the native stack ended where the unwinding
/// did, not at the kernel's depth limit.
///
/// A call is placed by the native frame whose stack area holds its entry
/// frame (3.12+, exact, whatever the symbols say), else by the eval loop's
/// symbol. `None` when the two stacks do not agree: a frame pointer walk
/// through code built without them gives a wrong stack, and a wrong stack
/// is worse than Python frames alone.
pub fn mix<N: NativeLike>(
    python: &[SampledFrame],
    native: &[N],
    one_call_per_frame: bool,
    native_complete: bool,
) -> Option<Vec<MixedFrame<N>>> {
    let mut calls = vec![Call {
        frames: Vec::new(),
        entry: 0,
    }];
    for f in python {
        let last = calls.last_mut().expect("one");
        match f {
            SampledFrame::Boundary(entry) => {
                if last.entry == 0 {
                    last.entry = *entry;
                }
                calls.push(Call {
                    frames: Vec::new(),
                    entry: 0,
                });
            }
            SampledFrame::Code { .. } if one_call_per_frame => {
                last.frames.push(f.clone());
                calls.push(Call {
                    frames: Vec::new(),
                    entry: 0,
                });
            }
            _ => last.frames.push(f.clone()),
        }
    }
    // What the kernel could not read goes with the outermost call.
    while calls.len() > 1
        && calls.last().is_some_and(|c| {
            c.frames
                .iter()
                .all(|f| matches!(f, SampledFrame::Unknown(_)))
        })
    {
        let rest = calls.pop().expect("more than one");
        calls.last_mut().expect("one").frames.extend(rest.frames);
    }
    calls.retain(|c| !c.frames.is_empty());
    let hosts = if calls.iter().all(|c| c.entry != 0) {
        hosts_by_address(&calls, native, native_complete)?
    } else {
        hosts_by_symbol(&calls, native, native_complete)?
    };
    let mut out = Vec::with_capacity(python.len() + native.len());
    let mut calls = calls.into_iter().zip(hosts).peekable();
    for (k, n) in native.iter().enumerate() {
        let mut hosted = false;
        while let Some((call, _)) = calls.next_if(|(_, host)| *host == Some(k)) {
            if !hosted && n.is_eval() == Some(false) {
                // A function that keeps no frame pointer of its own (a
                // leaf the eval loop called): the walk saw its caller's
                // frame as its own, so the loop's frames come after it.
                out.push(MixedFrame::Native(n.clone()));
            }
            hosted = true;
            out.extend(call.frames.into_iter().map(MixedFrame::Python));
        }
        if !hosted {
            out.push(MixedFrame::Native(n.clone()));
        }
    }
    out.extend(calls.flat_map(|(c, _)| c.frames).map(MixedFrame::Python));
    Some(out)
}

/// Each call's native frame: the one whose stack area (from its `stack`
/// to the next frame's) holds the call's entry frame; `None` past the
/// native stack's end. Inner calls must be in inner frames.
fn hosts_by_address<N: NativeLike>(
    calls: &[Call],
    native: &[N],
    native_complete: bool,
) -> Option<Vec<Option<usize>>> {
    if native.windows(2).any(|w| w[0].stack() >= w[1].stack()) {
        return None;
    }
    let mut hosts = Vec::with_capacity(calls.len());
    let mut last = None;
    for call in calls {
        let k = native.partition_point(|n| n.stack() <= call.entry);
        let host = match k.checked_sub(1) {
            None => return None,
            // The outermost frame's area has no end: only a stack the
            // unwinding ended itself vouches for it.
            Some(k) if k + 1 == native.len() && !native_complete => None,
            Some(k) => Some(k),
        };
        if let (Some(h), Some(Some(l))) = (host, last)
            && h < l
        {
            return None;
        }
        if host.is_some() {
            if let Some(h) = host
                && h > 0
                && native[h].is_eval() == Some(false)
            {
                // Named, and not the eval loop: the walk went wrong.
                return None;
            }
            last = Some(host);
        }
        hosts.push(host);
    }
    Some(hosts)
}

/// Each call's native frame by the eval loop's symbol, in order; a
/// complete native stack must have as many as there are calls.
fn hosts_by_symbol<N: NativeLike>(
    calls: &[Call],
    native: &[N],
    native_complete: bool,
) -> Option<Vec<Option<usize>>> {
    let evals: Vec<usize> = (0..native.len())
        .filter(|&k| native[k].is_eval() == Some(true))
        .collect();
    if evals.len() > calls.len() || (native_complete && evals.len() != calls.len()) {
        return None;
    }
    Some((0..calls.len()).map(|i| evals.get(i).copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpython::linetable::{LineTable, LineTableKind};

    fn code(name: &str) -> SampledFrame {
        SampledFrame::Code {
            code: Arc::new(CodeInfo {
                name: Arc::from(name),
                qualname: None,
                filename: Arc::from("app.py"),
                first_line: 1,
                lines: LineTable::decode(LineTableKind::for_minor(12), &[], 1),
                identity: (0, 0, 1, 0),
            }),
            line: 1,
        }
    }

    /// A native frame: its name (`None`: no symbol) and stack address.
    #[derive(Debug, Clone)]
    struct N(Option<&'static str>, u64);

    impl NativeLike for N {
        fn stack(&self) -> u64 {
            self.1
        }
        fn is_eval(&self) -> Option<bool> {
            self.0.map(|n| n == EVAL)
        }
    }

    fn names(mixed: &[MixedFrame<N>]) -> Vec<String> {
        mixed
            .iter()
            .map(|f| match f {
                MixedFrame::Python(SampledFrame::Code { code, .. }) => code.name.to_string(),
                MixedFrame::Python(SampledFrame::Unknown(u)) => u.label().to_string(),
                MixedFrame::Python(SampledFrame::Boundary(_)) => "|".into(),
                MixedFrame::Native(n) => format!("[{}]", n.0.unwrap_or("?")),
            })
            .collect()
    }

    const EVAL: &str = "_PyEval_EvalFrameDefault";

    #[test]
    fn each_eval_call_goes_where_its_entry_frame_is_on_the_c_stack() {
        // f and g run in the inner call (entry frame at 0x150), h in the
        // outer (0x350); neither eval loop frame has a symbol.
        let python = [
            code("f"),
            code("g"),
            SampledFrame::Boundary(0x150),
            code("h"),
            SampledFrame::Boundary(0x350),
            SampledFrame::Boundary(0x358),
        ];
        let native = [
            N(None, 0x100),
            N(Some("PyObject_CallOneArg"), 0x200),
            N(Some("list_sort"), 0x280),
            N(None, 0x300),
            N(Some("main"), 0x400),
        ];
        let mixed = mix(&python, &native, false, true).unwrap();
        assert_eq!(
            names(&mixed),
            [
                "f",
                "g",
                "[PyObject_CallOneArg]",
                "[list_sort]",
                "h",
                "[main]"
            ]
        );
    }

    #[test]
    fn a_leaf_without_a_frame_keeps_its_place_before_the_loop_it_was_called_from() {
        let python = [code("f"), SampledFrame::Boundary(0x150)];
        let native = [N(Some("_PyCompactLong_Add"), 0x100), N(Some("main"), 0x400)];
        let mixed = mix(&python, &native, false, true).unwrap();
        assert_eq!(names(&mixed), ["[_PyCompactLong_Add]", "f", "[main]"]);
    }

    #[test]
    fn calls_placed_out_of_order_or_in_named_functions_are_refused() {
        let python = [
            code("f"),
            SampledFrame::Boundary(0x350),
            code("h"),
            SampledFrame::Boundary(0x150),
        ];
        let native = [N(None, 0x100), N(None, 0x300), N(Some("main"), 0x400)];
        assert!(mix(&python, &native, false, true).is_none());
        let python = [code("f"), SampledFrame::Boundary(0x250)];
        let native = [
            N(None, 0x100),
            N(Some("PyNumber_Add"), 0x200),
            N(None, 0x300),
        ];
        assert!(mix(&python, &native, false, true).is_none());
    }

    #[test]
    fn a_cut_native_stack_leaves_the_outer_calls_after_it() {
        let python = [
            code("f"),
            SampledFrame::Boundary(0x150),
            code("h"),
            SampledFrame::Boundary(0x950),
        ];
        let native = [N(None, 0x100), N(Some("call"), 0x200)];
        let mixed = mix(&python, &native, false, false).unwrap();
        assert_eq!(names(&mixed), ["f", "[call]", "h"]);
    }

    #[test]
    fn without_entry_addresses_the_eval_loop_symbol_places_each_call() {
        let python = [code("f"), code("g")];
        let native = [
            N(Some(EVAL), 0),
            N(Some("call"), 1),
            N(Some(EVAL), 2),
            N(Some("main"), 3),
        ];
        let mixed = mix(&python, &native, true, true).unwrap();
        assert_eq!(names(&mixed), ["f", "[call]", "g", "[main]"]);
        // One eval call where Python has two: a wrong unwinding.
        assert!(mix(&python, &[N(Some(EVAL), 0), N(Some("main"), 1)], true, true).is_none());
    }

    #[test]
    fn what_was_not_read_stays_with_the_outermost_call() {
        let python = [
            code("f"),
            SampledFrame::Boundary(0x150),
            SampledFrame::Unknown(Unknown::PastLimit),
        ];
        let native = [N(None, 0x100), N(Some("main"), 0x400)];
        let mixed = mix(&python, &native, false, true).unwrap();
        assert_eq!(
            names(&mixed),
            ["f", "<more frames past the depth limit>", "[main]"]
        );
    }
}
