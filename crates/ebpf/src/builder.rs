//! [`ProgramBuilder`]: typed emission of eBPF instructions with symbolic jump
//! targets, map references and a stack-slot allocator, turned into a
//! [`Program`] by [`ProgramBuilder::build`].
//!
//! Emitting never fails on the spot: mistakes that can only be judged once the
//! whole program is known (unbound labels, jump distances) and misuse that
//! would otherwise need a `Result` on every call (a label bound twice, an
//! atomic of the wrong width) are reported by `build`. Only the stack
//! allocator answers immediately, because its caller has to know the slot.

use std::collections::BTreeMap;
use std::fmt;

use crate::helper::Helper;
use crate::insn::{AluOp, Insn, JmpOp, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, Reg, Size, op};
use crate::program::{Program, Reloc};

/// Stack bytes available to one program frame (`MAX_BPF_STACK`).
pub const MAX_STACK: u16 = 512;

/// Most instructions a privileged program may have (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// A jump target, created by [`ProgramBuilder::new_label`] and placed with
/// [`ProgramBuilder::bind`]. Only meaningful to the builder that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A map used by a program: an index into the loader's table of maps, which
/// becomes that map's fd when [`Program::to_bytes`] applies relocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRef(pub u32);

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
    /// A stack allocation would exceed [`MAX_STACK`].
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

#[derive(Debug, Clone, Copy)]
struct Fixup {
    at: usize,
    label: Label,
}

/// Builds one eBPF program instruction by instruction.
///
/// Register arguments follow the kernel's order: destination first. Memory
/// operands are `(base register, offset)`, matching `*(size *)(base + off)`.
/// Emitting methods return `&mut Self` so short sequences can be chained.
#[derive(Debug, Clone)]
pub struct ProgramBuilder {
    name: String,
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    relocs: Vec<Reloc>,
    comments: BTreeMap<usize, String>,
    pending_comment: Option<String>,
    stack_used: u16,
    stack_peak: u16,
    /// Live marks, outermost first, so a release can tell a stale mark from a live one.
    marks: Vec<StackMark>,
    next_mark: u32,
    error: Option<BuildError>,
}

impl ProgramBuilder {
    /// An empty program called `name` (see [`Program::kernel_name`]).
    pub fn new(name: &str) -> ProgramBuilder {
        ProgramBuilder {
            name: name.to_owned(),
            insns: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
            relocs: Vec::new(),
            comments: BTreeMap::new(),
            pending_comment: None,
            stack_used: 0,
            stack_peak: 0,
            marks: Vec::new(),
            next_mark: 0,
            error: None,
        }
    }

    /// Instruction slots emitted so far (`ld_imm64` counts as two); also the
    /// index the next instruction will get.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing has been emitted yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Attach a comment to the next emitted instruction, for `--dump-bpf`.
    /// Several comments before one instruction are kept as separate lines; a
    /// comment with no instruction after it is dropped.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        match &mut self.pending_comment {
            Some(c) => {
                c.push('\n');
                c.push_str(text);
            }
            None => self.pending_comment = Some(text.to_owned()),
        }
        self
    }

    /// Append a raw instruction slot. The typed methods are preferred; this
    /// is the escape hatch for forms they do not cover.
    pub fn emit(&mut self, insn: Insn) -> &mut Self {
        if let Some(c) = self.pending_comment.take() {
            self.comments.insert(self.insns.len(), c);
        }
        self.insns.push(insn);
        self
    }

    fn defer(&mut self, e: BuildError) {
        // The first mistake is the one worth reporting; later ones often follow from it.
        self.error.get_or_insert(e);
    }

    // ---- arithmetic -------------------------------------------------------

    fn alu(&mut self, class: u8, alu_op: AluOp, dst: Reg, src: Option<Reg>, imm: i32) -> &mut Self {
        // The verifier insists NEG has BPF_K, src 0 and imm 0, whatever the caller passed.
        let insn = match (alu_op, src) {
            (AluOp::Neg, _) => Insn::new(class | op::NEG | op::K, dst.num(), 0, 0, 0),
            (_, Some(s)) => Insn::new(class | alu_op.code() | op::X, dst.num(), s.num(), 0, 0),
            (_, None) => Insn::new(class | alu_op.code() | op::K, dst.num(), 0, 0, imm),
        };
        self.emit(insn)
    }

    /// `dst <alu_op>= imm` on 64 bits (`imm` is sign-extended).
    pub fn alu64_imm(&mut self, alu_op: AluOp, dst: Reg, imm: i32) -> &mut Self {
        self.alu(op::ALU64, alu_op, dst, None, imm)
    }

    /// `dst <alu_op>= src` on 64 bits.
    pub fn alu64_reg(&mut self, alu_op: AluOp, dst: Reg, src: Reg) -> &mut Self {
        self.alu(op::ALU64, alu_op, dst, Some(src), 0)
    }

    /// `wdst <alu_op>= imm` on the low 32 bits; the upper half of `dst` becomes zero.
    pub fn alu32_imm(&mut self, alu_op: AluOp, dst: Reg, imm: i32) -> &mut Self {
        self.alu(op::ALU, alu_op, dst, None, imm)
    }

    /// `wdst <alu_op>= wsrc` on the low 32 bits; the upper half of `dst` becomes zero.
    pub fn alu32_reg(&mut self, alu_op: AluOp, dst: Reg, src: Reg) -> &mut Self {
        self.alu(op::ALU, alu_op, dst, Some(src), 0)
    }

    /// `dst = imm`, sign-extended to 64 bits; use [`ld_imm64`] for wider values.
    ///
    /// [`ld_imm64`]: ProgramBuilder::ld_imm64
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu64_imm(AluOp::Mov, dst, imm)
    }

    /// `dst = src`.
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.alu64_reg(AluOp::Mov, dst, src)
    }

    /// `wdst = imm`: the 32-bit value zero-extended, so `-1` gives `0xffffffff`.
    pub fn mov32_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu32_imm(AluOp::Mov, dst, imm)
    }

    /// `wdst = wsrc`: the low half of `src`, zero-extended.
    pub fn mov32_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.alu32_reg(AluOp::Mov, dst, src)
    }

    /// `dst += imm` on 64 bits.
    pub fn add64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu64_imm(AluOp::Add, dst, imm)
    }

    /// `dst = -dst` on 64 bits.
    pub fn neg64(&mut self, dst: Reg) -> &mut Self {
        self.alu64_imm(AluOp::Neg, dst, 0)
    }

    /// `dst s/= src` or `dst s%= src`: signed 64-bit division or remainder
    /// (`BPF_SDIV`/`BPF_SMOD`, the `off = 1` forms of cpu v4, kernel 6.6+).
    /// A zero divisor gives 0 (division) or `dst` (remainder), as for the
    /// unsigned forms; callers that must report it check first.
    pub fn signed64_reg(&mut self, alu_op: AluOp, dst: Reg, src: Reg) -> &mut Self {
        debug_assert!(matches!(alu_op, AluOp::Div | AluOp::Mod));
        self.emit(Insn::new(
            op::ALU64 | alu_op.code() | op::X,
            dst.num(),
            src.num(),
            1,
            0,
        ))
    }

    // ---- 64-bit immediates ------------------------------------------------

    fn ld_imm64_raw(&mut self, dst: Reg, pseudo: u8, lo: i32, hi: i32) -> &mut Self {
        self.emit(Insn::new(op::LD_IMM64, dst.num(), pseudo, 0, lo));
        self.emit(Insn::new(0, 0, 0, 0, hi))
    }

    /// `dst = imm` for any 64-bit value (two slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        // Splitting into halves is a reinterpretation of bits, not arithmetic.
        self.ld_imm64_raw(dst, 0, imm as u32 as i32, (imm >> 32) as u32 as i32)
    }

    fn record_reloc(&mut self, map: MapRef) {
        self.relocs.push(Reloc {
            insn: self.insns.len(),
            map,
        });
    }

    /// `dst = &map` (two slots), the pointer helpers such as
    /// `map_lookup_elem` take. The map index stands in `imm` until
    /// [`Program::to_bytes`] replaces it with the fd.
    pub fn ld_map_fd(&mut self, dst: Reg, map: MapRef) -> &mut Self {
        self.record_reloc(map);
        // The placeholder is overwritten at load time; wrapping is harmless.
        self.ld_imm64_raw(dst, PSEUDO_MAP_FD, map.0 as i32, 0)
    }

    /// `dst = &value_of(map) + offset` (two slots) for a single-element array
    /// map, such as a table of constant strings.
    pub fn ld_map_value(&mut self, dst: Reg, map: MapRef, offset: u32) -> &mut Self {
        self.record_reloc(map);
        self.ld_imm64_raw(dst, PSEUDO_MAP_VALUE, map.0 as i32, offset as i32)
    }

    // ---- memory -----------------------------------------------------------

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        let code = op::LDX | size.code() | op::MEM;
        self.emit(Insn::new(code, dst.num(), src.num(), off, 0))
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        let code = op::STX | size.code() | op::MEM;
        self.emit(Insn::new(code, dst.num(), src.num(), off, 0))
    }

    /// `*(size *)(dst + off) = imm` (sign-extended for `DW`).
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        let code = op::ST | size.code() | op::MEM;
        self.emit(Insn::new(code, dst.num(), 0, off, imm))
    }

    fn atomic(&mut self, size: Size, dst: Reg, off: i16, src: Reg, imm: u8) -> &mut Self {
        if !matches!(size, Size::W | Size::DW) {
            let at = self.insns.len();
            self.defer(BuildError::BadAtomicSize { at, size });
        }
        let code = op::STX | size.code() | op::ATOMIC;
        self.emit(Insn::new(code, dst.num(), src.num(), off, i32::from(imm)))
    }

    /// `lock *(size *)(dst + off) += src`; `size` must be `W` or `DW`.
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.atomic(size, dst, off, src, op::ADD)
    }

    /// `src = atomic_fetch_add((size *)(dst + off), src)`: like
    /// [`atomic_add`](ProgramBuilder::atomic_add) but `src` receives the old value.
    pub fn atomic_fetch_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.atomic(size, dst, off, src, op::ADD | op::FETCH)
    }

    // ---- control flow -----------------------------------------------------

    /// A fresh, unbound jump target.
    pub fn new_label(&mut self) -> Label {
        let l = Label(u32::try_from(self.labels.len()).unwrap_or(u32::MAX));
        self.labels.push(None);
        l
    }

    /// Place `label` at the next instruction to be emitted.
    pub fn bind(&mut self, label: Label) -> &mut Self {
        let here = self.insns.len();
        match self.labels.get_mut(label.0 as usize) {
            Some(slot @ None) => *slot = Some(here),
            Some(Some(first)) => {
                let first = *first;
                self.defer(BuildError::LabelBoundTwice {
                    label,
                    first,
                    second: here,
                });
            }
            None => self.defer(BuildError::UnboundLabel { label, at: here }),
        }
        self
    }

    /// Whether a jump emitted so far goes to `label` (code placed only at a
    /// label nothing jumps to, after an `exit`, would be unreachable, which
    /// the verifier refuses).
    pub fn is_jumped_to(&self, label: Label) -> bool {
        self.fixups.iter().any(|f| f.label == label)
    }

    fn jump(&mut self, insn: Insn, target: Label) -> &mut Self {
        self.fixups.push(Fixup {
            at: self.insns.len(),
            label: target,
        });
        self.emit(insn)
    }

    /// `goto target`.
    pub fn ja(&mut self, target: Label) -> &mut Self {
        self.jump(Insn::new(op::JMP | op::JA, 0, 0, 0, 0), target)
    }

    /// `if dst <cmp> imm goto target`, comparing 64 bits (`imm` sign-extended).
    pub fn jmp_imm(&mut self, cmp: JmpOp, dst: Reg, imm: i32, target: Label) -> &mut Self {
        let code = op::JMP | cmp.code() | op::K;
        self.jump(Insn::new(code, dst.num(), 0, 0, imm), target)
    }

    /// `if dst <cmp> src goto target`, comparing 64 bits.
    pub fn jmp_reg(&mut self, cmp: JmpOp, dst: Reg, src: Reg, target: Label) -> &mut Self {
        let code = op::JMP | cmp.code() | op::X;
        self.jump(Insn::new(code, dst.num(), src.num(), 0, 0), target)
    }

    /// `if wdst <cmp> imm goto target`, comparing the low 32 bits.
    pub fn jmp32_imm(&mut self, cmp: JmpOp, dst: Reg, imm: i32, target: Label) -> &mut Self {
        let code = op::JMP32 | cmp.code() | op::K;
        self.jump(Insn::new(code, dst.num(), 0, 0, imm), target)
    }

    /// `if wdst <cmp> wsrc goto target`, comparing the low 32 bits.
    pub fn jmp32_reg(&mut self, cmp: JmpOp, dst: Reg, src: Reg, target: Label) -> &mut Self {
        let code = op::JMP32 | cmp.code() | op::X;
        self.jump(Insn::new(code, dst.num(), src.num(), 0, 0), target)
    }

    /// Call a kernel helper: arguments in `r1`..`r5`, result in `r0`, and
    /// `r1`..`r5` clobbered.
    pub fn call(&mut self, helper: Helper) -> &mut Self {
        self.emit(Insn::new(op::JMP | op::CALL, 0, 0, 0, helper.id()))
    }

    /// Return `r0` to the kernel.
    pub fn exit(&mut self) -> &mut Self {
        self.emit(Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0))
    }

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

    // ---- finishing --------------------------------------------------------

    /// Resolve every jump and check the program can be loaded as far as its
    /// shape goes (the verifier judges the rest).
    pub fn build(mut self) -> Result<Program, BuildError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.insns.is_empty() {
            return Err(BuildError::Empty);
        }
        if self.insns.len() > MAX_INSNS {
            return Err(BuildError::TooManyInsns {
                count: self.insns.len(),
            });
        }
        for f in &self.fixups {
            let target = self
                .labels
                .get(f.label.0 as usize)
                .copied()
                .flatten()
                .ok_or(BuildError::UnboundLabel {
                    label: f.label,
                    at: f.at,
                })?;
            if target >= self.insns.len() {
                return Err(BuildError::JumpPastEnd {
                    at: f.at,
                    label: f.label,
                });
            }
            // Both indices are below MAX_INSNS, far inside i64.
            let offset = target as i64 - f.at as i64 - 1;
            let off = i16::try_from(offset)
                .map_err(|_| BuildError::JumpOutOfRange { at: f.at, offset })?;
            if let Some(insn) = self.insns.get_mut(f.at) {
                insn.off = off;
            }
        }
        if !self.insns.last().is_some_and(Insn::is_terminator) || self.ends_in_ld_imm64() {
            return Err(BuildError::FallsOffEnd);
        }
        Ok(Program::from_parts(
            self.name,
            self.insns,
            self.relocs,
            self.comments,
            self.stack_peak,
        ))
    }

    /// Whether the last slot is the second half of an `ld_imm64`, whose raw
    /// bytes could otherwise be mistaken for an instruction.
    fn ends_in_ld_imm64(&self) -> bool {
        let mut i = 0;
        while i < self.insns.len() {
            if i + 1 == self.insns.len() {
                return false;
            }
            i += if self.insns[i].is_ld_imm64() { 2 } else { 1 };
        }
        true
    }
}
