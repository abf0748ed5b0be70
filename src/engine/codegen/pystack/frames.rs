//! The frame walk: each frame's header and its code object read from the
//! interpreter's memory, the code's fingerprint (kept across a recursion),
//! the instruction's offset, the interpreter's shims skipped and, with the
//! native stack, the eval loop's boundaries marked; and how much of a
//! frame and a code object the walk reads at once.

use pytap_abi::sample::{FLAG_FAULT, FLAG_NOT_CODE, FLAG_TRUNCATED, MAX_FRAMES, STR_HASH, off};
use pytap_ebpf::{AluOp, BuildError, Helper, JmpOp, Label, ProgramBuilder, Reg, Size};

use super::{Slots, add_offset, read, read_reg, set_flag};
use crate::cpython::layout::{FrameAnchor, PositionKind, StackLayout};

/// Bytes of a frame read at once: everything the walk uses of it.
pub(super) fn frame_read_bytes(l: &StackLayout) -> u16 {
    let ends = [
        l.frame_previous + 8,
        l.frame_code + 8,
        l.frame_position + l.position_bytes() as u32,
        l.frame_owner.map_or(0, |o| o + 1),
    ];
    (ends.into_iter().max().unwrap_or(8).next_multiple_of(8)) as u16
}

/// The span of a code object read at once: from its type to the last of
/// its name, file name and first line.
pub(super) fn code_read_span(l: &StackLayout) -> (u32, u16) {
    let start = l.object_type;
    let end = [l.code_name + 8, l.code_filename + 8, l.code_first_line + 4]
        .into_iter()
        .max()
        .unwrap_or(start + 8);
    (start, ((end - start).next_multiple_of(8)) as u16)
}

/// The frames of thread state r9 into the sample (its `depth` counts them).
pub(super) fn frames(
    b: &mut ProgramBuilder,
    l: &StackLayout,
    s: &Slots,
    boundaries: bool,
) -> Result<(), BuildError> {
    let done = b.new_label();
    let truncated = b.new_label();
    let fault = b.new_label();
    let not_code = b.new_label();
    b.comment("the innermost frame (r8: the thread state for now)");
    b.mov64_reg(Reg::R8, Reg::R9);
    match l.frame {
        FrameAnchor::Direct(at) => read_reg(b, Reg::R8, i64::from(at), s.word),
        FrameAnchor::ViaCFrame {
            cframe,
            current_frame,
        } => {
            read_reg(b, Reg::R8, i64::from(cframe), s.word);
            b.jmp_imm(JmpOp::Jne, Reg::R0, 0, fault);
            b.ldx(Size::DW, Reg::R3, Reg::R6, s.word.off);
            b.jmp_imm(JmpOp::Jeq, Reg::R3, 0, done);
            add_offset(b, Reg::R3, i64::from(current_frame));
            read(b, Helper::ProbeReadUser, s.word, 8);
        }
    }
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, fault);
    // r8: the frame; r7: frames and shims visited (the loop's bound, the
    // one counter the verifier follows exactly). The frames kept are
    // counted in the sample's `depth` in memory, where the verifier does
    // not tell one count from another: two exact counters would make it
    // walk every pair of them.
    b.ldx(Size::DW, Reg::R8, Reg::R6, s.word.off);
    b.mov64_imm(Reg::R7, 0);
    // No code is at the last address: the first frame is always read.
    b.st_imm(Size::DW, Reg::R6, s.prev_code.off, -1);
    b.st_imm(Size::DW, Reg::R6, s.prev_fp.off, 0);
    let top = b.new_label();
    let next = b.new_label();
    b.bind(top);
    b.jmp_imm(JmpOp::Jeq, Reg::R8, 0, done);
    b.jmp_imm(JmpOp::Jge, Reg::R7, MAX_FRAMES as i32, truncated);
    b.add64_imm(Reg::R7, 1);
    b.mov64_reg(Reg::R3, Reg::R8);
    read(b, Helper::ProbeReadUser, s.frame, s.frame.size);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, fault);
    if let Some(owner) = l.frame_owner {
        let python = b.new_label();
        b.ldx(Size::B, Reg::R1, Reg::R6, s.frame.field(owner as u16));
        b.jmp_imm(
            JmpOp::Jlt,
            Reg::R1,
            i32::from(crate::cpython::layout::FIRST_SHIM_OWNER),
            python,
        );
        // A shim: the eval loop's entry (3.12+), before its first frame,
        // kept on the C stack of the eval loop's call (r8: its address).
        if boundaries {
            boundary(b, truncated, Some(Reg::R8));
        }
        b.ja(next);
        b.bind(python);
    }
    b.ldx(
        Size::DW,
        Reg::R3,
        Reg::R6,
        s.frame.field(l.frame_code as u16),
    );
    if l.code_tag_bits != 0 {
        b.alu64_imm(AluOp::And, Reg::R3, !(l.code_tag_bits as i32));
    }
    b.stx(Size::DW, Reg::R6, s.code.off, Reg::R3);
    // A frame running the code of the frame before it (recursion) has its
    // fingerprint already: code referenced by a frame on the stack cannot
    // be freed while the stack is read, so within one sample the address
    // says it all.
    let same = b.new_label();
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.prev_code.off);
    b.jmp_reg(JmpOp::Jeq, Reg::R1, Reg::R3, same);
    let (start, _) = code_read_span(l);
    add_offset(b, Reg::R3, i64::from(start));
    read(b, Helper::ProbeReadUser, s.code_head, s.code_head.size);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, fault);
    let at = |field: u32| s.code_head.field((field - start) as u16);
    b.ldx(Size::DW, Reg::R1, Reg::R6, at(l.object_type));
    b.ldx(Size::DW, Reg::R2, Reg::R6, s.code_type.off);
    b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R2, not_code);
    b.comment("the name's hash (its characters, in a word: see the fingerprint)");
    b.ldx(Size::DW, Reg::R3, Reg::R6, at(l.code_name));
    b.add64_imm(Reg::R3, STR_HASH as i32);
    read(b, Helper::ProbeReadUser, s.word, 8);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, fault);
    fingerprint(b, l, s, &at);
    b.bind(same);
    slot(b, truncated);
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.code.off);
    b.stx(
        Size::DW,
        Reg::R4,
        (off::HEADER + off::FRAME_CODE) as i16,
        Reg::R1,
    );
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.prev_fp.off);
    b.stx(
        Size::W,
        Reg::R4,
        (off::HEADER + off::FRAME_FINGERPRINT) as i16,
        Reg::R1,
    );
    b.comment("the instruction's byte offset");
    let pos = s.frame.field(l.frame_position as u16);
    match l.position {
        PositionKind::LastiBytes => {
            b.ldx(Size::W, Reg::R1, Reg::R6, pos);
        }
        PositionKind::LastiUnits => {
            b.ldx(Size::W, Reg::R1, Reg::R6, pos);
            b.alu32_imm(AluOp::Lsh, Reg::R1, 1);
        }
        PositionKind::InstrPtr => {
            b.ldx(Size::DW, Reg::R1, Reg::R6, pos);
            b.ldx(Size::DW, Reg::R2, Reg::R6, s.code.off);
            b.alu64_reg(AluOp::Sub, Reg::R1, Reg::R2);
            add_offset(b, Reg::R1, -i64::from(l.code_adaptive.unwrap_or(0)));
        }
    }
    b.stx(
        Size::W,
        Reg::R4,
        (off::HEADER + off::FRAME_OFFSET) as i16,
        Reg::R1,
    );
    if let (true, Some(entry)) = (boundaries, l.frame_is_entry) {
        // 3.11: the eval loop's entry frame is its outermost.
        let inner = b.new_label();
        b.ldx(Size::B, Reg::R1, Reg::R6, s.frame.field(entry as u16));
        b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, inner);
        boundary(b, truncated, None);
        b.bind(inner);
    }
    b.bind(next);
    b.ldx(
        Size::DW,
        Reg::R8,
        Reg::R6,
        s.frame.field(l.frame_previous as u16),
    );
    b.ja(top);
    b.bind(truncated);
    set_flag(b, FLAG_TRUNCATED);
    b.ja(done);
    b.bind(not_code);
    set_flag(b, FLAG_NOT_CODE);
    b.ja(done);
    b.bind(fault);
    set_flag(b, FLAG_FAULT);
    b.bind(done);
    Ok(())
}

/// r4 = the next frame's place in the sample (r6), counted in its
/// `depth`; to `full` when the sample holds [`MAX_FRAMES`] already.
fn slot(b: &mut ProgramBuilder, full: Label) {
    b.comment("this frame's slot: r4 = sample + depth * 16; depth += 1");
    b.ldx(Size::H, Reg::R1, Reg::R6, off::DEPTH as i16);
    b.jmp_imm(JmpOp::Jge, Reg::R1, MAX_FRAMES as i32, full);
    b.mov64_reg(Reg::R4, Reg::R1);
    b.add64_imm(Reg::R1, 1);
    b.stx(Size::H, Reg::R6, off::DEPTH as i16, Reg::R1);
    b.alu64_imm(AluOp::And, Reg::R4, (MAX_FRAMES - 1) as i32);
    b.alu64_imm(AluOp::Lsh, Reg::R4, 4);
    b.alu64_reg(AluOp::Add, Reg::R4, Reg::R6);
}

/// An [`EVAL_BOUNDARY`](pytap_abi::sample::EVAL_BOUNDARY) frame.
fn boundary(b: &mut ProgramBuilder, full: Label, entry: Option<Reg>) {
    slot(b, full);
    b.st_imm(
        Size::DW,
        Reg::R4,
        (off::HEADER + off::FRAME_CODE) as i16,
        pytap_abi::sample::EVAL_BOUNDARY as i32,
    );
    let word = (off::HEADER + off::FRAME_OFFSET) as i16;
    match entry {
        Some(reg) => b.stx(Size::DW, Reg::R4, word, reg),
        None => b.st_imm(Size::DW, Reg::R4, word, 0),
    };
}

/// The fingerprint of the code just read (`s.code_head`, the name's hash
/// in `s.word`) into `s.prev_fp`, and the code into `s.prev_code`:
/// name ^ rotl(filename, 17) ^ first line ^ name hash, folded to 32 bits.
fn fingerprint(b: &mut ProgramBuilder, l: &StackLayout, s: &Slots, at: &dyn Fn(u32) -> i16) {
    b.ldx(Size::DW, Reg::R1, Reg::R6, at(l.code_name));
    b.ldx(Size::DW, Reg::R2, Reg::R6, s.word.off);
    b.alu64_reg(AluOp::Xor, Reg::R1, Reg::R2);
    b.ldx(Size::DW, Reg::R2, Reg::R6, at(l.code_filename));
    b.mov64_reg(Reg::R3, Reg::R2);
    b.alu64_imm(AluOp::Lsh, Reg::R2, 17);
    b.alu64_imm(AluOp::Rsh, Reg::R3, 47);
    b.alu64_reg(AluOp::Or, Reg::R2, Reg::R3);
    b.alu64_reg(AluOp::Xor, Reg::R1, Reg::R2);
    b.ldx(Size::W, Reg::R2, Reg::R6, at(l.code_first_line));
    b.alu64_reg(AluOp::Xor, Reg::R1, Reg::R2);
    b.mov64_reg(Reg::R2, Reg::R1);
    b.alu64_imm(AluOp::Rsh, Reg::R2, 32);
    b.alu64_reg(AluOp::Xor, Reg::R1, Reg::R2);
    b.stx(Size::DW, Reg::R6, s.prev_fp.off, Reg::R1);
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.code.off);
    b.stx(Size::DW, Reg::R6, s.prev_code.off, Reg::R1);
}
