//! D programs: pragmas, declarations and clauses (`descriptions
//! /predicate/ { statements }`), parsed into the shared [`crate::ast`]
//! (expressions are in [`super::expr`]).
//!
//! A clause becomes a probe whose points are the descriptions and whose
//! body starts with `if (!(predicate)) next;`.

use super::{DOptions, DProgram};
use crate::ast::*;
use crate::cursor::Cursor;
use crate::diag::Diagnostic;
use crate::lexer::Tok;
use crate::source::Span;

pub(super) type PResult<T> = Result<T, Diagnostic>;

pub(super) struct Parser<'o> {
    pub cur: Cursor,
    pub opts: &'o DOptions,
    /// Inside a predicate, outside parentheses: `/` ends it.
    pub in_predicate: bool,
    /// Parsing the value given to an aggregation: `count()` and the
    /// other aggregating functions may come.
    pub agg_value: bool,
    /// What is parsed so far.
    pub out: DProgram,
}

impl std::ops::Deref for Parser<'_> {
    type Target = Cursor;
    fn deref(&self) -> &Cursor {
        &self.cur
    }
}

impl std::ops::DerefMut for Parser<'_> {
    fn deref_mut(&mut self) -> &mut Cursor {
        &mut self.cur
    }
}

impl Parser<'_> {
    pub(super) fn program(&mut self) -> PResult<()> {
        while !self.at_eof() {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Pragma(line) => {
                    self.next();
                    self.pragma(line, t.span)?;
                }
                Tok::Desc(_) => self.clause()?,
                Tok::Ident(_) => self.declaration()?,
                Tok::Op(";") => {
                    self.next();
                }
                _ => return Err(self.unexpected("a probe description or a declaration")),
            }
        }
        Ok(())
    }

    /// `#pragma D option name[=value]`, `#!/usr/sbin/dtrace -qs`.
    fn pragma(&mut self, line: &str, span: Span) -> PResult<()> {
        if let Some(interp) = line.strip_prefix("#!") {
            // Options on the interpreter line: `-q`, `-s`, `-qs`, `-Z`.
            for word in interp.split_whitespace().skip(1) {
                if let Some(flags) = word.strip_prefix('-') {
                    for f in flags.chars() {
                        match f {
                            'q' => self.out.options.push(("quiet".into(), None)),
                            'Z' => self.out.options.push(("zdefs".into(), None)),
                            's' | 'w' => {}
                            _ => {
                                return Err(Diagnostic::error(
                                    span,
                                    format!("pytap does not take `-{f}` on the `#!` line"),
                                ));
                            }
                        }
                    }
                }
            }
            return Ok(());
        }
        let words: Vec<&str> = line[1..].split_whitespace().collect();
        match words.as_slice() {
            ["pragma", "D", "option", opt] => {
                let (name, value) = match opt.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (opt.to_string(), None),
                };
                self.out.options.push((name, value));
                Ok(())
            }
            ["pragma", "D", "attributes" | "binding" | "depends_on", ..] => Ok(()),
            _ => Err(Diagnostic::error(
                span,
                format!(
                    "`{line}` is not a pragma pytap knows: write `#pragma D option NAME[=VALUE]`"
                ),
            )),
        }
    }

    /// `self int x;`, `int x;`, `string s;`, `uint64_t a[int];`.
    fn declaration(&mut self) -> PResult<()> {
        let start = self.peek().span;
        let mut words = Vec::new();
        let mut name = None;
        while let Tok::Ident(w) = &self.peek().tok {
            let w = w.clone();
            let span = self.next().span;
            words.push(w.clone());
            name = Some(Ident { name: w, span });
        }
        let first = words.first().cloned().unwrap_or_default();
        if matches!(
            first.as_str(),
            "inline" | "typedef" | "struct" | "union" | "enum" | "translator" | "provider"
        ) {
            return Err(Diagnostic::error(
                start,
                format!(
                    "`{first}` declarations are not supported: pytap's D has variables of integer and string types"
                ),
            ));
        }
        let Some(name) = name.filter(|_| words.len() >= 2) else {
            return Err(self.unexpected("a declaration such as `self int depth;` or `int count;`"));
        };
        if self.eat_op("*") {
            return Err(Diagnostic::error(
                start,
                "pointer variables are not supported",
            ));
        }
        let scope = match first.as_str() {
            "self" | "this" => first.clone(),
            _ => String::new(),
        };
        let ty_words = &words[usize::from(!scope.is_empty())..words.len() - 1];
        let ty = type_of(ty_words).ok_or_else(|| {
            Diagnostic::error(
                start.to(name.span),
                format!(
                    "`{}` is not a type pytap's D has (integer types and `string`)",
                    ty_words.join(" ")
                ),
            )
        })?;
        if self.eat_op("[") {
            // An associative array's key types: the checker learns them from use.
            while !self.is_op("]") && !self.at_eof() {
                self.next();
            }
            self.expect_op("]", "to close the key types")?;
        }
        self.expect_op(";", "after the declaration")?;
        match scope.as_str() {
            // Clause-locals need no declaration.
            "this" => {}
            "self" => self.declare(format!("self->{}", name.name), name.span, ty),
            _ => self.declare(name.name.clone(), name.span, ty),
        }
        Ok(())
    }

    pub(super) fn declare(&mut self, name: String, span: Span, ty: TypeName) {
        if !self.out.declared.iter().any(|(n, _, _)| *n == name) {
            self.out.declared.push((name, span, Some(ty)));
        }
    }

    /// `descriptions [/predicate/] [{ statements }]`.
    fn clause(&mut self) -> PResult<()> {
        let mut points = Vec::new();
        let first = self.peek().span;
        loop {
            let t = self.next();
            let Tok::Desc(d) = &t.tok else {
                return Err(Diagnostic::error(t.span, "expected a probe description"));
            };
            points.extend(super::points::description(self, d, t.span)?);
            if !self.eat_op(",") {
                break;
            }
        }
        let mut stmts = Vec::new();
        if self.is_op("/") {
            let open = self.next().span;
            self.in_predicate = true;
            let pred = self.expr()?;
            self.in_predicate = false;
            self.expect_op("/", "to end the predicate")?;
            let span = open.to(self.last_span());
            stmts.push(Stmt {
                kind: StmtKind::If {
                    cond: Box::new(Expr {
                        kind: ExprKind::Unary(UnOp::Not, Box::new(pred)),
                        span,
                    }),
                    then: Box::new(Stmt {
                        kind: StmtKind::Next,
                        span,
                    }),
                    els: None,
                },
                span,
            });
        }
        // The firing line goes after the predicate, once the body says
        // whether the clause records anything.
        let line_at = stmts.len();
        let body_span = if self.is_op("{") {
            let open = self.next().span;
            while !self.is_op("}") {
                if self.at_eof() {
                    return Err(Diagnostic::error(
                        open,
                        "this clause is never closed (no `}`)",
                    ));
                }
                if let Some(s) = self.stmt()? {
                    stmts.push(s);
                }
            }
            self.next();
            open.to(self.last_span())
        } else {
            first.to(self.last_span())
        };
        // dtrace prints a line per firing of a clause that records data
        // (an output action, or none at all: the default action), not of
        // one that only aggregates or sets variables.
        if !self.opts.quiet && (stmts.len() == line_at || stmts[line_at..].iter().any(records)) {
            stmts.insert(line_at, firing_line(first));
            stmts.push(print_stmt(b"\n", Vec::new(), first));
        }
        self.out.clauses += 1;
        self.out.file.items.push(Item::Probe(ProbeDecl {
            points,
            body: Block {
                stmts,
                span: body_span,
            },
            span: first,
        }));
        Ok(())
    }

    /// A statement; `None` for an empty one or a local declaration.
    pub(super) fn stmt(&mut self) -> PResult<Option<Stmt>> {
        self.cur.enter()?;
        let s = self.stmt_inner();
        self.cur.leave();
        s
    }

    fn stmt_inner(&mut self) -> PResult<Option<Stmt>> {
        let start = self.peek().span;
        if self.eat_op(";") {
            return Ok(None);
        }
        if self.is_op("{") {
            self.next();
            let mut stmts = Vec::new();
            while !self.eat_op("}") {
                if self.at_eof() {
                    return Err(Diagnostic::error(
                        start,
                        "this block is never closed (no `}`)",
                    ));
                }
                if let Some(s) = self.stmt()? {
                    stmts.push(s);
                }
            }
            let span = start.to(self.last_span());
            return Ok(Some(Stmt {
                kind: StmtKind::Block(Block { stmts, span }),
                span,
            }));
        }
        if self.eat_word("if") {
            self.expect_op("(", "after `if`")?;
            let cond = self.expr()?;
            self.expect_op(")", "to close the condition")?;
            let then = self.stmt()?.unwrap_or(Stmt {
                kind: StmtKind::Empty,
                span: start,
            });
            let els = if self.eat_word("else") {
                Some(Box::new(self.stmt()?.unwrap_or(Stmt {
                    kind: StmtKind::Empty,
                    span: start,
                })))
            } else {
                None
            };
            return Ok(Some(Stmt {
                kind: StmtKind::If {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els,
                },
                span: start.to(self.last_span()),
            }));
        }
        // `this int x;` / `self string s;` inside a clause.
        if matches!(&self.peek().tok, Tok::Ident(w) if w == "this" || w == "self")
            && matches!(&self.peek_at(1).tok, Tok::Ident(_))
        {
            self.declaration()?;
            return Ok(None);
        }
        let e = self.expr()?;
        if !self.is_op("}") {
            self.expect_op(";", "after the statement")?;
        }
        let span = start.to(self.last_span());
        // D releases a dynamic variable's storage when 0 is assigned to it.
        if let ExprKind::Assign(AssignOp::Set, target, value) = &e.kind
            && let (ExprKind::Index { array, .. }, ExprKind::Num(0)) = (&target.kind, &value.kind)
            && array.name.starts_with("self->")
        {
            {
                return Ok(Some(Stmt {
                    kind: StmtKind::Delete((**target).clone()),
                    span,
                }));
            }
        }
        Ok(Some(Stmt {
            kind: StmtKind::Expr(e),
            span,
        }))
    }
}

/// The type C words name: integers are `long`, `string` a string.
fn type_of(words: &[String]) -> Option<TypeName> {
    if words == ["string"] {
        return Some(TypeName::String);
    }
    (!words.is_empty()
        && words
            .iter()
            .all(|w| super::lexer::INTEGER_WORDS.contains(&w.as_str())))
    .then_some(TypeName::Long)
}

/// `printf(format, args…)` as a statement.
fn print_stmt(format: &[u8], args: Vec<Expr>, span: Span) -> Stmt {
    Stmt {
        kind: StmtKind::Expr(Expr {
            kind: ExprKind::Print {
                kind: PrintKind::Printf,
                head: Some((format.to_vec(), span)),
                args,
                hist: None,
            },
            span,
        }),
        span,
    }
}

/// Whether a statement of a clause records data in dtrace's buffer (so
/// that the firing prints a line): anything but setting variables and
/// aggregating.
fn records(s: &Stmt) -> bool {
    match &s.kind {
        StmtKind::Expr(e) => !matches!(
            e.kind,
            ExprKind::Assign(..) | ExprKind::Crement { .. } | ExprKind::AggSet { .. }
        ),
        StmtKind::Block(b) => b.stmts.iter().any(records),
        _ => true,
    }
}

/// dtrace's line for a firing when not quiet: `CPU ID FUNCTION:NAME `,
/// with the site's probe id and C function (pytap knows them from the
/// record's site).
fn firing_line(span: Span) -> Stmt {
    let call = |name: &str| Expr {
        kind: ExprKind::Call {
            name: Ident {
                name: name.into(),
                span,
            },
            args: Vec::new(),
        },
        span,
    };
    let function_name = Expr {
        kind: ExprKind::Concat(vec![
            call("__d_probefunc"),
            Expr {
                kind: ExprKind::Str(b":".to_vec()),
                span,
            },
            call("__d_probename"),
        ]),
        span,
    };
    print_stmt(
        b"%3d %6d %32s ",
        vec![call("cpu"), call("__d_probeid"), function_name],
        span,
    )
}
