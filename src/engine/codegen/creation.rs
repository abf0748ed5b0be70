//! Flags 3.15's generator creations in `function__entry` records.
//!
//! Why and how the frame tells a creation from a resumption is in
//! [`crate::cpython::frames`]. The probe copies the head of the frame and
//! of its code object to the stack (two `bpf_probe_read_user`) and flags
//! the record when the frame is still owned by the thread, the code is a
//! generator's and its `co_name` is the string the marker passed (which
//! proves the register really held this frame). Any failed read or check
//! leaves the record as it is: at worst a creation goes unflagged, never a
//! real call flagged.

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, ProgramBuilder, Reg, Size};

use super::FrameAccess;
use crate::cpython::frames::{FrameLayout, GENERATOR_FLAGS, STACKREF_TAG_BITS};
use crate::engine::abi::{self, off};

/// Stack bytes [`emit_flag`] needs for its copies.
pub fn scratch_bytes(layout: &FrameLayout) -> u16 {
    layout.frame_bytes().max(layout.code_bytes())
}

/// Sets `FLAG_GENERATOR_CREATION` on the function record at r6 when it is a
/// creation, then jumps to `on_creation` if given. Clobbers r0-r5 only;
/// `scratch` is a stack slot of [`scratch_bytes`].
pub fn emit_flag(
    b: &mut ProgramBuilder,
    frame: FrameAccess,
    scratch: i16,
    on_creation: Option<Label>,
) {
    emit_check(
        b,
        frame,
        scratch,
        Funcname::Record,
        OnCreation::Flag(on_creation),
    );
}

/// Where the marker's function name pointer is.
#[derive(Debug, Clone, Copy)]
pub enum Funcname {
    /// In the function record at r6.
    Record,
    /// In this stack slot (`r10 + off`).
    Stack(i16),
}

/// What to do with a creation.
#[derive(Debug, Clone, Copy)]
pub enum OnCreation {
    /// Flag the record at r6, then jump to the label if given.
    Flag(Option<Label>),
    /// Jump to the label (no record).
    Jump(Label),
}

/// Recognises a generator's creation (see the module docs) and acts on it.
/// Clobbers r0-r5 only.
pub fn emit_check(
    b: &mut ProgramBuilder,
    frame: FrameAccess,
    scratch: i16,
    funcname: Funcname,
    on_creation: OnCreation,
) {
    let layout = frame.source.layout;
    let done = b.new_label();
    b.comment("a generator's creation? the frame's head");
    b.ldx(Size::DW, Reg::R3, Reg::FP, frame.slot.off);
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, scratch.into());
    b.mov64_imm(Reg::R2, i32::from(layout.frame_bytes()));
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    b.comment("owned by a generator: a resumption");
    b.ldx(Size::B, Reg::R1, Reg::FP, scratch + layout.owner as i16);
    b.jmp_imm(JmpOp::Jne, Reg::R1, i32::from(layout.owned_by_thread), done);
    b.comment("the code object's flags (4 bytes: most calls stop here)");
    b.ldx(
        Size::DW,
        Reg::R3,
        Reg::FP,
        scratch + layout.executable as i16,
    );
    b.alu64_imm(AluOp::And, Reg::R3, !STACKREF_TAG_BITS);
    b.stx(Size::DW, Reg::FP, scratch + 8, Reg::R3);
    b.add64_imm(Reg::R3, i32::from(layout.code_flags));
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, scratch.into());
    b.mov64_imm(Reg::R2, 4);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    b.ldx(Size::W, Reg::R1, Reg::FP, scratch);
    b.alu64_imm(AluOp::And, Reg::R1, GENERATOR_FLAGS as i32);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
    b.comment(
        "a generator's code: co_name's characters must be the marker's name (the right frame)",
    );
    b.ldx(Size::DW, Reg::R3, Reg::FP, scratch + 8);
    b.add64_imm(Reg::R3, i32::from(layout.code_name));
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, scratch.into());
    b.mov64_imm(Reg::R2, 8);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    b.ldx(Size::DW, Reg::R1, Reg::FP, scratch);
    b.add64_imm(Reg::R1, i32::from(layout.str_ascii_data));
    match funcname {
        Funcname::Record => b.ldx(Size::DW, Reg::R2, Reg::R6, off::FN_FUNCNAME_PTR as i16),
        Funcname::Stack(at) => b.ldx(Size::DW, Reg::R2, Reg::FP, at),
    };
    b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R2, done);
    match on_creation {
        OnCreation::Flag(then) => {
            b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
            b.alu64_imm(AluOp::Or, Reg::R1, i32::from(abi::FLAG_GENERATOR_CREATION));
            b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
            if let Some(label) = then {
                b.ja(label);
            }
        }
        OnCreation::Jump(label) => {
            b.ja(label);
        }
    }
    b.bind(done);
}
