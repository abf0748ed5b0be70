//! Assignments nobody reads are dropped, as SystemTap elides them: the
//! python tapset's aliases set `filename`, `funcname`, `lineno` (and the
//! HOWTO's `frameptr`) for every probe, and a script that reads one of
//! them must not pay for reading the others at every marker. A local read
//! but never assigned gets a warning.

use std::collections::HashSet;

use crate::builtins::{Builtin, Needs};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::*;

/// Prunes every probe and function of `program`.
pub(super) fn prune(program: &mut Program, diags: &mut Diagnostics) {
    for probe in &mut program.probes {
        prune_body(&mut probe.body, &probe.locals, 0, diags);
    }
    for f in &mut program.functions {
        prune_body(&mut f.body, &f.locals, f.params, diags);
    }
}

fn prune_body(body: &mut [Stmt], locals: &[Local], params: usize, diags: &mut Diagnostics) {
    loop {
        let mut uses = Uses::default();
        for s in body.iter() {
            uses.stmt(s);
        }
        let mut changed = false;
        for s in body.iter_mut() {
            changed |= drop_dead(s, &uses.read);
        }
        if !changed {
            for (l, span) in uses.first_read {
                if l >= params && !uses.written.contains(&l) {
                    let local = &locals[l];
                    let zero = if local.ty == Ty::Str { "\"\"" } else { "0" };
                    diags.push(Diagnostic::warning(
                        span,
                        format!("`{}` is never assigned, so it is always {zero}", local.name),
                    ));
                }
            }
            return;
        }
    }
}

/// Replaces `x = pure` with nothing when `x` is never read.
fn drop_dead(s: &mut Stmt, read: &HashSet<LocalId>) -> bool {
    match &mut s.kind {
        StmtKind::Expr(e) => {
            if let ExprKind::Assign(LValue::Local(l), AssignOp::Set, value) = &e.kind
                && !read.contains(l)
                && pure(value)
            {
                s.kind = StmtKind::Block(Vec::new());
                return true;
            }
            false
        }
        StmtKind::Block(b) => b.iter_mut().fold(false, |c, s| drop_dead(s, read) | c),
        StmtKind::If(_, t, e) => {
            let mut c = drop_dead(t, read);
            if let Some(e) = e {
                c |= drop_dead(e, read);
            }
            c
        }
        StmtKind::Loop { body, .. } => drop_dead(body, read),
        StmtKind::Foreach(f) => drop_dead(&mut f.body, read),
        _ => false,
    }
}

/// Whether evaluating `e` has no effect besides its value.
pub fn pure(e: &Expr) -> bool {
    let mut ok = true;
    walk(e, &mut |e| match &e.kind {
        ExprKind::Assign(..)
        | ExprKind::Crement { .. }
        | ExprKind::Aggregate(..)
        | ExprKind::AggAction { .. }
        | ExprKind::Call(..) => ok = false,
        ExprKind::Print(p) if !p.kind.is_sprint() => ok = false,
        ExprKind::Builtin(b, _)
            if b.needs() == Needs::Action
                || matches!(
                    b,
                    Builtin::ThreadIndent
                        | Builtin::ThreadIndentDepth
                        | Builtin::Indent
                        | Builtin::IndentDepth
                        | Builtin::Tokenize
                        | Builtin::TokenizeNext
                ) =>
        {
            ok = false
        }
        _ => {}
    });
    ok
}

/// Calls `f` on every top-level expression of a statement (recursively
/// through nested statements).
pub fn stmt_exprs(s: &Stmt, f: &mut dyn FnMut(&Expr)) {
    match &s.kind {
        StmtKind::Expr(e) => f(e),
        StmtKind::Block(b) => b.iter().for_each(|s| stmt_exprs(s, f)),
        StmtKind::If(c, t, e) => {
            f(c);
            stmt_exprs(t, f);
            if let Some(e) = e {
                stmt_exprs(e, f);
            }
        }
        StmtKind::Loop { cond, body, step } => {
            if let Some(c) = cond {
                f(c);
            }
            stmt_exprs(body, f);
            if let Some(st) = step {
                f(st);
            }
        }
        StmtKind::Foreach(fe) => {
            if let Some(l) = &fe.limit {
                f(l);
            }
            stmt_exprs(&fe.body, f);
        }
        StmtKind::Return(Some(e)) => f(e),
        StmtKind::Delete(Delete::Index(_, keys)) => keys.iter().for_each(f),
        _ => {}
    }
}

/// Calls `f` on `e` and every expression inside it.
pub fn walk(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    let lvalue = |lv: &LValue, f: &mut dyn FnMut(&Expr)| {
        if let LValue::Index(_, keys) = lv {
            for k in keys {
                walk(k, f);
            }
        }
    };
    match &e.kind {
        ExprKind::Index(_, keys) | ExprKind::In(_, keys) => keys.iter().for_each(|k| walk(k, f)),
        ExprKind::Builtin(_, args) | ExprKind::Call(_, args) | ExprKind::Concat(args) => {
            args.iter().for_each(|a| walk(a, f))
        }
        ExprKind::Unary(_, a) => walk(a, f),
        ExprKind::Binary(_, a, b)
        | ExprKind::And(a, b)
        | ExprKind::Or(a, b)
        | ExprKind::Compare(_, a, b) => {
            walk(a, f);
            walk(b, f);
        }
        ExprKind::Ternary(c, a, b) => {
            walk(c, f);
            walk(a, f);
            walk(b, f);
        }
        ExprKind::Assign(lv, _, v) | ExprKind::Aggregate(lv, v) => {
            lvalue(lv, f);
            walk(v, f);
        }
        ExprKind::Crement { target, .. } => lvalue(target, f),
        ExprKind::AggAction { arg, .. } => {
            if let Some(a) = arg {
                walk(a, f);
            }
        }
        ExprKind::Stat(_, lv) => lvalue(lv, f),
        ExprKind::Print(p) => {
            p.args.iter().for_each(|a| walk(a, f));
            if let Some(h) = &p.hist {
                lvalue(&h.stat, f);
            }
        }
        ExprKind::Long(_)
        | ExprKind::Str(_)
        | ExprKind::Local(_)
        | ExprKind::Global(_)
        | ExprKind::Ctx(_) => {}
    }
}

#[derive(Default)]
struct Uses {
    read: HashSet<LocalId>,
    written: HashSet<LocalId>,
    first_read: Vec<(LocalId, crate::source::Span)>,
}

impl Uses {
    fn read(&mut self, l: LocalId, span: crate::source::Span) {
        if self.read.insert(l) {
            self.first_read.push((l, span));
        }
    }

    fn expr(&mut self, e: &Expr) {
        walk(e, &mut |e| match &e.kind {
            ExprKind::Local(l) => self.read(*l, e.span),
            ExprKind::Assign(LValue::Local(l), op, _) => {
                self.written.insert(*l);
                if *op != AssignOp::Set {
                    self.read(*l, e.span);
                }
            }
            ExprKind::Crement {
                target: LValue::Local(l),
                ..
            } => {
                self.written.insert(*l);
                self.read(*l, e.span);
            }
            _ => {}
        });
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) => self.expr(e),
            StmtKind::Block(b) => b.iter().for_each(|s| self.stmt(s)),
            StmtKind::If(c, t, e) => {
                self.expr(c);
                self.stmt(t);
                if let Some(e) = e {
                    self.stmt(e);
                }
            }
            StmtKind::Loop { cond, body, step } => {
                if let Some(c) = cond {
                    self.expr(c);
                }
                self.stmt(body);
                if let Some(st) = step {
                    self.expr(st);
                }
            }
            StmtKind::Foreach(f) => {
                self.written.extend(f.keys.iter().copied());
                self.written.extend(f.value);
                if let Some(l) = &f.limit {
                    self.expr(l);
                }
                self.stmt(&f.body);
            }
            StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Delete(d) => match d {
                Delete::Local(l) => {
                    self.written.insert(*l);
                }
                Delete::Index(_, keys) => keys.iter().for_each(|k| self.expr(k)),
                Delete::Global(_) => {}
            },
            StmtKind::Break | StmtKind::Continue | StmtKind::Next | StmtKind::Return(None) => {}
        }
    }
}
