//! SystemTap's `printf` formats and histogram drawing, byte for byte.
//!
//! [`Format::parse`] reads a format once, at compile time, so the checker
//! can match conversions with arguments; [`Format::render`] prints values
//! as SystemTap's runtime (`runtime/vsprintf.c`, itself Linux's
//! `vsnprintf`) does: 64-bit numbers, `%p` as `%#x`, `%#x` of 0 as `0x0`.
//! Histograms are [`crate::hist`]'s.

use crate::ir::Ty;

/// How many of something: a number or `*` (taken from the arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Written in the format.
    Fixed(usize),
    /// `*`: the next argument.
    Star,
}

/// Flags of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `-`: left-justify.
    pub left: bool,
    /// `+`: always a sign.
    pub plus: bool,
    /// ` `: a space for positive numbers.
    pub space: bool,
    /// `#`: `0x`/`0` prefixes.
    pub special: bool,
    /// `0`: pad numbers with zeros.
    pub zero: bool,
}

/// What a conversion prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// `%d`, `%i`.
    Signed,
    /// `%u`.
    Unsigned,
    /// `%o`.
    Octal,
    /// `%x`, `%X` (`upper`).
    Hex {
        /// `%X`.
        upper: bool,
    },
    /// `%p`: `%#x`.
    Pointer,
    /// `%c`.
    Char,
    /// `%s`.
    Str,
}

/// One `%…` conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    /// Flags.
    pub flags: Flags,
    /// Minimum width.
    pub width: Option<Count>,
    /// Precision (digits for numbers, most bytes for strings).
    pub precision: Option<Count>,
    /// The conversion.
    pub kind: ConvKind,
    /// As written (`%-6d`), for messages.
    pub text: String,
}

/// A piece of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Printed as is (`%%` is one `%` here).
    Text(Vec<u8>),
    /// A conversion.
    Conv(Conv),
}

/// A parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Its pieces, in order.
    pub pieces: Vec<Piece>,
}

/// Why a format could not be read: the byte offset in the format and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Offset of the bad `%` in the format's bytes.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// The widest field and the longest precision a format may ask for.
/// SystemTap and dtrace refuse huge ones too: a `%99999999999d` would
/// make pytap build a line of that many bytes. A width or precision
/// given at run time (`%*d`) is held to the same bound.
pub const MAX_FIELD: usize = 4096;

/// A value a format prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A number.
    Long(i64),
    /// A string.
    Str(&'a [u8]),
}

impl Format {
    /// Reads a format.
    pub fn parse(bytes: &[u8]) -> Result<Format, FormatError> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'%' {
                text.push(bytes[i]);
                i += 1;
                continue;
            }
            let at = i;
            i += 1;
            if bytes.get(i) == Some(&b'%') {
                text.push(b'%');
                i += 1;
                continue;
            }
            let flags = flags(bytes, &mut i);
            let width = count(bytes, &mut i);
            let precision = if bytes.get(i) == Some(&b'.') {
                i += 1;
                Some(count(bytes, &mut i).unwrap_or(Count::Fixed(0)))
            } else {
                None
            };
            check_fields(at, width, precision)?;
            // Length modifiers mean nothing for 64-bit values.
            while matches!(bytes.get(i), Some(b'l' | b'h' | b'L' | b'z' | b'j' | b't')) {
                i += 1;
            }
            let kind = conversion(bytes.get(i).copied(), at)?;
            i += 1;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Conv(Conv {
                flags,
                width,
                precision,
                kind,
                text: String::from_utf8_lossy(&bytes[at..i]).into_owned(),
            }));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format { pieces })
    }

    /// The types of the arguments it takes, in order (`*` widths and
    /// precisions are numbers before their value).
    pub fn arg_types(&self) -> Vec<Ty> {
        self.args().into_iter().map(|(t, _)| t).collect()
    }

    /// The arguments it takes, with what each is for (`` `%d` ``, `the
    /// width of `%*s``), in order.
    pub fn args(&self) -> Vec<(Ty, String)> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            if let Piece::Conv(c) = piece {
                if c.width == Some(Count::Star) {
                    out.push((Ty::Long, format!("the width of `{}`", c.text)));
                }
                if c.precision == Some(Count::Star) {
                    out.push((Ty::Long, format!("the precision of `{}`", c.text)));
                }
                let ty = if c.kind == ConvKind::Str {
                    Ty::Str
                } else {
                    Ty::Long
                };
                out.push((ty, format!("`{}`", c.text)));
            }
        }
        out
    }

    /// Prints `args` (as many as [`Format::arg_types`] says, of those
    /// types; a missing or mistyped one prints as 0 or "").
    pub fn render(&self, args: &[Arg<'_>], out: &mut Vec<u8>) {
        let mut args = args.iter();
        let long = |args: &mut std::slice::Iter<'_, Arg<'_>>| match args.next() {
            Some(Arg::Long(v)) => *v,
            _ => 0,
        };
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Conv(c) => {
                    let mut flags = c.flags;
                    let width = match c.width {
                        Some(Count::Fixed(n)) => Some(n),
                        Some(Count::Star) => {
                            let w = long(&mut args);
                            if w < 0 {
                                flags.left = true;
                            }
                            Some(w.unsigned_abs().min(MAX_FIELD as u64) as usize)
                        }
                        None => None,
                    };
                    let precision = match c.precision {
                        Some(Count::Fixed(n)) => Some(n),
                        Some(Count::Star) => usize::try_from(long(&mut args))
                            .ok()
                            .map(|p| p.min(MAX_FIELD)),
                        None => None,
                    };
                    match c.kind {
                        ConvKind::Str => {
                            let s = match args.next() {
                                Some(Arg::Str(s)) => *s,
                                _ => b"",
                            };
                            let s = &s[..precision.map_or(s.len(), |p| p.min(s.len()))];
                            pad(out, s, width, flags.left);
                        }
                        ConvKind::Char => {
                            let c = long(&mut args) as u8;
                            pad(out, &[c], width, flags.left);
                        }
                        kind => {
                            let v = long(&mut args);
                            number(out, v, kind, flags, width, precision);
                        }
                    }
                }
            }
        }
    }
}

/// A conversion's flags (`-+ #0`).
fn flags(bytes: &[u8], i: &mut usize) -> Flags {
    let mut flags = Flags::default();
    while let Some(&c) = bytes.get(*i) {
        match c {
            b'-' => flags.left = true,
            b'+' => flags.plus = true,
            b' ' => flags.space = true,
            b'#' => flags.special = true,
            b'0' => flags.zero = true,
            _ => break,
        }
        *i += 1;
    }
    flags
}

/// A width or precision: `*` (an argument gives it) or digits.
fn count(bytes: &[u8], i: &mut usize) -> Option<Count> {
    if bytes.get(*i) == Some(&b'*') {
        *i += 1;
        return Some(Count::Star);
    }
    let start = *i;
    while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    (start < *i).then(|| {
        Count::Fixed(
            std::str::from_utf8(&bytes[start..*i])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(usize::MAX),
        )
    })
}

/// Widths and precisions beyond what pytap prints are refused.
fn check_fields(
    at: usize,
    width: Option<Count>,
    precision: Option<Count>,
) -> Result<(), FormatError> {
    for (what, c) in [("width", width), ("precision", precision)] {
        if let Some(Count::Fixed(n)) = c
            && n > MAX_FIELD
        {
            let n = if n == usize::MAX {
                "beyond 64 bits".to_string()
            } else {
                n.to_string()
            };
            return Err(FormatError {
                at,
                message: format!("a {what} of {n} (pytap prints fields of at most {MAX_FIELD})"),
            });
        }
    }
    Ok(())
}

/// The conversion a letter names (`c`: none, the format ended).
fn conversion(c: Option<u8>, at: usize) -> Result<ConvKind, FormatError> {
    Ok(match c {
        Some(b'd' | b'i') => ConvKind::Signed,
        Some(b'u') => ConvKind::Unsigned,
        Some(b'o') => ConvKind::Octal,
        Some(b'x') => ConvKind::Hex { upper: false },
        Some(b'X') => ConvKind::Hex { upper: true },
        Some(b'p') => ConvKind::Pointer,
        Some(b'c') => ConvKind::Char,
        Some(b's') => ConvKind::Str,
        Some(c @ (b'b' | b'm' | b'M')) => {
            return Err(FormatError {
                at,
                message: format!("`%{}` (binary output) is not supported yet", c as char),
            });
        }
        Some(c) => {
            return Err(FormatError {
                at,
                message: format!(
                    "`%{}` is not a conversion SystemTap knows",
                    (c as char).escape_default()
                ),
            });
        }
        None => {
            return Err(FormatError {
                at,
                message: "the format ends in the middle of a conversion".into(),
            });
        }
    })
}

fn pad(out: &mut Vec<u8>, s: &[u8], width: Option<usize>, left: bool) {
    let fill = width.unwrap_or(0).saturating_sub(s.len());
    if !left {
        out.resize(out.len() + fill, b' ');
    }
    out.extend_from_slice(s);
    if left {
        out.resize(out.len() + fill, b' ');
    }
}

/// SystemTap's `number()`.
fn number(
    out: &mut Vec<u8>,
    value: i64,
    kind: ConvKind,
    mut flags: Flags,
    width: Option<usize>,
    precision: Option<usize>,
) {
    let (base, upper, signed) = match kind {
        ConvKind::Signed => (10, false, true),
        ConvKind::Unsigned => (10, false, false),
        ConvKind::Octal => (8, false, false),
        ConvKind::Hex { upper } => (16, upper, false),
        ConvKind::Pointer => {
            flags.special = true;
            (16, false, false)
        }
        _ => (10, false, true),
    };
    if flags.left {
        flags.zero = false;
    }
    let mut size = width.map_or(-1, |w| w as i64);
    let mut num = value as u64;
    let mut sign = None;
    if signed {
        if value < 0 {
            sign = Some(b'-');
            num = value.unsigned_abs();
            size -= 1;
        } else if flags.plus {
            sign = Some(b'+');
            size -= 1;
        } else if flags.space {
            sign = Some(b' ');
            size -= 1;
        }
    }
    if flags.special {
        size -= match base {
            16 => 2,
            8 => 1,
            _ => 0,
        };
    }
    let digits: &[u8] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // The digits, least significant first (64 bits in octal: 22).
    let mut tmp = [0u8; 24];
    let mut n = 0;
    if num == 0 {
        tmp[0] = b'0';
        n = 1;
    }
    while num != 0 {
        tmp[n] = digits[(num % base) as usize];
        n += 1;
        num /= base;
    }
    let tmp = &tmp[..n];
    let precision = precision.map_or(0, |p| p as i64).max(tmp.len() as i64);
    size -= precision;
    if !flags.zero && !flags.left {
        while size > 0 {
            out.push(b' ');
            size -= 1;
        }
    }
    if let Some(s) = sign {
        out.push(s);
    }
    if flags.special {
        match base {
            8 => out.push(b'0'),
            16 => out.extend_from_slice(if upper { b"0X" } else { b"0x" }),
            _ => {}
        }
    }
    if !flags.left {
        let c = if flags.zero { b'0' } else { b' ' };
        while size > 0 {
            out.push(c);
            size -= 1;
        }
    }
    for _ in tmp.len() as i64..precision {
        out.push(b'0');
    }
    out.extend(tmp.iter().rev());
    while size > 0 {
        out.push(b' ');
        size -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(fmt: &str, args: &[Arg<'_>]) -> String {
        let f = Format::parse(fmt.as_bytes()).unwrap();
        let mut out = Vec::new();
        f.render(args, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_as_systemtap_prints_them() {
        assert_eq!(
            render(
                "%d|%5d|%-5d|%05d",
                &[Arg::Long(-3), Arg::Long(42), Arg::Long(42), Arg::Long(-42)]
            ),
            "-3|   42|42   |-0042"
        );
        assert_eq!(
            render(
                "%x %X %#x %#o %p",
                &[
                    Arg::Long(255),
                    Arg::Long(255),
                    Arg::Long(0),
                    Arg::Long(8),
                    Arg::Long(4096)
                ]
            ),
            "ff FF 0x0 010 0x1000"
        );
        assert_eq!(
            render("%u %x", &[Arg::Long(-1), Arg::Long(-1)]),
            "18446744073709551615 ffffffffffffffff"
        );
        assert_eq!(
            render("%+d % d %.3d", &[Arg::Long(5), Arg::Long(5), Arg::Long(7)]),
            "+5  5 007"
        );
    }

    #[test]
    fn strings_chars_and_stars() {
        assert_eq!(
            render(
                "[%s][%6s][%-6s][%.2s][%c][%-*s][%*d]",
                &[
                    Arg::Str(b"abc"),
                    Arg::Str(b"abc"),
                    Arg::Str(b"abc"),
                    Arg::Str(b"abc"),
                    Arg::Long(65),
                    Arg::Long(3),
                    Arg::Str(b""),
                    Arg::Long(4),
                    Arg::Long(7)
                ]
            ),
            "[abc][   abc][abc   ][ab][A][   ][   7]"
        );
        assert_eq!(render("100%% %s", &[Arg::Str(b"x")]), "100% x");
    }

    #[test]
    fn the_howto_top_header() {
        let line = render(
            "%6s %80s %6s %30s %6s\n",
            &[
                Arg::Str(b"PID"),
                Arg::Str(b"FILENAME"),
                Arg::Str(b"LINE"),
                Arg::Str(b"FUNCTION"),
                Arg::Str(b"CALLS"),
            ],
        );
        assert_eq!(line.len(), 6 + 1 + 80 + 1 + 6 + 1 + 30 + 1 + 6 + 1);
        assert!(line.starts_with("   PID "));
    }

    #[test]
    fn argument_types() {
        let f = Format::parse(b"%s %*d %-*.*s %c").unwrap();
        assert_eq!(
            f.arg_types(),
            [
                Ty::Str,
                Ty::Long,
                Ty::Long,
                Ty::Long,
                Ty::Long,
                Ty::Str,
                Ty::Long
            ]
        );
        assert!(Format::parse(b"%q").is_err());
        assert!(Format::parse(b"abc %").is_err());
        assert_eq!(Format::parse(b"%b").unwrap_err().at, 0);
    }
}
