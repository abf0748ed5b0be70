//! The D front end: D programs (dtrace's `-s FILE` and `-n` text) to the
//! shared [`crate::ast`], which the checker, the engine and pytap's
//! runtime then take as they take SystemTap scripts.
//!
//! - [`lexer`]: D's tokens, probe descriptions included;
//! - `parser`, `expr`, `points`: clauses, statements, expressions and
//!   descriptions, translated as they are parsed (a predicate is an
//!   `if (!(p)) next;`, `self->x` an array keyed by the thread, `this->x`
//!   a clause-local, every other variable a global);
//! - [`aggprint`]: aggregations printed as dtrace prints them.

pub mod aggprint;
mod expr;
mod functions;
pub mod lexer;
mod parser;
mod points;

use crate::ast::{File, GlobalDecl, Ident, Item, TypeName};
use crate::cursor::Cursor;
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};

/// What the program is parsed with.
#[derive(Debug, Clone, Default)]
pub struct DOptions {
    /// Macro arguments: `$1`, `$2`, … (and `$$1` as strings).
    pub macro_args: Vec<String>,
    /// Quiet mode (`-q`, `#pragma D option quiet`): `trace()` prints bare values.
    pub quiet: bool,
    /// `-Z` (`#pragma D option zdefs`): descriptions may match no probe.
    pub zdefs: bool,
}

/// A parsed D program.
#[derive(Debug, Clone, Default)]
pub struct DProgram {
    /// Its clauses and globals, in the shared syntax.
    pub file: File,
    /// `#pragma D option` and `#!` options, in order.
    pub options: Vec<(String, Option<String>)>,
    /// Process ids named in providers (`python1234`), which must be the target's.
    pub pids: Vec<(i64, Span)>,
    /// Aggregations, in order of first use.
    pub aggregations: Vec<String>,
    /// How many clauses.
    pub clauses: usize,
    /// Global variables (`self->x` included), with declared types.
    declared: Vec<(String, Span, Option<TypeName>)>,
}

/// Parses a D program.
pub fn parse(file: FileId, text: &str, opts: &DOptions) -> Result<DProgram, Diagnostic> {
    let tokens = lexer::tokenize(file, text)?;
    let mut p = parser::Parser {
        cur: Cursor::new(tokens),
        opts,
        in_predicate: false,
        agg_value: false,
        out: DProgram::default(),
    };
    p.program()?;
    let mut out = p.out;
    // Every variable that is not clause-local is a global.
    let mut globals: Vec<GlobalDecl> = std::mem::take(&mut out.declared)
        .into_iter()
        .map(|(name, span, ty)| GlobalDecl {
            name: Ident { name, span },
            size: None,
            init: None,
            ty,
        })
        .collect();
    for name in &out.aggregations {
        globals.push(GlobalDecl {
            name: Ident {
                name: name.clone(),
                span: Span::new(file, 0, 0),
            },
            size: None,
            init: None,
            ty: None,
        });
    }
    if !globals.is_empty() {
        out.file.items.insert(0, Item::Global(globals));
    }
    Ok(out)
}

impl DProgram {
    /// Whether an option is set (`quiet`, `zdefs`).
    pub fn option(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }
}

#[cfg(test)]
mod tests;
