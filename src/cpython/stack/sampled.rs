//! Naming the frames of a stack the kernel read (`pytap_abi::sample`): each
//! frame's code object named from the process's memory through a
//! [`Symbols`] cache checked by the fingerprint the kernel computed, and
//! what the record's flags say was not read, as frames of their own. Every
//! user of sampled stacks (the profiler, stacks on traced events, scripts'
//! stack values) names them here, so an unknown frame says the same thing
//! everywhere and a frame is never given another function's name.

use std::sync::Arc;

use pytap_abi::sample::{FLAG_FAULT, FLAG_NOT_CODE, FLAG_TRUNCATED, SampleFrame};

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
