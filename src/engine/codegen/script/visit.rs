//! A walk over every expression a firing can run: the bodies of a
//! marker's probes and, once each, the functions they call. The per-firing
//! analyses ([`super::cache`], [`super::firing`]) look at what it visits.

use std::collections::BTreeSet;

use pytap_script::ir::{Delete, Expr, ExprKind, LValue, Program, Stmt, StmtKind};

/// Calls `f` on every expression of `bodies` (and of the functions they
/// call), outer expressions before their parts, in source order.
pub fn each_expr<'a>(
    program: &'a Program,
    bodies: impl Iterator<Item = &'a [Stmt]>,
    f: &mut dyn FnMut(&'a Expr),
) {
    let mut walk = Walk {
        program,
        functions: BTreeSet::new(),
        f,
    };
    for body in bodies {
        body.iter().for_each(|s| walk.stmt(s));
    }
}

struct Walk<'a, 'f> {
    program: &'a Program,
    functions: BTreeSet<usize>,
    f: &'f mut dyn FnMut(&'a Expr),
}

impl<'a> Walk<'a, '_> {
    fn stmt(&mut self, s: &'a Stmt) {
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
                cond.iter().for_each(|e| self.expr(e));
                self.stmt(body);
                step.iter().for_each(|e| self.expr(e));
            }
            StmtKind::Foreach(f) => {
                f.limit.iter().for_each(|e| self.expr(e));
                self.stmt(&f.body);
            }
            StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Delete(Delete::Index(_, keys)) => keys.iter().for_each(|e| self.expr(e)),
            StmtKind::Break
            | StmtKind::Continue
            | StmtKind::Next
            | StmtKind::Return(None)
            | StmtKind::Delete(_) => {}
        }
    }

    fn lvalue(&mut self, lv: &'a LValue) {
        if let LValue::Index(_, keys) = lv {
            keys.iter().for_each(|e| self.expr(e));
        }
    }

    fn expr(&mut self, e: &'a Expr) {
        (self.f)(e);
        match &e.kind {
            ExprKind::Index(_, args)
            | ExprKind::In(_, args)
            | ExprKind::Builtin(_, args)
            | ExprKind::Concat(args) => args.iter().for_each(|e| self.expr(e)),
            ExprKind::Call(f, args) => {
                args.iter().for_each(|e| self.expr(e));
                if self.functions.insert(*f) {
                    let program = self.program;
                    program.functions[*f].body.iter().for_each(|s| self.stmt(s));
                }
            }
            ExprKind::Unary(_, a) => self.expr(a),
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Compare(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Ternary(c, a, b) => {
                self.expr(c);
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Assign(lv, _, v) | ExprKind::Aggregate(lv, v) => {
                self.lvalue(lv);
                self.expr(v);
            }
            ExprKind::Crement { target, .. } => self.lvalue(target),
            ExprKind::Stat(_, lv) => self.lvalue(lv),
            ExprKind::Print(p) => p.args.iter().for_each(|e| self.expr(e)),
            ExprKind::AggAction { arg, .. } => arg.iter().for_each(|e| self.expr(e)),
            ExprKind::Long(_)
            | ExprKind::Str(_)
            | ExprKind::Local(_)
            | ExprKind::Global(_)
            | ExprKind::Ctx(_) => {}
        }
    }
}
