//! Probe bodies to BPF: statements, numeric expressions, inlined user
//! functions. Numbers are computed into r0, with operands kept in stack
//! temporaries (helpers clobber r1-r5); temporaries are released after
//! each statement.

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, MapRef, ProgramBuilder, Reg, Size};
use pytap_script::ast::{BinOp, CmpOp, UnOp};
use pytap_script::builtins::Builtin;
use pytap_script::ir::*;

use super::placement::{StrKind, in_kernel};
use super::strings::StrVal;
use super::{ScratchLayout, ScriptHandler, counter, ctl};
use crate::engine::codegen::{CodegenError, Env};

/// Where a local lives.
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    /// A number on the stack.
    Long(i16),
    /// A marker string's address on the stack.
    Addr {
        /// Stack offset.
        off: i16,
        /// `user_string_n`'s limit.
        max: Option<u32>,
    },
    /// String bytes at this offset of the scratch area.
    Bytes(u32),
}

/// The state of one probe's code generation.
pub struct Gen<'a> {
    /// The script's handler (program, placement, maps).
    pub h: &'a ScriptHandler,
    /// The program being built.
    pub b: &'a mut ProgramBuilder,
    /// The module's environment.
    pub env: &'a Env,
    /// Stack offset of the marker's three arguments.
    pub args: i16,
    /// The probe (for its locals' kinds and output sites).
    pub probe: usize,
    /// Locals of the probe, or of the function being inlined.
    pub locals: Vec<Slot>,
    /// `continue` and `break` targets of the loops around.
    pub loops: Vec<(Label, Label)>,
    /// Where `next` (and an error) goes: the end of the probe.
    pub next: Label,
    /// An inlined function's return: its label and value slot.
    pub ret: Option<(Label, Slot)>,
    /// Stack slot holding the scratch area's address, when the probe uses it.
    pub scratch: Option<i16>,
    /// The scratch area's layout.
    pub layout: ScratchLayout,
    /// String buffers of the scratch area in use.
    pub strings_used: u32,
    /// Functions being inlined.
    pub inlining: Vec<FuncId>,
}

impl std::fmt::Debug for Gen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen")
            .field("probe", &self.probe)
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

/// `r0 = &map[0]` of an array map (null-checked by the caller); returns r0.
pub fn lookup_slot0(b: &mut ProgramBuilder, env: &Env, map: MapRef) -> Reg {
    b.ld_map_fd(Reg::R1, map);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, env.slots.key.off.into());
    b.call(Helper::MapLookupElem);
    Reg::R0
}

type R<T> = Result<T, CodegenError>;

/// An error for what the placement should have refused.
pub fn unsupported(what: &str) -> CodegenError {
    CodegenError::Arg {
        marker: crate::cpython::Marker::FunctionEntry,
        detail: format!("script: {what} cannot run in the kernel"),
    }
}

/// The comment a statement's code starts with: where it is in the script
/// (so a verifier complaint is shown at the script line that caused it).
pub fn script_comment(span: pytap_script::source::Span) -> String {
    format!("script {}:{}:{}", span.file.0, span.start, span.end)
}

/// The script span the last [`script_comment`] of an instruction's
/// comments names (statements that made no code leave theirs too).
pub fn comment_span(comment: &str) -> Option<pytap_script::source::Span> {
    let line = comment.lines().rev().find(|l| l.starts_with("script "))?;
    let mut parts = line.strip_prefix("script ")?.split(':');
    let file = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    let end = parts.next()?.parse().ok()?;
    Some(pytap_script::source::Span {
        file: pytap_script::source::FileId(file),
        start,
        end,
    })
}

/// Emits probe `index` (its repairs are done; `args` holds the arguments).
pub fn emit_probe(
    h: &ScriptHandler,
    b: &mut ProgramBuilder,
    env: &Env,
    index: usize,
    args: i16,
) -> R<()> {
    let probe = &h.program.probes[index];
    debug_assert!(in_kernel(probe));
    let loc = probe.span;
    b.comment(&format!(
        "probe #{index} (script offset {}..{})",
        loc.start, loc.end
    ));
    let next = b.new_label();
    let layout = ScratchLayout::of(&h.placement);
    let mut g = Gen {
        h,
        b,
        env,
        args,
        probe: index,
        locals: Vec::new(),
        loops: Vec::new(),
        next,
        ret: None,
        scratch: None,
        layout,
        strings_used: 0,
        inlining: Vec::new(),
    };
    let uses_scratch = g.probe_uses_scratch(probe);
    if uses_scratch {
        g.take_scratch()?;
    }
    let kinds = h.placement.locals[index].clone();
    for (l, local) in probe.locals.iter().enumerate() {
        let slot = match (local.ty, kinds.get(l).copied().flatten()) {
            (Ty::Str, Some(StrKind::Address { max })) => {
                let s = g.b.alloc_stack(8, 8)?;
                g.b.st_imm(Size::DW, Reg::FP, s.off, 0);
                Slot::Addr { off: s.off, max }
            }
            (Ty::Str, _) => {
                let off = g.alloc_string()?;
                g.store_empty(off);
                Slot::Bytes(off)
            }
            _ => {
                let s = g.b.alloc_stack(8, 8)?;
                g.b.st_imm(Size::DW, Reg::FP, s.off, 0);
                Slot::Long(s.off)
            }
        };
        g.locals.push(slot);
    }
    for s in &probe.body {
        g.stmt(s)?;
    }
    g.b.bind(next);
    if uses_scratch {
        g.release_scratch();
    }
    Ok(())
}

impl Gen<'_> {
    /// Whether the probe needs the scratch area (string bytes, string
    /// keys, string values, statistics, comparisons of strings).
    fn probe_uses_scratch(&self, probe: &Probe) -> bool {
        let kinds = &self.h.placement.locals[self.probe];
        if probe
            .locals
            .iter()
            .zip(kinds)
            .any(|(l, k)| l.ty == Ty::Str && !matches!(k, Some(StrKind::Address { .. })))
        {
            return true;
        }
        let mut uses = false;
        let mut visit_fns = Vec::new();
        let placement = &self.h.placement;
        let mut check = |e: &Expr| {
            pytap_script::check::walk(e, &mut |e| {
                let global = |g: &GlobalId| {
                    placement.globals[*g].as_ref().is_some_and(|kg| {
                        kg.key.contains(&super::placement::KeyPart::Bytes)
                            || !matches!(kg.value, super::placement::ValueLayout::Long)
                    })
                };
                match &e.kind {
                    ExprKind::Compare(_, a, _) if a.ty == Ty::Str => uses = true,
                    ExprKind::Global(g) | ExprKind::Index(g, _) | ExprKind::In(g, _)
                        if global(g) =>
                    {
                        uses = true
                    }
                    ExprKind::Assign(LValue::Global(g) | LValue::Index(g, _), ..)
                    | ExprKind::Crement {
                        target: LValue::Global(g) | LValue::Index(g, _),
                        ..
                    }
                    | ExprKind::Aggregate(LValue::Global(g) | LValue::Index(g, _), _)
                        if global(g) =>
                    {
                        uses = true
                    }
                    ExprKind::Builtin(
                        Builtin::Strlen
                        | Builtin::Isinstr
                        | Builtin::Isdigit
                        | Builtin::Execname
                        | Builtin::UserString2,
                        _,
                    ) => uses = true,
                    ExprKind::Ternary(..) if e.ty == Ty::Str => uses = true,
                    ExprKind::Call(f, _) => {
                        uses |= self.h.program.functions[*f]
                            .locals
                            .iter()
                            .any(|l| l.ty == Ty::Str);
                        visit_fns.push(*f);
                    }
                    _ => {}
                }
            })
        };
        for s in &probe.body {
            super::placement::stmt_exprs(s, &mut check);
        }
        // Output sites may materialise string leaves.
        for site in &self.h.placement.outputs {
            if site.probe == self.probe
                && site.leaves.iter().any(|l| {
                    l.kind == super::placement::LeafKind::Str && !self.is_address_expr(&l.expr)
                })
            {
                uses = true;
            }
        }
        for f in visit_fns {
            for s in &self.h.program.functions[f].body {
                super::placement::stmt_exprs(s, &mut |e| {
                    pytap_script::check::walk(e, &mut |e| {
                        if e.ty == Ty::Str
                            || matches!(
                                e.kind,
                                ExprKind::Global(_) | ExprKind::Index(..) | ExprKind::Aggregate(..)
                            )
                        {
                            uses = true;
                        }
                    })
                });
            }
        }
        uses
    }

    /// Whether a string expression is read straight from a marker string.
    pub fn is_address_expr(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Builtin(Builtin::UserString | Builtin::UserStringN, _) => true,
            ExprKind::Local(l) => {
                self.inlining.is_empty()
                    && matches!(
                        self.h.placement.locals[self.probe].get(*l),
                        Some(Some(StrKind::Address { .. }))
                    )
            }
            _ => false,
        }
    }

    /// Takes this CPU's scratch area (skipping the probe, counted, when a
    /// preempted probe holds it) and keeps its address on the stack.
    fn take_scratch(&mut self) -> R<()> {
        let slot = self.b.alloc_stack(8, 8)?;
        let (busy, ok) = (self.b.new_label(), self.b.new_label());
        self.b.comment("take this CPU's scratch area");
        lookup_slot0(self.b, self.env, self.h.maps.scratch);
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, self.next);
        self.b.mov64_imm(Reg::R1, 1);
        self.b.atomic_fetch_add(Size::DW, Reg::R0, 0, Reg::R1);
        self.b.jmp_imm(JmpOp::Jne, Reg::R1, 0, busy);
        self.b.stx(Size::DW, Reg::FP, slot.off, Reg::R0);
        self.b.ja(ok);
        self.b.bind(busy);
        self.b.mov64_imm(Reg::R1, -1);
        self.b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
        self.count(counter::SCRATCH_BUSY);
        self.b.mov64_imm(Reg::R0, 0).exit();
        self.b.bind(ok);
        self.scratch = Some(slot.off);
        Ok(())
    }

    fn release_scratch(&mut self) {
        if let Some(slot) = self.scratch {
            self.b.ldx(Size::DW, Reg::R1, Reg::FP, slot);
            self.b.mov64_imm(Reg::R2, -1);
            self.b.atomic_add(Size::DW, Reg::R1, 0, Reg::R2);
        }
    }

    /// `reg = the scratch area + off`.
    pub fn scratch_at(&mut self, reg: Reg, off: u32) -> R<()> {
        let slot = self
            .scratch
            .ok_or_else(|| unsupported("a string buffer in a probe planned without one"))?;
        self.b.ldx(Size::DW, reg, Reg::FP, slot);
        if off != 0 {
            self.b.add64_imm(reg, off as i32);
        }
        Ok(())
    }

    /// A string buffer of the scratch area (released with the statement).
    pub fn alloc_string(&mut self) -> R<u32> {
        if self.strings_used >= super::SCRATCH_STRINGS {
            return Err(unsupported(&format!(
                "a probe with more than {} strings held at once",
                super::SCRATCH_STRINGS
            )));
        }
        self.strings_used += 1;
        Ok(self.layout.strings + (self.strings_used - 1) * crate::engine::abi::STR_CAP as u32)
    }

    /// Stores "" at a scratch offset.
    pub fn store_empty(&mut self, off: u32) {
        if self.scratch_at(Reg::R1, off).is_ok() {
            self.b.st_imm(Size::B, Reg::R1, 0, 0);
        }
    }

    /// `counters[index] += 1` on the script's per-CPU counters.
    pub fn count(&mut self, index: u32) {
        crate::engine::codegen::emit_count(self.b, self.env.slots.key, self.h.maps.counters, index);
    }

    /// An 8-byte stack temporary.
    pub fn temp(&mut self) -> R<i16> {
        Ok(self.b.alloc_stack(8, 8)?.off)
    }

    /// Evaluates `e` into a new temporary.
    pub fn long_to_temp(&mut self, e: &Expr) -> R<i16> {
        self.long(e)?;
        let t = self.temp()?;
        self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
        Ok(t)
    }

    pub fn stmt(&mut self, s: &Stmt) -> R<()> {
        let mark = self.b.stack_mark();
        let strings = self.strings_used;
        self.b.comment(&script_comment(s.span));
        match &s.kind {
            StmtKind::Expr(e) => {
                if let Some(&site) = self.h.placement.output_of.get(&e.id) {
                    super::output::emit_output(self, site)?;
                } else {
                    self.effect(e)?;
                }
            }
            StmtKind::Block(b) => {
                for s in b {
                    self.stmt(s)?;
                }
            }
            StmtKind::If(c, t, e) => {
                let (els, end) = (self.b.new_label(), self.b.new_label());
                self.branch_if_false(c, els)?;
                self.stmt(t)?;
                self.b.ja(end);
                self.b.bind(els);
                if let Some(e) = e {
                    self.stmt(e)?;
                }
                self.b.bind(end);
            }
            StmtKind::Loop { cond, body, step } => {
                let (top, cont, end) = (self.b.new_label(), self.b.new_label(), self.b.new_label());
                self.b.bind(top);
                if let Some(c) = cond {
                    self.branch_if_false(c, end)?;
                }
                self.loops.push((cont, end));
                self.stmt(body)?;
                self.loops.pop();
                self.b.bind(cont);
                if let Some(st) = step {
                    self.effect(st)?;
                }
                self.b.ja(top);
                self.b.bind(end);
            }
            StmtKind::Foreach(_) => return Err(unsupported("foreach")),
            StmtKind::Break => {
                let (_, end) = *self
                    .loops
                    .last()
                    .ok_or_else(|| unsupported("break outside a loop"))?;
                self.b.ja(end);
            }
            StmtKind::Continue => {
                let (cont, _) = *self
                    .loops
                    .last()
                    .ok_or_else(|| unsupported("continue outside a loop"))?;
                self.b.ja(cont);
            }
            StmtKind::Next => {
                self.b.ja(self.next);
            }
            StmtKind::Return(value) => {
                let (label, slot) = self
                    .ret
                    .ok_or_else(|| unsupported("return outside a function"))?;
                if let Some(v) = value {
                    self.store(slot, v)?;
                }
                self.b.ja(label);
            }
            StmtKind::Delete(d) => match d {
                Delete::Local(l) => match self.locals[*l] {
                    Slot::Long(off) | Slot::Addr { off, .. } => {
                        self.b.st_imm(Size::DW, Reg::FP, off, 0);
                    }
                    Slot::Bytes(off) => self.store_empty(off),
                },
                Delete::Global(g) => self.global_reset(*g)?,
                Delete::Index(g, keys) => self.global_delete(*g, keys)?,
            },
        }
        self.b.stack_release(mark);
        self.strings_used = strings;
        Ok(())
    }

    /// Evaluates an expression for its effects only.
    pub fn effect(&mut self, e: &Expr) -> R<()> {
        match &e.kind {
            ExprKind::Assign(lv, op, v) => self.assign(lv, *op, v, false),
            ExprKind::Crement { target, delta, .. } => self.crement(target, *delta, false, false),
            ExprKind::Aggregate(lv, v) => self.aggregate(lv, v),
            _ if e.ty == Ty::Str => self.string(e).map(drop),
            _ => self.long(e),
        }
    }

    /// Jumps to `target` when `cond` is 0.
    pub fn branch_if_false(&mut self, cond: &Expr, target: Label) -> R<()> {
        self.long(cond)?;
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, target);
        Ok(())
    }

    /// Stores `value` in a local's slot (numbers from r0; strings
    /// materialised or, for an address slot, the address).
    pub fn store(&mut self, slot: Slot, value: &Expr) -> R<()> {
        match slot {
            Slot::Long(off) => {
                self.long(value)?;
                self.b.stx(Size::DW, Reg::FP, off, Reg::R0);
            }
            Slot::Addr { off, .. } => {
                let ExprKind::Builtin(Builtin::UserString | Builtin::UserStringN, args) =
                    &value.kind
                else {
                    return Err(unsupported(
                        "a string that is not user_string() in an address local",
                    ));
                };
                self.long(&args[0])?;
                self.b.stx(Size::DW, Reg::FP, off, Reg::R0);
            }
            Slot::Bytes(off) => {
                let v = self.string(value)?;
                self.materialize(&v, off)?;
            }
        }
        Ok(())
    }

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
                self.b
                    .ldx(Size::DW, Reg::R0, Reg::FP, self.args + 8 * *i as i16);
            }
            ExprKind::Ctx(Ctx::Frame) => match self.env.frame {
                Some(frame)
                    if self.h.marker_of(&self.h.program.probes[self.probe])
                        == Some(crate::cpython::Marker::FunctionEntry) =>
                {
                    self.b.ldx(Size::DW, Reg::R0, Reg::FP, frame.slot.off);
                }
                _ => {
                    self.b.mov64_imm(Reg::R0, 0);
                }
            },
            ExprKind::Global(g) => self.global_read_long(*g, &[])?,
            ExprKind::Index(g, keys) => self.global_read_long(*g, keys)?,
            ExprKind::In(g, keys) => self.global_exists(*g, keys)?,
            ExprKind::Builtin(b, args) => self.builtin_long(*b, args)?,
            ExprKind::Call(f, args) => {
                self.call(*f, args)?;
            }
            ExprKind::Unary(op, a) => {
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
            }
            ExprKind::Binary(op, a, b) => {
                let t = self.long_to_temp(a)?;
                self.long(b)?;
                self.b.mov64_reg(Reg::R1, Reg::R0);
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                self.arith(*op, e.id)?;
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                let and = matches!(e.kind, ExprKind::And(..));
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
            }
            ExprKind::Compare(op, a, b) if a.ty == Ty::Str => self.compare_strings(*op, a, b)?,
            ExprKind::Compare(op, a, b) => {
                let t = self.long_to_temp(a)?;
                self.long(b)?;
                self.b.mov64_reg(Reg::R1, Reg::R0);
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                self.compare_regs(*op);
            }
            ExprKind::Ternary(c, a, b) => {
                let (els, end) = (self.b.new_label(), self.b.new_label());
                self.branch_if_false(c, els)?;
                self.long(a)?;
                self.b.ja(end);
                self.b.bind(els);
                self.long(b)?;
                self.b.bind(end);
            }
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
            ExprKind::Str(_) | ExprKind::Concat(_) | ExprKind::Stat(..) | ExprKind::Print(_) => {
                return Err(unsupported("this expression"));
            }
        }
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
                self.b.call(Helper::GetCurrentPidTgid);
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
