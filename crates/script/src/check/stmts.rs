//! Statements: conditions, loops (`for` becomes a block and a loop),
//! `foreach` over a global array, `delete`, `return` in functions.

use super::body::{Owner, Scope, Var, Walker};
use crate::ast::{self, StmtKind as S};
use crate::diag::Diagnostic;
use crate::ir::{self, Ty};
use crate::source::Span;

impl Walker<'_, '_> {
    pub fn stmt(&mut self, s: &ast::Stmt, sc: &mut Scope<'_>) -> ir::Stmt {
        let kind = match &s.kind {
            S::Block(b) => ir::StmtKind::Block(b.stmts.iter().map(|s| self.stmt(s, sc)).collect()),
            S::Expr(e) => ir::StmtKind::Expr(self.expr(e, sc).0),
            S::If { cond, then, els } => {
                let c = self.condition(cond, sc);
                let t = self.stmt(then, sc);
                let e = els.as_ref().map(|e| Box::new(self.stmt(e, sc)));
                ir::StmtKind::If(c, Box::new(t), e)
            }
            S::While { cond, body } => {
                let c = self.condition(cond, sc);
                sc.loops += 1;
                let b = self.stmt(body, sc);
                sc.loops -= 1;
                ir::StmtKind::Loop {
                    cond: Some(c),
                    body: Box::new(b),
                    step: None,
                }
            }
            S::For {
                init,
                cond,
                step,
                body,
            } => {
                let init = init.as_ref().map(|e| self.expr(e, sc).0);
                let cond = cond.as_ref().map(|c| self.condition(c, sc));
                let step = step.as_ref().map(|e| self.expr(e, sc).0);
                sc.loops += 1;
                let b = self.stmt(body, sc);
                sc.loops -= 1;
                let the_loop = ir::Stmt {
                    kind: ir::StmtKind::Loop {
                        cond,
                        body: Box::new(b),
                        step,
                    },
                    span: s.span,
                };
                let mut stmts = Vec::new();
                if let Some(init) = init {
                    stmts.push(ir::Stmt {
                        span: init.span,
                        kind: ir::StmtKind::Expr(init),
                    });
                }
                stmts.push(the_loop);
                ir::StmtKind::Block(stmts)
            }
            S::Foreach(f) => self.foreach(f, s.span, sc),
            S::Break | S::Continue => {
                if sc.loops == 0 {
                    let word = if matches!(s.kind, S::Break) {
                        "break"
                    } else {
                        "continue"
                    };
                    self.error(Diagnostic::error(
                        s.span,
                        format!("`{word}` outside a loop"),
                    ));
                }
                if matches!(s.kind, S::Break) {
                    ir::StmtKind::Break
                } else {
                    ir::StmtKind::Continue
                }
            }
            S::Next => ir::StmtKind::Next,
            S::Return(value) => self.return_stmt(value.as_ref(), s.span, sc),
            S::Delete(e) => self.delete(e, sc),
            S::Try => ir::StmtKind::Block(Vec::new()),
            S::Empty => ir::StmtKind::Block(Vec::new()),
        };
        ir::Stmt { kind, span: s.span }
    }

    /// `return [value]`: only in a function, whose type the value gives
    /// or takes (outside one, an error, and the probe's `next`).
    fn return_stmt(
        &mut self,
        value: Option<&ast::Expr>,
        span: Span,
        sc: &mut Scope<'_>,
    ) -> ir::StmtKind {
        let Owner::Function(f) = sc.owner else {
            self.error(
                Diagnostic::error(span, "`return` outside a function")
                    .hint("`next` leaves a probe"),
            );
            return ir::StmtKind::Next;
        };
        let value = value.map(|e| {
            let (ex, ty) = self.expr(e, sc);
            match ty {
                Some(t) => self.learn(&Var::Func(f), t, e.span),
                None => {
                    if let Some(t) = self.var_type(&Var::Func(f)) {
                        self.learn_expr(e, t, sc);
                    }
                }
            }
            ex
        });
        ir::StmtKind::Return(value)
    }

    /// A condition: a number (strings are not true or false).
    pub fn condition(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> ir::Expr {
        let (ex, ty) = self.expr(e, sc);
        self.expect(e, ty, Ty::Long, "this condition", sc);
        ex
    }

    fn delete(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> ir::StmtKind {
        match &e.kind {
            ast::ExprKind::Name(name) => {
                if let Some(g) = self.global(name) {
                    return ir::StmtKind::Delete(ir::Delete::Global(g));
                }
                let l = self.local(sc, name, e.span);
                ir::StmtKind::Delete(ir::Delete::Local(l))
            }
            ast::ExprKind::Index { array, keys } => {
                let Some((g, keys)) = self.index(array, keys, sc) else {
                    return ir::StmtKind::Block(Vec::new());
                };
                ir::StmtKind::Delete(ir::Delete::Index(g, keys))
            }
            _ => {
                self.error(Diagnostic::error(
                    e.span,
                    "`delete` takes a variable, an array or an array element",
                ));
                ir::StmtKind::Block(Vec::new())
            }
        }
    }

    fn foreach(&mut self, f: &ast::Foreach, span: Span, sc: &mut Scope<'_>) -> ir::StmtKind {
        if let Some(slice) = f.slice {
            self.error(Diagnostic::error(
                slice,
                "`foreach` over a slice of an array is not supported yet",
            ));
        }
        let Some(g) = self.array_global(&f.array) else {
            return ir::StmtKind::Block(Vec::new());
        };
        self.shape(g, f.keys.len(), f.array.span);
        let keys: Vec<_> = f
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let l = self.local(sc, &k.name, k.span);
                let var = Var::Local(sc.owner, k.name.clone());
                if let Some(t) = self.var_type(&Var::Key(g, i)) {
                    self.learn(&var, t, k.span);
                } else if let Some(t) = self.var_type(&var) {
                    self.learn(&Var::Key(g, i), t, k.span);
                }
                l
            })
            .collect();
        let value_ty = self.var_type(&Var::Global(g));
        let value = f.value.as_ref().map(|v| {
            let l = self.local(sc, &v.name, v.span);
            let var = Var::Local(sc.owner, v.name.clone());
            match value_ty {
                Some(Ty::Stats) => self.error(Diagnostic::error(
                    v.span,
                    format!(
                        "`{}` holds statistics: read them with `@count({}[…])` and the like",
                        f.array.name, f.array.name
                    ),
                )),
                Some(t) => self.learn(&var, t, v.span),
                None => {
                    if let Some(t) = self.var_type(&var) {
                        self.learn(&Var::Global(g), t, v.span);
                    }
                }
            }
            l
        });
        let sort = f.sort.map(|s| {
            if s.column > f.keys.len() {
                self.error(Diagnostic::error(
                    span,
                    "the sort column is not one of the keys",
                ));
            }
            if s.aggregate.is_some() && value_ty != Some(Ty::Stats) {
                self.error(Diagnostic::error(
                    span,
                    "sorting on a statistic (`@sum +`) needs an array of statistics",
                ));
            }
            ir::Sort {
                column: s.column,
                ascending: s.ascending,
                stat: s.aggregate.unwrap_or(ast::StatOp::Count),
            }
        });
        let limit = f.limit.as_ref().map(|l| {
            let (ex, ty) = self.expr(l, sc);
            self.expect(l, ty, Ty::Long, "`limit`", sc);
            ex
        });
        sc.loops += 1;
        let body = self.stmt(&f.body, sc);
        sc.loops -= 1;
        ir::StmtKind::Foreach(Box::new(ir::Foreach {
            array: g,
            keys,
            value,
            sort,
            limit,
            body,
        }))
    }
}
