//! SystemTap's `printf` formats and histogram drawing, byte for byte.
//!
//! [`Format::parse`] reads a format once, at compile time, so the checker
//! can match conversions with arguments; [`Format::render`] prints values
//! as SystemTap's runtime (`runtime/vsprintf.c`, itself Linux's
//! `vsnprintf`) does: 64-bit numbers, `%p` as `%#x`, `%#x` of 0 as `0x0`.
//! [`draw_histogram`] is SystemTap's `_stp_stat_print_histogram`.

use crate::ir::{HistShape, Ty};

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
            let mut flags = Flags::default();
            while let Some(&c) = bytes.get(i) {
                match c {
                    b'-' => flags.left = true,
                    b'+' => flags.plus = true,
                    b' ' => flags.space = true,
                    b'#' => flags.special = true,
                    b'0' => flags.zero = true,
                    _ => break,
                }
                i += 1;
            }
            let count = |i: &mut usize| -> Option<Count> {
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
            };
            let width = count(&mut i);
            let precision = if bytes.get(i) == Some(&b'.') {
                i += 1;
                Some(count(&mut i).unwrap_or(Count::Fixed(0)))
            } else {
                None
            };
            // Length modifiers mean nothing for 64-bit values.
            while matches!(bytes.get(i), Some(b'l' | b'h' | b'L' | b'z' | b'j' | b't')) {
                i += 1;
            }
            let kind = match bytes.get(i) {
                Some(b'd' | b'i') => ConvKind::Signed,
                Some(b'u') => ConvKind::Unsigned,
                Some(b'o') => ConvKind::Octal,
                Some(b'x') => ConvKind::Hex { upper: false },
                Some(b'X') => ConvKind::Hex { upper: true },
                Some(b'p') => ConvKind::Pointer,
                Some(b'c') => ConvKind::Char,
                Some(b's') => ConvKind::Str,
                Some(&c @ (b'b' | b'm' | b'M')) => {
                    return Err(FormatError {
                        at,
                        message: format!("`%{}` (binary output) is not supported yet", c as char),
                    });
                }
                Some(&c) => {
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
            };
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
                            Some(w.unsigned_abs().min(4096) as usize)
                        }
                        None => None,
                    };
                    let precision = match c.precision {
                        Some(Count::Fixed(n)) => Some(n),
                        Some(Count::Star) => usize::try_from(long(&mut args)).ok(),
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
    let mut tmp = Vec::new();
    if num == 0 {
        tmp.push(b'0');
    }
    while num != 0 {
        tmp.push(digits[(num % base) as usize]);
        num /= base;
    }
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

/// The log2 bucket of a value (SystemTap's `_stp_val_to_bucket`): 64 is
/// zero, 65 + k holds `[2^k, 2^(k+1))`, below 64 the negatives.
pub fn log_bucket(value: i64) -> usize {
    if value == 0 {
        return 64;
    }
    let magnitude = value.unsigned_abs();
    let bits = 64 - magnitude.leading_zeros() as usize;
    if value < 0 {
        128 - (64 + bits)
    } else {
        64 + bits
    }
}

/// The linear bucket of a value: 0 underflow, `buckets - 1` overflow.
pub fn linear_bucket(value: i64, start: i64, interval: i64, buckets: usize) -> usize {
    let v = value.wrapping_sub(start);
    let bucket = if v < 0 {
        0
    } else {
        (v as u64 / interval as u64).saturating_add(1)
    };
    bucket.min(buckets as u64 - 1) as usize
}

/// The bucket `value` falls in, for `shape`.
pub fn bucket(shape: HistShape, value: i64) -> usize {
    match shape {
        HistShape::Log => log_bucket(value),
        HistShape::Linear {
            start, interval, ..
        } => linear_bucket(value, start, interval, shape.buckets()),
    }
}

fn bucket_value(num: usize) -> i64 {
    if num == 64 {
        0
    } else if num < 64 {
        (i64::MIN) >> num
    } else {
        1i64 << (num - 65)
    }
}

fn needed_space(v: i64) -> usize {
    if v == 0 {
        return 1;
    }
    let sign = usize::from(v < 0);
    sign + v.unsigned_abs().to_string().len()
}

/// Draws a histogram as SystemTap's `print(@hist_*(x))` does (50 columns
/// of `@`, zero rows elided beyond two, a blank line at the end).
pub fn draw_histogram(shape: HistShape, counts: &[u64], out: &mut Vec<u8>) {
    const WIDTH: u64 = 50;
    let buckets = counts.len();
    if buckets == 0 {
        return;
    }
    let mut low: i64 = -1;
    let mut high: usize = 0;
    let mut max = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && low == -1 {
            low = i as i64;
        }
        if c > 0 {
            high = i;
        }
        max = max.max(c);
    }
    let linear = matches!(shape, HistShape::Linear { .. });
    for _ in 0..2 {
        if linear {
            if low > 0 {
                low -= 1;
            }
        } else if low != 64 && low > 0 {
            low -= 1;
        }
        if high < buckets - 1 {
            high += 1;
        }
    }
    let (mut under, mut over) = (false, false);
    if linear {
        if low == 0 && counts[0] == 0 {
            low += 1;
        }
        if high == buckets - 1 && counts[high] == 0 {
            high -= 1;
        }
        under = low == 0;
        over = high == buckets - 1;
    }
    let low = low.max(0) as usize;
    let scale = if max <= WIDTH { 1 } else { max.div_ceil(WIDTH) };
    let cnt_space = needed_space(max as i64);
    let val_space = match shape {
        HistShape::Linear {
            start, interval, ..
        } => (needed_space(start) + usize::from(under))
            .max(needed_space(start + interval * high as i64) + usize::from(over)),
        HistShape::Log => needed_space(bucket_value(high)).max(needed_space(bucket_value(low))),
    }
    .max(5);
    out.extend_from_slice(format!("{:>val_space$} |", "value").as_bytes());
    out.extend(std::iter::repeat_n(b'-', WIDTH as usize));
    out.extend_from_slice(b" count\n");
    let mut eliding = false;
    for i in low..=high {
        let (from, to) = (i.saturating_sub(2).max(low), (i + 2).min(high));
        if (from..=to).all(|k| counts[k] == 0) {
            eliding = true;
            continue;
        }
        if eliding {
            out.extend_from_slice(format!("{:val_space$} ~\n", "").as_bytes());
            eliding = false;
        }
        let (val, prefix) = match shape {
            HistShape::Linear {
                start, interval, ..
            } => {
                if i == 0 {
                    (start, "<")
                } else if i == buckets - 1 {
                    (start + (i as i64 - 2) * interval, ">")
                } else {
                    (start + (i as i64 - 1) * interval, "")
                }
            }
            HistShape::Log => (bucket_value(i), ""),
        };
        let pad = val_space.saturating_sub(needed_space(val));
        out.extend_from_slice(format!("{prefix:>pad$}{val} |").as_bytes());
        let bar = counts[i] / scale;
        out.extend(std::iter::repeat_n(b'@', bar as usize));
        let field = (WIDTH - bar) as usize + 1 + cnt_space;
        out.extend_from_slice(format!("{:>field$}\n", counts[i]).as_bytes());
    }
    out.push(b'\n');
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

    #[test]
    fn log_buckets() {
        assert_eq!(log_bucket(0), 64);
        assert_eq!(log_bucket(1), 65);
        assert_eq!(log_bucket(2), 66);
        assert_eq!(log_bucket(3), 66);
        assert_eq!(log_bucket(4), 67);
        assert_eq!(log_bucket(-1), 63);
        assert_eq!(log_bucket(i64::MAX), 127);
        assert_eq!(bucket_value(65), 1);
        assert_eq!(bucket_value(67), 4);
        assert_eq!(bucket_value(63), -1);
    }

    #[test]
    fn a_log_histogram_drawn_as_systemtap_draws_it() {
        let mut counts = vec![0u64; 128];
        for v in [1, 2, 3, 4, 5, 6, 7, 8, 100] {
            counts[log_bucket(v)] += 1;
        }
        let mut out = Vec::new();
        draw_histogram(HistShape::Log, &counts, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "value |-------------------------------------------------- count\n    0 |                                                   0\n    1 |@                                                  1\n    2 |@@                                                 2\n    4 |@@@@                                               4\n    8 |@                                                  1\n   16 |                                                   0\n   32 |                                                   0\n   64 |@                                                  1\n  128 |                                                   0\n  256 |                                                   0\n\n"
        );
    }

    #[test]
    fn a_linear_histogram_elides_long_runs_of_zeros() {
        let shape = HistShape::Linear {
            start: 0,
            stop: 100,
            interval: 10,
        };
        let mut counts = vec![0u64; shape.buckets()];
        for v in [5, 5, 95, 250] {
            counts[bucket(shape, v)] += 1;
        }
        let mut out = Vec::new();
        draw_histogram(shape, &counts, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "value |-------------------------------------------------- count\n    0 |@@                                                 2\n   10 |                                                   0\n   20 |                                                   0\n      ~\n   70 |                                                   0\n   80 |                                                   0\n   90 |@                                                  1\n  100 |                                                   0\n >100 |@                                                  1\n\n"
        );
    }
}
