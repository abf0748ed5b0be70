//! Numbers in probe bodies: values computed into r0 (operands in stack
//! temporaries), arithmetic and comparisons, built-ins that are numbers,
//! `thread_indent`'s counters when the kernel keeps them, and user
//! functions, inlined.

use pytap_ebpf::{AluOp, Helper, JmpOp, ProgramBuilder, Reg, Size};
use pytap_script::ast::{BinOp, CmpOp, UnOp};
use pytap_script::builtins::Builtin;
use pytap_script::ir::*;

use super::ctl;
use super::lower::{Gen, Slot, lookup_slot0, unsupported};
use super::strings::StrVal;
use crate::engine::codegen::CodegenError;

type R<T> = Result<T, CodegenError>;

impl Gen<'_> {
    /// A number into r0.
    pub fn long(&mut self, e: &Expr) -> R<()> {
        match &e.kind {
            ExprKind::Long(v) => self.load_const(*v),
            ExprKind::Local(l) => match self.locals[*l] {
                Slot::Long(off) => {
                    self.b.ldx(Size::DW, Reg::R0, Reg::FP, off);
                }
                _ => return Err(unsupported("a string as a number")),
            },
            ExprKind::Ctx(Ctx::Arg(i)) => {
                self.b.ldx(
                    Size::DW,
                    Reg::R0,
                    Reg::FP,
                    self.args + super::arg_offset(*i),
                );
            }
            ExprKind::Ctx(Ctx::Frame) => self.frame_long(),
            ExprKind::Global(g) => self.global_read_long(*g, &[])?,
            ExprKind::Index(g, keys) => self.global_read_long(*g, keys)?,
            ExprKind::In(g, keys) => self.global_exists(*g, keys)?,
            ExprKind::Builtin(b, args) => self.builtin_long(*b, args)?,
            ExprKind::Call(f, args) => {
                self.call(*f, args)?;
            }
            ExprKind::Unary(op, a) => self.unary_long(*op, a)?,
            ExprKind::Binary(op, a, b) => {
                let t = self.long_to_temp(a)?;
                self.long(b)?;
                self.b.mov64_reg(Reg::R1, Reg::R0);
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                self.arith(*op, e.id)?;
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.logical(matches!(e.kind, ExprKind::And(..)), a, b)?;
            }
            ExprKind::Compare(op, a, b) if a.ty == Ty::Str => self.compare_strings(*op, a, b)?,
            ExprKind::Compare(op, a, b) => {
                let t = self.long_to_temp(a)?;
                self.long(b)?;
                self.b.mov64_reg(Reg::R1, Reg::R0);
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                self.compare_regs(*op);
            }
            ExprKind::Ternary(c, a, b) => self.ternary_long(c, a, b)?,
            ExprKind::Assign(lv, op, v) => self.assign(lv, *op, v, true)?,
            ExprKind::Crement {
                target,
                delta,
                post,
            } => self.crement(target, *delta, *post, true)?,
            ExprKind::Aggregate(lv, v) => {
                self.aggregate(lv, v)?;
                self.b.mov64_imm(Reg::R0, 0);
            }
            ExprKind::Str(_)
            | ExprKind::Concat(_)
            | ExprKind::Stat(..)
            | ExprKind::Print(_)
            | ExprKind::AggAction { .. } => {
                return Err(unsupported("this expression"));
            }
        }
        Ok(())
    }

    /// `$arg4` (the frame): kept at function__entry when pytap knows
    /// where the build has it, else 0.
    fn frame_long(&mut self) {
        match self.env.frame {
            Some(frame)
                if self.h.marker_of(&self.h.program.probes[self.probe])
                    == Some(crate::cpython::Marker::FunctionEntry) =>
            {
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, frame.slot.off);
            }
            _ => {
                self.b.mov64_imm(Reg::R0, 0);
            }
        }
    }

    /// `-a`, `+a`, `~a`, `!a` into r0.
    fn unary_long(&mut self, op: UnOp, a: &Expr) -> R<()> {
        self.long(a)?;
        match op {
            UnOp::Neg => {
                self.b.neg64(Reg::R0);
            }
            UnOp::Plus => {}
            UnOp::BitNot => {
                self.b.alu64_imm(AluOp::Xor, Reg::R0, -1);
            }
            UnOp::Not => self.set_bool(JmpOp::Jeq, 0),
        }
        Ok(())
    }

    /// `a && b` (`and`) or `a || b` into r0 as 0 or 1, `b` evaluated only
    /// when `a` does not decide.
    fn logical(&mut self, and: bool, a: &Expr, b: &Expr) -> R<()> {
        let (short, end) = (self.b.new_label(), self.b.new_label());
        self.long(a)?;
        self.b
            .jmp_imm(if and { JmpOp::Jeq } else { JmpOp::Jne }, Reg::R0, 0, short);
        self.long(b)?;
        self.b
            .jmp_imm(if and { JmpOp::Jeq } else { JmpOp::Jne }, Reg::R0, 0, short);
        self.b.mov64_imm(Reg::R0, i32::from(and));
        self.b.ja(end);
        self.b.bind(short);
        self.b.mov64_imm(Reg::R0, i32::from(!and));
        self.b.bind(end);
        Ok(())
    }

    /// `c ? a : b` into r0.
    fn ternary_long(&mut self, c: &Expr, a: &Expr, b: &Expr) -> R<()> {
        let (els, end) = (self.b.new_label(), self.b.new_label());
        self.branch_if_false(c, els)?;
        self.long(a)?;
        self.b.ja(end);
        self.b.bind(els);
        self.long(b)?;
        self.b.bind(end);
        Ok(())
    }

    pub fn load_const(&mut self, v: i64) {
        if let Ok(small) = i32::try_from(v) {
            self.b.mov64_imm(Reg::R0, small);
        } else {
            self.b.ld_imm64(Reg::R0, v as u64);
        }
    }

    /// `r0 = (r0 <cmp> imm)` as 0 or 1.
    fn set_bool(&mut self, cmp: JmpOp, imm: i32) {
        let (yes, end) = (self.b.new_label(), self.b.new_label());
        self.b.jmp_imm(cmp, Reg::R0, imm, yes);
        self.b.mov64_imm(Reg::R0, 0);
        self.b.ja(end);
        self.b.bind(yes);
        self.b.mov64_imm(Reg::R0, 1);
        self.b.bind(end);
    }

    /// `r0 = (r0 <op> r1)` as 0 or 1, signed.
    pub fn compare_regs(&mut self, op: CmpOp) {
        let cmp = match op {
            CmpOp::Eq => JmpOp::Jeq,
            CmpOp::Ne => JmpOp::Jne,
            CmpOp::Lt => JmpOp::Jslt,
            CmpOp::Le => JmpOp::Jsle,
            CmpOp::Gt => JmpOp::Jsgt,
            CmpOp::Ge => JmpOp::Jsge,
        };
        let (yes, end) = (self.b.new_label(), self.b.new_label());
        self.b.jmp_reg(cmp, Reg::R0, Reg::R1, yes);
        self.b.mov64_imm(Reg::R0, 0);
        self.b.ja(end);
        self.b.bind(yes);
        self.b.mov64_imm(Reg::R0, 1);
        self.b.bind(end);
    }

    /// `r0 = r0 <op> r1`; division by zero sends an error and leaves the probe.
    pub fn arith(&mut self, op: BinOp, site: ExprId) -> R<()> {
        let alu = match op {
            BinOp::Add => AluOp::Add,
            BinOp::Sub => AluOp::Sub,
            BinOp::Mul => AluOp::Mul,
            BinOp::Div | BinOp::Mod => {
                let ok = self.b.new_label();
                self.b.jmp_imm(JmpOp::Jne, Reg::R1, 0, ok);
                let error = self.h.placement.error_of.get(&site).copied();
                match error {
                    Some(e) => super::output::emit_error(self, e)?,
                    None => return Err(unsupported("a division without an error site")),
                }
                self.b.ja(self.next);
                self.b.bind(ok);
                let alu = if op == BinOp::Div {
                    AluOp::Div
                } else {
                    AluOp::Mod
                };
                self.b.signed64_reg(alu, Reg::R0, Reg::R1);
                return Ok(());
            }
            BinOp::Shl => AluOp::Lsh,
            BinOp::Shr => AluOp::Arsh,
            BinOp::Ushr => AluOp::Rsh,
            BinOp::And => AluOp::And,
            BinOp::Or => AluOp::Or,
            BinOp::Xor => AluOp::Xor,
        };
        self.b.alu64_reg(alu, Reg::R0, Reg::R1);
        Ok(())
    }

    fn builtin_long(&mut self, b: Builtin, args: &[Expr]) -> R<()> {
        match b {
            Builtin::Pid | Builtin::Tid => {
                self.firing_pid_tgid();
                if b == Builtin::Pid {
                    self.b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
                } else {
                    self.b.mov32_reg(Reg::R0, Reg::R0);
                }
            }
            Builtin::Uid => {
                self.b.call(Helper::GetCurrentUidGid);
                self.b.mov32_reg(Reg::R0, Reg::R0);
            }
            Builtin::Cpu => {
                self.b.call(Helper::GetSmpProcessorId);
            }
            Builtin::Target => self.control_read(ctl::TARGET)?,
            Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs => {
                self.control_read(ctl::REALTIME_OFFSET)?;
                let t = self.temp()?;
                self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
                self.b.call(Helper::KtimeGetNs);
                self.b.ldx(Size::DW, Reg::R1, Reg::FP, t);
                self.b.alu64_reg(AluOp::Add, Reg::R0, Reg::R1);
                let div = match b {
                    Builtin::GettimeofdayS => 1_000_000_000,
                    Builtin::GettimeofdayMs => 1_000_000,
                    Builtin::GettimeofdayUs => 1_000,
                    _ => 1,
                };
                if div > 1 {
                    self.b.alu64_imm(AluOp::Div, Reg::R0, div);
                }
            }
            Builtin::Timestamp => {
                self.b.ldx(
                    Size::DW,
                    Reg::R0,
                    Reg::FP,
                    self.args + super::FIRING_TIMESTAMP,
                );
            }
            Builtin::ThreadIndentDepth | Builtin::IndentDepth => {
                let (_, depth) = self.indent_step(b == Builtin::ThreadIndentDepth, &args[0])?;
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, depth);
            }
            Builtin::Strlen => self.strlen(&args[0])?,
            Builtin::Isinstr => self.isinstr(&args[0], &args[1])?,
            Builtin::Isdigit => {
                let v = self.string(&args[0])?;
                let off = self.to_bytes(&v)?;
                self.scratch_at(Reg::R1, off)?;
                self.b.ldx(Size::B, Reg::R0, Reg::R1, 0);
                self.b.add64_imm(Reg::R0, -i32::from(b'0'));
                self.set_bool(JmpOp::Jlt, 10);
            }
            _ => return Err(unsupported(&format!("`{}`", b.name()))),
        }
        Ok(())
    }

    /// `r0 =` this firing's `bpf_get_current_pid_tgid()`.
    pub fn firing_pid_tgid(&mut self) {
        self.b.ldx(
            Size::DW,
            Reg::R0,
            Reg::FP,
            self.args + super::FIRING_PID_TGID,
        );
    }

    /// `r0 = control[slot]`.
    pub fn control_read(&mut self, slot: usize) -> R<()> {
        let (null, end) = (self.b.new_label(), self.b.new_label());
        lookup_slot0(self.b, self.env, self.h.maps.control);
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, null);
        self.b.ldx(Size::DW, Reg::R0, Reg::R0, (8 * slot) as i16);
        self.b.ja(end);
        self.b.bind(null);
        self.b.mov64_imm(Reg::R0, 0);
        self.b.bind(end);
        Ok(())
    }

    /// One `thread_indent`/`indent` step: stack slots holding the elapsed
    /// microseconds and the depth (SystemTap's `_generic_indent`).
    pub fn indent_step(&mut self, thread: bool, delta: &Expr) -> R<(i16, i16)> {
        let d = self.long_to_temp(delta)?;
        let now = self.temp()?;
        let (elapsed, depth) = (self.temp()?, self.temp()?);
        self.b.st_imm(Size::DW, Reg::FP, elapsed, 0);
        self.b.st_imm(Size::DW, Reg::FP, depth, 0);
        let done = self.b.new_label();
        self.b.call(Helper::KtimeGetNs);
        self.b.alu64_imm(AluOp::Div, Reg::R0, 1000);
        self.b.stx(Size::DW, Reg::FP, now, Reg::R0);
        let field = if thread {
            let map = self
                .h
                .maps
                .indent
                .ok_or_else(|| unsupported("thread_indent without its map"))?;
            let key = self.temp()?;
            let zero = self.b.alloc_stack(16, 8)?;
            let found = self.b.new_label();
            self.b.call(Helper::GetCurrentPidTgid);
            self.b.stx(Size::W, Reg::FP, key, Reg::R0);
            let lookup = |b: &mut ProgramBuilder| {
                b.ld_map_fd(Reg::R1, map);
                b.mov64_reg(Reg::R2, Reg::FP).add64_imm(Reg::R2, key.into());
                b.call(Helper::MapLookupElem);
            };
            lookup(self.b);
            self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
            self.b.st_imm(Size::DW, Reg::FP, zero.off, 0);
            self.b.st_imm(Size::DW, Reg::FP, zero.off + 8, 0);
            self.b.ld_map_fd(Reg::R1, map);
            self.b
                .mov64_reg(Reg::R2, Reg::FP)
                .add64_imm(Reg::R2, key.into());
            self.b
                .mov64_reg(Reg::R3, Reg::FP)
                .add64_imm(Reg::R3, zero.off.into());
            self.b.mov64_imm(Reg::R4, 0);
            self.b.call(Helper::MapUpdateElem);
            lookup(self.b);
            self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
            self.b.bind(found);
            0
        } else {
            lookup_slot0(self.b, self.env, self.h.maps.control);
            self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
            (8 * ctl::INDENT_COUNTER) as i16
        };
        // r0: &counter; counter + 8: the time base.
        let keep_base = self.b.new_label();
        self.b.ldx(Size::DW, Reg::R1, Reg::R0, field);
        self.b.jmp_imm(JmpOp::Jne, Reg::R1, 0, keep_base);
        self.b.ldx(Size::DW, Reg::R2, Reg::FP, now);
        self.b.stx(Size::DW, Reg::R0, field + 8, Reg::R2);
        self.b.bind(keep_base);
        self.b
            .comment("x = counter + max(delta, 0); counter += delta");
        self.b.ldx(Size::DW, Reg::R3, Reg::FP, d);
        self.b.mov64_reg(Reg::R2, Reg::R3);
        let nonneg = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jsge, Reg::R2, 0, nonneg);
        self.b.mov64_imm(Reg::R2, 0);
        self.b.bind(nonneg);
        self.b.alu64_reg(AluOp::Add, Reg::R2, Reg::R1);
        self.b.alu64_reg(AluOp::Add, Reg::R3, Reg::R1);
        self.b.stx(Size::DW, Reg::R0, field, Reg::R3);
        let zero_depth = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jsle, Reg::R2, 0, zero_depth);
        self.b.add64_imm(Reg::R2, -1);
        self.b.stx(Size::DW, Reg::FP, depth, Reg::R2);
        self.b.bind(zero_depth);
        self.b.ldx(Size::DW, Reg::R1, Reg::FP, now);
        self.b.ldx(Size::DW, Reg::R2, Reg::R0, field + 8);
        self.b.alu64_reg(AluOp::Sub, Reg::R1, Reg::R2);
        self.b.stx(Size::DW, Reg::FP, elapsed, Reg::R1);
        self.b.bind(done);
        Ok((elapsed, depth))
    }

    /// Inlines user function `f`; a number result is left in r0, a string
    /// result's bytes returned.
    pub fn call(&mut self, f: FuncId, args: &[Expr]) -> R<Option<StrVal>> {
        if self.inlining.contains(&f) || self.inlining.len() > 8 {
            return Err(unsupported("a recursive function"));
        }
        let function = &self.h.program.functions[f];
        let mut slots = Vec::new();
        for local in &function.locals {
            slots.push(if local.ty == Ty::Str {
                let off = self.alloc_string()?;
                self.store_empty(off);
                Slot::Bytes(off)
            } else {
                let s = self.temp()?;
                self.b.st_imm(Size::DW, Reg::FP, s, 0);
                Slot::Long(s)
            });
        }
        for (slot, a) in slots.iter().zip(args) {
            self.store(*slot, a)?;
        }
        let ret_slot = match function.ret {
            Some(Ty::Str) => {
                let off = self.alloc_string()?;
                self.store_empty(off);
                Slot::Bytes(off)
            }
            _ => {
                let s = self.temp()?;
                self.b.st_imm(Size::DW, Reg::FP, s, 0);
                Slot::Long(s)
            }
        };
        let end = self.b.new_label();
        let saved = (
            std::mem::replace(&mut self.locals, slots),
            self.ret.replace((end, ret_slot)),
            std::mem::take(&mut self.loops),
        );
        self.inlining.push(f);
        self.b.comment(&format!("inlined {}()", function.name));
        for s in &function.body {
            self.stmt(s)?;
        }
        self.inlining.pop();
        self.b.bind(end);
        self.locals = saved.0;
        self.ret = saved.1;
        self.loops = saved.2;
        Ok(match ret_slot {
            Slot::Bytes(off) => Some(StrVal::Bytes(off)),
            Slot::Long(off) => {
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, off);
                None
            }
            Slot::Addr { .. } => None,
        })
    }
}
