//! Diagnostics: what is wrong with a script, where, and what to do.
//!
//! Every diagnostic carries a [`Span`]; [`Diagnostic::render`] prints it as
//! compilers do, and the golden tests hold the exact text:
//!
//! ```text
//! top.stp:9:5: error: `@hist_linear` with 4 arguments is not supported yet
//!     print(@hist_linear(x, 0, 10, 1))
//!           ^~~~~~~~~~~~~~~~~~~~~~~~~~
//! hint: ...
//! ```

use std::fmt::Write as _;

use crate::source::{SourceMap, Span};

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The script cannot run.
    Error,
    /// It runs, but not quite as written (or as SystemTap would).
    Warning,
}

/// One message about a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub span: Span,
    /// What, in one line.
    pub message: String,
    /// What to do about it, one line each.
    pub hints: Vec<String>,
    /// Other places that explain it (`x` became a string here).
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            hints: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            hints: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a note pointing at another place.
    pub fn note(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.notes.push((span, message.into()));
        self
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hints.push(hint.into());
        self
    }

    /// `file:line:col: error: message`, the source line, a caret under the
    /// span (`^` then `~` to its end on that line), and the hints.
    pub fn render(&self, sources: &SourceMap) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = excerpt(sources, self.span, kind, &self.message);
        for (span, note) in &self.notes {
            out.push_str(&excerpt(sources, *span, "note", note));
        }
        for hint in &self.hints {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }
}

/// `file:line:col: kind: message`, the line, and a caret under the span.
fn excerpt(sources: &SourceMap, span: Span, kind: &str, message: &str) -> String {
    {
        let file = sources.file(span.file);
        let (line, col) = file.line_col(span.start);
        let mut out = format!("{}:{line}:{col}: {kind}: {message}\n", file.name);
        let text = file.line_text(line);
        out.push_str(text);
        out.push('\n');
        // The caret line copies tabs so it stays aligned under the text.
        let mut caret = String::new();
        for c in text.chars().take(col - 1) {
            caret.push(if c == '\t' { '\t' } else { ' ' });
        }
        let (end_line, end_col) = file.line_col(span.end);
        let width = if end_line == line {
            end_col.saturating_sub(col).max(1)
        } else {
            text.chars().count().saturating_sub(col - 1).max(1)
        };
        caret.push('^');
        for _ in 1..width {
            caret.push('~');
        }
        out.push_str(&caret);
        out.push('\n');
        out
    }
}

/// Everything found wrong, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// The messages.
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter().filter(|d| d.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter().filter(|d| d.severity == Severity::Warning)
    }

    /// All of them, rendered one after the other.
    pub fn render(&self, sources: &SourceMap) -> String {
        self.list.iter().map(|d| d.render(sources)).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics { list: vec![d] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_caret_under_the_span() {
        let mut map = SourceMap::new();
        let f = map.add("t.stp", "probe begin {\n\tx = foo(1)\n}\n");
        let d = Diagnostic::error(Span::new(f, 19, 25), "unknown function `foo`")
            .hint("SystemTap's tapset functions pytap knows are listed in docs/scripts.md");
        assert_eq!(
            d.render(&map),
            "t.stp:2:6: error: unknown function `foo`\n\
             \tx = foo(1)\n\
             \t    ^~~~~~\n\
             hint: SystemTap's tapset functions pytap knows are listed in docs/scripts.md\n"
        );
    }

    #[test]
    fn a_span_past_its_line_is_underlined_to_the_end_of_the_line() {
        let mut map = SourceMap::new();
        let f = map.add("t.stp", "ab cd\nef");
        let d = Diagnostic::warning(Span::new(f, 3, 8), "w");
        assert_eq!(d.render(&map), "t.stp:1:4: warning: w\nab cd\n   ^~\n");
    }
}
