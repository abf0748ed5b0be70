//! The eBPF instruction word: registers, the raw 8-byte [`Insn`], the opcode
//! bit fields of `include/uapi/linux/bpf.h` / `bpf_common.h` (in [`op`]), and
//! typed views of those fields ([`Size`], [`AluOp`], [`JmpOp`]).
//!
//! Everything here is a plain value: no validation beyond what the bit layout
//! forces. Whether an instruction makes sense is the builder's and the
//! kernel verifier's business.

use std::fmt;

/// Raw opcode bit fields, spelled as in the kernel headers minus the `BPF_`
/// prefix. An opcode byte is `class | size | mode` for loads and stores and
/// `class | op | source` for ALU and jump instructions.
pub mod op {
    /// Legacy packet / 64-bit immediate loads (`BPF_LD`).
    pub const LD: u8 = 0x00;
    /// Load from memory into a register (`BPF_LDX`).
    pub const LDX: u8 = 0x01;
    /// Store an immediate to memory (`BPF_ST`).
    pub const ST: u8 = 0x02;
    /// Store a register to memory, and atomics (`BPF_STX`).
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic (`BPF_ALU`); results zero-extend into the upper half.
    pub const ALU: u8 = 0x04;
    /// 64-bit compares, calls and exit (`BPF_JMP`).
    pub const JMP: u8 = 0x05;
    /// Compares on the low 32 bits of the operands (`BPF_JMP32`).
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic (`BPF_ALU64`).
    pub const ALU64: u8 = 0x07;
    /// Mask selecting the class bits of an opcode.
    pub const CLASS_MASK: u8 = 0x07;

    /// 4-byte access (`BPF_W`).
    pub const W: u8 = 0x00;
    /// 2-byte access (`BPF_H`).
    pub const H: u8 = 0x08;
    /// 1-byte access (`BPF_B`).
    pub const B: u8 = 0x10;
    /// 8-byte access (`BPF_DW`).
    pub const DW: u8 = 0x18;
    /// Mask selecting the size bits of a load/store opcode.
    pub const SIZE_MASK: u8 = 0x18;

    /// Immediate mode; with `LD | DW` this is the two-slot `ld_imm64`.
    pub const IMM: u8 = 0x00;
    /// Regular memory access (`BPF_MEM`).
    pub const MEM: u8 = 0x60;
    /// Sign-extending load (`BPF_MEMSX`, LDX only, kernel 6.6+).
    pub const MEMSX: u8 = 0x80;
    /// Atomic read-modify-write (`BPF_ATOMIC`, STX only).
    pub const ATOMIC: u8 = 0xc0;
    /// Mask selecting the mode bits of a load/store opcode.
    pub const MODE_MASK: u8 = 0xe0;

    /// Operand is the 32-bit immediate (`BPF_K`).
    pub const K: u8 = 0x00;
    /// Operand is the source register (`BPF_X`).
    pub const X: u8 = 0x08;
    /// Mask selecting the source bit of an ALU/jump opcode.
    pub const SRC_MASK: u8 = 0x08;

    /// `dst += src`.
    pub const ADD: u8 = 0x00;
    /// `dst -= src`.
    pub const SUB: u8 = 0x10;
    /// `dst *= src`.
    pub const MUL: u8 = 0x20;
    /// `dst /= src` (unsigned; signed when `off == 1`).
    pub const DIV: u8 = 0x30;
    /// `dst |= src`.
    pub const OR: u8 = 0x40;
    /// `dst &= src`.
    pub const AND: u8 = 0x50;
    /// `dst <<= src`.
    pub const LSH: u8 = 0x60;
    /// `dst >>= src` (logical).
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`.
    pub const NEG: u8 = 0x80;
    /// `dst %= src` (unsigned; signed when `off == 1`).
    pub const MOD: u8 = 0x90;
    /// `dst ^= src`.
    pub const XOR: u8 = 0xa0;
    /// `dst = src` (sign-extending when `off` is 8, 16 or 32).
    pub const MOV: u8 = 0xb0;
    /// `dst >>= src` (arithmetic).
    pub const ARSH: u8 = 0xc0;
    /// Byte swap (`BPF_END`); the source bit picks LE/BE, `imm` the width.
    pub const END: u8 = 0xd0;
    /// Mask selecting the operation bits of an ALU/jump opcode.
    pub const OP_MASK: u8 = 0xf0;

    /// Unconditional jump (`BPF_JA`).
    pub const JA: u8 = 0x00;
    /// Jump if equal.
    pub const JEQ: u8 = 0x10;
    /// Jump if unsigned greater.
    pub const JGT: u8 = 0x20;
    /// Jump if unsigned greater or equal.
    pub const JGE: u8 = 0x30;
    /// Jump if `dst & src` is non-zero.
    pub const JSET: u8 = 0x40;
    /// Jump if not equal.
    pub const JNE: u8 = 0x50;
    /// Jump if signed greater.
    pub const JSGT: u8 = 0x60;
    /// Jump if signed greater or equal.
    pub const JSGE: u8 = 0x70;
    /// Helper call (`BPF_CALL`).
    pub const CALL: u8 = 0x80;
    /// Return `r0` (`BPF_EXIT`).
    pub const EXIT: u8 = 0x90;
    /// Jump if unsigned less.
    pub const JLT: u8 = 0xa0;
    /// Jump if unsigned less or equal.
    pub const JLE: u8 = 0xb0;
    /// Jump if signed less.
    pub const JSLT: u8 = 0xc0;
    /// Jump if signed less or equal.
    pub const JSLE: u8 = 0xd0;

    /// Atomic op flag: also return the old value in the source register.
    pub const FETCH: u8 = 0x01;
    /// Atomic exchange (`BPF_XCHG`, always fetching).
    pub const XCHG: u8 = 0xe0 | FETCH;
    /// Atomic compare-and-exchange against `r0` (`BPF_CMPXCHG`).
    pub const CMPXCHG: u8 = 0xf0 | FETCH;

    /// The opcode of the first slot of `ld_imm64` (`LD | DW | IMM`).
    pub const LD_IMM64: u8 = LD | DW | IMM;
}

/// `src` value of `ld_imm64` meaning "`imm` is a map fd" (`BPF_PSEUDO_MAP_FD`).
pub const PSEUDO_MAP_FD: u8 = 1;
/// `src` value of `ld_imm64` meaning "address of the value of the array map
/// whose fd is in the first `imm`, plus the offset in the second `imm`"
/// (`BPF_PSEUDO_MAP_VALUE`).
pub const PSEUDO_MAP_VALUE: u8 = 2;
/// `src` value of `call` meaning a BPF-to-BPF call (`BPF_PSEUDO_CALL`).
pub const PSEUDO_CALL: u8 = 1;
/// `src` value of `call` meaning a kernel function call (`BPF_PSEUDO_KFUNC_CALL`).
pub const PSEUDO_KFUNC_CALL: u8 = 2;

/// One of the eleven eBPF registers.
///
/// `r0` holds return values, `r1`..`r5` are arguments (clobbered by calls),
/// `r6`..`r9` are callee-saved and `r10` is the read-only frame pointer.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[expect(
    missing_docs,
    reason = "`R<n>` is register n; the type doc gives the roles"
)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

impl Reg {
    /// The frame pointer: stack slots are addressed at negative offsets from it.
    pub const FP: Reg = Reg::R10;

    /// Every register, in number order.
    pub const ALL: [Reg; 11] = [
        Reg::R0,
        Reg::R1,
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
        Reg::R7,
        Reg::R8,
        Reg::R9,
        Reg::R10,
    ];

    /// The 4-bit register number as encoded in an instruction.
    pub const fn num(self) -> u8 {
        self as u8
    }

    /// The register with this number, if it is one of `r0`..`r10`.
    pub fn from_num(n: u8) -> Option<Reg> {
        Reg::ALL.get(usize::from(n)).copied()
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.num())
    }
}

/// One 8-byte instruction slot, exactly as the kernel's `struct bpf_insn`.
///
/// `dst` and `src` are the raw 4-bit fields rather than [`Reg`] because
/// `ld_imm64` and `call` overload `src` with pseudo values, and decoded bytes
/// may hold any nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    /// Opcode byte.
    pub code: u8,
    /// Destination register field (low nibble of byte 1).
    pub dst: u8,
    /// Source register field (high nibble of byte 1).
    pub src: u8,
    /// Signed offset: memory displacement or jump distance in slots.
    pub off: i16,
    /// Signed 32-bit immediate.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its raw fields; `dst` and `src` are masked to 4 bits
    /// so that encoding round-trips.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst & 0x0f,
            src: src & 0x0f,
            off,
            imm,
        }
    }

    /// The little-endian wire form the kernel expects on x86-64 and arm64.
    pub fn to_bytes(&self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            ((self.src & 0x0f) << 4) | (self.dst & 0x0f),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// Inverse of [`Insn::to_bytes`]; every byte pattern decodes.
    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The class bits ([`op::LD`] .. [`op::ALU64`]).
    pub const fn class(&self) -> u8 {
        self.code & op::CLASS_MASK
    }

    /// Whether this is the first slot of a two-slot `ld_imm64`.
    pub const fn is_ld_imm64(&self) -> bool {
        self.code == op::LD_IMM64
    }

    /// Whether this is `exit`.
    pub const fn is_exit(&self) -> bool {
        self.code == op::JMP | op::EXIT
    }

    /// Whether control never falls through to the next slot: `exit`, `goto`
    /// or the 32-bit-offset `gotol`.
    pub const fn is_terminator(&self) -> bool {
        self.is_exit() || self.code == op::JMP | op::JA || self.code == op::JMP32 | op::JA
    }
}

/// Width of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte (`u8`).
    B,
    /// 2 bytes (`u16`).
    H,
    /// 4 bytes (`u32`).
    W,
    /// 8 bytes (`u64`).
    DW,
}

impl Size {
    /// Number of bytes accessed.
    pub const fn bytes(self) -> u16 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The size bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            Size::B => op::B,
            Size::H => op::H,
            Size::W => op::W,
            Size::DW => op::DW,
        }
    }

    /// The size encoded in an opcode's size bits.
    pub const fn from_code(code: u8) -> Size {
        match code & op::SIZE_MASK {
            op::B => Size::B,
            op::H => Size::H,
            op::W => Size::W,
            _ => Size::DW,
        }
    }

    /// The C type name the kernel disassembler uses (`u8` .. `u64`).
    pub const fn type_name(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// An arithmetic operation (the `op` bits of an ALU/ALU64 opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `dst += src`.
    Add,
    /// `dst -= src`.
    Sub,
    /// `dst *= src`.
    Mul,
    /// `dst /= src`, unsigned; division by zero yields 0.
    Div,
    /// `dst |= src`.
    Or,
    /// `dst &= src`.
    And,
    /// `dst <<= src`.
    Lsh,
    /// `dst >>= src`, logical.
    Rsh,
    /// `dst = -dst`; the operand is ignored.
    Neg,
    /// `dst %= src`, unsigned; modulo zero leaves `dst` unchanged.
    Mod,
    /// `dst ^= src`.
    Xor,
    /// `dst = src`.
    Mov,
    /// `dst >>= src`, arithmetic (sign-filling).
    Arsh,
}

impl AluOp {
    /// Every operation, in opcode order.
    pub const ALL: [AluOp; 13] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Neg,
        AluOp::Mod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];

    /// The operation bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            AluOp::Add => op::ADD,
            AluOp::Sub => op::SUB,
            AluOp::Mul => op::MUL,
            AluOp::Div => op::DIV,
            AluOp::Or => op::OR,
            AluOp::And => op::AND,
            AluOp::Lsh => op::LSH,
            AluOp::Rsh => op::RSH,
            AluOp::Neg => op::NEG,
            AluOp::Mod => op::MOD,
            AluOp::Xor => op::XOR,
            AluOp::Mov => op::MOV,
            AluOp::Arsh => op::ARSH,
        }
    }

    /// The operation encoded in an opcode's operation bits, if it is one of
    /// these (`BPF_END` is not).
    pub fn from_code(code: u8) -> Option<AluOp> {
        AluOp::ALL
            .iter()
            .copied()
            .find(|o| o.code() == code & op::OP_MASK)
    }

    /// The compound-assignment spelling of the kernel disassembler (`+=`, `s>>=`).
    pub const fn symbol(self) -> &'static str {
        match self {
            AluOp::Add => "+=",
            AluOp::Sub => "-=",
            AluOp::Mul => "*=",
            AluOp::Div => "/=",
            AluOp::Or => "|=",
            AluOp::And => "&=",
            AluOp::Lsh => "<<=",
            AluOp::Rsh => ">>=",
            AluOp::Neg => "neg",
            AluOp::Mod => "%=",
            AluOp::Xor => "^=",
            AluOp::Mov => "=",
            AluOp::Arsh => "s>>=",
        }
    }
}

/// A conditional jump comparison (the `op` bits of a JMP/JMP32 opcode).
///
/// `goto`, `call` and `exit` share the class but are not comparisons, so they
/// have their own builder methods instead of variants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpOp {
    /// `dst == src`.
    Jeq,
    /// `dst > src`, unsigned.
    Jgt,
    /// `dst >= src`, unsigned.
    Jge,
    /// `dst & src != 0`.
    Jset,
    /// `dst != src`.
    Jne,
    /// `dst > src`, signed.
    Jsgt,
    /// `dst >= src`, signed.
    Jsge,
    /// `dst < src`, unsigned.
    Jlt,
    /// `dst <= src`, unsigned.
    Jle,
    /// `dst < src`, signed.
    Jslt,
    /// `dst <= src`, signed.
    Jsle,
}

impl JmpOp {
    /// Every comparison, in opcode order.
    pub const ALL: [JmpOp; 11] = [
        JmpOp::Jeq,
        JmpOp::Jgt,
        JmpOp::Jge,
        JmpOp::Jset,
        JmpOp::Jne,
        JmpOp::Jsgt,
        JmpOp::Jsge,
        JmpOp::Jlt,
        JmpOp::Jle,
        JmpOp::Jslt,
        JmpOp::Jsle,
    ];

    /// The operation bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            JmpOp::Jeq => op::JEQ,
            JmpOp::Jgt => op::JGT,
            JmpOp::Jge => op::JGE,
            JmpOp::Jset => op::JSET,
            JmpOp::Jne => op::JNE,
            JmpOp::Jsgt => op::JSGT,
            JmpOp::Jsge => op::JSGE,
            JmpOp::Jlt => op::JLT,
            JmpOp::Jle => op::JLE,
            JmpOp::Jslt => op::JSLT,
            JmpOp::Jsle => op::JSLE,
        }
    }

    /// The comparison encoded in an opcode's operation bits, if any.
    pub fn from_code(code: u8) -> Option<JmpOp> {
        JmpOp::ALL
            .iter()
            .copied()
            .find(|o| o.code() == code & op::OP_MASK)
    }

    /// The operator spelling of the kernel disassembler (`==`, `s<`, `&`).
    pub const fn symbol(self) -> &'static str {
        match self {
            JmpOp::Jeq => "==",
            JmpOp::Jgt => ">",
            JmpOp::Jge => ">=",
            JmpOp::Jset => "&",
            JmpOp::Jne => "!=",
            JmpOp::Jsgt => "s>",
            JmpOp::Jsge => "s>=",
            JmpOp::Jlt => "<",
            JmpOp::Jle => "<=",
            JmpOp::Jslt => "s<",
            JmpOp::Jsle => "s<=",
        }
    }

    /// The comparison that holds exactly when this one does not, so a
    /// compiler can branch around a block instead of into it. `Jset` has no
    /// single-instruction inverse.
    pub const fn inverse(self) -> Option<JmpOp> {
        Some(match self {
            JmpOp::Jeq => JmpOp::Jne,
            JmpOp::Jne => JmpOp::Jeq,
            JmpOp::Jgt => JmpOp::Jle,
            JmpOp::Jle => JmpOp::Jgt,
            JmpOp::Jge => JmpOp::Jlt,
            JmpOp::Jlt => JmpOp::Jge,
            JmpOp::Jsgt => JmpOp::Jsle,
            JmpOp::Jsle => JmpOp::Jsgt,
            JmpOp::Jsge => JmpOp::Jslt,
            JmpOp::Jslt => JmpOp::Jsge,
            JmpOp::Jset => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_numbers_and_names() {
        for (i, r) in Reg::ALL.iter().enumerate() {
            assert_eq!(usize::from(r.num()), i);
            assert_eq!(Reg::from_num(r.num()), Some(*r));
            assert_eq!(r.to_string(), format!("r{i}"));
        }
        assert_eq!(Reg::from_num(11), None);
        assert_eq!(Reg::FP, Reg::R10);
    }

    #[test]
    fn from_bytes_inverts_to_bytes() {
        let i = Insn::new(0xdb, 0x3, 0xc, -2, -123_456);
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
        let raw = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Insn::from_bytes(raw).to_bytes(), raw);
    }

    #[test]
    fn typed_fields_round_trip() {
        for s in [Size::B, Size::H, Size::W, Size::DW] {
            assert_eq!(Size::from_code(s.code() | op::LDX | op::MEM), s);
        }
        for o in AluOp::ALL {
            assert_eq!(AluOp::from_code(o.code() | op::ALU64 | op::X), Some(o));
        }
        assert_eq!(AluOp::from_code(op::END), None);
        for o in JmpOp::ALL {
            assert_eq!(JmpOp::from_code(o.code() | op::JMP | op::K), Some(o));
            if let Some(inv) = o.inverse() {
                assert_eq!(inv.inverse(), Some(o));
            }
        }
        assert_eq!(JmpOp::from_code(op::CALL), None);
        assert_eq!(JmpOp::from_code(op::JA), None);
    }
}
