//! Calls: user functions and built-ins (arity and argument types), the
//! print functions (formats checked against their arguments, histograms),
//! and the marker's context (`$argN`, `$$name`, `$$parms`) and the
//! script's arguments (`$1`, `@1`).

use super::body::{Scope, Var, Walker};
use super::exprs::{Typed, plural, stats_read};
use crate::ast;
use crate::builtins::Builtin;
use crate::diag::Diagnostic;
use crate::format::Format;
use crate::ir::{self, Ty};
use crate::source::Span;

/// A print function's call as written: which, its format or delimiter,
/// its arguments, the histogram it draws.
#[derive(Clone, Copy)]
pub(super) struct PrintCall<'a> {
    pub kind: ast::PrintKind,
    pub head: Option<&'a (Vec<u8>, Span)>,
    pub args: &'a [ast::Expr],
    pub hist: Option<&'a ast::HistOp>,
}

impl Walker<'_, '_> {
    pub(super) fn call(
        &mut self,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Typed {
        if let Some(f) = self.function_id(&name.name) {
            let params = self.functions[f].decl.params.len();
            if args.len() != params {
                self.error(Diagnostic::error(
                    span,
                    format!(
                        "`{}` takes {params} argument{}, {} given",
                        name.name,
                        plural(params),
                        args.len()
                    ),
                ));
            }
            let mut out = Vec::new();
            for (i, a) in args.iter().enumerate() {
                let (ex, t) = self.expr(a, sc);
                match (t, self.var_type(&Var::Param(f, i))) {
                    (Some(t), _) => self.learn(&Var::Param(f, i), t, a.span),
                    (None, Some(pt)) => self.learn_expr(a, pt, sc),
                    _ => {}
                }
                out.push(ex);
            }
            let ret = self.functions[f].ret;
            return self.mk(ir::ExprKind::Call(f, out), ret, span);
        }
        if let Some(typed) = self.pybacktrace(name, args, span, sc) {
            return typed;
        }
        if name.name == "__d_trace" || name.name == "__d_trace_quiet" {
            return self.d_trace(&args[0], name.name == "__d_trace_quiet", span, sc);
        }
        let Some(b) = Builtin::lookup(&name.name, args.len()) else {
            self.error(
                Diagnostic::error(name.span, format!("unknown function `{}`", name.name)).hint(
                    "docs/scripts.md lists the SystemTap functions pytap has; define others with `function`",
                ),
            );
            return self.bad(span);
        };
        let params = b.params();
        if args.len() != params.len() {
            self.error(Diagnostic::error(
                span,
                format!(
                    "`{}` takes {} argument{}, {} given",
                    name.name,
                    params.len(),
                    plural(params.len()),
                    args.len()
                ),
            ));
            return self.bad(span);
        }
        let mut out = Vec::new();
        for (a, &want) in args.iter().zip(params) {
            let (ex, t) = self.expr(a, sc);
            self.expect(a, t, want, &format!("this argument of `{}`", name.name), sc);
            out.push(ex);
        }
        if b == Builtin::Probename {
            let text = match (sc.marker, sc.point.as_deref()) {
                (Some(m), _) => m.name.replace("__", "-"),
                (None, Some("begin")) => "BEGIN".into(),
                (None, Some("end")) => "END".into(),
                (None, Some(p)) if p.starts_with("timer.profile.hz(") => {
                    format!(
                        "profile-{}",
                        p.trim_start_matches("timer.profile.hz(")
                            .trim_end_matches(')')
                    )
                }
                (None, Some(_)) => "tick".into(),
                (None, None) => String::new(),
            };
            return self.mk(ir::ExprKind::Str(text.into_bytes()), Some(Ty::Str), span);
        }
        // The dtrace provider's probes: BEGIN is 1 and END 2 as in dtrace;
        // tick probes are not numbered (0). Sites are known at run time.
        if matches!(b, Builtin::Probefunc | Builtin::Probemod) && sc.marker.is_none() {
            return self.mk(ir::ExprKind::Str(Vec::new()), Some(Ty::Str), span);
        }
        if b == Builtin::ProbeId && sc.marker.is_none() {
            let id = match sc.point.as_deref() {
                Some("begin") => 1,
                Some("end") => 2,
                _ => 0,
            };
            return self.mk(ir::ExprKind::Long(id), Some(Ty::Long), span);
        }
        if b == Builtin::Pp && sc.point.is_some() {
            let text = sc.point.clone().unwrap_or_default().into_bytes();
            return self.mk(ir::ExprKind::Str(text), Some(Ty::Str), span);
        }
        self.mk(ir::ExprKind::Builtin(b, out), Some(b.ret()), span)
    }

    /// SystemTap's Python backtrace functions, pytap's counterparts of
    /// `sprint_ubacktrace()` and `print_ubacktrace()`:
    /// `sprint_pybacktrace()` is the stack as a string (one frame a line,
    /// innermost first), `print_pybacktrace()` prints it and a newline;
    /// `sprint_ubacktrace()` and `print_ubacktrace()` the same of the
    /// native stack.
    fn pybacktrace(
        &mut self,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Option<Typed> {
        let (print, builtin) = match name.name.as_str() {
            "sprint_pybacktrace" => (false, Builtin::Pystack),
            "print_pybacktrace" => (true, Builtin::Pystack),
            "sprint_ubacktrace" => (false, Builtin::Ustack),
            "print_ubacktrace" => (true, Builtin::Ustack),
            _ => return None,
        };
        if !args.is_empty() {
            self.error(Diagnostic::error(
                span,
                format!("`{}` takes no arguments, {} given", name.name, args.len()),
            ));
            return Some(self.bad(span));
        }
        let pystack = ast::Ident {
            name: builtin.name().into(),
            span: name.span,
        };
        let all = vec![ast::Expr {
            kind: ast::ExprKind::Num(0),
            span,
        }];
        if !print {
            return Some(self.call(&pystack, &all, span, sc));
        }
        let stack = ast::Expr {
            kind: ast::ExprKind::Call {
                name: pystack,
                args: all,
            },
            span,
        };
        let call = PrintCall {
            kind: ast::PrintKind::Println,
            head: None,
            args: std::slice::from_ref(&stack),
            hist: None,
        };
        Some(self.print(call, span, sc))
    }

    /// D's `trace(x)`: the value as dtrace prints a traced datum.
    fn d_trace(&mut self, arg: &ast::Expr, quiet: bool, span: Span, sc: &mut Scope<'_>) -> Typed {
        let (_, t) = self.expr(arg, sc);
        let string = t == Some(Ty::Str);
        // dtrace's `dt_consume_cpu`: 8-byte integers as " %16lld", strings
        // as "  %-33s"; bare when quiet.
        let format: &[u8] = match (string, quiet) {
            (true, false) => b"  %-33s",
            (false, false) => b" %16d",
            (true, true) => b"%s",
            (false, true) => b"%d",
        };
        let call = PrintCall {
            kind: ast::PrintKind::Printf,
            head: Some(&(format.to_vec(), span)),
            args: std::slice::from_ref(arg),
            hist: None,
        };
        self.print(call, span, sc)
    }

    pub(super) fn print(&mut self, call: PrintCall<'_>, span: Span, sc: &mut Scope<'_>) -> Typed {
        let PrintCall {
            kind,
            head,
            args,
            hist,
        } = call;
        let ty = if kind.is_sprint() { Ty::Str } else { Ty::Long };
        if let Some(h) = hist {
            return self.hist_print(kind, h, ty, span, sc);
        }
        let mut format = None;
        let mut wants = Vec::new();
        if kind.has_format() {
            let (bytes, at) = head.expect("the parser requires a format");
            match Format::parse(bytes) {
                Ok(f) => {
                    wants = f.args();
                    format = Some(f);
                }
                Err(e) => {
                    self.error(Diagnostic::error(
                        *at,
                        format!("in this format: {}", e.message),
                    ));
                    return self.bad(span);
                }
            }
            if wants.len() != args.len() {
                self.error(Diagnostic::error(
                    span,
                    format!(
                        "the format takes {} value{}, and {} {} given",
                        wants.len(),
                        plural(wants.len()),
                        args.len(),
                        if args.len() == 1 { "is" } else { "are" }
                    ),
                ));
            }
        }
        let mut out = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let (ex, t) = self.expr(a, sc);
            if let Some((want, what)) = wants.get(i) {
                match t {
                    None => self.learn_expr(a, *want, sc),
                    Some(t) if t != *want => self.error(Diagnostic::error(
                        a.span,
                        format!("{what} needs {}, and this is {}", want.name(), t.name()),
                    )),
                    _ => {}
                }
            } else if t == Some(Ty::Stats) {
                self.error(stats_read(a.span, "this"));
            }
            out.push(ex);
        }
        let print = ir::Print {
            kind,
            format,
            delimiter: if kind.has_delimiter() {
                head.map(|(b, _)| b.clone())
            } else {
                None
            },
            args: out,
            hist: None,
        };
        self.mk(ir::ExprKind::Print(Box::new(print)), Some(ty), span)
    }

    /// `print(@hist_log(…))`, `print(@hist_linear(…))`: the statistic
    /// drawn, one shape per global.
    fn hist_print(
        &mut self,
        kind: ast::PrintKind,
        h: &ast::HistOp,
        ty: Ty,
        span: Span,
        sc: &mut Scope<'_>,
    ) -> Typed {
        let Some(lv) = self.stats_place(&h.stat, sc) else {
            return self.bad(span);
        };
        let shape = match h.linear {
            None => ir::HistShape::Log,
            Some((start, stop, interval)) => {
                let buckets = if interval > 0 && stop > start {
                    (stop - start) / interval + 3
                } else {
                    0
                };
                if !(3..=128).contains(&buckets) {
                    self.error(Diagnostic::error(
                        h.span,
                        "`@hist_linear(x, start, stop, interval)` needs start < stop, interval > 0 and at most 125 buckets ((stop - start) / interval)",
                    ));
                    return self.bad(span);
                }
                ir::HistShape::Linear {
                    start,
                    stop,
                    interval,
                }
            }
        };
        let g = match &lv {
            ir::LValue::Global(g) | ir::LValue::Index(g, _) => *g,
            ir::LValue::Local(_) => return self.bad(span),
        };
        match self.globals[g].hist {
            Some((known, at)) if known != shape => {
                let name = self.globals[g].name.clone();
                self.error(
                    Diagnostic::error(
                        h.span,
                        format!("`{name}` is drawn as two different histograms"),
                    )
                    .note(at, "the other one"),
                );
            }
            Some(_) => {}
            None => {
                self.globals[g].hist = Some((shape, h.span));
                self.changed = true;
            }
        }
        let print = ir::Print {
            kind,
            format: None,
            delimiter: None,
            args: Vec::new(),
            hist: Some(ir::HistPrint { stat: lv, shape }),
        };
        self.mk(ir::ExprKind::Print(Box::new(print)), Some(ty), span)
    }

    /// `$1` (a number) and `@1` (a string): argument `n` after the script.
    fn script_arg(&mut self, name: &str, n: usize, span: Span) -> Typed {
        let Some(arg) = self.args.get(n - 1) else {
            self.error(Diagnostic::error(
                span,
                format!(
                    "`{name}` is argument {n} after the script, and {} given",
                    self.args.len()
                ),
            ));
            return self.bad(span);
        };
        if name.starts_with('@') {
            return self.mk(
                ir::ExprKind::Str(arg.clone().into_bytes()),
                Some(Ty::Str),
                span,
            );
        }
        let value = arg.parse::<i64>().ok().or_else(|| {
            arg.strip_prefix("0x")
                .and_then(|h| i64::from_str_radix(h, 16).ok())
        });
        let Some(value) = value else {
            self.error(
                Diagnostic::error(
                    span,
                    format!("`{name}` is a number, and argument {n} is `{arg}`"),
                )
                .hint(format!("`@{n}` is the argument as a string")),
            );
            return self.bad(span);
        };
        self.mk(ir::ExprKind::Long(value), Some(Ty::Long), span)
    }

    /// `$argN`, `$$name`, `$$parms`, `$$provider`; `$1` and `@1`, the
    /// script's arguments.
    pub(super) fn target(&mut self, name: &str, span: Span, sc: &mut Scope<'_>) -> Typed {
        if let Some(n) = name[1..].parse::<usize>().ok().filter(|n| *n >= 1) {
            return self.script_arg(name, n, span);
        }
        let Some(marker) = sc.marker else {
            let d = if matches!(sc.owner, super::body::Owner::Function(_)) {
                Diagnostic::error(span, format!("`{name}` cannot be used inside a function"))
                    .hint("pass it to the function as an argument")
            } else {
                Diagnostic::error(
                    span,
                    format!("`{name}` belongs to marker probes; this probe is not on a marker"),
                )
            };
            self.error(d);
            return self.bad(span);
        };
        let marker = marker.clone();
        match name {
            "$$name" => self.mk(
                ir::ExprKind::Str(marker.name.clone().into_bytes()),
                Some(Ty::Str),
                span,
            ),
            "$$provider" => self.mk(ir::ExprKind::Str(b"python".to_vec()), Some(Ty::Str), span),
            // A function probe's return value (kept where D's `arg1` is).
            "$return" if marker == super::MarkerInfo::of_function(true) => {
                self.mk(ir::ExprKind::Ctx(ir::Ctx::Arg(1)), Some(Ty::Long), span)
            }
            "$$parms" | "$$vars" => {
                let text: Vec<String> = (1..=marker.args).map(|i| format!("$arg{i}=%#x")).collect();
                let format = Format::parse(text.join(" ").as_bytes()).expect("a valid format");
                let args = (0..marker.args)
                    .map(|i| {
                        self.mk(ir::ExprKind::Ctx(ir::Ctx::Arg(i)), Some(Ty::Long), span)
                            .0
                    })
                    .collect();
                let print = ir::Print {
                    kind: ast::PrintKind::Sprintf,
                    format: Some(format),
                    delimiter: None,
                    args,
                    hist: None,
                };
                self.mk(ir::ExprKind::Print(Box::new(print)), Some(Ty::Str), span)
            }
            _ => {
                let n = name
                    .strip_prefix("$arg")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n >= 1);
                match n {
                    Some(n) if n <= marker.args => {
                        self.mk(ir::ExprKind::Ctx(ir::Ctx::Arg(n - 1)), Some(Ty::Long), span)
                    }
                    Some(n) if n == marker.args + 1 && marker.function => {
                        self.mk(ir::ExprKind::Ctx(ir::Ctx::Frame), Some(Ty::Long), span)
                    }
                    Some(_) => {
                        self.error(Diagnostic::error(
                            span,
                            format!(
                                "`{}` passes {} argument{}: `$arg1`{}",
                                marker.name,
                                marker.args,
                                plural(marker.args),
                                if marker.args > 1 {
                                    format!(" to `$arg{}`", marker.args)
                                } else {
                                    String::new()
                                }
                            ),
                        ));
                        self.bad(span)
                    }
                    None => {
                        self.error(
                            Diagnostic::error(span, format!("`{name}` is not one of `{}`'s values", marker.name))
                                .hint("markers pass `$arg1` … `$argN`; `$$name`, `$$provider` and `$$parms` describe the marker"),
                        );
                        self.bad(span)
                    }
                }
            }
        }
    }
}
