//! The native stack, walked by frame pointers from the interrupted user
//! context into the buffer after the Python frames (with `--native`).

use pytap_abi::sample::{MAX_FRAMES, MAX_NATIVE, off};
use pytap_ebpf::{AluOp, Helper, JmpOp, ProgramBuilder, Reg, Size};

/// The stack slots of the native walk, in the walker program's own stack.
#[derive(Debug, Clone, Copy)]
pub(super) struct NativeSlots {
    /// The context (`struct bpf_perf_event_data *`, or a uprobe's
    /// `struct pt_regs *`: both start with the registers).
    pub(super) ctx: i16,
    /// 16 bytes: a frame's saved frame pointer and return address.
    pub(super) pair: i16,
    /// At a function's first instruction (a uprobe at its entry): the
    /// frame pointer is still the caller's, and the return address into
    /// the caller is at the stack pointer; it is the second entry.
    pub(super) at_entry: bool,
}

/// `struct pt_regs` on x86-64: where the interrupted context's frame
/// pointer, instruction pointer, code segment and stack pointer are (the
/// perf event's context starts with them).
mod pt_regs {
    pub const BP: i16 = 32;
    pub const IP: i16 = 128;
    pub const CS: i16 = 136;
    pub const SP: i16 = 152;
}

/// The native stack right after the frames (r6: the buffer), walked by
/// frame pointers from the interrupted user context: each
/// [`NativeEntry`](pytap_abi::sample::NativeEntry) an address and the
/// lowest address of its frame, which is what places each eval loop call
/// (its entry frame lives in its C frame). A sample taken in the kernel
/// (a system call) has none: its user registers are not the context's.
pub(super) fn native_stack(b: &mut ProgramBuilder, n: NativeSlots) {
    let none = b.new_label();
    let done = b.new_label();
    b.comment("the native stack after the frames: r7 its place, r8 the frame pointer, r9 entries");
    b.ldx(Size::H, Reg::R7, Reg::R6, off::DEPTH as i16);
    b.alu64_imm(AluOp::And, Reg::R7, (MAX_FRAMES * 2 - 1) as i32);
    b.jmp_imm(JmpOp::Jgt, Reg::R7, MAX_FRAMES as i32, none);
    b.alu64_imm(AluOp::Lsh, Reg::R7, 4);
    b.add64_imm(Reg::R7, off::HEADER as i32);
    b.alu64_reg(AluOp::Add, Reg::R7, Reg::R6);
    b.ldx(Size::DW, Reg::R1, Reg::FP, n.ctx);
    b.ldx(Size::DW, Reg::R2, Reg::R1, pt_regs::CS);
    b.alu64_imm(AluOp::And, Reg::R2, 3);
    b.jmp_imm(JmpOp::Jne, Reg::R2, 3, none);
    b.ldx(Size::DW, Reg::R8, Reg::R1, pt_regs::BP);
    b.ldx(Size::DW, Reg::R2, Reg::R1, pt_regs::IP);
    b.stx(Size::DW, Reg::R7, 0, Reg::R2);
    b.ldx(Size::DW, Reg::R2, Reg::R1, pt_regs::SP);
    b.stx(Size::DW, Reg::R7, off::NATIVE_STACK as i16, Reg::R2);
    b.mov64_imm(Reg::R9, 1);
    if n.at_entry {
        b.comment("at a function's entry: its return address is at the stack pointer");
        b.mov64_reg(Reg::R1, Reg::FP)
            .add64_imm(Reg::R1, n.pair.into());
        b.mov64_imm(Reg::R2, 8);
        b.ldx(Size::DW, Reg::R3, Reg::R7, off::NATIVE_STACK as i16);
        b.call(Helper::ProbeReadUser);
        b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
        b.ldx(Size::DW, Reg::R1, Reg::FP, n.pair);
        b.stx(Size::DW, Reg::R7, off::NATIVE_ENTRY as i16, Reg::R1);
        b.ldx(Size::DW, Reg::R1, Reg::R7, off::NATIVE_STACK as i16);
        b.add64_imm(Reg::R1, 8);
        b.stx(
            Size::DW,
            Reg::R7,
            (off::NATIVE_ENTRY + off::NATIVE_STACK) as i16,
            Reg::R1,
        );
        b.mov64_imm(Reg::R9, 2);
    }
    let top = b.new_label();
    b.bind(top);
    b.jmp_imm(JmpOp::Jge, Reg::R9, MAX_NATIVE as i32, done);
    b.jmp_imm(JmpOp::Jeq, Reg::R8, 0, done);
    b.mov64_reg(Reg::R1, Reg::R8);
    b.alu64_imm(AluOp::And, Reg::R1, 7);
    b.jmp_imm(JmpOp::Jne, Reg::R1, 0, done);
    b.comment("the frame's saved frame pointer and return address");
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, n.pair.into());
    b.mov64_imm(Reg::R2, 16);
    b.mov64_reg(Reg::R3, Reg::R8);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    b.mov64_reg(Reg::R4, Reg::R9);
    b.alu64_imm(AluOp::And, Reg::R4, (MAX_NATIVE - 1) as i32);
    b.alu64_imm(AluOp::Lsh, Reg::R4, 4);
    b.alu64_reg(AluOp::Add, Reg::R4, Reg::R7);
    b.ldx(Size::DW, Reg::R1, Reg::FP, n.pair + 8);
    b.stx(Size::DW, Reg::R4, 0, Reg::R1);
    b.mov64_reg(Reg::R1, Reg::R8);
    b.add64_imm(Reg::R1, 16);
    b.stx(Size::DW, Reg::R4, off::NATIVE_STACK as i16, Reg::R1);
    b.add64_imm(Reg::R9, 1);
    b.comment("callers' frames are higher up the stack: anything else ends it");
    b.ldx(Size::DW, Reg::R1, Reg::FP, n.pair);
    b.jmp_reg(JmpOp::Jle, Reg::R1, Reg::R8, done);
    b.mov64_reg(Reg::R8, Reg::R1);
    b.ja(top);
    b.bind(done);
    b.stx(Size::H, Reg::R6, off::NATIVE as i16, Reg::R9);
    b.bind(none);
}
