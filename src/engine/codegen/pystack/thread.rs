//! Finding the sampled thread's state (the `threads` map's, checked, or
//! the interpreter's thread list's) and whether it holds the GIL.

use pytap_abi::sample::{FLAG_GIL, MAX_THREAD_SCAN, off};
use pytap_ebpf::{BuildError, Helper, JmpOp, Label, ProgramBuilder, Reg, Size};

use super::{Slots, WalkMaps, read_at, read_reg, set_flag};
use crate::cpython::layout::{GilHolder, StackLayout};

/// r9 = the sampled thread's state: the `threads` map's, checked, or the
/// thread list's; to `none` when neither has it.
pub(super) fn find_thread(
    b: &mut ProgramBuilder,
    l: &StackLayout,
    s: &Slots,
    maps: WalkMaps,
    none: Label,
) -> Result<(), BuildError> {
    let found = b.new_label();
    let scan = b.new_label();
    b.comment("the thread state pytap knows for this thread pointer");
    b.ld_map_fd(Reg::R1, maps.threads);
    b.mov64_reg(Reg::R2, Reg::R6)
        .add64_imm(Reg::R2, s.key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, scan);
    b.ldx(Size::DW, Reg::R9, Reg::R0, 0);
    jump_if_thread_is_sampled(b, l, s, scan, found);
    b.bind(scan);
    b.comment("else the interpreter's thread list");
    read_at(b, s.interp, i64::from(l.threads_head), s.word);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, none);
    b.ldx(Size::DW, Reg::R9, Reg::R6, s.word.off);
    b.mov64_imm(Reg::R7, 0);
    let top = b.new_label();
    b.bind(top);
    b.jmp_imm(JmpOp::Jeq, Reg::R9, 0, none);
    b.jmp_imm(JmpOp::Jge, Reg::R7, MAX_THREAD_SCAN as i32, none);
    b.add64_imm(Reg::R7, 1);
    jump_if_thread_is_sampled(b, l, s, none, found);
    read_reg(b, Reg::R9, i64::from(l.thread_next), s.word);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, none);
    b.ldx(Size::DW, Reg::R9, Reg::R6, s.word.off);
    b.ja(top);
    b.bind(found);
    b.stx(Size::DW, Reg::R6, off::TSTATE as i16, Reg::R9);
    Ok(())
}

/// To `found` when thread state r9's `thread_id` is the sampled thread's
/// pointer, to `unreadable` when it cannot be read; else on.
fn jump_if_thread_is_sampled(
    b: &mut ProgramBuilder,
    l: &StackLayout,
    s: &Slots,
    unreadable: Label,
    found: Label,
) {
    read_reg(b, Reg::R9, i64::from(l.thread_id), s.word);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, unreadable);
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.word.off);
    b.ldx(
        Size::DW,
        Reg::R2,
        Reg::R6,
        s.key.field(off::KEY_FSBASE as u16),
    );
    b.jmp_reg(JmpOp::Jeq, Reg::R1, Reg::R2, found);
}

/// Sets `FLAG_GIL` when r9 holds the GIL.
pub(super) fn gil(b: &mut ProgramBuilder, l: &StackLayout, s: &Slots) -> Result<(), BuildError> {
    let not = b.new_label();
    b.comment("does it hold the GIL?");
    match l.gil {
        GilHolder::Runtime(holder) => read_at(b, s.runtime, i64::from(holder), s.word),
        GilHolder::InterpPointer {
            gil,
            holder,
            locked,
        } => {
            read_at(b, s.interp, i64::from(gil), s.word);
            b.jmp_imm(JmpOp::Jne, Reg::R0, 0, not);
            b.ldx(Size::DW, Reg::R3, Reg::R6, s.word.off);
            b.jmp_imm(JmpOp::Jeq, Reg::R3, 0, not);
            b.stx(Size::DW, Reg::R6, s.code.off, Reg::R3);
            read_at(b, s.code, i64::from(locked), s.word);
            b.jmp_imm(JmpOp::Jne, Reg::R0, 0, not);
            b.ldx(Size::W, Reg::R1, Reg::R6, s.word.off);
            b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, not);
            read_at(b, s.code, i64::from(holder), s.word);
        }
        GilHolder::Interp { holder, locked } => {
            read_at(b, s.interp, i64::from(locked), s.word);
            b.jmp_imm(JmpOp::Jne, Reg::R0, 0, not);
            b.ldx(Size::W, Reg::R1, Reg::R6, s.word.off);
            b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, not);
            read_at(b, s.interp, i64::from(holder), s.word);
        }
    }
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, not);
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.word.off);
    b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R9, not);
    set_flag(b, FLAG_GIL);
    b.bind(not);
    Ok(())
}
