//! D's tokens. D's grammar needs the lexer to know where a clause may
//! start: there a probe description (`python$target:::function-entry`,
//! `syscall::read:entry`) is one token, read with its own character set,
//! as dtrace's lexer reads it in its `S2` state. Anywhere else D is C:
//! `->`, `^^`, character literals, `u`/`l` number suffixes, `$target` and
//! macro arguments, `@name` aggregations.

use crate::diag::Diagnostic;
use crate::lexer::{Tok, Token, block_comment_end, eof, number_token, string, unexpected_char};
use crate::source::{FileId, Span};

/// D's operators, longest first so the longest match wins.
const OPS: &[&str] = &[
    "<<=", ">>=", "...", "->", "^^", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=",
    "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>", "+", "-", "*", "/", "%", ".", "<", ">", "=",
    "!", "~", "&", "|", "^", "?", ":", ",", ";", "(", ")", "[", "]", "{", "}",
];

/// C's integer type words (and qualifiers), all of which pytap's D holds
/// as 64-bit integers.
pub(super) const INTEGER_WORDS: &[&str] = &[
    "int",
    "uint",
    "long",
    "short",
    "char",
    "signed",
    "unsigned",
    "int8_t",
    "int16_t",
    "int32_t",
    "int64_t",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "uint64_t",
    "intptr_t",
    "uintptr_t",
    "size_t",
    "ssize_t",
    "const",
    "volatile",
];

/// Words besides the integer types that start a declaration rather than
/// a clause at the top level.
const OTHER_DECLARATION_WORDS: &[&str] = &[
    "self",
    "this",
    "string",
    "float",
    "double",
    "void",
    "inline",
    "typedef",
    "struct",
    "union",
    "enum",
    "static",
    "extern",
    "register",
    "translator",
    "provider",
];

/// Whether `word` starts a declaration (or names a type in a cast).
pub(super) fn is_declaration_word(word: &str) -> bool {
    INTEGER_WORDS.contains(&word) || OTHER_DECLARATION_WORDS.contains(&word)
}

/// Bytes a probe description may hold (dtrace's `RGX_PSPEC` and globs).
fn is_desc_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_-.*?[]!:$\\`+".contains(&c)
}

/// Splits a D program into tokens, ending with [`Tok::Eof`].
pub fn tokenize(file: FileId, text: &str) -> Result<Vec<Token>, Diagnostic> {
    let bytes = text.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut spaced = true;
    let mut line_start = true;
    let mut layout = Layout {
        depth: 0,
        clause_next: true,
        declaring: false,
    };
    let span = |a: usize, b: usize| Span::new(file, a, b);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            i += 1;
            spaced = true;
            line_start = true;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            spaced = true;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = block_comment_end(file, text, i)?;
            spaced = true;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c == b'#' && line_start {
            let token = directive(file, text, start)?;
            i = token.span.end as usize;
            out.push(token);
            continue;
        }
        line_start = false;
        if layout.clause_next && layout.depth == 0 && !layout.declaring && is_desc_byte(c) {
            // A probe description, unless the word starts a declaration.
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let word = &text[i..j];
            let plain_word = j < bytes.len() && !is_desc_byte(bytes[j]) || j == bytes.len();
            if is_declaration_word(word) && (plain_word || word == "self" || word == "this") {
                layout.declaring = true;
                layout.clause_next = false;
            } else {
                while i < bytes.len() && is_desc_byte(bytes[i]) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Desc(text[start..i].to_string()),
                    span: span(start, i),
                    spaced,
                });
                spaced = false;
                layout.clause_next = false;
                continue;
            }
        }
        let tok = if let Some((tok, end)) = value_token(file, text, i)? {
            i = end;
            tok
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            i += op.len();
            layout.after(op);
            Tok::Op(op)
        } else {
            return Err(unexpected_char(file, text, i));
        };
        out.push(Token {
            tok,
            span: span(start, i),
            spaced,
        });
        spaced = false;
    }
    out.push(eof(file, bytes.len()));
    Ok(out)
}

/// Where the lexer is in the program's layout: what decides whether a
/// probe description may come next.
struct Layout {
    /// Nesting of (), [] and {}; a clause starts only at depth 0.
    depth: usize,
    /// Whether a probe description may come next.
    clause_next: bool,
    /// Inside a top-level declaration (until its `;`).
    declaring: bool,
}

impl Layout {
    /// The layout after the operator `op`.
    fn after(&mut self, op: &str) {
        match op {
            "(" | "[" | "{" => self.depth += 1,
            ")" | "]" => self.depth = self.depth.saturating_sub(1),
            "}" => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.clause_next = true;
                }
            }
            ";" if self.depth == 0 => {
                self.declaring = false;
                self.clause_next = true;
            }
            "," if self.depth == 0 && !self.declaring => self.clause_next = true,
            _ => {}
        }
    }
}

/// A `#` line at the start of a line: a pragma (or `#!`) is kept, other
/// preprocessor lines are refused.
fn directive(file: FileId, text: &str, start: usize) -> Result<Token, Diagnostic> {
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    let span = Span::new(file, start, i);
    let line = text[start..i].trim_end().to_string();
    let directive = line[1..].trim_start();
    if line.starts_with("#!") || directive.starts_with("pragma") {
        return Ok(Token {
            tok: Tok::Pragma(line),
            span,
            spaced: true,
        });
    }
    Err(Diagnostic::error(
        span,
        format!("`{line}` needs the C preprocessor, which pytap does not have"),
    )
    .hint("dtrace runs cpp only with -C; write the program without preprocessor lines"))
}

/// A string, character, number, `$` variable or word at `at`, and where
/// it ends (`None`: an operator or something else).
fn value_token(file: FileId, text: &str, at: usize) -> Result<Option<(Tok, usize)>, Diagnostic> {
    let bytes = text.as_bytes();
    let (start, mut i) = (at, at);
    let c = bytes[i];
    let tok = if c == b'"' {
        let (value, end) = string(file, bytes, i)?;
        i = end;
        Tok::Str(value)
    } else if c == b'\'' {
        let (value, end) = char_literal(file, bytes, i)?;
        i = end;
        Tok::Number(value)
    } else if c.is_ascii_digit() {
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric()) {
            i += 1;
        }
        let literal = text[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
        Tok::Number(number_token(file, text, start, i, literal)?)
    } else if c == b'$' {
        i += 1;
        if bytes.get(i) == Some(&b'$') {
            i += 1;
        }
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        Tok::Ident(text[start..i].to_string())
    } else if c.is_ascii_alphabetic() || c == b'_' || c == b'@' {
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = text[start..i].to_string();
        if c == b'@' {
            Tok::AtWord(word)
        } else {
            Tok::Ident(word)
        }
    } else {
        return Ok(None);
    };
    Ok(Some((tok, i)))
}

/// `'a'`, `'\n'`, `'\0'`: the byte's value.
fn char_literal(file: FileId, bytes: &[u8], start: usize) -> Result<(i64, usize), Diagnostic> {
    let bad = || {
        Diagnostic::error(
            Span::new(file, start, start + 1),
            "a character literal is one character between single quotes: 'a', '\\n'",
        )
    };
    let (value, next) = match bytes.get(start + 1) {
        Some(b'\\') => {
            let v = match bytes.get(start + 2).ok_or_else(bad)? {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'0' => 0,
                b'\\' => b'\\',
                b'\'' => b'\'',
                b'"' => b'"',
                _ => return Err(bad()),
            };
            (v, start + 3)
        }
        Some(&c) if c != b'\'' && c != b'\n' => (c, start + 2),
        _ => return Err(bad()),
    };
    if bytes.get(next) != Some(&b'\'') {
        return Err(bad());
    }
    Ok((i64::from(value), next + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(FileId(0), text)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn descriptions_declarations_and_predicates() {
        let t = toks(
            "self int x;\npython$target:::function-entry, BEGIN\n/arg1 / 2 == 1/\n{ @[copyinstr(arg1)] = count(); }\ntick-1sec{}",
        );
        assert_eq!(t[0], Tok::Ident("self".into()));
        assert_eq!(t[4], Tok::Desc("python$target:::function-entry".into()));
        assert_eq!(t[5], Tok::Op(","));
        assert_eq!(t[6], Tok::Desc("BEGIN".into()));
        assert_eq!(t[7], Tok::Op("/"));
        assert!(t.contains(&Tok::AtWord("@".into())));
        assert!(t.contains(&Tok::Desc("tick-1sec".into())));
    }

    #[test]
    fn pragmas_suffixes_and_characters() {
        let t = toks(
            "#!/usr/sbin/dtrace -qs\n#pragma D option quiet\nBEGIN { x = 10ul + 'a'; y = $$1; }",
        );
        assert_eq!(t[0], Tok::Pragma("#!/usr/sbin/dtrace -qs".into()));
        assert_eq!(t[1], Tok::Pragma("#pragma D option quiet".into()));
        assert!(t.contains(&Tok::Number(10)));
        assert!(t.contains(&Tok::Number(97)));
        assert!(t.contains(&Tok::Ident("$$1".into())));
        let e = tokenize(FileId(0), "#include <x.h>\n").unwrap_err();
        assert!(e.message.contains("C preprocessor"), "{}", e.message);
    }
}
