//! A cursor over tokens, shared by the front ends' parsers: looking
//! ahead, taking tokens, and "expected X, found Y" errors.

use crate::diag::Diagnostic;
use crate::lexer::{Tok, Token};
use crate::source::Span;

/// How deep expressions and statements may nest: parentheses, operators
/// (a 300-term `1+1+…` is 300 deep: its tree leans left), `!!!x`, blocks,
/// `if`s and `else if`s. Parsing, checking, code generation and the
/// interpreter all recurse over the tree, so a script past this would
/// overflow pytap's stack; it gets a diagnostic at the place instead.
/// Scripts people write stay far below it (the HOWTO's nest 4 deep).
pub const MAX_NESTING: usize = 200;

/// Tokens and the position in them.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The tokens, ending with [`Tok::Eof`].
    pub tokens: Vec<Token>,
    /// The next token's index.
    pub pos: usize,
    /// How many nested constructs the parser is inside ([`Cursor::enter`]).
    nesting: usize,
}

impl Cursor {
    /// A cursor at the first of `tokens` (which end with [`Tok::Eof`]).
    pub fn new(tokens: Vec<Token>) -> Cursor {
        Cursor {
            tokens,
            pos: 0,
            nesting: 0,
        }
    }

    /// Enters a nested construct (an expression in parentheses, an
    /// operand, a statement): an error at the next token past
    /// [`MAX_NESTING`]. Every `enter` that succeeds is paired with a
    /// [`Cursor::leave`]; after an error the parse is over.
    pub fn enter(&mut self) -> Result<(), Diagnostic> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.too_deep(self.peek().span));
        }
        Ok(())
    }

    /// Leaves what [`Cursor::enter`] entered.
    pub fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// `e`, built by folding an operator at `at` into a chain (`a + b + c`
    /// builds its tree without recursing), if it keeps within
    /// [`MAX_NESTING`] where it stands.
    pub fn within_nesting(
        &self,
        e: crate::ast::Expr,
        at: Span,
    ) -> Result<crate::ast::Expr, Diagnostic> {
        if self.nesting + e.depth() > MAX_NESTING {
            return Err(self.too_deep(at));
        }
        Ok(e)
    }

    fn too_deep(&self, at: Span) -> Diagnostic {
        Diagnostic::error(
            at,
            format!(
                "nested too deeply: pytap takes expressions and statements at most {MAX_NESTING} levels deep"
            ),
        )
    }

    /// The next token.
    pub fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    /// The token `n` after the next.
    pub fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    /// Takes the next token (the end of the file stays).
    #[expect(
        clippy::should_implement_trait,
        reason = "the cursor never ends (the end of the file stays): not an Iterator"
    )]
    pub fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    /// Whether all tokens are taken.
    pub fn at_eof(&self) -> bool {
        self.peek().tok == Tok::Eof
    }

    /// Whether the next token is the operator `op`.
    pub fn is_op(&self, op: &str) -> bool {
        matches!(self.peek().tok, Tok::Op(o) if o == op)
    }

    /// Whether the next token is the word `word`.
    pub fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w == word)
    }

    /// Takes the operator `op` if it is next.
    pub fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Takes the word `word` if it is next.
    pub fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The previous token's span (for the end of a node).
    pub fn last_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    /// Takes the operator `op`, or says what was expected.
    pub fn expect_op(&mut self, op: &str, what: &str) -> Result<Span, Diagnostic> {
        if self.is_op(op) {
            Ok(self.next().span)
        } else {
            Err(self.unexpected(&format!("`{op}` {what}")))
        }
    }

    /// "expected X, found Y" at the next token.
    pub fn unexpected(&self, expected: &str) -> Diagnostic {
        let t = self.peek();
        Diagnostic::error(
            t.span,
            format!("expected {expected}, found {}", describe(&t.tok)),
        )
    }
}

/// A token as an error message names it.
pub fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(w) => format!("`{w}`"),
        Tok::AtWord(w) => format!("`{w}`"),
        Tok::Number(n) => format!("the number {n}"),
        Tok::Str(_) => "a string".into(),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Embedded => "embedded C (`%{`)".into(),
        Tok::Preprocessor => "a preprocessor conditional (`%(`)".into(),
        Tok::Desc(d) => format!("the probe description `{d}`"),
        Tok::Pragma(p) => format!("`{p}`"),
        Tok::Eof => "the end of the file".into(),
    }
}
