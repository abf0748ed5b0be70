//! What is written like a call: arguments, the `@` words (`@1`, the
//! statistics, `@hist_log`/`@hist_linear`, `@defined`, …) and the print
//! functions with their format, delimiter or histogram.

use super::parser::{PResult, Parser, describe, stat_op};
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::lexer::Tok;

impl Parser {
    /// Arguments after `(` up to and including `)`.
    pub(super) fn args(&mut self, what: &str) -> PResult<Vec<Expr>> {
        let mut args = Vec::new();
        if self.eat_op(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat_op(",") {
                continue;
            }
            self.expect_op(")", &format!("to close {what}"))?;
            return Ok(args);
        }
    }

    pub(super) fn at_word(&mut self, word: String, span: crate::source::Span) -> PResult<Expr> {
        if word.len() > 1 && word[1..].bytes().all(|c| c.is_ascii_digit()) {
            self.next();
            return Ok(Expr {
                kind: ExprKind::Target(word),
                span,
            });
        }
        if word == "@hist_log" || word == "@hist_linear" {
            let hist = self.hist(&word, span)?;
            return Ok(Expr {
                span: hist.span,
                kind: ExprKind::Hist(hist),
            });
        }
        if let Some(op) = stat_op(&word) {
            self.next();
            self.expect_op("(", &format!("after `{word}`"))?;
            let operand = self.expr()?;
            let mut params = Vec::new();
            while self.eat_op(",") {
                match self.next().tok {
                    Tok::Number(n) => params.push(n),
                    _ => {
                        return Err(Diagnostic::error(
                            self.last_span(),
                            format!("`{word}` takes a number here"),
                        ));
                    }
                }
            }
            self.expect_op(")", &format!("to close `{word}(`"))?;
            let span = span.to(self.last_span());
            if op == StatOp::Variance || !params.is_empty() {
                return Err(Diagnostic::error(
                    span,
                    format!("`{word}` is not supported yet"),
                ));
            }
            return Ok(Expr {
                kind: ExprKind::Stat {
                    op,
                    operand: Box::new(operand),
                    params,
                },
                span,
            });
        }
        let what = match word.as_str() {
            "@entry" => {
                "`@entry` (a value saved at the function's entry) is not supported: markers have no return probes"
            }
            "@cast" | "@var" | "@kregister" | "@uregister" | "@kderef" | "@uderef" => {
                "reading target memory through debug information (`@cast`, `@var`, …) is not supported: CPython's markers pass plain values"
            }
            "@defined" => "`@defined` is not supported yet",
            "@define" => "macros (`@define`) are not supported yet",
            "@perf" => "`@perf` counters are not supported",
            _ => "",
        };
        if what.is_empty() {
            return Err(Diagnostic::error(
                span,
                format!("unknown operator `{word}`"),
            ));
        }
        Err(Diagnostic::error(span, what))
    }

    /// `@hist_log(x)` or `@hist_linear(x, start, stop, interval)`.
    fn hist(&mut self, word: &str, span: crate::source::Span) -> PResult<HistOp> {
        self.next();
        self.expect_op("(", &format!("after `{word}`"))?;
        let stat = self.expr()?;
        let mut params = Vec::new();
        while self.eat_op(",") {
            let neg = self.eat_op("-");
            match self.next().tok {
                Tok::Number(n) => params.push(if neg { n.wrapping_neg() } else { n }),
                other => {
                    return Err(Diagnostic::error(
                        self.last_span(),
                        format!(
                            "`{word}`'s bounds must be numbers, found {}",
                            describe(&other)
                        ),
                    ));
                }
            }
        }
        self.expect_op(")", &format!("to close `{word}(`"))?;
        let span = span.to(self.last_span());
        let linear = match (word, params.as_slice()) {
            ("@hist_log", []) => None,
            ("@hist_linear", [start, stop, interval]) => Some((*start, *stop, *interval)),
            _ => {
                let expected = if word == "@hist_log" { 1 } else { 4 };
                return Err(Diagnostic::error(
                    span,
                    format!(
                        "`{word}` with {} arguments is not supported yet (it takes {expected})",
                        params.len() + 1
                    ),
                ));
            }
        };
        Ok(HistOp {
            linear,
            stat: Box::new(stat),
            span,
        })
    }

    /// `printf("fmt", …)`, `print(…)`, `print(@hist_log(x))`, … .
    pub(super) fn print(&mut self, kind: PrintKind, name: Ident) -> PResult<Expr> {
        self.expect_op("(", "after the print function")?;
        let mut head = None;
        let mut hist = None;
        let mut args = Vec::new();
        if kind.has_format() || kind.has_delimiter() {
            let t = self.next();
            match t.tok {
                Tok::Str(s) => head = Some((s, t.span)),
                other => {
                    let what = if kind.has_format() {
                        "format"
                    } else {
                        "delimiter"
                    };
                    return Err(Diagnostic::error(
                        t.span,
                        format!(
                            "the {what} of `{}` must be a string literal, found {}",
                            name.name,
                            describe(&other)
                        ),
                    ));
                }
            }
            while self.eat_op(",") {
                args.push(self.expr()?);
            }
            self.expect_op(")", &format!("to close `{}(`", name.name))?;
        } else if let Tok::AtWord(w) = &self.peek().tok
            && (w == "@hist_log" || w == "@hist_linear")
            && matches!(
                kind,
                PrintKind::Print | PrintKind::Println | PrintKind::Sprint | PrintKind::Sprintln
            )
        {
            let (w, at) = (w.clone(), self.peek().span);
            let h = self.hist(&w, at)?;
            if self.is_op("[") {
                return Err(Diagnostic::error(
                    self.peek().span,
                    "reading one bucket of a histogram (`@hist_*(x)[i]`) is not supported yet",
                ));
            }
            hist = Some(h);
            self.expect_op(")", &format!("to close `{}(`", name.name))?;
        } else {
            args = self.args(&format!("`{}(`", name.name))?;
        }
        let needs = match kind {
            PrintKind::Print | PrintKind::Sprint => 1,
            _ if kind.has_delimiter() => 2,
            _ => 0,
        };
        if hist.is_none() && args.len() < needs {
            return Err(Diagnostic::error(
                name.span.to(self.last_span()),
                format!(
                    "`{}` needs at least {needs} argument{}",
                    name.name,
                    if needs > 1 { "s" } else { "" }
                ),
            ));
        }
        Ok(Expr {
            span: name.span.to(self.last_span()),
            kind: ExprKind::Print {
                kind,
                head,
                args,
                hist,
            },
        })
    }
}
