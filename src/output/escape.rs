//! Strings from the traced program made safe for where they are written.
//!
//! Function, file, module and thread names are the target's to choose: a
//! program can name a function `"x\x1b]0;pwned\x07"` or its thread
//! `"\x1b[31m"`. Written raw, such a name would drive the terminal pytap's
//! output is shown on (set its title, recolour it, move the cursor), and it
//! would make a JSON line or an SVG file ill-formed. So every name goes out
//! through one of these:
//!
//! - [`json_into`]: a JSON string literal. JSON itself only requires `"`,
//!   `\` and C0 controls to be escaped; DEL and the C1 controls (U+0080 to
//!   U+009F, which some terminals obey as 8-bit CSI and OSC) are escaped too,
//!   so a JSON line printed on a terminal is as safe as text.
//! - [`text_into`] and [`text`]: text for a terminal or a file: C0, DEL and
//!   C1 controls as `\xNN`, the way Python's `repr` spells them; everything
//!   else as it is.
//!
//! Bytes that are not UTF-8 become U+FFFD, as `String::from_utf8_lossy`
//! makes them. Names are nearly always UTF-8 with nothing to escape, so
//! both check that first and copy the string whole: this runs for every
//! event `trace` writes.

use std::borrow::Cow;

/// What a byte needs: nothing, an escape (ASCII controls, and `"` and `\`
/// in JSON), or a look at the next byte (0xC2 starts U+0080 to U+00BF,
/// which hold the C1 controls).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Escape,
    Lead,
}

const fn classes(json: bool) -> [Class; 256] {
    let mut t = [Class::Plain; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = Class::Escape;
        b += 1;
    }
    t[0x7f] = Class::Escape;
    t[0xc2] = Class::Lead;
    if json {
        t[b'"' as usize] = Class::Escape;
        t[b'\\' as usize] = Class::Escape;
    }
    t
}

static JSON: [Class; 256] = classes(true);
static TEXT: [Class; 256] = classes(false);

/// Whether every byte of `s` is printable ASCII (0x20 to 0x7e) that needs
/// no escape (in `json`, neither `"` nor `\`): the string is written as it
/// is. Nearly every name is; written without branches, the check is
/// vectorised by the compiler, where the escapers' walk looks each byte up
/// (a tenth of `trace --format jsonl`'s time per event).
fn printable_ascii(s: &[u8], json: bool) -> bool {
    let mut escape = false;
    for &b in s {
        escape |= b.wrapping_sub(0x20) >= 0x5f;
        escape |= json & ((b == b'"') | (b == b'\\'));
    }
    !escape
}

/// Whether `s[i..]` starts with a C1 control (U+0080 to U+009F, encoded
/// as 0xC2 0x80..=0x9F), given that `s[i]` is 0xC2.
fn c1_at(s: &[u8], i: usize) -> Option<u8> {
    s.get(i + 1).copied().filter(|b| (0x80..=0x9f).contains(b))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` (lossy UTF-8) as a JSON string literal, quotes included.
pub fn json_into(out: &mut Vec<u8>, bytes: &[u8]) {
    json_prefixed_into(out, "", bytes);
}

/// Appends `prefix` then `bytes` (lossy UTF-8) as one JSON string literal;
/// `prefix` is pytap's own and needs no escaping.
pub fn json_prefixed_into(out: &mut Vec<u8>, prefix: &str, bytes: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    if printable_ascii(bytes, true) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => json_escaped(out, s.as_bytes()),
        Err(_) => json_escaped(out, String::from_utf8_lossy(bytes).as_bytes()),
    }
    out.push(b'"');
}

/// Appends UTF-8 `s` escaped for a JSON string's inside.
fn json_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let code = match JSON[b as usize] {
            Class::Plain => {
                i += 1;
                continue;
            }
            Class::Escape => b,
            Class::Lead => match c1_at(s, i) {
                Some(c1) => c1,
                None => {
                    i += 1;
                    continue;
                }
            },
        };
        out.extend_from_slice(&s[start..i]);
        match code {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]),
        }
        // A C1 control is two bytes.
        i += if b == 0xc2 { 2 } else { 1 };
        start = i;
    }
    out.extend_from_slice(&s[start..]);
}

/// Appends `bytes` (lossy UTF-8) as text, controls escaped.
pub fn text_into(out: &mut String, bytes: &[u8]) {
    if printable_ascii(bytes, false) {
        // (Printable ASCII is UTF-8.)
        out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => text_escaped(out, s),
        Err(_) => text_escaped(out, &String::from_utf8_lossy(bytes)),
    }
}

/// `s` as text, controls escaped (borrowed when there are none).
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| TEXT[b as usize] != Class::Plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    text_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Appends `s` with its controls as `\xNN`.
fn text_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let code = match TEXT[b as usize] {
            Class::Plain => {
                i += 1;
                continue;
            }
            Class::Escape => b,
            Class::Lead => match c1_at(bytes, i) {
                Some(c1) => c1,
                None => {
                    i += 1;
                    continue;
                }
            },
        };
        // Both ends lie on character boundaries: `i` is at an ASCII byte
        // or the lead byte of a two-byte character.
        out.push_str(&s[start..i]);
        out.push_str("\\x");
        out.push(char::from(HEX[usize::from(code >> 4)]));
        out.push(char::from(HEX[usize::from(code & 15)]));
        i += if b == 0xc2 { 2 } else { 1 };
        start = i;
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        json_into(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_fast_path_takes_exactly_the_bytes_the_escapers_keep() {
        for b in 0..=255u8 {
            let plain = |table: &[Class; 256]| b < 0x80 && table[b as usize] == Class::Plain;
            assert_eq!(printable_ascii(&[b], true), plain(&JSON), "{b:#x}");
            assert_eq!(printable_ascii(&[b], false), plain(&TEXT), "{b:#x}");
            // One such byte anywhere in a long name.
            let mut name = *b"/usr/lib/python3.11/importlib/_bootstrap_external.py";
            name[37] = b;
            assert_eq!(printable_ascii(&name, true), plain(&JSON), "{b:#x}");
        }
        assert!(printable_ascii(b"", true));
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_every_control() {
        assert_eq!(json(b"fib"), "\"fib\"");
        assert_eq!(json(b"a\"b\\c\nd\re\tf"), r#""a\"b\\c\nd\re\tf""#);
        assert_eq!(json(b"x\x1b]0;pwned\x07"), r#""x\u001b]0;pwned\u0007""#);
        assert_eq!(
            json("\u{7f}\u{9b}\u{85}é€".as_bytes()),
            "\"\\u007f\\u009b\\u0085é€\""
        );
        // 0xC2 before a byte that is not a C1 control is an ordinary
        // character (U+00A0 to U+00BF).
        assert_eq!(json("\u{a9}".as_bytes()), "\"\u{a9}\"");
        assert_eq!(json(b"l\xff"), "\"l\u{fffd}\"");
        let mut out = Vec::new();
        json_prefixed_into(&mut out, "…", b"end.py");
        assert_eq!(out, "\"…end.py\"".as_bytes());
        // Whatever the bytes, the literal parses back to their lossy text.
        for bytes in [
            &b"\x00\x01\x1f\x7f"[..],
            b"\xc2",
            b"\xc2\x9f\xc2",
            b"\"\\\xe2\x82",
        ] {
            let back: String = serde_json::from_str(&json(bytes)).unwrap();
            assert_eq!(back, String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn text_shows_controls_as_python_does_and_the_rest_as_it_is() {
        assert_eq!(text("fib"), Cow::Borrowed("fib"));
        assert_eq!(text("x\x1b]0;pwned\x07"), "x\\x1b]0;pwned\\x07");
        assert_eq!(text("\x1b[31m"), "\\x1b[31m");
        assert_eq!(text("a\u{9b}b\u{7f}\t"), "a\\x9bb\\x7f\\x09");
        assert_eq!(text("é \u{a0} \"q\" \\"), "é \u{a0} \"q\" \\");
        let mut out = String::new();
        text_into(&mut out, b"l\xff\n");
        assert_eq!(out, "l\u{fffd}\\x0a");
    }
}
