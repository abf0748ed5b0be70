//! D's aggregations: `@a[keys] = func(args)` checked into SystemTap's
//! statistics (`@a[keys] <<< value`) with the function and the bucket
//! shape recorded on the global, and the actions on whole aggregations
//! (`printa`, `clear`, `trunc`, `normalize`, `denormalize`).

use super::body::{Scope, Walker};
use super::exprs::Typed;
use crate::ast::{self, AggFunc, AssignOp, ExprKind as E, Ident};
use crate::builtins::Builtin;
use crate::diag::Diagnostic;
use crate::ir::{self, HistShape, Ty};
use crate::source::Span;

/// The most buckets an `lquantize` may have (DTrace's own limit is far
/// larger; pytap keeps every bucket in a map value).
const MAX_LQUANTIZE_LEVELS: i64 = 1000;

/// Whether `name` is an action on a whole aggregation.
pub(super) fn is_agg_action(name: &str) -> bool {
    matches!(
        name,
        "printa" | "clear" | "trunc" | "normalize" | "denormalize"
    )
}

/// A constant integer argument (`-5` included).
fn constant(e: &ast::Expr) -> Option<i64> {
    match &e.kind {
        E::Num(n) => Some(*n),
        E::Unary(ast::UnOp::Neg, x) => constant(x).map(i64::wrapping_neg),
        E::Unary(ast::UnOp::Plus, x) => constant(x),
        _ => None,
    }
}

/// An aggregation's update as written: `@agg[keys] = func(args)`.
#[derive(Clone, Copy)]
pub(super) struct AggSet<'a> {
    pub agg: &'a Ident,
    pub keys: &'a [ast::Expr],
    pub func: AggFunc,
    pub args: &'a [ast::Expr],
}

impl Walker<'_, '_> {
    /// `@agg[keys] = func(args)`.
    pub(super) fn agg_set(&mut self, set: AggSet<'_>, span: Span, sc: &mut Scope<'_>) -> Typed {
        let AggSet {
            agg,
            keys,
            func,
            args,
        } = set;
        if args.len() != func.arity() {
            self.error(Diagnostic::error(
                span,
                format!(
                    "`{}()` takes {} argument{}, {} given",
                    func.name(),
                    func.arity(),
                    if func.arity() == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
            return self.bad(span);
        }
        let Ok(shape) = self.agg_shape(func, args, span) else {
            return self.bad(span);
        };
        let value = if func == AggFunc::Count {
            ast::Expr {
                kind: E::Num(1),
                span,
            }
        } else {
            args[0].clone()
        };
        let target = ast::Expr {
            kind: if keys.is_empty() {
                E::Name(agg.name.clone())
            } else {
                E::Index {
                    array: agg.clone(),
                    keys: keys.to_vec(),
                }
            },
            span: agg.span,
        };
        let out = self.assign(AssignOp::Aggregate, &target, &value, span, sc);
        if let Some(g) = self.global(&agg.name) {
            self.agg_uses(g, agg, func, shape, span);
            let marks = &mut self.globals[g].stack_keys;
            for (i, k) in keys.iter().enumerate() {
                if matches!(&k.kind, E::Call { name, .. }
                    if name.name == Builtin::Pystack.name() || name.name == Builtin::Ustack.name())
                {
                    if marks.len() <= i {
                        marks.resize(i + 1, false);
                    }
                    marks[i] = true;
                }
            }
        }
        out
    }

    /// The histogram an aggregating function draws, its parameters
    /// checked (`Err`: a problem, reported).
    fn agg_shape(
        &mut self,
        func: AggFunc,
        args: &[ast::Expr],
        span: Span,
    ) -> Result<Option<HistShape>, ()> {
        Ok(match func {
            AggFunc::Quantize => Some(HistShape::Log),
            AggFunc::Lquantize => {
                let params: Option<Vec<i64>> = args[1..].iter().map(constant).collect();
                let Some([lo, hi, step]) = params.as_deref().map(|p| [p[0], p[1], p[2]]) else {
                    self.error(Diagnostic::error(
                        span,
                        "`lquantize(value, low, high, step)` needs integer constants for low, high and step",
                    ));
                    return Err(());
                };
                let levels = if step > 0 && lo < hi {
                    hi.saturating_sub(lo) / step
                } else {
                    0
                };
                if !(1..=MAX_LQUANTIZE_LEVELS).contains(&levels) {
                    self.error(Diagnostic::error(
                        span,
                        format!("`lquantize` needs low < high, step > 0 and 1 to {MAX_LQUANTIZE_LEVELS} steps between them"),
                    ));
                    return Err(());
                }
                Some(HistShape::Linear {
                    start: lo,
                    stop: lo + (levels - 1) * step,
                    interval: step,
                })
            }
            AggFunc::Llquantize => {
                let params: Option<Vec<i64>> = args[1..].iter().map(constant).collect();
                let Some([factor, low, high, steps]) =
                    params.as_deref().map(|p| [p[0], p[1], p[2], p[3]])
                else {
                    self.error(Diagnostic::error(
                        span,
                        "`llquantize(value, factor, low, high, steps)` needs integer constants for factor, low, high and steps",
                    ));
                    return Err(());
                };
                if let Some(problem) = crate::hist::log_linear_problem(factor, low, high, steps) {
                    self.error(Diagnostic::error(span, format!("`llquantize`: {problem}")));
                    return Err(());
                }
                // In range: log_linear_problem checked every one.
                Some(HistShape::LogLinear {
                    factor: factor as u16,
                    low: low as u16,
                    high: high as u16,
                    steps: steps as u16,
                })
            }
            _ => None,
        })
    }

    /// One function and one histogram shape per aggregation: the first
    /// use sets them, a different one later is an error.
    fn agg_uses(
        &mut self,
        g: ir::GlobalId,
        agg: &Ident,
        func: AggFunc,
        shape: Option<HistShape>,
        span: Span,
    ) {
        let state = &mut self.globals[g];
        match state.agg {
            Some((f, _)) if f != func => {
                let msg = format!(
                    "`{}` is given values with {}() here and with {}() elsewhere: an aggregation has one function",
                    agg.name,
                    func.name(),
                    f.name()
                );
                self.error(Diagnostic::error(span, msg));
                return;
            }
            Some(_) => {}
            None => state.agg = Some((func, span)),
        }
        let state = &mut self.globals[g];
        match (state.hist, shape) {
            (Some((old, _)), Some(new)) if old != new => {
                let msg = format!(
                    "`{}` is quantized with two different shapes: an aggregation has one",
                    agg.name
                );
                self.error(Diagnostic::error(span, msg));
            }
            (None, Some(new)) => state.hist = Some((new, span)),
            _ => {}
        }
    }

    /// `printa([format,] @a)`, `clear(@a)`, `trunc(@a[, n])`,
    /// `normalize(@a, n)`, `denormalize(@a)`.
    pub(super) fn agg_action(
        &mut self,
        name: &Ident,
        args: &[ast::Expr],
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Typed {
        let usage = match name.name.as_str() {
            "printa" => "`printa(@a)` or `printa(\"format\", @a)`",
            "clear" => "`clear(@a)`",
            "trunc" => "`trunc(@a)` or `trunc(@a, n)`",
            "normalize" => "`normalize(@a, n)`",
            _ => "`denormalize(@a)`",
        };
        let bad_usage = |w: &mut Self| {
            w.error(Diagnostic::error(span, format!("write {usage}")));
            w.bad(span)
        };
        let (format, agg_arg, extra) = match (name.name.as_str(), args) {
            ("printa", [a]) => (None, a, None),
            ("printa", [f, a]) => match &f.kind {
                E::Str(s) => (Some(s.clone()), a, None),
                _ => return bad_usage(self),
            },
            ("clear" | "denormalize" | "trunc", [a]) => (None, a, None),
            ("trunc" | "normalize", [a, n]) => (None, a, Some(n)),
            _ => return bad_usage(self),
        };
        let E::AggRef(agg) = &agg_arg.kind else {
            return bad_usage(self);
        };
        let Some(g) = self.global(&agg.name) else {
            self.error(Diagnostic::error(
                agg.span,
                format!("`{}` is never given a value", agg.name),
            ));
            return self.bad(span);
        };
        let arg = match extra {
            Some(n) => {
                let (ex, t) = self.expr(n, sc);
                self.expect(n, t, Ty::Long, "this argument", sc);
                Some(Box::new(ex))
            }
            None => None,
        };
        let action = match name.name.as_str() {
            "printa" => ir::AggAction::Printa(format),
            "clear" => ir::AggAction::Clear,
            "trunc" => ir::AggAction::Trunc,
            "normalize" => ir::AggAction::Normalize,
            _ => ir::AggAction::Denormalize,
        };
        self.mk(
            ir::ExprKind::AggAction {
                action,
                agg: g,
                arg,
            },
            Some(Ty::Long),
            span,
        )
    }
}
