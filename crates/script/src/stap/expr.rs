//! Expressions, with SystemTap's precedence (loosest first): assignment,
//! `?:`, `||`, `&&`, `|`, `^`, `&`, `in`, comparisons, shifts, `.`,
//! `+ -`, `* / %`, unary, `++ --`, values.

use super::parser::{PResult, Parser, describe};
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::lexer::Tok;

impl Parser {
    pub(super) fn expr(&mut self) -> PResult<Expr> {
        self.cur.enter()?;
        let e = self.assignment();
        self.cur.leave();
        e
    }

    fn assignment(&mut self) -> PResult<Expr> {
        let left = self.ternary()?;
        let op = match &self.peek().tok {
            Tok::Op("=") => AssignOp::Set,
            Tok::Op("<<<") => AssignOp::Aggregate,
            Tok::Op(".=") => AssignOp::Concat,
            Tok::Op(o) => match compound(o) {
                Some(op) => AssignOp::Compound(op),
                None => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.next();
        let right = self.expr()?;
        let span = left.span.to(right.span);
        Ok(Expr {
            kind: ExprKind::Assign(op, Box::new(left), Box::new(right)),
            span,
        })
    }

    fn ternary(&mut self) -> PResult<Expr> {
        let cond = self.logical_or()?;
        if !self.eat_op("?") {
            return Ok(cond);
        }
        let yes = self.expr()?;
        self.expect_op(":", "in `cond ? a : b`")?;
        self.cur.enter()?;
        let no = self.ternary();
        self.cur.leave();
        let no = no?;
        let span = cond.span.to(no.span);
        Ok(Expr {
            kind: ExprKind::Ternary(Box::new(cond), Box::new(yes), Box::new(no)),
            span,
        })
    }

    fn logical_or(&mut self) -> PResult<Expr> {
        let mut left = self.logical_and()?;
        while self.is_op("||") {
            let at = self.next().span;
            let right = self.logical_and()?;
            let span = left.span.to(right.span);
            left = self.within_nesting(
                Expr {
                    kind: ExprKind::Or(Box::new(left), Box::new(right)),
                    span,
                },
                at,
            )?;
        }
        Ok(left)
    }

    fn logical_and(&mut self) -> PResult<Expr> {
        let mut left = self.bits(0)?;
        while self.is_op("&&") {
            let at = self.next().span;
            let right = self.bits(0)?;
            let span = left.span.to(right.span);
            left = self.within_nesting(
                Expr {
                    kind: ExprKind::And(Box::new(left), Box::new(right)),
                    span,
                },
                at,
            )?;
        }
        Ok(left)
    }

    /// `|`, then `^`, then `&` (level 0, 1, 2), then `in`.
    fn bits(&mut self, level: usize) -> PResult<Expr> {
        const LEVELS: [(&str, BinOp); 3] = [("|", BinOp::Or), ("^", BinOp::Xor), ("&", BinOp::And)];
        let Some(&(op, bin)) = LEVELS.get(level) else {
            return self.array_in();
        };
        let mut left = self.bits(level + 1)?;
        while self.is_op(op) {
            let at = self.next().span;
            let right = self.bits(level + 1)?;
            left = self.within_nesting(binary(bin, left, right), at)?;
        }
        Ok(left)
    }

    fn array_in(&mut self) -> PResult<Expr> {
        let start = self.peek().span;
        if self.eat_op("[") {
            let mut keys = Vec::new();
            loop {
                if self.is_op("*") {
                    return Err(Diagnostic::error(
                        self.peek().span,
                        "`*` in an array membership test (a slice) is not supported yet",
                    ));
                }
                keys.push(self.comparison()?);
                if self.eat_op(",") {
                    continue;
                }
                self.expect_op("]", "after the keys")?;
                break;
            }
            if !self.eat_word("in") {
                return Err(self.unexpected("`in` after `[keys]`"));
            }
            let array = self.ident("the array after `in`")?;
            return Ok(Expr {
                span: start.to(array.span),
                kind: ExprKind::In { keys, array },
            });
        }
        let left = self.comparison()?;
        if self.eat_word("in") {
            let array = self.ident("the array after `in`")?;
            return Ok(Expr {
                span: left.span.to(array.span),
                kind: ExprKind::In {
                    keys: vec![left],
                    array,
                },
            });
        }
        Ok(left)
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let mut left = self.shift()?;
        if self.is_op("=~") || self.is_op("!~") {
            let at = self.next().span;
            return Err(Diagnostic::error(
                at.to(self.peek().span),
                "regular expression matching (`=~`, `!~`) is not supported yet",
            ));
        }
        loop {
            let op = match self.peek().tok {
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::Ne,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                _ => return Ok(left),
            };
            let at = self.next().span;
            let right = self.shift()?;
            let span = left.span.to(right.span);
            left = self.within_nesting(
                Expr {
                    kind: ExprKind::Compare(op, Box::new(left), Box::new(right)),
                    span,
                },
                at,
            )?;
        }
    }

    fn shift(&mut self) -> PResult<Expr> {
        let mut left = self.concat()?;
        loop {
            let op = match self.peek().tok {
                Tok::Op("<<") => BinOp::Shl,
                Tok::Op(">>") => BinOp::Shr,
                Tok::Op(">>>") => BinOp::Ushr,
                _ => return Ok(left),
            };
            let at = self.next().span;
            let right = self.concat()?;
            left = self.within_nesting(binary(op, left, right), at)?;
        }
    }

    fn concat(&mut self) -> PResult<Expr> {
        let first = self.additive()?;
        if !self.is_op(".") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_op(".") {
            parts.push(self.additive()?);
        }
        let span = parts[0].span.to(parts[parts.len() - 1].span);
        Ok(Expr {
            kind: ExprKind::Concat(parts),
            span,
        })
    }

    fn additive(&mut self) -> PResult<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek().tok {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            let at = self.next().span;
            let right = self.multiplicative()?;
            left = self.within_nesting(binary(op, left, right), at)?;
        }
    }

    fn multiplicative(&mut self) -> PResult<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("%") => BinOp::Mod,
                _ => return Ok(left),
            };
            let at = self.next().span;
            let right = self.unary()?;
            left = self.within_nesting(binary(op, left, right), at)?;
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        let op = match self.peek().tok {
            Tok::Op("-") => UnOp::Neg,
            Tok::Op("+") => UnOp::Plus,
            Tok::Op("!") => UnOp::Not,
            Tok::Op("~") => UnOp::BitNot,
            _ => return self.crement(),
        };
        let start = self.next().span;
        self.cur.enter()?;
        let operand = self.unary();
        self.cur.leave();
        let operand = operand?;
        Ok(Expr {
            span: start.to(operand.span),
            kind: ExprKind::Unary(op, Box::new(operand)),
        })
    }

    fn crement(&mut self) -> PResult<Expr> {
        if self.is_op("++") || self.is_op("--") {
            let t = self.next();
            let delta = if t.tok == Tok::Op("++") { 1 } else { -1 };
            let target = self.value()?;
            return Ok(Expr {
                span: t.span.to(target.span),
                kind: ExprKind::Crement {
                    target: Box::new(target),
                    delta,
                    post: false,
                },
            });
        }
        let value = self.value()?;
        if self.is_op("++") || self.is_op("--") {
            let t = self.next();
            let delta = if t.tok == Tok::Op("++") { 1 } else { -1 };
            return Ok(Expr {
                span: value.span.to(t.span),
                kind: ExprKind::Crement {
                    target: Box::new(value),
                    delta,
                    post: true,
                },
            });
        }
        Ok(value)
    }

    fn value(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        let span = t.span;
        match t.tok {
            Tok::Op("(") => {
                self.next();
                let e = self.expr()?;
                self.expect_op(")", "to close `(`")?;
                Ok(e)
            }
            Tok::Number(n) => {
                self.next();
                Ok(Expr {
                    kind: ExprKind::Num(n),
                    span,
                })
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr {
                    kind: ExprKind::Str(s),
                    span,
                })
            }
            Tok::Op("&") => Err(Diagnostic::error(
                span,
                "taking an address (`&`) is not supported",
            )),
            Tok::Embedded => Err(Diagnostic::error(
                span,
                "embedded C expressions (`%{ … %}`) are not supported: pytap compiles scripts to BPF itself",
            )),
            Tok::Ident(ref w) if w.starts_with('$') => {
                self.next();
                if self.is_op("->")
                    || self.is_op("[")
                    || (self.is_op("-") && self.peek_at(1).tok == Tok::Op(">"))
                {
                    return Err(Diagnostic::error(
                        span.to(self.peek().span),
                        format!(
                            "members and elements of `{w}` are not supported: CPython's markers pass plain values"
                        ),
                    ));
                }
                Ok(Expr {
                    kind: ExprKind::Target(w.clone()),
                    span,
                })
            }
            Tok::AtWord(ref w) => self.at_word(w.clone(), span),
            Tok::Ident(ref w) if !super::parser::KEYWORDS.contains(&w.as_str()) => {
                let name = self.ident("a name")?;
                if let Some(kind) = PrintKind::from_name(&name.name).filter(|_| self.is_op("(")) {
                    return self.print(kind, name);
                }
                if self.eat_op("(") {
                    let args = self.args("the function's arguments")?;
                    return Ok(Expr {
                        span: name.span.to(self.last_span()),
                        kind: ExprKind::Call { name, args },
                    });
                }
                if self.eat_op("[") {
                    let mut keys = Vec::new();
                    loop {
                        if self.is_op("*") {
                            return Err(Diagnostic::error(
                                self.peek().span,
                                "`*` in an array index (a slice) is only meaningful in `foreach` and `delete`, which pytap does not support yet",
                            ));
                        }
                        keys.push(self.expr()?);
                        if self.eat_op(",") {
                            continue;
                        }
                        self.expect_op("]", "to close the array index")?;
                        break;
                    }
                    return Ok(Expr {
                        span: name.span.to(self.last_span()),
                        kind: ExprKind::Index { array: name, keys },
                    });
                }
                Ok(Expr {
                    span: name.span,
                    kind: ExprKind::Name(name.name),
                })
            }
            other => Err(Diagnostic::error(
                span,
                format!("expected a value, found {}", describe(&other)),
            )),
        }
    }
}

fn compound(op: &str) -> Option<BinOp> {
    Some(match op {
        "+=" => BinOp::Add,
        "-=" => BinOp::Sub,
        "*=" => BinOp::Mul,
        "/=" => BinOp::Div,
        "%=" => BinOp::Mod,
        "<<=" => BinOp::Shl,
        ">>=" => BinOp::Shr,
        "&=" => BinOp::And,
        "|=" => BinOp::Or,
        "^=" => BinOp::Xor,
        _ => return None,
    })
}

fn binary(op: BinOp, left: Expr, right: Expr) -> Expr {
    let span = left.span.to(right.span);
    Expr {
        kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
        span,
    }
}
