//! Characters to tokens, shared by the front ends.
//!
//! String literals are decoded as C decodes them, because that is what
//! SystemTap does: `"\\n"` is a backslash and an `n` (the HOWTO's
//! `show-call-hierarchy.stp` prints exactly that), `"\033"` is ESC.
//! Embedded C (`%{ … %}`) and the preprocessor (`%( … %)`) become tokens of
//! their own so the parser can say they are not supported, rather than
//! failing on their contents.

use crate::diag::Diagnostic;
use crate::source::{FileId, Span};

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A name, including `$arg1`, `$$name` and keywords.
    Ident(String),
    /// `@count`, `@hist_log`, `@define`, …
    AtWord(String),
    /// An integer.
    Number(i64),
    /// A string literal, decoded (bytes: `\377` is not UTF-8).
    Str(Vec<u8>),
    /// An operator or punctuation.
    Op(&'static str),
    /// `%{ … %}`.
    Embedded,
    /// `%( … %)`, the preprocessor's conditional.
    Preprocessor,
    /// D: a probe description (`python$target:::function-entry`).
    Desc(String),
    /// D: a `#` line (`#pragma D option quiet`, `#!/usr/sbin/dtrace -qs`).
    Pragma(String),
    /// The end of the file.
    Eof,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its source.
    pub span: Span,
    /// Whether whitespace or a comment comes right before it (probe point
    /// components such as `mark*` are glued from tokens without it).
    pub spaced: bool,
}

/// Operators, longest first so the longest match wins.
const OPS: &[&str] = &[
    "<<<", "<<=", ">>=", ">>>", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=",
    "/=", "%=", ".=", "&=", "|=", "^=", "<<", ">>", "=~", "!~", "+", "-", "*", "/", "%", ".", "<",
    ">", "=", "!", "~", "&", "|", "^", "?", ":", ",", ";", "(", ")", "[", "]", "{", "}",
];

/// Splits `text` (file `file`) into tokens, ending with [`Tok::Eof`].
pub fn tokenize(file: FileId, text: &str) -> Result<Vec<Token>, Diagnostic> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = true;
    let span = |a: usize, b: usize| Span::new(file, a, b);
    while i < bytes.len() {
        let c = bytes[i];
        // Whitespace and comments.
        if c.is_ascii_whitespace() {
            i += 1;
            spaced = true;
            continue;
        }
        if c == b'#' || (c == b'/' && bytes.get(i + 1) == Some(&b'/')) {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            spaced = true;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = block_comment_end(file, text, i)?;
            spaced = true;
            continue;
        }
        let start = i;
        let tok = if c == b'%' && matches!(bytes.get(i + 1), Some(b'{') | Some(b'(')) {
            let (open, close, tok) = if bytes[i + 1] == b'{' {
                ("%{", "%}", Tok::Embedded)
            } else {
                ("%(", "%)", Tok::Preprocessor)
            };
            match text[i + 2..].find(close) {
                Some(at) => i += 2 + at + 2,
                None => {
                    return Err(Diagnostic::error(
                        span(start, start + 2),
                        format!("`{open}` is never closed (no `{close}`)"),
                    ));
                }
            }
            tok
        } else if c == b'"' {
            let (value, end) = string(file, bytes, i)?;
            i = end;
            Tok::Str(value)
        } else if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            Tok::Number(number_token(file, text, start, i, &text[start..i])?)
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'@' {
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            let word = text[start..i].to_string();
            if c == b'@' {
                Tok::AtWord(word)
            } else {
                Tok::Ident(word)
            }
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            i += op.len();
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

/// Where the `/* … */` comment starting at `start` ends (the index after
/// its `*/`).
pub(crate) fn block_comment_end(
    file: FileId,
    text: &str,
    start: usize,
) -> Result<usize, Diagnostic> {
    match text[start + 2..].find("*/") {
        Some(at) => Ok(start + 2 + at + 2),
        None => Err(Diagnostic::error(
            Span::new(file, start, start + 2),
            "this comment is never closed (no `*/`)",
        )),
    }
}

/// The value of the integer literal `literal`, written at
/// `text[start..end]`, or an error there.
pub(crate) fn number_token(
    file: FileId,
    text: &str,
    start: usize,
    end: usize,
    literal: &str,
) -> Result<i64, Diagnostic> {
    number(literal).ok_or_else(|| {
        Diagnostic::error(
            Span::new(file, start, end),
            format!(
                "`{}` is not a number pytap can read (a 64-bit integer in decimal, 0x hex or 0 octal)",
                &text[start..end]
            ),
        )
    })
}

/// "unexpected character" at `text[at..]`.
pub(crate) fn unexpected_char(file: FileId, text: &str, at: usize) -> Diagnostic {
    let ch = text[at..].chars().next().unwrap_or('?');
    Diagnostic::error(
        Span::new(file, at, at + ch.len_utf8()),
        format!("unexpected character `{}`", ch.escape_default()),
    )
}

/// The [`Tok::Eof`] token of a file of `len` bytes.
pub(crate) fn eof(file: FileId, len: usize) -> Token {
    Token {
        tok: Tok::Eof,
        span: Span::new(file, len, len),
        spaced: true,
    }
}

/// A decimal, `0x` hex or `0` octal integer, as C reads it.
pub(crate) fn number(s: &str) -> Option<i64> {
    let (digits, radix) = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    // Large unsigned literals wrap, as SystemTap's 64-bit longs do.
    u64::from_str_radix(digits, radix).ok().map(|v| v as i64)
}

/// Decodes the string literal starting at `bytes[start] == '"'`; returns
/// its bytes and the index after the closing quote.
pub(crate) fn string(
    file: FileId,
    bytes: &[u8],
    start: usize,
) -> Result<(Vec<u8>, usize), Diagnostic> {
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = bytes.get(i) else {
            return Err(Diagnostic::error(
                Span::new(file, start, start + 1),
                "this string is never closed (no `\"`)",
            ));
        };
        match c {
            b'"' => return Ok((out, i + 1)),
            b'\n' => {
                return Err(Diagnostic::error(
                    Span::new(file, start, i),
                    "a string cannot span lines; write `\\n` for a newline",
                ));
            }
            b'\\' => {
                let Some(&e) = bytes.get(i + 1) else {
                    return Err(Diagnostic::error(
                        Span::new(file, start, start + 1),
                        "this string is never closed (no `\"`)",
                    ));
                };
                i += 2;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match bytes.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    b'x' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while let Some(d) = bytes.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            v = (v * 16 + d) & 0xff;
                            i += 1;
                            n += 1;
                        }
                        if n == 0 {
                            return Err(Diagnostic::error(
                                Span::new(file, i - 2, i),
                                "`\\x` needs hex digits",
                            ));
                        }
                        out.push(v as u8);
                    }
                    // `\\`, `\"`, `\'`, `\?` and anything else: the character.
                    other => out.push(other),
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
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
    fn operators_take_the_longest_match() {
        assert_eq!(
            toks("x <<< 1; a[k] += 2 .= <<"),
            vec![
                Tok::Ident("x".into()),
                Tok::Op("<<<"),
                Tok::Number(1),
                Tok::Op(";"),
                Tok::Ident("a".into()),
                Tok::Op("["),
                Tok::Ident("k".into()),
                Tok::Op("]"),
                Tok::Op("+="),
                Tok::Number(2),
                Tok::Op(".="),
                Tok::Op("<<"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_decode_as_c_does() {
        assert_eq!(
            toks(r#""a\\n" "\033[2J" "\x41\t\"" "\777""#),
            vec![
                Tok::Str(b"a\\n".to_vec()),
                Tok::Str(b"\x1b[2J".to_vec()),
                Tok::Str(b"A\t\"".to_vec()),
                Tok::Str(vec![0o777u32 as u8]),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_of_three_kinds() {
        assert_eq!(
            toks("# a\n// b\n/* c \\*/ d /* e */"),
            vec![Tok::Ident("d".into()), Tok::Eof]
        );
    }

    #[test]
    fn target_variables_and_at_words() {
        assert_eq!(
            toks("$arg1 $$name @count(x)"),
            vec![
                Tok::Ident("$arg1".into()),
                Tok::Ident("$$name".into()),
                Tok::AtWord("@count".into()),
                Tok::Op("("),
                Tok::Ident("x".into()),
                Tok::Op(")"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("10 0x1F 017 0"),
            vec![
                Tok::Number(10),
                Tok::Number(31),
                Tok::Number(15),
                Tok::Number(0),
                Tok::Eof
            ]
        );
        assert!(tokenize(FileId(0), "12ab").is_err());
    }

    #[test]
    fn unclosed_things_are_errors() {
        for text in [
            "\"abc",
            "/* x",
            "%{ C",
            "\"a\nb\"",
            "\"ends in a backslash\\",
        ] {
            assert!(tokenize(FileId(0), text).is_err(), "{text}");
        }
        assert_eq!(toks("%{ int x; %}"), vec![Tok::Embedded, Tok::Eof]);
    }
}
