//! x86-64 USDT argument specs: `8@%rbp`, `-4@%r14d`, `-4@112(%rsp)`,
//! `-1@-96(%rbp,%rax,8)`, `4@$5`.
//!
//! `<sys/sdt.h>` writes each argument as `[-]SIZE@OPERAND`, where the operand
//! is whatever the compiler chose in AT&T syntax and a negative size means a
//! signed value. Register allocation differs between builds of the same
//! CPython version, so pytap parses the spec of the exact binary it traces
//! and never assumes one.
//!
//! The typed form, [`ArgSpec`], is what the code generator turns into loads
//! from `struct pt_regs`; [`X86Reg::pt_regs_offset`] is the bridge.

use std::fmt;

use thiserror::Error;

/// A general-purpose x86-64 register (or `%rip`, for RIP-relative memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(missing_docs, reason = "each variant is the register of its name")]
pub enum X86Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
}

impl X86Reg {
    /// Byte offset of this register in the kernel's x86-64 `struct pt_regs`
    /// (uapi `asm/ptrace.h`), which is the context a uprobe program gets.
    pub fn pt_regs_offset(self) -> u16 {
        match self {
            X86Reg::R15 => 0,
            X86Reg::R14 => 8,
            X86Reg::R13 => 16,
            X86Reg::R12 => 24,
            X86Reg::Rbp => 32,
            X86Reg::Rbx => 40,
            X86Reg::R11 => 48,
            X86Reg::R10 => 56,
            X86Reg::R9 => 64,
            X86Reg::R8 => 72,
            X86Reg::Rax => 80,
            X86Reg::Rcx => 88,
            X86Reg::Rdx => 96,
            X86Reg::Rsi => 104,
            X86Reg::Rdi => 112,
            X86Reg::Rip => 128,
            X86Reg::Rsp => 152,
        }
    }

    /// The register's name at the given width in bytes (`%eax` for Rax at 4).
    pub fn name(self, width: u8) -> &'static str {
        let column = match width {
            8 => 0,
            4 => 1,
            2 => 2,
            _ => 3,
        };
        REGISTER_NAMES
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("rip", |(_, names)| names[column])
    }

    /// Parses a register name without its `%`, returning the register and
    /// the width in bytes the name denotes.
    fn parse(name: &str) -> Result<(X86Reg, u8), ArgSpecErrorKind> {
        if name == "rip" {
            return Ok((X86Reg::Rip, 8));
        }
        if matches!(name, "ah" | "bh" | "ch" | "dh") {
            // Bits 8-15 of a register: no tracer supports these (libbpf
            // rejects them too) and compilers do not emit them for USDT.
            return Err(ArgSpecErrorKind::HighByteRegister(name.to_string()));
        }
        // GNU as also accepts `l` for the low byte of r8-r15 (`%r10l`).
        let name = match name.strip_suffix('l') {
            Some(stem) if stem.starts_with('r') && stem[1..].parse::<u8>().is_ok() => {
                return Self::parse(&format!("{stem}b"));
            }
            _ => name,
        };
        const WIDTHS: [u8; 4] = [8, 4, 2, 1];
        REGISTER_NAMES
            .iter()
            .find_map(|(reg, names)| {
                let column = names.iter().position(|n| *n == name)?;
                Some((*reg, WIDTHS[column]))
            })
            .ok_or_else(|| ArgSpecErrorKind::UnknownRegister(name.to_string()))
    }
}

/// AT&T names of each register at widths 8, 4, 2 and 1 bytes.
const REGISTER_NAMES: [(X86Reg, [&str; 4]); 16] = [
    (X86Reg::Rax, ["rax", "eax", "ax", "al"]),
    (X86Reg::Rbx, ["rbx", "ebx", "bx", "bl"]),
    (X86Reg::Rcx, ["rcx", "ecx", "cx", "cl"]),
    (X86Reg::Rdx, ["rdx", "edx", "dx", "dl"]),
    (X86Reg::Rsi, ["rsi", "esi", "si", "sil"]),
    (X86Reg::Rdi, ["rdi", "edi", "di", "dil"]),
    (X86Reg::Rbp, ["rbp", "ebp", "bp", "bpl"]),
    (X86Reg::Rsp, ["rsp", "esp", "sp", "spl"]),
    (X86Reg::R8, ["r8", "r8d", "r8w", "r8b"]),
    (X86Reg::R9, ["r9", "r9d", "r9w", "r9b"]),
    (X86Reg::R10, ["r10", "r10d", "r10w", "r10b"]),
    (X86Reg::R11, ["r11", "r11d", "r11w", "r11b"]),
    (X86Reg::R12, ["r12", "r12d", "r12w", "r12b"]),
    (X86Reg::R13, ["r13", "r13d", "r13w", "r13b"]),
    (X86Reg::R14, ["r14", "r14d", "r14w", "r14b"]),
    (X86Reg::R15, ["r15", "r15d", "r15w", "r15b"]),
];

/// Where an argument's value is at the probe instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgLocation {
    /// In a register; `width` is the width the spec named (4 for `%eax`).
    Register {
        /// The full 64-bit register.
        reg: X86Reg,
        /// Width in bytes of the register name used in the spec.
        width: u8,
    },
    /// In memory at `disp + base + index * scale`.
    Memory {
        /// Base register, absent for `disp(,%index,scale)` and absolute addresses.
        base: Option<X86Reg>,
        /// Index register, if any.
        index: Option<X86Reg>,
        /// Scale applied to the index: 1, 2, 4 or 8.
        scale: u8,
        /// Displacement.
        disp: i64,
    },
    /// A constant known at compile time (`$5`).
    Constant(i64),
}

/// One parsed argument: how many bytes, signed or not, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgSpec {
    /// Size of the value in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Whether the value is signed (a negative size in the spec).
    pub signed: bool,
    /// Where the value lives.
    pub location: ArgLocation,
}

/// Why an argument spec could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("argument spec `{spec}`: {kind}")]
pub struct ArgSpecError {
    /// The offending spec, as written in the note.
    pub spec: String,
    /// What is wrong with it.
    pub kind: ArgSpecErrorKind,
}

/// The kinds of [`ArgSpecError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgSpecErrorKind {
    /// The size before `@` is not one of ±1, ±2, ±4, ±8.
    #[error("size must be 1, 2, 4 or 8 (negative for signed), not `{0}`")]
    BadSize(String),
    /// Not an x86-64 general-purpose register.
    #[error("unknown register `%{0}`")]
    UnknownRegister(String),
    /// `%ah`, `%bh`, `%ch` or `%dh`.
    #[error("high-byte register `%{0}` is not supported")]
    HighByteRegister(String),
    /// The displacement is a symbol (`foo+8(%rip)`), which needs a symbol table lookup.
    #[error("symbolic displacement `{0}` is not supported")]
    Symbolic(String),
    /// A memory operand's scale is not 1, 2, 4 or 8.
    #[error("scale must be 1, 2, 4 or 8, not `{0}`")]
    BadScale(String),
    /// Anything else that does not follow the grammar.
    #[error("malformed operand")]
    Malformed,
}

/// Parses a whole argument string (`8@%rbp 8@%r12 -4@%eax`) into its
/// arguments. An empty string means the marker has no arguments.
pub fn parse_arg_specs(args: &str) -> Result<Vec<ArgSpec>, ArgSpecError> {
    args.split_whitespace().map(ArgSpec::parse).collect()
}

impl ArgSpec {
    /// Parses one argument such as `-4@112(%rsp)`.
    pub fn parse(spec: &str) -> Result<ArgSpec, ArgSpecError> {
        parse_one(spec).map_err(|kind| ArgSpecError {
            spec: spec.to_string(),
            kind,
        })
    }
}

fn parse_one(spec: &str) -> Result<ArgSpec, ArgSpecErrorKind> {
    let (size, operand) = match spec.split_once('@') {
        Some((size, operand)) => {
            let (signed, digits) = match size.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, size),
            };
            let bytes = match digits {
                "1" => 1,
                "2" => 2,
                "4" => 4,
                "8" => 8,
                _ => return Err(ArgSpecErrorKind::BadSize(size.to_string())),
            };
            (Some((bytes, signed)), operand)
        }
        None => (None, spec),
    };
    let location = parse_operand(operand)?;
    // SDT v1/v2 notes omit the size: take the register's width, else 8 bytes.
    let (size, signed) = size.unwrap_or(match location {
        ArgLocation::Register { width, .. } => (width, false),
        _ => (8, false),
    });
    Ok(ArgSpec {
        size,
        signed,
        location,
    })
}

fn parse_operand(operand: &str) -> Result<ArgLocation, ArgSpecErrorKind> {
    if let Some(reg) = operand.strip_prefix('%') {
        let (reg, width) = X86Reg::parse(reg)?;
        if reg == X86Reg::Rip {
            return Err(ArgSpecErrorKind::Malformed);
        }
        return Ok(ArgLocation::Register { reg, width });
    }
    if let Some(constant) = operand.strip_prefix('$') {
        return parse_int(constant).map(ArgLocation::Constant);
    }
    let Some(open) = operand.find('(') else {
        // A bare number is an absolute address.
        return parse_displacement(operand).map(|disp| ArgLocation::Memory {
            base: None,
            index: None,
            scale: 1,
            disp,
        });
    };
    let inner = operand[open + 1..]
        .strip_suffix(')')
        .ok_or(ArgSpecErrorKind::Malformed)?;
    let disp = match &operand[..open] {
        "" => 0,
        text => parse_displacement(text)?,
    };
    let mut parts = inner.split(',');
    let base = match parts.next().map(str::trim) {
        Some("") | None => None,
        Some(reg) => Some(parse_memory_reg(reg)?),
    };
    let index = match parts.next().map(str::trim) {
        Some("") | None => None,
        Some(reg) => Some(parse_memory_reg(reg)?),
    };
    let scale = match parts.next().map(str::trim) {
        None => 1,
        Some(s) => match s {
            "1" => 1,
            "2" => 2,
            "4" => 4,
            "8" => 8,
            other => return Err(ArgSpecErrorKind::BadScale(other.to_string())),
        },
    };
    if parts.next().is_some() || (base.is_none() && index.is_none()) {
        return Err(ArgSpecErrorKind::Malformed);
    }
    if index == Some(X86Reg::Rip) || (base == Some(X86Reg::Rip) && index.is_some()) {
        return Err(ArgSpecErrorKind::Malformed);
    }
    // A scale without an index scales nothing; the assembler ignores it too
    // (found by the arg_specs fuzz target: it broke the print round trip).
    let scale = if index.is_none() { 1 } else { scale };
    Ok(ArgLocation::Memory {
        base,
        index,
        scale,
        disp,
    })
}

fn parse_memory_reg(text: &str) -> Result<X86Reg, ArgSpecErrorKind> {
    let name = text.strip_prefix('%').ok_or(ArgSpecErrorKind::Malformed)?;
    let (reg, width) = X86Reg::parse(name)?;
    // Addresses are computed with 64-bit registers.
    if width != 8 {
        return Err(ArgSpecErrorKind::Malformed);
    }
    Ok(reg)
}

fn parse_displacement(text: &str) -> Result<i64, ArgSpecErrorKind> {
    let starts_numeric = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit());
    if !starts_numeric {
        return Err(ArgSpecErrorKind::Symbolic(text.to_string()));
    }
    parse_int(text)
}

fn parse_int(text: &str) -> Result<i64, ArgSpecErrorKind> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = magnitude
        .strip_prefix("0x")
        .or_else(|| magnitude.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16)
    } else {
        magnitude.parse::<u64>()
    }
    .map_err(|_| ArgSpecErrorKind::Malformed)?;
    // Two's-complement wrap keeps `$0xffffffffffffffff` and `-9223372036854775808` meaningful.
    Ok(if negative {
        (value as i64).wrapping_neg()
    } else {
        value as i64
    })
}

impl fmt::Display for ArgSpec {
    /// Prints the canonical spec, e.g. `-4@112(%rsp)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.signed {
            f.write_str("-")?;
        }
        write!(f, "{}@", self.size)?;
        match &self.location {
            ArgLocation::Register { reg, width } => write!(f, "%{}", reg.name(*width)),
            ArgLocation::Constant(v) => write!(f, "${v}"),
            ArgLocation::Memory {
                base,
                index,
                scale,
                disp,
            } => {
                if *disp != 0 || (base.is_none() && index.is_none()) {
                    write!(f, "{disp}")?;
                }
                if base.is_none() && index.is_none() {
                    return Ok(());
                }
                f.write_str("(")?;
                if let Some(b) = base {
                    write!(f, "%{}", b.name(8))?;
                }
                if let Some(i) = index {
                    write!(f, ",%{},{scale}", i.name(8))?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> ArgSpec {
        ArgSpec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn reg(size: u8, signed: bool, reg: X86Reg, width: u8) -> ArgSpec {
        ArgSpec {
            size,
            signed,
            location: ArgLocation::Register { reg, width },
        }
    }

    #[test]
    fn every_spec_seen_in_debian_cpython() {
        // Strings copied from the .note.stapsdt of python3.9 … python3.15.
        use X86Reg::*;
        assert_eq!(one("8@%rbp"), reg(8, false, Rbp, 8));
        assert_eq!(one("-4@%eax"), reg(4, true, Rax, 4));
        assert_eq!(one("-4@%r14d"), reg(4, true, R14, 4));
        assert_eq!(one("-4@%ebp"), reg(4, true, Rbp, 4));
        assert_eq!(one("-4@%ecx"), reg(4, true, Rcx, 4));
        assert_eq!(one("-4@%edx"), reg(4, true, Rdx, 4));
        assert_eq!(one("-8@%r12"), reg(8, true, R12, 8));
        let mem = |base, disp| ArgSpec {
            size: 4,
            signed: true,
            location: ArgLocation::Memory {
                base: Some(base),
                index: None,
                scale: 1,
                disp,
            },
        };
        assert_eq!(one("-4@112(%rsp)"), mem(Rsp, 112));
        assert_eq!(one("-4@56(%rsp)"), mem(Rsp, 56));
        assert_eq!(one("-4@-228(%rbp)"), mem(Rbp, -228));
        assert_eq!(one("-4@-292(%rbp)"), mem(Rbp, -292));
        // A scale with no index register means nothing (fuzzer find): it
        // parses as scale 1, so the spec prints back to what it means.
        assert_eq!(one("-4@112(%rsp,,2)"), mem(Rsp, 112));
        assert_eq!(one("-4@112(%rsp,,2)").to_string(), "-4@112(%rsp)");
    }

    #[test]
    fn sub_registers_of_every_width() {
        use X86Reg::*;
        for (name, r, w) in [
            ("%al", Rax, 1),
            ("%ax", Rax, 2),
            ("%sil", Rsi, 1),
            ("%dil", Rdi, 1),
            ("%bpl", Rbp, 1),
            ("%spl", Rsp, 1),
            ("%bl", Rbx, 1),
            ("%cx", Rcx, 2),
            ("%r8d", R8, 4),
            ("%r9w", R9, 2),
            ("%r15b", R15, 1),
            ("%r10l", R10, 1),
            ("%rdi", Rdi, 8),
        ] {
            assert_eq!(
                one(&format!("1@{name}")).location,
                ArgLocation::Register { reg: r, width: w },
                "{name}"
            );
        }
    }

    #[test]
    fn sib_constant_and_rip_relative() {
        use X86Reg::*;
        assert_eq!(
            one("-1@-96(%rbp,%rax,8)").location,
            ArgLocation::Memory {
                base: Some(Rbp),
                index: Some(Rax),
                scale: 8,
                disp: -96
            }
        );
        assert_eq!(
            one("8@(%rsp)").location,
            ArgLocation::Memory {
                base: Some(Rsp),
                index: None,
                scale: 1,
                disp: 0
            }
        );
        assert_eq!(
            one("4@0x10(,%rcx,4)").location,
            ArgLocation::Memory {
                base: None,
                index: Some(Rcx),
                scale: 4,
                disp: 16
            }
        );
        assert_eq!(
            one("8@8(%rip)").location,
            ArgLocation::Memory {
                base: Some(Rip),
                index: None,
                scale: 1,
                disp: 8
            }
        );
        assert_eq!(one("4@$5").location, ArgLocation::Constant(5));
        assert_eq!(one("-4@$-5").location, ArgLocation::Constant(-5));
        assert_eq!(one("8@$0x20").location, ArgLocation::Constant(32));
        // Old notes: no size, width from the register.
        assert_eq!(one("%eax"), reg(4, false, Rax, 4));
    }

    #[test]
    fn whole_argument_strings() {
        let args = parse_arg_specs("8@%rbp 8@%r12 -4@%eax").unwrap();
        assert_eq!(args.len(), 3);
        assert_eq!(parse_arg_specs("").unwrap(), vec![]);
        assert_eq!(parse_arg_specs("  ").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_problem() {
        let kind = |s: &str| ArgSpec::parse(s).unwrap_err().kind;
        assert_eq!(kind("3@%eax"), ArgSpecErrorKind::BadSize("3".into()));
        assert_eq!(kind("-16@%eax"), ArgSpecErrorKind::BadSize("-16".into()));
        assert_eq!(
            kind("4@%xmm0"),
            ArgSpecErrorKind::UnknownRegister("xmm0".into())
        );
        assert_eq!(
            kind("1@%ah"),
            ArgSpecErrorKind::HighByteRegister("ah".into())
        );
        assert_eq!(
            kind("8@foo+8(%rip)"),
            ArgSpecErrorKind::Symbolic("foo+8".into())
        );
        assert_eq!(
            kind("8@8(%rbp,%rax,3)"),
            ArgSpecErrorKind::BadScale("3".into())
        );
        for bad in [
            "8@",
            "8@(",
            "8@()",
            "8@8(%rbp",
            "8@$",
            "8@$x",
            "8@%",
            "8@8(%eax)",
            "8@(%rbp,%rax,8,1)",
            "8@%rip",
            "8@(%rax,%rip)",
        ] {
            assert!(ArgSpec::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "8@%rbp",
            "-4@%eax",
            "-4@%r14d",
            "-4@112(%rsp)",
            "-4@-292(%rbp)",
            "-1@-96(%rbp,%rax,8)",
            "4@$5",
            "8@(%rsp)",
            "1@%sil",
        ] {
            assert_eq!(one(spec).to_string(), spec);
        }
    }

    #[test]
    fn pt_regs_offsets_match_the_uapi_layout() {
        // struct pt_regs on x86-64: r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss
        let order = [
            X86Reg::R15,
            X86Reg::R14,
            X86Reg::R13,
            X86Reg::R12,
            X86Reg::Rbp,
            X86Reg::Rbx,
            X86Reg::R11,
            X86Reg::R10,
            X86Reg::R9,
            X86Reg::R8,
            X86Reg::Rax,
            X86Reg::Rcx,
            X86Reg::Rdx,
            X86Reg::Rsi,
            X86Reg::Rdi,
        ];
        for (i, r) in order.iter().enumerate() {
            assert_eq!(r.pt_regs_offset(), (i * 8) as u16, "{r:?}");
        }
        assert_eq!(X86Reg::Rip.pt_regs_offset(), 16 * 8);
        assert_eq!(X86Reg::Rsp.pt_regs_offset(), 19 * 8);
    }
}
