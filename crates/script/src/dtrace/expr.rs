//! D expressions, with C's precedence, translated as they are parsed
//! into the shared syntax tree: `self->x` is an array keyed by the
//! thread, `this->x` a clause-local, `argN` the marker's arguments,
//! built-in variables the checker's built-ins (D's functions are in
//! [`super::functions`]).

use super::parser::{PResult, Parser};
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::lexer::Tok;
use crate::source::Span;

pub(super) fn mk(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

pub(super) fn call(name: &str, args: Vec<Expr>, span: Span) -> Expr {
    mk(
        ExprKind::Call {
            name: Ident {
                name: name.into(),
                span,
            },
            args,
        },
        span,
    )
}

/// Binary operators by precedence level, loosest first (after `?:`).
const LEVELS: &[&[&str]] = &[
    &["||"],
    &["^^"],
    &["&&"],
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", "<=", ">", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl Parser<'_> {
    pub(super) fn expr(&mut self) -> PResult<Expr> {
        self.cur.enter()?;
        let e = self.assignment();
        self.cur.leave();
        e
    }

    fn assignment(&mut self) -> PResult<Expr> {
        let left = self.ternary()?;
        let op = match &self.peek().tok {
            Tok::Op(o) => *o,
            _ => return Ok(left),
        };
        let aop = match op {
            "=" => AssignOp::Set,
            "+=" => AssignOp::Compound(BinOp::Add),
            "-=" => AssignOp::Compound(BinOp::Sub),
            "*=" => AssignOp::Compound(BinOp::Mul),
            "/=" => AssignOp::Compound(BinOp::Div),
            "%=" => AssignOp::Compound(BinOp::Mod),
            "&=" => AssignOp::Compound(BinOp::And),
            "|=" => AssignOp::Compound(BinOp::Or),
            "^=" => AssignOp::Compound(BinOp::Xor),
            "<<=" => AssignOp::Compound(BinOp::Shl),
            ">>=" => AssignOp::Compound(BinOp::Shr),
            _ => return Ok(left),
        };
        let op_span = self.next().span;
        let to_aggregation = matches!(&left.kind, ExprKind::AggRef(_))
            || matches!(&left.kind, ExprKind::Index { array, .. } if array.name.starts_with('@'));
        self.agg_value = to_aggregation && aop == AssignOp::Set;
        let value = self.assignment()?;
        self.agg_value = false;
        let span = left.span.to(value.span);
        // `@a[keys] = func(args)`.
        let agg = match &left.kind {
            ExprKind::AggRef(a) => Some((a.clone(), Vec::new())),
            ExprKind::Index { array, keys } if array.name.starts_with('@') => {
                Some((array.clone(), keys.clone()))
            }
            _ => None,
        };
        if let Some((agg, keys)) = agg {
            let func = match &value.kind {
                ExprKind::Call { name, args } if aop == AssignOp::Set => {
                    AggFunc::from_name(&name.name).map(|f| (f, args.clone()))
                }
                _ => None,
            };
            let Some((func, args)) = func else {
                return Err(Diagnostic::error(
                    op_span,
                    format!(
                        "an aggregation is given values with `{} = count()`, sum(x), avg(x), min(x), max(x), quantize(x) or lquantize(x, low, high, step)",
                        agg.name
                    ),
                ));
            };
            if !self.out.aggregations.contains(&agg.name) {
                self.out.aggregations.push(agg.name.clone());
            }
            return Ok(mk(
                ExprKind::AggSet {
                    agg,
                    keys,
                    func,
                    args,
                },
                span,
            ));
        }
        if !matches!(left.kind, ExprKind::Name(_) | ExprKind::Index { .. }) {
            return Err(Diagnostic::error(left.span, "this cannot be assigned to"));
        }
        Ok(mk(
            ExprKind::Assign(aop, Box::new(left), Box::new(value)),
            span,
        ))
    }

    fn ternary(&mut self) -> PResult<Expr> {
        let cond = self.binary(0)?;
        if !self.eat_op("?") {
            return Ok(cond);
        }
        let a = self.expr()?;
        self.expect_op(":", "in `?:`")?;
        self.cur.enter()?;
        let b = self.ternary();
        self.cur.leave();
        let b = b?;
        let span = cond.span.to(b.span);
        Ok(mk(
            ExprKind::Ternary(Box::new(cond), Box::new(a), Box::new(b)),
            span,
        ))
    }

    fn binary(&mut self, level: usize) -> PResult<Expr> {
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let op = match &self.peek().tok {
                Tok::Op(o) if LEVELS[level].contains(o) => *o,
                _ => return Ok(left),
            };
            if op == "/" && self.in_predicate {
                return Ok(left);
            }
            let at = self.next().span;
            let right = self.binary(level + 1)?;
            let span = left.span.to(right.span);
            let (l, r) = (Box::new(left), Box::new(right));
            let kind = match op {
                "||" => ExprKind::Or(l, r),
                "&&" => ExprKind::And(l, r),
                "^^" => {
                    let truth = |e: Box<Expr>| {
                        let s = e.span;
                        Box::new(mk(
                            ExprKind::Compare(CmpOp::Ne, e, Box::new(mk(ExprKind::Num(0), s))),
                            s,
                        ))
                    };
                    ExprKind::Compare(CmpOp::Ne, truth(l), truth(r))
                }
                "|" => ExprKind::Binary(BinOp::Or, l, r),
                "^" => ExprKind::Binary(BinOp::Xor, l, r),
                "&" => ExprKind::Binary(BinOp::And, l, r),
                "==" => ExprKind::Compare(CmpOp::Eq, l, r),
                "!=" => ExprKind::Compare(CmpOp::Ne, l, r),
                "<" => ExprKind::Compare(CmpOp::Lt, l, r),
                "<=" => ExprKind::Compare(CmpOp::Le, l, r),
                ">" => ExprKind::Compare(CmpOp::Gt, l, r),
                ">=" => ExprKind::Compare(CmpOp::Ge, l, r),
                "<<" => ExprKind::Binary(BinOp::Shl, l, r),
                ">>" => ExprKind::Binary(BinOp::Shr, l, r),
                "+" => ExprKind::Binary(BinOp::Add, l, r),
                "-" => ExprKind::Binary(BinOp::Sub, l, r),
                "*" => ExprKind::Binary(BinOp::Mul, l, r),
                "/" => ExprKind::Binary(BinOp::Div, l, r),
                _ => ExprKind::Binary(BinOp::Mod, l, r),
            };
            left = self.within_nesting(mk(kind, span), at)?;
        }
    }

    /// The operand of a unary operator or a cast: one level deeper.
    fn operand(&mut self) -> PResult<Expr> {
        self.cur.enter()?;
        let e = self.unary();
        self.cur.leave();
        e
    }

    fn unary(&mut self) -> PResult<Expr> {
        let start = self.peek().span;
        let op = match &self.peek().tok {
            Tok::Op(o) => Some(*o),
            Tok::Ident(w) if w == "sizeof" => {
                return Err(Diagnostic::error(start, "`sizeof` is not supported"));
            }
            _ => None,
        };
        match op {
            Some(o @ ("!" | "~" | "-" | "+")) => {
                self.next();
                let x = self.operand()?;
                let span = start.to(x.span);
                let op = match o {
                    "!" => UnOp::Not,
                    "~" => UnOp::BitNot,
                    "-" => UnOp::Neg,
                    _ => UnOp::Plus,
                };
                Ok(mk(ExprKind::Unary(op, Box::new(x)), span))
            }
            Some(o @ ("++" | "--")) => {
                self.next();
                let x = self.operand()?;
                let span = start.to(x.span);
                Ok(mk(
                    ExprKind::Crement {
                        target: Box::new(x),
                        delta: if o == "++" { 1 } else { -1 },
                        post: false,
                    },
                    span,
                ))
            }
            Some("*" | "&") => Err(Diagnostic::error(
                start,
                "pointers are not supported: read the traced process's strings with copyinstr()",
            )),
            Some("(") if self.is_cast() => {
                // `(int)x`, `(uint64_t)x`, `(string)x`: the value as is.
                while !self.eat_op(")") {
                    self.next();
                }
                self.operand()
            }
            _ => self.postfix(),
        }
    }

    /// Whether `(` starts a cast to a type pytap's D has.
    fn is_cast(&self) -> bool {
        let mut n = 1;
        let mut saw = false;
        loop {
            match &self.peek_at(n).tok {
                Tok::Ident(w) if super::lexer::is_declaration_word(w) => saw = true,
                Tok::Op(")") => return saw,
                _ => return false,
            }
            n += 1;
        }
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.is_op("++") || self.is_op("--") {
                let delta = if self.next().tok == Tok::Op("++") {
                    1
                } else {
                    -1
                };
                let span = e.span.to(self.last_span());
                e = mk(
                    ExprKind::Crement {
                        target: Box::new(e),
                        delta,
                        post: true,
                    },
                    span,
                );
            } else if self.is_op("[") {
                let array = match &e.kind {
                    ExprKind::Name(n) => Ident {
                        name: n.clone(),
                        span: e.span,
                    },
                    ExprKind::AggRef(a) => a.clone(),
                    _ => {
                        return Err(Diagnostic::error(
                            e.span,
                            "only arrays and aggregations take [keys]",
                        ));
                    }
                };
                self.next();
                let saved = std::mem::replace(&mut self.in_predicate, false);
                let mut keys = vec![self.expr()?];
                while self.eat_op(",") {
                    keys.push(self.expr()?);
                }
                self.in_predicate = saved;
                self.expect_op("]", "to close the keys")?;
                let span = e.span.to(self.last_span());
                e = mk(ExprKind::Index { array, keys }, span);
            } else if self.is_op("->") || self.is_op(".") {
                return Err(Diagnostic::error(
                    self.peek().span,
                    "structure members are not supported: pytap's D reads the markers' arguments (arg0…arg9)",
                ));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.next();
        let span = t.span;
        match t.tok {
            Tok::Number(n) => Ok(mk(ExprKind::Num(n), span)),
            Tok::Str(s) => Ok(mk(ExprKind::Str(s), span)),
            Tok::AtWord(name) => Ok(mk(ExprKind::AggRef(Ident { name, span }), span)),
            Tok::Op("(") => {
                let saved = std::mem::replace(&mut self.in_predicate, false);
                let e = self.expr()?;
                self.in_predicate = saved;
                self.expect_op(")", "to close the parenthesis")?;
                Ok(e)
            }
            Tok::Ident(w) if w.starts_with('$') => self.dollar(&w, span),
            Tok::Ident(w) if (w == "self" || w == "this") && self.is_op("->") => {
                self.next();
                let member = match self.next().tok {
                    Tok::Ident(m) => m,
                    _ => {
                        return Err(Diagnostic::error(
                            self.last_span(),
                            format!("expected a variable name after `{w}->`"),
                        ));
                    }
                };
                let span = span.to(self.last_span());
                let name = format!("{w}->{member}");
                if w == "this" {
                    Ok(mk(ExprKind::Name(name), span))
                } else {
                    if !self.out.declared.iter().any(|(n, _, _)| *n == name) {
                        self.out.declared.push((name.clone(), span, None));
                    }
                    Ok(mk(
                        ExprKind::Index {
                            array: Ident { name, span },
                            keys: vec![call("tid", Vec::new(), span)],
                        },
                        span,
                    ))
                }
            }
            Tok::Ident(w) if self.is_op("(") => self.function(&w, span),
            Tok::Ident(w) => self.variable(&w, span),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("an expression"))
            }
        }
    }

    /// `$target`, `$pid`, `$1` (a number), `$$1` (a string).
    fn dollar(&mut self, word: &str, span: Span) -> PResult<Expr> {
        match word {
            "$target" => return Ok(call("target", Vec::new(), span)),
            "$pid" => return Ok(call("pid", Vec::new(), span)),
            _ => {}
        }
        let (text, string) = match word.strip_prefix("$$") {
            Some(n) => (n, true),
            None => (&word[1..], false),
        };
        let Ok(n) = text.parse::<usize>() else {
            return Err(Diagnostic::error(
                span,
                format!("`{word}` is not a variable pytap's D has"),
            ));
        };
        let value = if n == 0 {
            Some("pytap".to_string())
        } else {
            self.opts.macro_args.get(n - 1).cloned()
        };
        let Some(value) = value else {
            return Err(Diagnostic::error(
                span,
                format!(
                    "macro argument {word} is not given: pass it after the script (`pytap dtrace -s FILE ARG…`)"
                ),
            ));
        };
        if string {
            return Ok(mk(ExprKind::Str(value.into_bytes()), span));
        }
        match crate::lexer::number(value.trim_end_matches(['u', 'U', 'l', 'L'])) {
            Some(v) => Ok(mk(ExprKind::Num(v), span)),
            None => Ok(mk(ExprKind::Str(value.into_bytes()), span)),
        }
    }

    fn variable(&mut self, w: &str, span: Span) -> PResult<Expr> {
        let builtin = |name: &str| Ok(call(name, Vec::new(), span));
        match w {
            "pid" | "tid" | "ppid" | "uid" | "cpu" | "execname" => builtin(w),
            "timestamp" => builtin("__d_timestamp"),
            "walltimestamp" => builtin("gettimeofday_ns"),
            "probename" => builtin("__d_probename"),
            "probefunc" => builtin("__d_probefunc"),
            "probemod" => builtin("__d_probemod"),
            "probeprov" => Ok(mk(
                ExprKind::Print {
                    kind: PrintKind::Sprintf,
                    head: Some((b"python%d".to_vec(), span)),
                    args: vec![call("pid", Vec::new(), span)],
                    hist: None,
                },
                span,
            )),
            "vtimestamp" => Err(Diagnostic::error(
                span,
                "the built-in variable `vtimestamp` (the thread's on-CPU time) is not supported",
            )
            .hint(
                "`timestamp` is the monotonic clock in nanoseconds; `pytap calls` times functions",
            )),
            "errno" | "curthread" | "stackdepth" | "ustackdepth" | "caller" | "ucaller"
            | "epid" | "id" | "ipl" | "gid" | "zonename" | "curpsinfo" | "curlwpsinfo" | "cwd"
            | "rootdir" | "arg" => Err(Diagnostic::error(
                span,
                format!("the built-in variable `{w}` is not supported yet"),
            )),
            _ => {
                if let Some(n) = w.strip_prefix("arg").and_then(|n| n.parse::<usize>().ok())
                    && n <= 9
                {
                    return Ok(mk(ExprKind::Target(format!("$arg{}", n + 1)), span));
                }
                if !self.out.declared.iter().any(|(n, _, _)| n == w) {
                    self.out.declared.push((w.to_string(), span, None));
                }
                Ok(mk(ExprKind::Name(w.to_string()), span))
            }
        }
    }
}
