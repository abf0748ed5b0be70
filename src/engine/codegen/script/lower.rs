//! Probe bodies to BPF: the probe's frame (locals, the scratch area)
//! and statements; numbers are [`super::numbers`], strings
//! [`super::strings`]. Numbers are computed into r0, with operands kept in stack
//! temporaries (helpers clobber r1-r5); temporaries are released after
//! each statement.

use pytap_ebpf::{JmpOp, Label, ProgramBuilder, Reg, Size};
use pytap_script::builtins::Builtin;
use pytap_script::ir::*;

use super::cache::ThreadCache;
use super::firing::FiringStrings;
use super::placement::{StrKind, in_kernel};
use super::{ScratchLayout, ScriptHandler, counter};
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
    /// Where the firing keeps thread-keyed variables' addresses.
    pub cache: &'a ThreadCache,
    /// The firing's copies of marker strings.
    pub strings: &'a FiringStrings,
}

/// What a firing keeps for all of its probes.
#[derive(Debug, Clone, Copy)]
pub struct Firing<'a> {
    /// Thread-keyed variables' addresses.
    pub cache: &'a ThreadCache,
    /// Marker strings read once.
    pub strings: &'a FiringStrings,
}

impl std::fmt::Debug for Gen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen")
            .field("probe", &self.probe)
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

pub use crate::engine::codegen::lookup_slot0;

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
    firing: Firing<'_>,
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
        cache: firing.cache,
        strings: firing.strings,
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
                    ExprKind::Compare(op, a, b)
                        if a.ty == Ty::Str && !super::strings::compares_on_stack(*op, a, b) =>
                    {
                        uses = true
                    }
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
                // A jump over the else branch that cannot be reached (after
                // `next`, or with no else) is dead code the verifier refuses.
                if e.is_some() && !diverges(t) {
                    self.b.ja(end);
                }
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
}

/// Whether a statement always leaves by a jump (`next`, `break`,
/// `continue`, `return`): nothing after it in its block runs.
fn diverges(s: &Stmt) -> bool {
    match &s.kind {
        StmtKind::Next | StmtKind::Break | StmtKind::Continue | StmtKind::Return(_) => true,
        StmtKind::Block(stmts) => stmts.last().is_some_and(diverges),
        StmtKind::If(_, t, Some(e)) => diverges(t) && diverges(e),
        _ => false,
    }
}
