//! Statistics in BPF maps: `<<<` adds a value to a per-CPU count, sum,
//! minimum, maximum, sum of squares (`stddev`) and histogram bucket
//! (logarithmic, linear or log-linear), which pytap sums over the CPUs.

use pytap_ebpf::{AluOp, JmpOp, Reg, Size};
use pytap_script::ir::*;

use super::globals::{NOEXIST, Value};
use super::lower::{Gen, unsupported};
use super::placement::ValueLayout;
use crate::engine::codegen::CodegenError;

type R<T> = Result<T, CodegenError>;

impl Gen<'_> {
    /// `g[keys] <<< v`.
    pub fn aggregate(&mut self, lv: &LValue, v: &Expr) -> R<()> {
        let (g, keys) = match lv {
            LValue::Global(g) => (*g, &[][..]),
            LValue::Index(g, keys) => (*g, keys.as_slice()),
            LValue::Local(_) => return Err(unsupported("statistics in a local")),
        };
        let kg = self.kernel_global(g)?.clone();
        let ValueLayout::Stats { shape, squares } = kg.value else {
            return Err(unsupported("<<< on a number"));
        };
        let t = self.long_to_temp(v)?;
        let at = self.key(g, keys)?;
        let (found, done) = (self.b.new_label(), self.b.new_label());
        self.lookup(g, at)?;
        self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
        self.update(g, at, Value::Scratch(self.layout.zeros), NOEXIST)?;
        if kg.address_keyed {
            let skip = self.b.new_label();
            self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, skip);
            super::output::emit_keydef(self, g, at)?;
            self.b.bind(skip);
        }
        self.lookup(g, at)?;
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
        self.b.bind(found);
        self.b.comment("count, sum, min, max, bucket");
        self.b.mov64_reg(Reg::R6, Reg::R0);
        self.b.mov64_imm(Reg::R1, 1);
        self.b.atomic_fetch_add(Size::DW, Reg::R6, 0, Reg::R1);
        self.b.ldx(Size::DW, Reg::R2, Reg::FP, t);
        self.b.atomic_add(Size::DW, Reg::R6, 8, Reg::R2);
        let (first, minmax_done) = (self.b.new_label(), self.b.new_label());
        self.b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, first);
        let (no_min, no_max) = (self.b.new_label(), self.b.new_label());
        self.b.ldx(Size::DW, Reg::R3, Reg::R6, 16);
        self.b.jmp_reg(JmpOp::Jsge, Reg::R2, Reg::R3, no_min);
        self.b.stx(Size::DW, Reg::R6, 16, Reg::R2);
        self.b.bind(no_min);
        self.b.ldx(Size::DW, Reg::R3, Reg::R6, 24);
        self.b.jmp_reg(JmpOp::Jsle, Reg::R2, Reg::R3, no_max);
        self.b.stx(Size::DW, Reg::R6, 24, Reg::R2);
        self.b.bind(no_max);
        self.b.ja(minmax_done);
        self.b.bind(first);
        self.b.stx(Size::DW, Reg::R6, 16, Reg::R2);
        self.b.stx(Size::DW, Reg::R6, 24, Reg::R2);
        self.b.bind(minmax_done);
        if let Some(shape) = shape {
            self.bucket(shape)?;
            self.b.alu64_imm(AluOp::Lsh, Reg::R3, 3);
            self.b.alu64_reg(AluOp::Add, Reg::R3, Reg::R6);
            self.b.mov64_imm(Reg::R1, 1);
            self.b.atomic_add(Size::DW, Reg::R3, 32, Reg::R1);
        }
        if squares {
            self.b.ldx(Size::DW, Reg::R2, Reg::FP, t);
            self.add_square(ValueLayout::squares_offset(shape))?;
        }
        self.b.bind(done);
        Ok(())
    }

    /// Adds the square of the value in r2 to the 128-bit sum at `r6 +
    /// offset` (low word first). BPF has no 64x64→128 multiply: with
    /// |v| = h·2^32 + l, v² = h²·2^64 + hl·2^33 + l², each product fitting
    /// 64 bits. The low word is added with a fetch-add whose old value
    /// tells the carry, so concurrent adds stay exact.
    fn add_square(&mut self, offset: u32) -> R<()> {
        let off = i16::try_from(offset).map_err(|_| unsupported("a stddev() this large"))?;
        self.b.comment("sum of squares += v * v (128 bits)");
        let (positive, no_carry, no_carry2) =
            (self.b.new_label(), self.b.new_label(), self.b.new_label());
        self.b.jmp_imm(JmpOp::Jsge, Reg::R2, 0, positive);
        self.b.neg64(Reg::R2);
        self.b.bind(positive);
        // r3 = h, r2 = l
        self.b
            .mov64_reg(Reg::R3, Reg::R2)
            .alu64_imm(AluOp::Rsh, Reg::R3, 32);
        self.b.mov32_reg(Reg::R2, Reg::R2);
        // r4 = l², r5 = hl, r3 = h²
        self.b
            .mov64_reg(Reg::R4, Reg::R2)
            .alu64_reg(AluOp::Mul, Reg::R4, Reg::R2);
        self.b
            .mov64_reg(Reg::R5, Reg::R3)
            .alu64_reg(AluOp::Mul, Reg::R5, Reg::R2);
        self.b.alu64_reg(AluOp::Mul, Reg::R3, Reg::R3);
        // high += hl >> 31; low = l² + (hl << 33), carrying into high
        self.b
            .mov64_reg(Reg::R1, Reg::R5)
            .alu64_imm(AluOp::Lsh, Reg::R1, 33);
        self.b
            .alu64_imm(AluOp::Rsh, Reg::R5, 31)
            .alu64_reg(AluOp::Add, Reg::R3, Reg::R5);
        self.b.alu64_reg(AluOp::Add, Reg::R1, Reg::R4);
        self.b.jmp_reg(JmpOp::Jge, Reg::R1, Reg::R4, no_carry);
        self.b.add64_imm(Reg::R3, 1);
        self.b.bind(no_carry);
        // old = fetch_add(low, r1); carry when old + r1 wraps
        self.b.mov64_reg(Reg::R4, Reg::R1);
        self.b.atomic_fetch_add(Size::DW, Reg::R6, off, Reg::R1);
        self.b.alu64_reg(AluOp::Add, Reg::R1, Reg::R4);
        self.b.jmp_reg(JmpOp::Jge, Reg::R1, Reg::R4, no_carry2);
        self.b.add64_imm(Reg::R3, 1);
        self.b.bind(no_carry2);
        self.b.atomic_add(Size::DW, Reg::R6, off + 8, Reg::R3);
        Ok(())
    }

    /// `r3 = ` the bucket of the value in r2 (SystemTap's), bounded.
    fn bucket(&mut self, shape: HistShape) -> R<()> {
        let max = shape.buckets() as i32 - 1;
        match shape {
            HistShape::Log => {
                let (zero, pos, neg, end) = (
                    self.b.new_label(),
                    self.b.new_label(),
                    self.b.new_label(),
                    self.b.new_label(),
                );
                self.b.mov64_reg(Reg::R3, Reg::R2);
                self.b.jmp_imm(JmpOp::Jeq, Reg::R3, 0, zero);
                self.b.mov64_imm(Reg::R5, 0);
                self.b.jmp_imm(JmpOp::Jsge, Reg::R3, 0, pos);
                self.b.neg64(Reg::R3);
                self.b.mov64_imm(Reg::R5, 1);
                self.b.bind(pos);
                self.b.mov64_imm(Reg::R4, 1);
                for shift in [32, 16, 8, 4, 2, 1] {
                    let skip = self.b.new_label();
                    self.b
                        .mov64_reg(Reg::R1, Reg::R3)
                        .alu64_imm(AluOp::Rsh, Reg::R1, shift);
                    self.b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, skip);
                    self.b.mov64_reg(Reg::R3, Reg::R1);
                    self.b.add64_imm(Reg::R4, shift);
                    self.b.bind(skip);
                }
                self.b.jmp_imm(JmpOp::Jne, Reg::R5, 0, neg);
                self.b
                    .mov64_imm(Reg::R3, 64)
                    .alu64_reg(AluOp::Add, Reg::R3, Reg::R4);
                self.b.ja(end);
                self.b.bind(neg);
                self.b
                    .mov64_imm(Reg::R3, 64)
                    .alu64_reg(AluOp::Sub, Reg::R3, Reg::R4);
                self.b.ja(end);
                self.b.bind(zero);
                self.b.mov64_imm(Reg::R3, 64);
                self.b.bind(end);
            }
            HistShape::Linear {
                start, interval, ..
            } => {
                let (under, end) = (self.b.new_label(), self.b.new_label());
                self.b.mov64_reg(Reg::R3, Reg::R2);
                self.b.ld_imm64(Reg::R1, start as u64);
                self.b.alu64_reg(AluOp::Sub, Reg::R3, Reg::R1);
                self.b.jmp_imm(JmpOp::Jslt, Reg::R3, 0, under);
                self.b.ld_imm64(Reg::R1, interval as u64);
                self.b.alu64_reg(AluOp::Div, Reg::R3, Reg::R1);
                self.b.add64_imm(Reg::R3, 1);
                self.b.ja(end);
                self.b.bind(under);
                self.b.mov64_imm(Reg::R3, 0);
                self.b.bind(end);
            }
            HistShape::LogLinear { .. } => {
                // Each order of magnitude in turn, as hist::log_linear_bucket.
                let orders = pytap_script::hist::log_linear_orders(shape);
                let end = self.b.new_label();
                self.b.mov64_imm(Reg::R3, 0);
                if let Some(first) = orders.first() {
                    self.b.ld_imm64(Reg::R1, first.last as u64);
                    self.b.jmp_reg(JmpOp::Jslt, Reg::R2, Reg::R1, end);
                }
                for order in &orders {
                    let next = self.b.new_label();
                    self.b.ld_imm64(Reg::R1, order.this as u64);
                    self.b.jmp_reg(JmpOp::Jsge, Reg::R2, Reg::R1, next);
                    self.b.mov64_reg(Reg::R3, Reg::R2);
                    self.b.ld_imm64(Reg::R1, order.last as u64);
                    self.b.alu64_reg(AluOp::Sub, Reg::R3, Reg::R1);
                    self.b.ld_imm64(Reg::R1, order.width as u64);
                    self.b.alu64_reg(AluOp::Div, Reg::R3, Reg::R1);
                    self.b.add64_imm(Reg::R3, order.base as i32);
                    self.b.ja(end);
                    self.b.bind(next);
                }
                self.b.mov64_imm(Reg::R3, max);
                self.b.bind(end);
            }
        }
        let ok = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jle, Reg::R3, max, ok);
        self.b.mov64_imm(Reg::R3, max);
        self.b.bind(ok);
        Ok(())
    }
}
