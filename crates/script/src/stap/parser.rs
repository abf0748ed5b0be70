//! Declarations and probe points (statements are in [`super::stmt`],
//! expressions in [`super::expr`]).

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
