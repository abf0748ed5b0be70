//! Strings read into a record at r6: a name as the helper copies it
//! ([`read_str`], truncation flagged), a file name that keeps its end when
//! too long ([`read_path`]), and the packed length a string takes
//! (`load_packed_len`), which places what follows it.

use pytap_ebpf::{AluOp, Helper, JmpOp, ProgramBuilder, Reg, Size};

use crate::engine::abi::{self, off};
use crate::engine::codegen::Env;

/// Where [`read_str`] puts a string: `r6 + off (+ plus)`.
#[derive(Debug, Clone, Copy)]
pub struct StrDst {
    /// Fixed offset in the record.
    pub off: usize,
    /// A register added to it (a packed string's position).
    pub plus: Option<Reg>,
}

impl StrDst {
    /// At a fixed offset.
    pub fn at(off: usize) -> StrDst {
        StrDst { off, plus: None }
    }
}

/// Copies the string at `ptr` (a callee-saved register) into the record at
/// r6, stores the helper's result at `ret_off`, and sets `flag` when the
/// string did not fit.
pub fn read_str(
    b: &mut ProgramBuilder,
    env: &Env,
    ptr: Reg,
    dst: StrDst,
    ret_off: usize,
    flag: u16,
) {
    let done = b.new_label();
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, dst.off as i32);
    if let Some(plus) = dst.plus {
        b.alu64_reg(AluOp::Add, Reg::R1, plus);
    }
    b.mov64_imm(Reg::R2, abi::STR_CAP as i32);
    b.mov64_reg(Reg::R3, ptr);
    b.call(Helper::ProbeReadUserStr);
    b.stx(Size::W, Reg::R6, ret_off as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, abi::STR_CAP as i32, done);
    b.comment("buffer full: truncated unless the string is exactly STR_CAP-1 long");
    b.st_imm(Size::DW, Reg::FP, env.slots.scratch.off, 0);
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, env.slots.scratch.off.into());
    b.mov64_imm(Reg::R2, 1);
    b.mov64_reg(Reg::R3, ptr)
        .add64_imm(Reg::R3, abi::STR_CAP as i32 - 1);
    b.call(Helper::ProbeReadUser);
    b.ldx(Size::B, Reg::R1, Reg::FP, env.slots.scratch.off);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(AluOp::Or, Reg::R1, i32::from(flag));
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.bind(done);
}

/// `dst = abi::packed_len(*(u32 *)(r6 + ret_off))`: a length the verifier
/// knows is at most `STR_CAP`.
pub(super) fn load_packed_len(b: &mut ProgramBuilder, dst: Reg, ret_off: usize) {
    let ok = b.new_label();
    b.ldx(Size::W, dst, Reg::R6, ret_off as i16);
    b.jmp_imm(JmpOp::Jle, dst, abi::STR_CAP as i32, ok);
    b.mov64_imm(dst, 0);
    b.bind(ok);
}

/// How many [`abi::STR_CAP`]-sized windows a file name longer than the
/// buffer is scanned through for its end: paths up to about 4 KiB
/// (`PATH_MAX`) keep their end.
pub const PATH_WINDOWS: i32 = 8;

/// Copies the file name at `ptr` (a callee-saved register) into the
/// function record at r6. A name too long for [`abi::STR_CAP`] keeps its
/// *end* (the file's own name) rather than its start: its length is found
/// by reading on in windows (into the function name's room, not written
/// yet), then its last `STR_CAP - 1` bytes are read, and
/// [`abi::FLAG_KEPT_END_0`] is set with [`abi::FLAG_TRUNCATED_0`]. Only
/// when the end cannot be found (longer than [`PATH_WINDOWS`] windows, or
/// unreadable) does the name keep its start. Costs nothing on names that fit.
pub fn read_path(b: &mut ProgramBuilder, ptr: Reg) {
    let (done, keep_start, tail) = (b.new_label(), b.new_label(), b.new_label());
    let cap = abi::STR_CAP as i32;
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::FN_FILENAME as i32);
    b.mov64_imm(Reg::R2, cap);
    b.mov64_reg(Reg::R3, ptr);
    b.call(Helper::ProbeReadUserStr);
    b.stx(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, cap, done);
    b.comment("buffer full: find where the name ends, window by window");
    for k in 1..=PATH_WINDOWS {
        b.mov64_reg(Reg::R1, Reg::R6)
            .add64_imm(Reg::R1, off::FN_FUNCNAME as i32);
        b.mov64_imm(Reg::R2, cap);
        b.mov64_reg(Reg::R3, ptr).add64_imm(Reg::R3, k * (cap - 1));
        b.call(Helper::ProbeReadUserStr);
        b.jmp_imm(JmpOp::Jslt, Reg::R0, 1, keep_start);
        // r0 = total length: k windows of cap-1 bytes, plus r0 - 1.
        b.add64_imm(Reg::R0, k * (cap - 1) - 1);
        b.jmp_imm(JmpOp::Jlt, Reg::R0, k * (cap - 1) + cap - 1, tail);
    }
    b.bind(keep_start);
    b.comment("no end in reach: keep the start, truncated");
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(AluOp::Or, Reg::R1, i32::from(abi::FLAG_TRUNCATED_0));
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.ja(done);
    b.bind(tail);
    b.comment("r0 = its length; exactly STR_CAP-1 means it fit after all");
    b.jmp_imm(JmpOp::Jeq, Reg::R0, cap - 1, done);
    b.comment("the name's last STR_CAP-1 bytes, then a NUL");
    b.mov64_reg(Reg::R3, ptr);
    b.alu64_reg(AluOp::Add, Reg::R3, Reg::R0);
    b.add64_imm(Reg::R3, -(cap - 1));
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::FN_FILENAME as i32);
    b.mov64_imm(Reg::R2, cap - 1);
    b.call(Helper::ProbeReadUser);
    b.st_imm(
        Size::B,
        Reg::R6,
        (off::FN_FILENAME + abi::STR_CAP - 1) as i16,
        0,
    );
    let lost = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, lost);
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(
        AluOp::Or,
        Reg::R1,
        i32::from(abi::FLAG_TRUNCATED_0 | abi::FLAG_KEPT_END_0),
    );
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.ja(done);
    b.bind(lost);
    b.comment("the end was unreadable after all: the name is lost");
    b.stx(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, Reg::R0);
    b.bind(done);
}
