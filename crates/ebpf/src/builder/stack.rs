//! The stack frame of a program being built: slots allocated downwards
//! from `r10`, marks to give a scope's slots back, and zeroing a slot.

use super::{BuildError, MAX_STACK, ProgramBuilder};
use crate::insn::{Reg, Size};

/// A region of the stack frame: bytes `[r10 + off, r10 + off + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackSlot {
    /// Offset from `r10` of the lowest byte; always negative.
    pub off: i16,
    /// Length in bytes.
    pub size: u16,
}

impl StackSlot {
    /// The `r10`-relative offset of byte `at` within the slot, for addressing
    /// a field of a struct kept on the stack.
    pub fn field(&self, at: u16) -> i16 {
        // Slots live within 512 bytes of r10, so the sum stays small.
        self.off.saturating_add_unsigned(at)
    }
}

/// A stack allocation level saved by [`ProgramBuilder::stack_mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackMark {
    serial: u32,
    used: u16,
}

impl ProgramBuilder {
    // ---- stack ------------------------------------------------------------

    /// Reserve `size` bytes of stack below everything allocated so far, with
    /// the slot's offset from `r10` a multiple of `align` (1, 2, 4 or 8; `r10`
    /// itself is 8-byte aligned, so this is real memory alignment).
    pub fn alloc_stack(&mut self, size: u16, align: u16) -> Result<StackSlot, BuildError> {
        if size == 0 || !matches!(align, 1 | 2 | 4 | 8) {
            return Err(BuildError::BadStackRequest { size, align });
        }
        let overflow = BuildError::StackOverflow {
            requested: size,
            used: self.stack_used,
        };
        let end = u32::from(self.stack_used) + u32::from(size);
        let end = end.next_multiple_of(u32::from(align));
        let end = u16::try_from(end)
            .ok()
            .filter(|e| *e <= MAX_STACK)
            .ok_or(overflow)?;
        self.stack_used = end;
        self.stack_peak = self.stack_peak.max(end);
        // end <= 512, so the negation fits.
        let off = -(end as i16);
        Ok(StackSlot { off, size })
    }

    /// The current allocation level, to return to with [`stack_release`].
    ///
    /// [`stack_release`]: ProgramBuilder::stack_release
    pub fn stack_mark(&mut self) -> StackMark {
        let mark = StackMark {
            serial: self.next_mark,
            used: self.stack_used,
        };
        self.next_mark = self.next_mark.wrapping_add(1);
        self.marks.push(mark);
        mark
    }

    /// Free every slot allocated since `mark`, so a later scope can reuse the
    /// bytes. The mark stays valid for further releases (one mark per loop
    /// body works), but marks taken after it are invalidated: releasing a
    /// mark from an already released inner scope does nothing, so it can
    /// never free slots that an outer scope allocated since.
    pub fn stack_release(&mut self, mark: StackMark) {
        if let Some(pos) = self.marks.iter().rposition(|m| *m == mark) {
            self.marks.truncate(pos + 1);
            self.stack_used = mark.used;
        }
    }

    /// Bytes of stack currently allocated.
    pub fn stack_used(&self) -> u16 {
        self.stack_used
    }

    /// The most stack ever allocated at once, which is what the program needs.
    pub fn stack_peak(&self) -> u16 {
        self.stack_peak
    }

    /// Store zeros over the whole slot with as few stores as alignment
    /// allows: the verifier refuses to pass uninitialised stack to helpers,
    /// and each naturally aligned store covers the most bytes it can.
    pub fn zero_stack(&mut self, slot: StackSlot) -> &mut Self {
        let mut pos = i32::from(slot.off);
        let end = pos + i32::from(slot.size);
        while pos < end {
            let left = end - pos;
            let size = [Size::DW, Size::W, Size::H, Size::B]
                .into_iter()
                .find(|s| {
                    let n = i32::from(s.bytes());
                    n <= left && pos.rem_euclid(n) == 0
                })
                .unwrap_or(Size::B);
            // pos lies within the slot, whose offsets are i16.
            self.st_imm(size, Reg::FP, pos as i16, 0);
            pos += i32::from(size.bytes());
        }
        self
    }
}
