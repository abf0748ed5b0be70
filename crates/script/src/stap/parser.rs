//! Declarations, probe points and statements (expressions are in
//! [`super::expr`]).

use crate::ast::*;
use crate::cursor::Cursor;
pub(super) use crate::cursor::describe;
use crate::diag::Diagnostic;
use crate::lexer::{self, Tok};
use crate::source::FileId;

/// Words that cannot name a variable.
pub(super) const KEYWORDS: &[&str] = &[
    "probe", "global", "function", "if", "else", "for", "foreach", "in", "limit", "return",
    "delete", "while", "break", "continue", "next", "string", "long", "try", "catch", "private",
];

/// Parses one `.stp` file.
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    let tokens = lexer::tokenize(file, text)?;
    let mut p = Parser {
        cur: Cursor::new(tokens),
    };
    let mut out = File::default();
    while !p.at_eof() {
        out.items.push(p.item()?);
    }
    Ok(out)
}

pub(super) struct Parser {
    pub(super) cur: Cursor,
}

pub(super) type PResult<T> = Result<T, Diagnostic>;

impl std::ops::Deref for Parser {
    type Target = Cursor;
    fn deref(&self) -> &Cursor {
        &self.cur
    }
}

impl std::ops::DerefMut for Parser {
    fn deref_mut(&mut self) -> &mut Cursor {
        &mut self.cur
    }
}

impl Parser {
    pub(super) fn ident(&mut self, what: &str) -> PResult<Ident> {
        match &self.peek().tok {
            Tok::Ident(name) if !KEYWORDS.contains(&name.as_str()) && !name.starts_with('$') => {
                let name = name.clone();
                let span = self.next().span;
                Ok(Ident { name, span })
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn item(&mut self) -> PResult<Item> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(w) if w == "probe" => self.probe(),
            Tok::Ident(w) if w == "global" => {
                self.next();
                self.globals().map(Item::Global)
            }
            Tok::Ident(w) if w == "function" => self.function().map(Item::Function),
            Tok::Ident(w) if w == "private" => Err(Diagnostic::error(
                t.span,
                "`private` is not supported yet: declare the global or function without it",
            )),
            Tok::AtWord(w) if w == "@define" => Err(Diagnostic::error(
                t.span,
                "macros (`@define`) are not supported yet",
            )),
            Tok::Embedded => Err(Diagnostic::error(
                t.span,
                "embedded C (`%{ … %}`) is not supported: pytap compiles scripts to BPF itself, with no C compiler",
            )),
            Tok::Preprocessor => Err(Diagnostic::error(
                t.span,
                "preprocessor conditionals (`%( … %)`) are not supported yet",
            )),
            _ => Err(self.unexpected("`probe`, `global` or `function`")),
        }
    }

    fn probe(&mut self) -> PResult<Item> {
        let span = self.next().span;
        let points = self.probe_points()?;
        if points.len() == 1 && (self.is_op("=") || self.is_op("+=")) {
            let epilogue = self.next().tok == Tok::Op("+=");
            let name = points.into_iter().next().expect("one point");
            if name.optional || name.sufficient {
                return Err(Diagnostic::error(
                    name.span,
                    "an alias's name cannot be optional (`?`) or sufficient (`!`)",
                ));
            }
            let targets = self.probe_points()?;
            let body = self.block()?;
            if self.is_op(",") {
                return Err(Diagnostic::error(
                    self.peek().span,
                    "an alias with both a prologue and an epilogue body is not supported yet",
                ));
            }
            return Ok(Item::Alias(AliasDecl {
                names: vec![name],
                points: targets,
                epilogue,
                body,
                span,
            }));
        }
        let body = self.block()?;
        Ok(Item::Probe(ProbeDecl { points, body, span }))
    }

    fn probe_points(&mut self) -> PResult<Vec<ProbePoint>> {
        let mut points = vec![self.probe_point()?];
        while self.eat_op(",") {
            points.push(self.probe_point()?);
        }
        if !self.is_op("{") && !self.is_op("=") && !self.is_op("+=") {
            return Err(
                self.unexpected("`{` to start the probe's body, or `,` and another probe point")
            );
        }
        Ok(points)
    }

    fn probe_point(&mut self) -> PResult<ProbePoint> {
        let start = self.peek().span;
        let mut components = vec![self.component()?];
        while self.eat_op(".") {
            components.push(self.component()?);
        }
        let mut point = ProbePoint {
            components,
            optional: false,
            sufficient: false,
            condition: None,
            span: start,
        };
        loop {
            if self.eat_op("?") {
                point.optional = true;
            } else if self.eat_op("!") {
                point.sufficient = true;
            } else {
                break;
            }
        }
        point.span = start.to(self.last_span());
        if self.is_word("if") {
            let at = self.next().span;
            self.expect_op("(", "after `if` in a probe point")?;
            self.expr()?;
            self.expect_op(")", "to close the probe point's condition")?;
            point.condition = Some(at.to(self.last_span()));
        }
        Ok(point)
    }

    /// A component: a name, glued from words and `*` written without
    /// spaces (`gc__*`, `*`), and an optional `(literal)`.
    fn component(&mut self) -> PResult<Component> {
        let start = self.peek().span;
        let mut name = String::new();
        loop {
            let t = self.peek();
            if !name.is_empty() && t.spaced {
                break;
            }
            match &t.tok {
                Tok::Ident(w) if !w.starts_with('$') => name.push_str(w),
                Tok::Op("*") => name.push('*'),
                Tok::Number(n) if !name.is_empty() => name.push_str(&n.to_string()),
                _ => break,
            }
            self.next();
        }
        if name.is_empty() {
            return Err(self.unexpected("a probe point (such as `process(\"python\").mark(\"function__entry\")`, `begin` or `timer.ms(100)`)"));
        }
        let mut arg = None;
        if self.eat_op("(") {
            let t = self.next();
            arg = Some(match t.tok {
                Tok::Number(n) => Literal::Num(n),
                Tok::Op("-") => match self.next().tok {
                    Tok::Number(n) => Literal::Num(n.wrapping_neg()),
                    _ => {
                        return Err(Diagnostic::error(t.span, "expected a number after `-`"));
                    }
                },
                Tok::Str(s) => Literal::Str(s),
                other => {
                    return Err(Diagnostic::error(
                        t.span,
                        format!(
                            "expected a string or a number in `{name}(…)`, found {}",
                            describe(&other)
                        ),
                    ));
                }
            });
            self.expect_op(")", &format!("to close `{name}(`"))?;
        }
        Ok(Component {
            name,
            arg,
            span: start.to(self.last_span()),
        })
    }

    fn globals(&mut self) -> PResult<Vec<GlobalDecl>> {
        let mut out = Vec::new();
        loop {
            let name = self.ident("a global's name")?;
            let mut decl = GlobalDecl {
                ty: None,
                name,
                size: None,
                init: None,
            };
            if self.is_op("%") {
                return Err(Diagnostic::error(
                    self.peek().span,
                    "wrapping arrays (`global a%`) are not supported yet",
                ));
            }
            if self.eat_op("[") {
                match self.next().tok {
                    Tok::Number(n) if n > 0 => decl.size = Some(n),
                    _ => {
                        return Err(Diagnostic::error(
                            self.last_span(),
                            "an array's size must be a positive number",
                        ));
                    }
                }
                self.expect_op("]", "after the array's size")?;
            }
            if self.eat_op("=") {
                let t = self.next();
                let lit = match t.tok {
                    Tok::Number(n) => Literal::Num(n),
                    Tok::Str(s) => Literal::Str(s),
                    Tok::Op("-") => match self.next().tok {
                        Tok::Number(n) => Literal::Num(n.wrapping_neg()),
                        _ => return Err(Diagnostic::error(t.span, "expected a number after `-`")),
                    },
                    other => {
                        return Err(Diagnostic::error(
                            t.span,
                            format!(
                                "a global's initial value must be a number or a string, found {}",
                                describe(&other)
                            ),
                        ));
                    }
                };
                decl.init = Some((lit, t.span.to(self.last_span())));
            }
            out.push(decl);
            if !self.eat_op(",") {
                break;
            }
        }
        self.eat_op(";");
        Ok(out)
    }

    fn type_name(&mut self) -> PResult<TypeName> {
        if self.eat_word("long") {
            Ok(TypeName::Long)
        } else if self.eat_word("string") {
            Ok(TypeName::String)
        } else {
            Err(self.unexpected("`long` or `string`"))
        }
    }

    fn function(&mut self) -> PResult<FunctionDecl> {
        self.next();
        let name = self.ident("the function's name")?;
        let ret = if self.eat_op(":") {
            Some(self.type_name()?)
        } else {
            None
        };
        self.expect_op("(", "before the function's parameters")?;
        let mut params = Vec::new();
        if !self.is_op(")") {
            loop {
                let pname = self.ident("a parameter's name")?;
                let ty = if self.eat_op(":") {
                    Some(self.type_name()?)
                } else {
                    None
                };
                params.push(Param { name: pname, ty });
                if !self.eat_op(",") {
                    break;
                }
            }
        }
        self.expect_op(")", "after the function's parameters")?;
        if matches!(self.peek().tok, Tok::Embedded) {
            return Err(Diagnostic::error(
                self.peek().span,
                format!(
                    "function `{}` is written in embedded C, which is not supported: pytap compiles scripts to BPF itself",
                    name.name
                ),
            ));
        }
        let body = self.block()?;
        Ok(FunctionDecl {
            name,
            ret,
            params,
            body,
        })
    }

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
            "if" => {
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
                return Ok(Stmt {
                    kind: StmtKind::If {
                        cond: Box::new(cond),
                        then,
                        els,
                    },
                    span: start.to(self.last_span()),
                });
            }
            "while" => {
                self.next();
                self.expect_op("(", "after `while`")?;
                let cond = self.expr()?;
                self.expect_op(")", "to close the `while` condition")?;
                let body = Box::new(self.stmt()?);
                return Ok(Stmt {
                    kind: StmtKind::While { cond, body },
                    span: start.to(self.last_span()),
                });
            }
            "for" => {
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
                return Ok(Stmt {
                    kind: StmtKind::For {
                        init,
                        cond,
                        step,
                        body,
                    },
                    span: start.to(self.last_span()),
                });
            }
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

    fn foreach(&mut self) -> PResult<Foreach> {
        self.next();
        self.expect_op("(", "after `foreach`")?;
        let mut value = None;
        let mut keys = Vec::new();
        let mut sort: Option<Sort> = None;
        let sort_dir = |p: &mut Parser| -> Option<bool> {
            if p.eat_op("+") {
                Some(true)
            } else if p.eat_op("-") {
                Some(false)
            } else {
                None
            }
        };
        let set_sort = |p: &Parser, sort: &mut Option<Sort>, column: usize, asc: bool| {
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
        };
        // `v =`, `k`, `k+` or `[k1, k2-]`.
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
        if !self.eat_word("in") {
            return Err(self.unexpected("`in` and the array"));
        }
        let array = self.ident("the array to loop over")?;
        let mut slice = None;
        if self.is_op("[") {
            let s = self.next().span;
            while !self.is_op("]") && !self.at_eof() {
                self.next();
            }
            self.expect_op("]", "after the slice")?;
            slice = Some(s.to(self.last_span()));
        }
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
}

/// The statistic an `@word` names.
pub(super) fn stat_op(word: &str) -> Option<StatOp> {
    Some(match word {
        "@count" => StatOp::Count,
        "@sum" => StatOp::Sum,
        "@min" => StatOp::Min,
        "@max" => StatOp::Max,
        "@avg" => StatOp::Avg,
        "@variance" => StatOp::Variance,
        _ => return None,
    })
}
