//! Text form of eBPF code for `--dump-bpf` and tests, in the style of
//! `bpftool prog dump xlated`, and decoding of raw instruction bytes.
//!
//! The disassembler accepts any instruction sequence, including garbage:
//! what it cannot name it prints as `.insn` with the raw bytes, so dumping a
//! bad program never hides the problem behind a panic.
//!
//! Differences from the kernel's printer, chosen for reading generated code:
//! jumps print `goto +3 <10>` (relative offset, then the absolute slot index)
//! instead of `goto pc+3`, opcodes are not shown, and map loads show the
//! map's name (or `#index` without one) instead of an fd.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::builder::MapRef;
use crate::helper::Helper;
use crate::insn::{
    AluOp, Insn, JmpOp, PSEUDO_CALL, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, Size, op,
};
use crate::program::Program;

/// Raw bytes could not be split into instructions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length is not a whole number of 8-byte slots.
    #[error("{len} bytes is not a multiple of the 8-byte instruction size")]
    BadLength {
        /// The length given.
        len: usize,
    },
}

/// Split the wire form into instruction slots.
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(DecodeError::BadLength { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Insn::from_bytes(b)
        })
        .collect())
}

/// One line per instruction (two-slot `ld_imm64` once), each prefixed with
/// its slot index. Map loads show the raw `imm`: the map index before
/// relocation, the fd after.
pub fn disassemble(insns: &[Insn]) -> String {
    render(insns, &BTreeMap::new(), &BTreeMap::new(), &default_map_name)
}

/// Like [`disassemble`], but map loads are named by `map_name` and each
/// comment from [`ProgramBuilder::comment`] appears as a `; ` line above its
/// instruction.
///
/// [`ProgramBuilder::comment`]: crate::ProgramBuilder::comment
pub fn disassemble_with(program: &Program, map_name: &dyn Fn(MapRef) -> String) -> String {
    let relocs = program.relocs().iter().map(|r| (r.insn, r.map)).collect();
    let comments = (0..program.len())
        .filter_map(|i| program.comment_at(i).map(|c| (i, c)))
        .collect();
    render(program.insns(), &relocs, &comments, map_name)
}

fn default_map_name(m: MapRef) -> String {
    format!("#{}", m.0)
}

/// Shows the program with comments and maps named by index (`map[#0]`).
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&disassemble_with(self, &default_map_name))
    }
}

fn render(
    insns: &[Insn],
    relocs: &BTreeMap<usize, MapRef>,
    comments: &BTreeMap<usize, &str>,
    map_name: &dyn Fn(MapRef) -> String,
) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(insn) = insns.get(i) {
        if let Some(c) = comments.get(&i) {
            for line in c.lines() {
                let _ = writeln!(out, "; {line}");
            }
        }
        let next = insns.get(i + 1);
        let (text, slots) = match (insn.is_ld_imm64(), next) {
            (true, Some(hi)) => (ld_imm64(insn, hi, relocs.get(&i).copied(), map_name), 2),
            _ => (one(i, insn), 1),
        };
        let _ = writeln!(out, "{i:>4}: {text}");
        i += slots;
    }
    out
}

fn raw(insn: &Insn) -> String {
    let b = insn.to_bytes();
    format!(
        ".insn 0x{:02x} ({:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x})",
        insn.code, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

fn ld_imm64(
    lo: &Insn,
    hi: &Insn,
    reloc: Option<MapRef>,
    map_name: &dyn Fn(MapRef) -> String,
) -> String {
    // Reinterpret the two 32-bit halves as one 64-bit constant.
    let value = (u64::from(hi.imm as u32) << 32) | u64::from(lo.imm as u32);
    let dst = lo.dst;
    let map = || map_name(reloc.unwrap_or(MapRef(lo.imm as u32)));
    match lo.src {
        0 => format!("r{dst} = 0x{value:x} ll"),
        PSEUDO_MAP_FD => format!("r{dst} = map[{}] ll", map()),
        PSEUDO_MAP_VALUE => format!("r{dst} = map[{}]+{} ll", map(), hi.imm as u32),
        other => format!("r{dst} = pseudo{other}(0x{value:x}) ll"),
    }
}

fn mem(size: &str, base: u8, off: i16) -> String {
    format!("*({size} *)(r{base} {off:+})")
}

fn target(at: usize, off: i64) -> i64 {
    // Slot indices of real programs are far below i64::MAX.
    at as i64 + 1 + off
}

fn one(at: usize, insn: &Insn) -> String {
    let text = match insn.class() {
        op::ALU | op::ALU64 => alu(insn),
        op::LDX => ldx(insn),
        op::ST if insn.code & op::MODE_MASK == op::MEM => {
            let size = Size::from_code(insn.code).type_name();
            Some(format!("{} = {}", mem(size, insn.dst, insn.off), insn.imm))
        }
        op::STX => stx(insn),
        op::JMP | op::JMP32 => jmp(at, insn),
        _ => None,
    };
    text.unwrap_or_else(|| raw(insn))
}

fn alu(insn: &Insn) -> Option<String> {
    let p = if insn.class() == op::ALU64 { 'r' } else { 'w' };
    let (d, s) = (insn.dst, insn.src);
    let reg_src = insn.code & op::SRC_MASK == op::X;
    let opbits = insn.code & op::OP_MASK;
    if opbits == op::END {
        let width = insn.imm;
        if !matches!(width, 16 | 32 | 64) {
            return None;
        }
        return Some(match (insn.class(), reg_src) {
            (op::ALU64, _) => format!("r{d} = bswap{width} r{d}"),
            (_, false) => format!("r{d} = le{width} r{d}"),
            (_, true) => format!("r{d} = be{width} r{d}"),
        });
    }
    let aop = AluOp::from_code(opbits)?;
    Some(match aop {
        AluOp::Neg => format!("{p}{d} = -{p}{d}"),
        AluOp::Mov if reg_src && matches!(insn.off, 8 | 16 | 32) => {
            format!("{p}{d} = (s{}){p}{s}", insn.off)
        }
        _ => {
            let signed = insn.off == 1 && matches!(aop, AluOp::Div | AluOp::Mod);
            let sym = format!("{}{}", if signed { "s" } else { "" }, aop.symbol());
            if reg_src {
                format!("{p}{d} {sym} {p}{s}")
            } else {
                format!("{p}{d} {sym} {}", insn.imm)
            }
        }
    })
}

fn ldx(insn: &Insn) -> Option<String> {
    let size = Size::from_code(insn.code);
    let ty = match insn.code & op::MODE_MASK {
        op::MEM => size.type_name(),
        op::MEMSX => match size {
            Size::B => "s8",
            Size::H => "s16",
            Size::W => "s32",
            Size::DW => return None,
        },
        _ => return None,
    };
    Some(format!("r{} = {}", insn.dst, mem(ty, insn.src, insn.off)))
}

fn stx(insn: &Insn) -> Option<String> {
    let size = Size::from_code(insn.code);
    let m = mem(size.type_name(), insn.dst, insn.off);
    let s = insn.src;
    match insn.code & op::MODE_MASK {
        op::MEM => return Some(format!("{m} = r{s}")),
        op::ATOMIC if matches!(size, Size::W | Size::DW) => {}
        _ => return None,
    }
    let bits = if size == Size::DW { "64" } else { "" };
    let inner = format!("({} *)(r{} {:+})", size.type_name(), insn.dst, insn.off);
    let name = |o: u8| match o {
        op::ADD => Some(("+=", "add")),
        op::OR => Some(("|=", "or")),
        op::AND => Some(("&=", "and")),
        op::XOR => Some(("^=", "xor")),
        _ => None,
    };
    let imm = u8::try_from(insn.imm).ok()?;
    Some(match imm {
        op::XCHG => format!("r{s} = atomic{bits}_xchg({inner}, r{s})"),
        op::CMPXCHG => format!("r0 = atomic{bits}_cmpxchg({inner}, r0, r{s})"),
        _ if imm & op::FETCH != 0 => {
            let (_, word) = name(imm & !op::FETCH)?;
            format!("r{s} = atomic{bits}_fetch_{word}({inner}, r{s})")
        }
        _ => {
            let (sym, _) = name(imm)?;
            format!("lock {m} {sym} r{s}")
        }
    })
}

fn jmp(at: usize, insn: &Insn) -> Option<String> {
    let is32 = insn.class() == op::JMP32;
    let p = if is32 { 'w' } else { 'r' };
    let off = i64::from(insn.off);
    match insn.code & op::OP_MASK {
        op::JA if is32 => {
            // gotol: the distance lives in imm so it can exceed 16 bits.
            let imm = i64::from(insn.imm);
            return Some(format!("gotol {imm:+} <{}>", target(at, imm)));
        }
        op::JA => return Some(format!("goto {off:+} <{}>", target(at, off))),
        op::CALL if !is32 => {
            return Some(match insn.src {
                0 => match Helper::from_id(insn.imm) {
                    Some(h) => format!("call {}#{}", h.name(), insn.imm),
                    None => format!("call unknown#{}", insn.imm),
                },
                PSEUDO_CALL => {
                    let imm = i64::from(insn.imm);
                    format!("call pc{imm:+} <{}>", target(at, imm))
                }
                PSEUDO_KFUNC_CALL => format!("call kernel-function#{}", insn.imm),
                _ => return None,
            });
        }
        op::EXIT if !is32 => return Some("exit".to_owned()),
        _ => {}
    }
    let cmp = JmpOp::from_code(insn.code)?;
    let rhs = if insn.code & op::SRC_MASK == op::X {
        format!("{p}{}", insn.src)
    } else {
        // The kernel shows compare immediates as their 32-bit pattern.
        format!("0x{:x}", insn.imm as u32)
    };
    Some(format!(
        "if {p}{} {} {rhs} goto {off:+} <{}>",
        insn.dst,
        cmp.symbol(),
        target(at, off)
    ))
}
