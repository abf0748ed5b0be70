//! D's functions, translated as they are parsed into the shared syntax
//! tree: string functions into the checker's built-ins, `printf` and
//! `trace` into prints, the aggregating functions (only as an
//! aggregation's value) and actions on whole aggregations into calls the
//! checker knows; what pytap's D does not run is named in the error.

use super::expr::{call, mk};
use super::parser::{PResult, Parser};
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::source::Span;

/// D functions pytap does not run (named in the error, not as unknown).
const UNSUPPORTED: &[&str] = &[
    "copyin",
    "copyinto",
    "copyout",
    "copyoutstr",
    "alloca",
    "bcopy",
    "system",
    "raise",
    "stop",
    "panic",
    "chill",
    "breakpoint",
    "stack",
    "speculate",
    "speculation",
    "commit",
    "discard",
    "tracemem",
    "printm",
    "setopt",
    "freopen",
    "ftruncate",
    "rand",
    "progenyof",
    "mutex_owned",
    "strtok",
    "toupper",
    "tolower",
    "inet_ntoa",
    "htons",
    "ntohs",
    "htonl",
    "ntohl",
    "print",
    "func",
    "ufunc",
    "usym",
    "sym",
    "mod",
    "umod",
    "uaddr",
];

impl Parser<'_> {
    pub(super) fn function(&mut self, name: &str, span: Span) -> PResult<Expr> {
        let agg_value = std::mem::replace(&mut self.agg_value, false);
        self.expect_op("(", "")?;
        let saved = std::mem::replace(&mut self.in_predicate, false);
        let mut args = Vec::new();
        if !self.is_op(")") {
            args.push(self.expr()?);
            while self.eat_op(",") {
                args.push(self.expr()?);
            }
        }
        self.in_predicate = saved;
        self.expect_op(")", "to close the arguments")?;
        let span = span.to(self.last_span());
        let argc = |want: &[usize], args: &[Expr]| arg_count(name, want, args, span);
        match name {
            "copyinstr" => {
                argc(&[1, 2], &args)?;
                let f = if args.len() == 1 {
                    "user_string"
                } else {
                    "user_string_n"
                };
                Ok(call(f, args, span))
            }
            "stringof" => {
                argc(&[1], &args)?;
                Ok(args.remove(0))
            }
            "strjoin" => {
                argc(&[2], &args)?;
                Ok(mk(ExprKind::Concat(args), span))
            }
            "lltostr" => {
                argc(&[1], &args)?;
                Ok(mk(
                    ExprKind::Print {
                        kind: PrintKind::Sprint,
                        head: None,
                        args,
                        hist: None,
                    },
                    span,
                ))
            }
            "index" => {
                argc(&[2], &args)?;
                Ok(call("strpos", args, span))
            }
            "substr" => {
                argc(&[2, 3], &args)?;
                if args.len() == 2 {
                    args.push(mk(ExprKind::Num(i64::from(i32::MAX)), span));
                }
                Ok(call("__d_substr", args, span))
            }
            "basename" | "dirname" | "strstr" => Ok(call(&format!("__d_{name}"), args, span)),
            "strlen" => Ok(call("strlen", args, span)),
            "printf" => printf(name, PrintKind::Printf, args, span),
            "trace" => {
                argc(&[1], &args)?;
                let f = if self.opts.quiet {
                    "__d_trace_quiet"
                } else {
                    "__d_trace"
                };
                Ok(call(f, args, span))
            }
            "exit" => {
                argc(&[1], &args)?;
                Ok(call("exit", Vec::new(), span))
            }
            "jstack" => stack("jstack", "__pystack", args, span),
            "ustack" => stack("ustack", "__ustack", args, span),
            "printa" | "clear" | "trunc" | "normalize" | "denormalize" => {
                Ok(call(name, args, span))
            }
            "count" | "sum" | "avg" | "min" | "max" | "stddev" | "quantize" | "lquantize"
            | "llquantize"
                if agg_value =>
            {
                Ok(call(name, args, span))
            }
            "count" | "sum" | "avg" | "min" | "max" | "stddev" | "quantize" | "lquantize"
            | "llquantize" => Err(Diagnostic::error(
                span,
                format!("`{name}()` is an aggregating function: write `@name[keys] = {name}(…)`"),
            )),
            _ if UNSUPPORTED.contains(&name) => Err(Diagnostic::error(
                span,
                format!("`{name}()` is not supported in pytap's D"),
            )),
            _ => Err(Diagnostic::error(
                span,
                format!("`{name}()` is not a D function"),
            )),
        }
    }
}

/// `jstack([nframes[, strsize]])`: the Python stack, at most `nframes`
/// frames (DTrace's default, `jstackframes`, is every frame pytap reads);
/// `ustack([nframes[, strsize]])` the native one (`builtin` is the call
/// either becomes). `strsize` sizes the string space of illumos's ustack
/// helpers, which pytap does not use: it is accepted and has no effect.
fn stack(name: &str, builtin: &str, mut args: Vec<Expr>, span: Span) -> PResult<Expr> {
    arg_count(name, &[0, 1, 2], &args, span)?;
    for (i, a) in args.iter().enumerate() {
        if !matches!(a.kind, ExprKind::Num(n) if n >= 0) {
            let what = if i == 0 { "frame count" } else { "string size" };
            return Err(Diagnostic::error(
                a.span,
                format!("`{name}()`'s {what} must be a non-negative integer constant"),
            ));
        }
    }
    args.truncate(1);
    if args.is_empty() {
        args.push(mk(ExprKind::Num(0), span));
    }
    Ok(call(builtin, args, span))
}

/// `want` arguments (one of those counts), or an error naming the
/// function.
fn arg_count(name: &str, want: &[usize], args: &[Expr], span: Span) -> PResult<()> {
    if want.contains(&args.len()) {
        Ok(())
    } else {
        Err(Diagnostic::error(
            span,
            format!(
                "`{name}()` takes {} argument(s), {} given",
                want.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                args.len()
            ),
        ))
    }
}

/// `printf("format", …)`: the format must be a string literal.
fn printf(name: &str, kind: PrintKind, mut args: Vec<Expr>, span: Span) -> PResult<Expr> {
    if args.is_empty() {
        return Err(Diagnostic::error(
            span,
            format!("`{name}()` needs a format string"),
        ));
    }
    let first = args.remove(0);
    let ExprKind::Str(fmt) = first.kind else {
        return Err(Diagnostic::error(
            first.span,
            "the format must be a string literal",
        ));
    };
    Ok(mk(
        ExprKind::Print {
            kind,
            head: Some((fmt, first.span)),
            args,
            hist: None,
        },
        span,
    ))
}
