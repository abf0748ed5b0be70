//! Statements: blocks, `if`, loops (`while`, `for`, `foreach` with its
//! sorting, slice and limit), `return`, `delete`, `break`, `continue`,
//! `next`, and expressions as statements.

use super::parser::{PResult, Parser, stat_op};
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::lexer::Tok;
use crate::source::Span;

impl Parser {
    pub(super) fn block(&mut self) -> PResult<Block> {
        let start = self.expect_op("{", "to start a block")?;
        let mut stmts = Vec::new();
        loop {
            if self.eat_op("}") {
                break;
            }
            if self.at_eof() {
                return Err(Diagnostic::error(
                    start,
                    "this `{` is never closed (no `}` before the end of the file)",
                ));
            }
            stmts.push(self.stmt()?);
        }
        Ok(Block {
            stmts,
            span: start.to(self.last_span()),
        })
    }

    pub(super) fn stmt(&mut self) -> PResult<Stmt> {
        self.cur.enter()?;
        let s = self.stmt_inner();
        self.cur.leave();
        s
    }

    fn stmt_inner(&mut self) -> PResult<Stmt> {
        let t = self.peek().clone();
        let start = t.span;
        let word = match &t.tok {
            Tok::Ident(w) => w.as_str(),
            _ => "",
        };
        let kind = match word {
            _ if t.tok == Tok::Op(";") => {
                self.next();
                return Ok(Stmt {
                    kind: StmtKind::Empty,
                    span: start,
                });
            }
            _ if t.tok == Tok::Op("{") => {
                let b = self.block()?;
                return Ok(Stmt {
                    span: b.span,
                    kind: StmtKind::Block(b),
                });
            }
            "if" => return self.if_stmt(start),
            "while" => return self.while_stmt(start),
            "for" => return self.for_stmt(start),
            "foreach" => {
                let f = self.foreach()?;
                return Ok(Stmt {
                    kind: StmtKind::Foreach(Box::new(f)),
                    span: start.to(self.last_span()),
                });
            }
            "try" => {
                return Err(Diagnostic::error(
                    start,
                    "`try`/`catch` is not supported yet",
                ));
            }
            "return" => {
                self.next();
                if self.is_op(";") || self.is_op("}") {
                    StmtKind::Return(None)
                } else {
                    StmtKind::Return(Some(self.expr()?))
                }
            }
            "delete" => {
                self.next();
                StmtKind::Delete(self.expr()?)
            }
            "break" => {
                self.next();
                StmtKind::Break
            }
            "continue" => {
                self.next();
                StmtKind::Continue
            }
            "next" => {
                self.next();
                StmtKind::Next
            }
            "else" => return Err(Diagnostic::error(start, "`else` without an `if` before it")),
            _ => StmtKind::Expr(self.expr()?),
        };
        let span = start.to(self.last_span());
        self.eat_op(";");
        Ok(Stmt { kind, span })
    }

    /// `if (cond) stmt [else stmt]`.
    fn if_stmt(&mut self, start: Span) -> PResult<Stmt> {
        self.next();
        self.expect_op("(", "after `if`")?;
        let cond = self.expr()?;
        self.expect_op(")", "to close the `if` condition")?;
        let then = Box::new(self.stmt()?);
        let els = if self.eat_word("else") {
            Some(Box::new(self.stmt()?))
        } else {
            None
        };
        Ok(Stmt {
            kind: StmtKind::If {
                cond: Box::new(cond),
                then,
                els,
            },
            span: start.to(self.last_span()),
        })
    }

    /// `while (cond) stmt`.
    fn while_stmt(&mut self, start: Span) -> PResult<Stmt> {
        self.next();
        self.expect_op("(", "after `while`")?;
        let cond = self.expr()?;
        self.expect_op(")", "to close the `while` condition")?;
        let body = Box::new(self.stmt()?);
        Ok(Stmt {
            kind: StmtKind::While { cond, body },
            span: start.to(self.last_span()),
        })
    }

    /// `for (init; cond; step) stmt`, each part optional.
    fn for_stmt(&mut self, start: Span) -> PResult<Stmt> {
        self.next();
        self.expect_op("(", "after `for`")?;
        let init = if self.is_op(";") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        self.expect_op(";", "after the `for` loop's initialisation")?;
        let cond = if self.is_op(";") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        self.expect_op(";", "after the `for` loop's condition")?;
        let step = if self.is_op(")") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        self.expect_op(")", "to close the `for` loop's header")?;
        let body = Box::new(self.stmt()?);
        Ok(Stmt {
            kind: StmtKind::For {
                init,
                cond,
                step,
                body,
            },
            span: start.to(self.last_span()),
        })
    }

    fn foreach(&mut self) -> PResult<Foreach> {
        self.next();
        self.expect_op("(", "after `foreach`")?;
        let (value, keys, mut sort) = self.foreach_variables()?;
        if !self.eat_word("in") {
            return Err(self.unexpected("`in` and the array"));
        }
        let array = self.ident("the array to loop over")?;
        let slice = self.foreach_slice()?;
        let aggregate = self.foreach_aggregate()?;
        if let Some(asc) = sort_dir(self) {
            set_sort(self, &mut sort, 0, asc)?;
        }
        if let (Some(op), Some(s)) = (aggregate, sort.as_mut()) {
            s.aggregate = Some(op);
        }
        let limit = if self.eat_word("limit") {
            Some(self.expr()?)
        } else {
            None
        };
        self.expect_op(")", "to close the `foreach` header")?;
        let body = self.stmt()?;
        Ok(Foreach {
            value,
            keys,
            sort,
            array,
            slice,
            limit,
            body,
        })
    }

    /// `v =`, `k`, `k+` or `[k1, k2-]`: the value's and the keys'
    /// variables, and the sort one of them asks for.
    fn foreach_variables(&mut self) -> PResult<(Option<Ident>, Vec<Ident>, Option<Sort>)> {
        let mut value = None;
        let mut keys = Vec::new();
        let mut sort: Option<Sort> = None;
        if !self.is_op("[") {
            let first = self.ident("a variable, or `[` and the key variables")?;
            let first_sort = sort_dir(self);
            if self.eat_op("=") {
                value = Some(first);
                if let Some(asc) = first_sort {
                    set_sort(self, &mut sort, 0, asc)?;
                }
            } else {
                keys.push(first);
                if let Some(asc) = first_sort {
                    set_sort(self, &mut sort, 1, asc)?;
                }
            }
        }
        if keys.is_empty() {
            let bracket = self.eat_op("[");
            loop {
                keys.push(self.ident("a key variable")?);
                if let Some(asc) = sort_dir(self) {
                    set_sort(self, &mut sort, keys.len(), asc)?;
                }
                if !bracket || !self.eat_op(",") {
                    break;
                }
            }
            if bracket {
                self.expect_op("]", "after the key variables")?;
            }
        }
        Ok((value, keys, sort))
    }

    /// `[…]` after the array: a slice, skipped (pytap names it in an error).
    fn foreach_slice(&mut self) -> PResult<Option<Span>> {
        let mut slice = None;
        if self.is_op("[") {
            let s = self.next().span;
            while !self.is_op("]") && !self.at_eof() {
                self.next();
            }
            self.expect_op("]", "after the slice")?;
            slice = Some(s.to(self.last_span()));
        }
        Ok(slice)
    }

    /// `@count+`, …: the statistic to sort on.
    fn foreach_aggregate(&mut self) -> PResult<Option<StatOp>> {
        let mut aggregate = None;
        if let Tok::AtWord(w) = &self.peek().tok {
            let op = stat_op(w).ok_or_else(|| {
                Diagnostic::error(
                    self.peek().span,
                    format!("`{w}` is not a statistic (`@count`, `@sum`, `@min`, `@max`, `@avg`)"),
                )
            })?;
            self.next();
            aggregate = Some(op);
            if !self.is_op("+") && !self.is_op("-") {
                return Err(self.unexpected("`+` or `-` after the statistic to sort on"));
            }
        }
        Ok(aggregate)
    }
}

/// A sort direction after a variable: `+` ascending, `-` descending.
fn sort_dir(p: &mut Parser) -> Option<bool> {
    if p.eat_op("+") {
        Some(true)
    } else if p.eat_op("-") {
        Some(false)
    } else {
        None
    }
}

/// Sorts on `column` (0: the value), once only.
fn set_sort(p: &Parser, sort: &mut Option<Sort>, column: usize, asc: bool) -> PResult<()> {
    if sort.is_some() {
        return Err(Diagnostic::error(
            p.last_span(),
            "a `foreach` can sort on one thing only (one `+` or `-`)",
        ));
    }
    *sort = Some(Sort {
        column,
        ascending: asc,
        aggregate: None,
    });
    Ok(())
}
