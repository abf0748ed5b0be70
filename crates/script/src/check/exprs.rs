//! Expressions: each built into [`ir::Expr`] with its type, if known yet.

use super::body::{Scope, Var, Walker};
use crate::ast::{self, AssignOp, ExprKind as E};
use crate::diag::Diagnostic;
use crate::ir::{self, Ty};
use crate::source::Span;

pub(super) type Typed = (ir::Expr, Option<Ty>);

impl Walker<'_, '_> {
    pub(super) fn mk(&mut self, kind: ir::ExprKind, ty: Option<Ty>, span: Span) -> Typed {
        let id = self.id();
        (
            ir::Expr {
                id,
                ty: ty.unwrap_or(Ty::Long),
                span,
                kind,
            },
            ty,
        )
    }

    /// A placeholder after an error.
    pub(super) fn bad(&mut self, span: Span) -> Typed {
        self.mk(ir::ExprKind::Long(0), None, span)
    }

    /// Checks that `e` (of type `got`, if known) is a `want`; an unknown
    /// type is learnt from here.
    pub fn expect(
        &mut self,
        e: &ast::Expr,
        got: Option<Ty>,
        want: Ty,
        what: &str,
        sc: &mut Scope<'_>,
    ) {
        match got {
            None => self.learn_expr(e, want, sc),
            Some(t) if t != want => {
                self.error(super::mismatch(e.span, what, want, t));
            }
            Some(_) => {}
        }
    }

    /// The variable behind `e` (if any) has type `ty`.
    pub fn learn_expr(&mut self, e: &ast::Expr, ty: Ty, sc: &mut Scope<'_>) {
        match &e.kind {
            E::Name(n) => {
                if let Some(g) = self.global(n) {
                    self.learn(&Var::Global(g), ty, e.span);
                } else {
                    self.learn(&Var::Local(sc.owner, n.clone()), ty, e.span);
                }
            }
            E::Index { array, .. } => {
                if let Some(g) = self.global(&array.name) {
                    self.learn(&Var::Global(g), ty, e.span);
                }
            }
            E::Call { name, .. } => {
                if let Some(f) = self.function_id(&name.name) {
                    self.learn(&Var::Func(f), ty, e.span);
                }
            }
            E::Ternary(_, a, b) => {
                self.learn_expr(a, ty, sc);
                self.learn_expr(b, ty, sc);
            }
            E::Assign(AssignOp::Set, t, v) => {
                self.learn_expr(t, ty, sc);
                self.learn_expr(v, ty, sc);
            }
            _ => {}
        }
    }

    pub fn expr(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> Typed {
        let span = e.span;
        match &e.kind {
            E::Num(n) => self.mk(ir::ExprKind::Long(*n), Some(Ty::Long), span),
            E::Str(s) => self.mk(ir::ExprKind::Str(s.clone()), Some(Ty::Str), span),
            E::Name(name) => self.name(name, span, sc),
            E::Target(name) => self.target(name, span, sc),
            E::Index { array, keys } => {
                let Some((g, keys)) = self.index(array, keys, sc) else {
                    return self.bad(span);
                };
                let ty = self.var_type(&Var::Global(g));
                if ty == Some(Ty::Stats) {
                    self.error(stats_read(span, &array.name));
                }
                self.mk(ir::ExprKind::Index(g, keys), ty, span)
            }
            E::In { keys, array } => {
                let Some((g, keys)) = self.index(array, keys, sc) else {
                    return self.bad(span);
                };
                self.mk(ir::ExprKind::In(g, keys), Some(Ty::Long), span)
            }
            E::Call { name, args } if super::aggs::is_agg_action(&name.name) => {
                self.agg_action(name, args, span, sc)
            }
            E::Call { name, args } => self.call(name, args, span, sc),
            E::AggSet {
                agg,
                keys,
                func,
                args,
            } => {
                let set = super::aggs::AggSet {
                    agg,
                    keys,
                    func: *func,
                    args,
                };
                self.agg_set(set, span, sc)
            }
            E::AggRef(name) => self.aggregation_read(name, span),
            E::Print {
                kind,
                head,
                args,
                hist,
            } => {
                let call = super::calls::PrintCall {
                    kind: *kind,
                    head: head.as_ref(),
                    args,
                    hist: hist.as_ref(),
                };
                self.print(call, span, sc)
            }
            E::Stat { op, operand, .. } => {
                let Some(lv) = self.stats_place(operand, sc) else {
                    return self.bad(span);
                };
                self.mk(ir::ExprKind::Stat(*op, lv), Some(Ty::Long), span)
            }
            E::Hist(_) => {
                self.error(Diagnostic::error(
                    span,
                    "a histogram can only be printed whole: `print(@hist_log(x))`",
                ));
                self.bad(span)
            }
            E::Unary(..)
            | E::Binary(..)
            | E::And(..)
            | E::Or(..)
            | E::Compare(..)
            | E::Concat(_)
            | E::Ternary(..) => self.operator(e, sc),
            E::Assign(op, target, value) => self.assign(*op, target, value, span, sc),
            E::Crement {
                target,
                delta,
                post,
            } => self.crement(target, *delta, *post, span, sc),
            E::Regex => {
                self.error(Diagnostic::error(
                    span,
                    "regular expressions are not supported yet",
                ));
                self.bad(span)
            }
            E::Unsupported(what) => {
                self.error(Diagnostic::error(span, format!("{what} is not supported")));
                self.bad(span)
            }
        }
    }

    /// An aggregation read as a value: D gives it values and prints it,
    /// nothing else.
    fn aggregation_read(&mut self, name: &ast::Ident, span: Span) -> Typed {
        self.error(Diagnostic::error(
            span,
            format!(
                "`{}` is an aggregation: it is given values with `{} = count()` (or sum, avg, min, max, quantize, lquantize) and printed with `printa({})`",
                name.name, name.name, name.name
            ),
        ));
        self.bad(span)
    }

    /// A name: the global of that name, else the probe's or function's
    /// local.
    fn name(&mut self, name: &str, span: Span, sc: &mut Scope<'_>) -> Typed {
        if let Some(g) = self.global(name) {
            self.shape(g, 0, span);
            let ty = self.var_type(&Var::Global(g));
            if ty == Some(Ty::Stats) {
                self.error(stats_read(span, name));
            }
            self.mk(ir::ExprKind::Global(g), ty, span)
        } else {
            let l = self.local(sc, name, span);
            let ty = self.var_type(&Var::Local(sc.owner, name.to_owned()));
            self.mk(ir::ExprKind::Local(l), ty, span)
        }
    }

    /// An operator's expression: numbers in, a number out (strings for
    /// `.`, both for comparisons and `?:`, whose two sides must agree).
    fn operator(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> Typed {
        let span = e.span;
        match &e.kind {
            E::Unary(op, x) => {
                let (ex, t) = self.expr(x, sc);
                self.expect(x, t, Ty::Long, "this operand", sc);
                self.mk(ir::ExprKind::Unary(*op, Box::new(ex)), Some(Ty::Long), span)
            }
            E::Binary(op, a, b) => {
                let (ea, ta) = self.expr(a, sc);
                let (eb, tb) = self.expr(b, sc);
                self.expect(a, ta, Ty::Long, "this operand", sc);
                self.expect(b, tb, Ty::Long, "this operand", sc);
                self.mk(
                    ir::ExprKind::Binary(*op, Box::new(ea), Box::new(eb)),
                    Some(Ty::Long),
                    span,
                )
            }
            E::And(a, b) | E::Or(a, b) => {
                let (ea, ta) = self.expr(a, sc);
                let (eb, tb) = self.expr(b, sc);
                self.expect(a, ta, Ty::Long, "this operand", sc);
                self.expect(b, tb, Ty::Long, "this operand", sc);
                let kind = if matches!(e.kind, E::And(..)) {
                    ir::ExprKind::And(Box::new(ea), Box::new(eb))
                } else {
                    ir::ExprKind::Or(Box::new(ea), Box::new(eb))
                };
                self.mk(kind, Some(Ty::Long), span)
            }
            E::Compare(op, a, b) => {
                let (ea, ta) = self.expr(a, sc);
                let (eb, tb) = self.expr(b, sc);
                match (ta, tb) {
                    (Some(x), None) => self.learn_expr(b, x, sc),
                    (None, Some(y)) => self.learn_expr(a, y, sc),
                    (Some(x), Some(y)) if x != y => {
                        self.error(Diagnostic::error(
                            span,
                            format!("comparing {} with {}", x.name(), y.name()),
                        ));
                    }
                    _ => {}
                }
                self.mk(
                    ir::ExprKind::Compare(*op, Box::new(ea), Box::new(eb)),
                    Some(Ty::Long),
                    span,
                )
            }
            E::Concat(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    let (ex, t) = self.expr(p, sc);
                    self.expect(p, t, Ty::Str, "each part of `.`", sc);
                    out.push(ex);
                }
                self.mk(ir::ExprKind::Concat(out), Some(Ty::Str), span)
            }
            E::Ternary(c, a, b) => {
                let (ec, tc) = self.expr(c, sc);
                self.expect(c, tc, Ty::Long, "this condition", sc);
                let (ea, ta) = self.expr(a, sc);
                let (eb, tb) = self.expr(b, sc);
                match (ta, tb) {
                    (Some(x), None) => self.learn_expr(b, x, sc),
                    (None, Some(y)) => self.learn_expr(a, y, sc),
                    (Some(x), Some(y)) if x != y => self.error(Diagnostic::error(
                        span,
                        format!("the two values of `?:` are {} and {}", x.name(), y.name()),
                    )),
                    _ => {}
                }
                self.mk(
                    ir::ExprKind::Ternary(Box::new(ec), Box::new(ea), Box::new(eb)),
                    ta.or(tb),
                    span,
                )
            }
            _ => unreachable!("not an operator"),
        }
    }

    /// `x++`, `--x`, …: a number place.
    fn crement(
        &mut self,
        target: &ast::Expr,
        delta: i64,
        post: bool,
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Typed {
        let Some((lv, var)) = self.place(target, sc) else {
            return self.bad(span);
        };
        self.learn(&var, Ty::Long, target.span);
        self.mk(
            ir::ExprKind::Crement {
                target: lv,
                delta,
                post,
            },
            Some(Ty::Long),
            span,
        )
    }

    /// `array[keys]`: the global and the keys, typed against the array's.
    pub fn index(
        &mut self,
        array: &ast::Ident,
        keys: &[ast::Expr],
        sc: &mut Scope<'_>,
    ) -> Option<(usize, Vec<ir::Expr>)> {
        let g = self.array_global(array)?;
        self.shape(g, keys.len(), array.span);
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let (ex, t) = self.expr(k, sc);
            match (t, self.var_type(&Var::Key(g, i))) {
                (Some(Ty::Stats), _) => {
                    self.error(Diagnostic::error(k.span, "statistics cannot be a key"));
                }
                (Some(t), _) => self.learn(&Var::Key(g, i), t, k.span),
                (None, Some(kt)) => self.learn_expr(k, kt, sc),
                (None, None) => {}
            }
            out.push(ex);
        }
        Some((g, out))
    }

    /// A place a value can be stored: a local, a global scalar or an array
    /// element.
    pub(super) fn place(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> Option<(ir::LValue, Var)> {
        match &e.kind {
            E::Name(name) => {
                if let Some(g) = self.global(name) {
                    self.shape(g, 0, e.span);
                    Some((ir::LValue::Global(g), Var::Global(g)))
                } else {
                    let l = self.local(sc, name, e.span);
                    Some((ir::LValue::Local(l), Var::Local(sc.owner, name.clone())))
                }
            }
            E::Index { array, keys } => {
                let (g, keys) = self.index(array, keys, sc)?;
                Some((ir::LValue::Index(g, keys), Var::Global(g)))
            }
            _ => {
                self.error(Diagnostic::error(
                    e.span,
                    "only a variable or an array element can be assigned to",
                ));
                None
            }
        }
    }

    /// A statistics value: a global scalar or array element, which becomes
    /// (or must be) statistics.
    pub(super) fn stats_place(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> Option<ir::LValue> {
        match &e.kind {
            E::Name(name) if self.global(name).is_none() => {
                self.error(
                    Diagnostic::error(
                        e.span,
                        format!("statistics must be global: `{name}` is a local"),
                    )
                    .hint(format!("declare it: `global {name}`")),
                );
                None
            }
            E::Name(_) | E::Index { .. } => {
                let (lv, var) = self.place(e, sc)?;
                self.learn(&var, Ty::Stats, e.span);
                Some(lv)
            }
            _ => {
                self.error(Diagnostic::error(
                    e.span,
                    "statistics are a global or an element of a global array",
                ));
                None
            }
        }
    }

    pub(super) fn assign(
        &mut self,
        op: AssignOp,
        target: &ast::Expr,
        value: &ast::Expr,
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Typed {
        if op == AssignOp::Aggregate {
            let (v, t) = self.expr(value, sc);
            self.expect(value, t, Ty::Long, "the value given to `<<<`", sc);
            let Some(lv) = self.stats_place(target, sc) else {
                return self.bad(span);
            };
            return self.mk(
                ir::ExprKind::Aggregate(lv, Box::new(v)),
                Some(Ty::Long),
                span,
            );
        }
        let (v, vt) = self.expr(value, sc);
        let Some((lv, var)) = self.place(target, sc) else {
            return self.bad(span);
        };
        let tt = self.var_type(&var);
        if tt == Some(Ty::Stats) {
            self.error(
                Diagnostic::error(span, "statistics are added to with `<<<`, not assigned")
                    .hint("`x <<< value`"),
            );
            return self.bad(span);
        }
        let (irop, ty) = match op {
            AssignOp::Set => {
                match (tt, vt) {
                    (_, Some(t)) => self.learn(&var, t, value.span),
                    (Some(t), None) => self.learn_expr(value, t, sc),
                    (None, None) => {}
                }
                (ir::AssignOp::Set, vt.or(tt))
            }
            AssignOp::Compound(bin) => {
                self.learn(&var, Ty::Long, target.span);
                self.expect(value, vt, Ty::Long, "this value", sc);
                (ir::AssignOp::Compound(bin), Some(Ty::Long))
            }
            AssignOp::Concat => {
                self.learn(&var, Ty::Str, target.span);
                self.expect(value, vt, Ty::Str, "this value", sc);
                (ir::AssignOp::Concat, Some(Ty::Str))
            }
            AssignOp::Aggregate => unreachable!("handled above"),
        };
        self.mk(ir::ExprKind::Assign(lv, irop, Box::new(v)), ty, span)
    }
}

pub(super) fn stats_read(span: Span, name: &str) -> Diagnostic {
    Diagnostic::error(
        span,
        format!(
            "`{name}` holds statistics, which are read with `@count`, `@sum`, `@min`, `@max`, `@avg` or printed with `@hist_log`"
        ),
    )
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
