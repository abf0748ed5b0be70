//! Strings the kernel must hold: for comparisons, string keys and values,
//! and string leaves that are not marker strings.
//!
//! A string is a literal, the address of a marker string (read when
//! used), or bytes in a `STR_CAP` buffer of the scratch area. Comparing
//! with a literal is unrolled over the literal's bytes; other comparisons
//! and lengths are bounded loops over the buffer.

use pytap_ebpf::{AluOp, Helper, JmpOp, Reg, Size};
use pytap_script::ast::CmpOp;
use pytap_script::builtins::Builtin;
use pytap_script::ir::*;

use super::firing::CopyRead;
use super::lower::{Gen, Slot, unsupported};
use crate::engine::abi::STR_CAP;
use crate::engine::codegen::CodegenError;

type R<T> = Result<T, CodegenError>;

/// The longest literal a marker string is compared with on the stack
/// (longer ones go through the scratch area).
pub const MAX_STACK_LITERAL: usize = 62;

/// Whether comparing `a` and `b` needs no scratch area: a marker string
/// read where it is used (`user_string`, `copyinstr`) against a short
/// literal, for equality.
pub fn compares_on_stack(op: CmpOp, a: &Expr, b: &Expr) -> bool {
    let marker = |e: &Expr| {
        matches!(&e.kind, ExprKind::Builtin(Builtin::UserString, _))
            || matches!(&e.kind, ExprKind::Builtin(Builtin::UserStringN, args)
                if matches!(args.get(1).map(|a| &a.kind), Some(ExprKind::Long(n)) if *n >= 0))
    };
    let short = |e: &Expr| matches!(&e.kind, ExprKind::Str(s) if s.len() <= MAX_STACK_LITERAL);
    matches!(op, CmpOp::Eq | CmpOp::Ne) && ((marker(a) && short(b)) || (short(a) && marker(b)))
}

/// A string value in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrVal {
    /// Known bytes.
    Lit(Vec<u8>),
    /// A marker string at the address in this stack slot.
    Addr {
        /// Stack offset of the address.
        slot: i16,
        /// `user_string_n`'s limit.
        max: Option<u32>,
        /// The firing's copy of this marker argument to read instead, and
        /// whether this read makes it ([`super::firing`]).
        copy: Option<(usize, bool)>,
    },
    /// Bytes at this offset of the scratch area.
    Bytes(u32),
}

impl Gen<'_> {
    /// A string expression's value (materialised only where it must be).
    pub fn string(&mut self, e: &Expr) -> R<StrVal> {
        Ok(match &e.kind {
            ExprKind::Str(s) => StrVal::Lit(s.clone()),
            ExprKind::Local(l) => match self.locals[*l] {
                Slot::Addr { off, max } => StrVal::Addr {
                    slot: off,
                    max,
                    copy: None,
                },
                Slot::Bytes(off) => StrVal::Bytes(off),
                Slot::Long(_) => return Err(unsupported("a number as a string")),
            },
            ExprKind::Builtin(Builtin::UserString | Builtin::UserStringN, args) => {
                let max = match args.get(1).map(|a| &a.kind) {
                    None => None,
                    Some(ExprKind::Long(n)) if *n >= 0 => {
                        Some((*n).min(i64::from(u32::MAX)) as u32)
                    }
                    Some(_) => {
                        return Err(unsupported(
                            "user_string_n with a length that is not a number literal",
                        ));
                    }
                };
                let slot = self.long_to_temp(&args[0])?;
                let copy = super::firing::whole_read_of(e)
                    .filter(|&arg| self.strings.through_copy(arg, e.id))
                    .map(|arg| (arg, self.strings.makes_copy(arg, e.id)));
                StrVal::Addr { slot, max, copy }
            }
            ExprKind::Builtin(Builtin::UserString2, args) => {
                let slot = self.long_to_temp(&args[0])?;
                let off = self.alloc_string()?;
                let (ok, end) = (self.b.new_label(), self.b.new_label());
                self.read_user(off, slot, None)?;
                self.b.jmp_imm(JmpOp::Jsgt, Reg::R0, 0, ok);
                let fallback = self.string(&args[1])?;
                self.materialize(&fallback, off)?;
                self.b.ja(end);
                self.b.bind(ok);
                self.b.bind(end);
                StrVal::Bytes(off)
            }
            ExprKind::Builtin(Builtin::Execname, _) => {
                let off = self.alloc_string()?;
                self.scratch_at(Reg::R1, off)?;
                self.b.mov64_imm(Reg::R2, 16);
                self.b.call(Helper::GetCurrentComm);
                StrVal::Bytes(off)
            }
            ExprKind::Global(g) => self.global_read_string(*g, &[])?,
            ExprKind::Index(g, keys) => self.global_read_string(*g, keys)?,
            ExprKind::Ternary(c, a, b) => {
                let off = self.alloc_string()?;
                let (els, end) = (self.b.new_label(), self.b.new_label());
                self.branch_if_false(c, els)?;
                let v = self.string(a)?;
                self.materialize(&v, off)?;
                self.b.ja(end);
                self.b.bind(els);
                let v = self.string(b)?;
                self.materialize(&v, off)?;
                self.b.bind(end);
                StrVal::Bytes(off)
            }
            ExprKind::Assign(lv, AssignOp::Set, v) => {
                self.assign(lv, AssignOp::Set, v, false)?;
                match lv {
                    LValue::Local(l) => match self.locals[*l] {
                        Slot::Addr { off, max } => StrVal::Addr {
                            slot: off,
                            max,
                            copy: None,
                        },
                        Slot::Bytes(off) => StrVal::Bytes(off),
                        Slot::Long(_) => return Err(unsupported("a number as a string")),
                    },
                    _ => self.string(v)?,
                }
            }
            ExprKind::Call(f, args) => match self.call(*f, args)? {
                Some(v) => v,
                None => return Err(unsupported("a function's string result")),
            },
            _ => return Err(unsupported("this string expression")),
        })
    }

    /// Reads the marker string whose address is in stack slot `slot` into
    /// the scratch buffer at `off`; r0 is the helper's result (length
    /// with the NUL, or a negative errno, then "" is stored).
    pub fn read_user(&mut self, off: u32, slot: i16, max: Option<u32>) -> R<()> {
        let cap = max.map_or(STR_CAP as u32, |m| (m + 1).min(STR_CAP as u32));
        let ok = self.b.new_label();
        self.scratch_at(Reg::R1, off)?;
        self.b.mov64_imm(Reg::R2, cap as i32);
        self.b.ldx(Size::DW, Reg::R3, Reg::FP, slot);
        self.b.call(Helper::ProbeReadUserStr);
        self.b.jmp_imm(JmpOp::Jsgt, Reg::R0, 0, ok);
        self.store_empty(off);
        self.b.bind(ok);
        Ok(())
    }

    /// Puts a string's bytes (NUL-terminated) in the scratch buffer at `off`.
    pub fn materialize(&mut self, v: &StrVal, off: u32) -> R<()> {
        match v {
            StrVal::Lit(bytes) => {
                let bytes: Vec<u8> = bytes.iter().copied().take(STR_CAP - 1).chain([0]).collect();
                self.scratch_at(Reg::R1, off)?;
                for (i, chunk) in bytes.chunks(8).enumerate() {
                    let mut word = [0u8; 8];
                    word[..chunk.len()].copy_from_slice(chunk);
                    self.b.ld_imm64(Reg::R2, u64::from_le_bytes(word));
                    self.b.stx(Size::DW, Reg::R1, (8 * i) as i16, Reg::R2);
                }
            }
            StrVal::Addr { slot, max, .. } => self.read_user(off, *slot, *max)?,
            StrVal::Bytes(src) if *src == off => {}
            StrVal::Bytes(src) => {
                self.scratch_at(Reg::R1, off)?;
                self.b.mov64_imm(Reg::R2, STR_CAP as i32);
                self.scratch_at(Reg::R3, *src)?;
                self.b.call(Helper::ProbeReadKernelStr);
            }
        }
        Ok(())
    }

    /// The scratch offset of a string's bytes, materialising it if needed.
    pub fn to_bytes(&mut self, v: &StrVal) -> R<u32> {
        if let StrVal::Bytes(off) = v {
            return Ok(*off);
        }
        let off = self.alloc_string()?;
        self.materialize(v, off)?;
        Ok(off)
    }

    /// Copies a string's bytes, zero-padded to `STR_CAP`, into the
    /// scratch area at `off` (a key part: equal strings must be equal
    /// bytes to the hash map).
    pub fn padded(&mut self, v: &StrVal, off: u32) -> R<()> {
        self.scratch_at(Reg::R1, off)?;
        self.b.mov64_imm(Reg::R2, STR_CAP as i32);
        self.scratch_at(Reg::R3, self.layout.zeros)?;
        self.b.call(Helper::ProbeReadKernel);
        self.materialize(v, off)
    }

    /// `r0 = (marker string == lit)` (or `!=`) with no scratch area: only
    /// `lit.len() + 2` bytes are read, onto the stack (a longer string
    /// then ends in a byte that is not the literal's NUL). The HOWTO's
    /// `copyinstr(arg1) == "start"` runs at every call.
    fn compare_marker_string_on_stack(
        &mut self,
        op: CmpOp,
        lit: &[u8],
        slot: i16,
        max: Option<u32>,
        copy: Option<(usize, bool)>,
    ) -> R<()> {
        let after = self.b.new_label();
        if let Some((arg, make)) = copy {
            // The firing's copy, when there is one: no read at all.
            let direct = self.b.new_label();
            let copy_read = CopyRead {
                arg,
                addr: slot,
                make,
            };
            self.strings
                .copy_address(self.b, copy_read, Reg::R1, direct);
            self.compare_with_literal(op, lit, Reg::R1, 0);
            self.b.ja(after);
            self.b.bind(direct);
        }
        self.compare_read_on_stack(op, lit, slot, max)?;
        self.b.bind(after);
        Ok(())
    }

    /// [`Self::compare_marker_string_on_stack`] reading the process's memory.
    fn compare_read_on_stack(
        &mut self,
        op: CmpOp,
        lit: &[u8],
        slot: i16,
        max: Option<u32>,
    ) -> R<()> {
        // `user_string_n(a, max)` is at most `max` bytes long.
        let mut read = lit.len() + 2;
        if let Some(max) = max {
            read = read.min(max as usize + 1);
        }
        if lit.len() >= read {
            // Cut by `max` before the literal could end: never equal.
            self.b.mov64_imm(Reg::R0, i32::from(op == CmpOp::Ne));
            return Ok(());
        }
        let buf = self.b.alloc_stack(read.next_multiple_of(8) as u16, 8)?;
        let end = self.b.new_label();
        self.b
            .mov64_reg(Reg::R1, Reg::FP)
            .add64_imm(Reg::R1, buf.off.into());
        self.b.mov64_imm(Reg::R2, read as i32);
        self.b.ldx(Size::DW, Reg::R3, Reg::FP, slot);
        self.b.call(Helper::ProbeReadUserStr);
        // A failed read is the empty string.
        self.b.jmp_imm(JmpOp::Jsgt, Reg::R0, 0, end);
        self.b.st_imm(Size::B, Reg::FP, buf.off, 0);
        self.b.bind(end);
        // The literal's bytes and its NUL, as far as the read could reach.
        self.compare_with_literal(op, lit, Reg::FP, buf.off);
        Ok(())
    }

    /// `r0 = (bytes at base + off) <op> lit`, `op` being `==` or `!=`: the
    /// literal's bytes and its NUL compared one by one, unrolled.
    fn compare_with_literal(&mut self, op: CmpOp, lit: &[u8], base: Reg, off: i16) {
        let (differ, end) = (self.b.new_label(), self.b.new_label());
        for (i, byte) in lit.iter().chain([&0u8]).enumerate() {
            self.b.ldx(Size::B, Reg::R2, base, off + i as i16);
            self.b
                .jmp_imm(JmpOp::Jne, Reg::R2, i32::from(*byte), differ);
        }
        self.b.mov64_imm(Reg::R0, i32::from(op == CmpOp::Eq));
        self.b.ja(end);
        self.b.bind(differ);
        self.b.mov64_imm(Reg::R0, i32::from(op == CmpOp::Ne));
        self.b.bind(end);
    }

    /// `r0 = a <op> b` for strings.
    pub fn compare_strings(&mut self, op: CmpOp, a: &Expr, b: &Expr) -> R<()> {
        let va = self.string(a)?;
        let vb = self.string(b)?;
        // Against a literal, equality is unrolled over its bytes.
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            let lit = match (&va, &vb) {
                (StrVal::Lit(l), other) | (other, StrVal::Lit(l)) => {
                    Some((l.clone(), other.clone()))
                }
                _ => None,
            };
            if let Some((lit, other)) = lit {
                if let StrVal::Addr { slot, max, copy } = other
                    && lit.len() <= MAX_STACK_LITERAL
                {
                    return self.compare_marker_string_on_stack(op, &lit, slot, max, copy);
                }
                let off = self.to_bytes(&other)?;
                self.scratch_at(Reg::R1, off)?;
                let lit = &lit[..lit.len().min(STR_CAP - 1)];
                self.compare_with_literal(op, lit, Reg::R1, 0);
                return Ok(());
            }
        }
        let oa = self.to_bytes(&va)?;
        let ob = self.to_bytes(&vb)?;
        self.scratch_at(Reg::R6, oa)?;
        self.scratch_at(Reg::R7, ob)?;
        // r0 = sign of the first difference (strcmp), by a bounded loop.
        let (top, differ, equal, end) = (
            self.b.new_label(),
            self.b.new_label(),
            self.b.new_label(),
            self.b.new_label(),
        );
        self.b.mov64_imm(Reg::R8, 0);
        self.b.bind(top);
        self.b.jmp_imm(JmpOp::Jge, Reg::R8, STR_CAP as i32, equal);
        self.b
            .mov64_reg(Reg::R1, Reg::R6)
            .alu64_reg(AluOp::Add, Reg::R1, Reg::R8);
        self.b.ldx(Size::B, Reg::R1, Reg::R1, 0);
        self.b
            .mov64_reg(Reg::R2, Reg::R7)
            .alu64_reg(AluOp::Add, Reg::R2, Reg::R8);
        self.b.ldx(Size::B, Reg::R2, Reg::R2, 0);
        self.b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R2, differ);
        self.b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, equal);
        self.b.add64_imm(Reg::R8, 1);
        self.b.ja(top);
        self.b.bind(differ);
        let less = self.b.new_label();
        self.b.jmp_reg(JmpOp::Jlt, Reg::R1, Reg::R2, less);
        self.b.mov64_imm(Reg::R0, 1);
        self.b.ja(end);
        self.b.bind(less);
        self.b.mov64_imm(Reg::R0, -1);
        self.b.ja(end);
        self.b.bind(equal);
        self.b.mov64_imm(Reg::R0, 0);
        self.b.bind(end);
        self.b.mov64_imm(Reg::R1, 0);
        self.compare_regs(op);
        Ok(())
    }

    /// `r0 = strlen(e)`.
    pub fn strlen(&mut self, e: &Expr) -> R<()> {
        let v = self.string(e)?;
        if let StrVal::Lit(l) = &v {
            self.load_const(l.len().min(STR_CAP - 1) as i64);
            return Ok(());
        }
        let off = self.to_bytes(&v)?;
        self.scratch_at(Reg::R6, off)?;
        let (top, end) = (self.b.new_label(), self.b.new_label());
        self.b.mov64_imm(Reg::R0, 0);
        self.b.bind(top);
        self.b.jmp_imm(JmpOp::Jge, Reg::R0, STR_CAP as i32 - 1, end);
        self.b
            .mov64_reg(Reg::R1, Reg::R6)
            .alu64_reg(AluOp::Add, Reg::R1, Reg::R0);
        self.b.ldx(Size::B, Reg::R1, Reg::R1, 0);
        self.b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, end);
        self.b.add64_imm(Reg::R0, 1);
        self.b.ja(top);
        self.b.bind(end);
        Ok(())
    }

    /// `r0 = isinstr(hay, needle)` with a literal needle.
    pub fn isinstr(&mut self, hay: &Expr, needle: &Expr) -> R<()> {
        let ExprKind::Str(lit) = &needle.kind else {
            return Err(unsupported("isinstr with a needle that is not a literal"));
        };
        if lit.is_empty() {
            self.b.mov64_imm(Reg::R0, 1);
            return Ok(());
        }
        let lit: Vec<u8> = lit.iter().copied().take(STR_CAP - 1).collect();
        let v = self.string(hay)?;
        let off = self.to_bytes(&v)?;
        self.scratch_at(Reg::R6, off)?;
        let (top, next, found, end) = (
            self.b.new_label(),
            self.b.new_label(),
            self.b.new_label(),
            self.b.new_label(),
        );
        let last = (STR_CAP - lit.len()) as i32;
        self.b.mov64_imm(Reg::R0, 0);
        self.b.mov64_imm(Reg::R8, 0);
        self.b.bind(top);
        self.b.jmp_imm(JmpOp::Jge, Reg::R8, last, end);
        self.b
            .mov64_reg(Reg::R1, Reg::R6)
            .alu64_reg(AluOp::Add, Reg::R1, Reg::R8);
        self.b.ldx(Size::B, Reg::R2, Reg::R1, 0);
        self.b.mov64_imm(Reg::R0, 0);
        let none = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jeq, Reg::R2, 0, none);
        for (i, byte) in lit.iter().enumerate() {
            self.b.ldx(Size::B, Reg::R2, Reg::R1, i as i16);
            self.b.jmp_imm(JmpOp::Jne, Reg::R2, i32::from(*byte), next);
        }
        self.b.ja(found);
        self.b.bind(next);
        self.b.add64_imm(Reg::R8, 1);
        self.b.ja(top);
        self.b.bind(found);
        self.b.mov64_imm(Reg::R0, 1);
        self.b.ja(end);
        self.b.bind(none);
        self.b.mov64_imm(Reg::R0, 0);
        self.b.bind(end);
        // The loop's own `end` leaves r0 as it was set: 0 when not found.
        Ok(())
    }
}
