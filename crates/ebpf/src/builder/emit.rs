//! The typed instruction emitters of [`ProgramBuilder`]: arithmetic,
//! 64-bit immediates and map references, memory, jumps and calls. Each
//! appends its slots; the mistakes only the whole program shows are left
//! for `build`.

use super::{BuildError, Fixup, Label, MapRef, ProgramBuilder};
use crate::helper::Helper;
use crate::insn::{AluOp, Insn, JmpOp, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, Reg, Size, op};
use crate::program::Reloc;

impl ProgramBuilder {
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
    /// [`Program::to_bytes`](crate::Program::to_bytes) replaces it with the fd.
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
}
