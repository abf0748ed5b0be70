//! What [`ProgramBuilder::build`](super::ProgramBuilder::build) (and the
//! stack allocator) can refuse, each with where in the program it was.

use super::Label;
#[cfg(doc)]
use super::ProgramBuilder;
use crate::insn::Size;

/// Why a program could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A jump targets a label that was never bound, or a label from another
    /// builder was used (detected when its number is beyond this builder's).
    #[error("{label} is used at {at} but never bound by this builder")]
    UnboundLabel {
        /// The label.
        label: Label,
        /// Slot index of the first jump to it (or of the foreign `bind`).
        at: usize,
    },
    /// [`ProgramBuilder::bind`] was called twice for one label.
    #[error("{label} is bound at both {first} and {second}")]
    LabelBoundTwice {
        /// The label.
        label: Label,
        /// Slot index of the first binding.
        first: usize,
        /// Slot index of the second binding.
        second: usize,
    },
    /// A jump distance does not fit the 16-bit offset field.
    #[error("jump at {at} needs offset {offset}, outside the 16-bit range")]
    JumpOutOfRange {
        /// Slot index of the jump.
        at: usize,
        /// The offset, in slots, that did not fit.
        offset: i64,
    },
    /// A jump targets a label bound after the last instruction.
    #[error("jump at {at} targets {label}, which is past the last instruction")]
    JumpPastEnd {
        /// Slot index of the jump.
        at: usize,
        /// The label.
        label: Label,
    },
    /// A stack allocation would exceed [`MAX_STACK`](super::MAX_STACK).
    #[error("stack allocation of {requested} bytes with {used} already used exceeds 512 bytes")]
    StackOverflow {
        /// Bytes asked for.
        requested: u16,
        /// Bytes in use before the request.
        used: u16,
    },
    /// A stack allocation of zero bytes or with an alignment other than 1, 2, 4 or 8.
    #[error("bad stack request: {size} bytes aligned to {align}")]
    BadStackRequest {
        /// Bytes asked for.
        size: u16,
        /// Alignment asked for.
        align: u16,
    },
    /// Atomic instructions exist only for 32- and 64-bit words.
    #[error("atomic at {at} uses size {size:?}; only W and DW exist")]
    BadAtomicSize {
        /// Slot index of the atomic instruction.
        at: usize,
        /// The rejected size.
        size: Size,
    },
    /// The last instruction is neither `exit` nor `goto`; the kernel rejects
    /// programs whose control can run off the end.
    #[error("last instruction is neither exit nor an unconditional jump")]
    FallsOffEnd,
    /// No instructions were emitted.
    #[error("program has no instructions")]
    Empty,
    /// More instructions than the kernel accepts.
    #[error("program has {count} instructions; the kernel limit is 1000000")]
    TooManyInsns {
        /// Number of instruction slots.
        count: usize,
    },
}
