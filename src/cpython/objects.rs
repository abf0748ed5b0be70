//! CPython object layouts per version, and decoding of captured objects.
//!
//! The `audit` marker passes its arguments as a `PyObject *` tuple. pytap
//! never runs code in the target: the probe copies the first bytes of the
//! tuple and of each element (see `engine::abi::AuditEvent`) and this module
//! turns those bytes into values, knowing where each version keeps a str's
//! characters, an int's digits or a tuple's items. The offsets below were
//! read from live interpreters (`/proc/self/mem` at `id(obj)`) of Debian's
//! 3.9, 3.11, 3.13, 3.14 and 3.15 builds (x86-64, release, GIL builds).

use std::fmt;

use super::version::PyVersion;

/// Where one CPython version keeps the fields pytap decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLayout {
    /// `PyTypeObject.tp_name`.
    pub tp_name: u16,
    /// `PyVarObject.ob_size` (tuple and bytes lengths, ints before 3.12).
    pub var_size: u16,
    /// `PyTupleObject.ob_item` (3.14 added a cached hash before the items).
    pub tuple_items: u16,
    /// `PyFloatObject.ob_fval`.
    pub float_value: u16,
    /// `PyBytesObject.ob_sval`.
    pub bytes_data: u16,
    /// `ob_digit` of ints.
    pub long_digits: u16,
    /// 3.12+: ints keep `lv_tag` (digit count << 3 | sign) instead of a signed `ob_size`.
    pub long_tag: bool,
    /// `PyASCIIObject.length`.
    pub str_length: u16,
    /// `PyASCIIObject.state` (kind, compact and ascii bits in its low byte).
    pub str_state: u16,
    /// Characters of a compact ASCII str (right after `PyASCIIObject`).
    pub str_ascii_data: u16,
    /// Characters of a compact non-ASCII str (after `PyCompactUnicodeObject`).
    pub str_compact_data: u16,
}

const BEFORE_312: ObjectLayout = ObjectLayout {
    tp_name: 24,
    var_size: 16,
    tuple_items: 24,
    float_value: 16,
    bytes_data: 32,
    long_digits: 24,
    long_tag: false,
    str_length: 16,
    str_state: 32,
    // PyASCIIObject still had `wchar_t *wstr` (removed in 3.12).
    str_ascii_data: 48,
    str_compact_data: 72,
};

const FROM_312: ObjectLayout = ObjectLayout {
    long_tag: true,
    str_ascii_data: 40,
    str_compact_data: 56,
    ..BEFORE_312
};

const FROM_314: ObjectLayout = ObjectLayout {
    tuple_items: 32,
    ..FROM_312
};

/// The layout table: the first minor version each layout applies to.
const LAYOUTS: [(u8, ObjectLayout); 3] = [(8, BEFORE_312), (12, FROM_312), (14, FROM_314)];

impl ObjectLayout {
    /// The layout of a CPython 3 version, `None` before 3.8 (no audit marker).
    /// Versions newer than the table use its last row.
    pub fn for_version(version: PyVersion) -> Option<ObjectLayout> {
        if version.major != 3 {
            return None;
        }
        LAYOUTS
            .iter()
            .rev()
            .find(|(from, _)| version.minor >= *from)
            .map(|(_, layout)| *layout)
    }
}

/// A decoded Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// An int, as decimal text (ints are unbounded).
    Int(String),
    /// A float.
    Float(f64),
    /// A str; `truncated` when only its beginning was captured.
    Str {
        /// The characters captured.
        text: String,
        /// Whether the str is longer than what was captured.
        truncated: bool,
    },
    /// A bytes object.
    Bytes {
        /// The bytes captured.
        data: Vec<u8>,
        /// Whether it is longer than what was captured.
        truncated: bool,
    },
    /// A tuple; `more` elements beyond those captured.
    Tuple {
        /// The elements captured.
        items: Vec<PyValue>,
        /// Elements not captured.
        more: usize,
    },
    /// Any other object: its type name.
    Other(String),
    /// An object whose memory could not be read.
    Unreadable,
}

/// One captured object: its type name and its first bytes.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    /// `tp_name`, if it could be read.
    pub type_name: Option<&'a str>,
    /// The object's first bytes (empty if unreadable).
    pub data: &'a [u8],
}

fn u64_at(data: &[u8], off: u16) -> Option<u64> {
    let off = usize::from(off);
    Some(u64::from_le_bytes(data.get(off..off + 8)?.try_into().ok()?))
}

/// Decodes one captured object. `elements` gives the captured elements of
/// a tuple (empty for other types).
pub fn decode(layout: &ObjectLayout, object: Captured<'_>, elements: &[Captured<'_>]) -> PyValue {
    let Some(type_name) = object.type_name else {
        return PyValue::Unreadable;
    };
    let data = object.data;
    let decoded = match type_name {
        "NoneType" => Some(PyValue::None),
        "bool" => decode_int(layout, data).map(|v| PyValue::Bool(v != "0")),
        "int" => decode_int(layout, data).map(PyValue::Int),
        "float" => {
            u64_at(data, layout.float_value).map(|bits| PyValue::Float(f64::from_bits(bits)))
        }
        "str" => decode_str(layout, data),
        "bytes" => decode_bytes(layout, data),
        "tuple" => u64_at(data, layout.var_size).map(|len| {
            let len = len as usize;
            let items: Vec<PyValue> = elements
                .iter()
                .take(len)
                .map(|e| decode(layout, *e, &[]))
                .collect();
            PyValue::Tuple {
                more: len.saturating_sub(items.len()),
                items,
            }
        }),
        other => Some(PyValue::Other(other.to_string())),
    };
    decoded.unwrap_or(PyValue::Unreadable)
}

/// The characters of a compact str's data, `kind` bytes each (1: latin-1,
/// 2: UCS-2, 4: UCS-4), as `PyUnicode_KIND` says; a code point that is no
/// char (a lone surrogate) becomes U+FFFD.
pub fn compact_chars(kind: usize, data: &[u8]) -> String {
    data.chunks_exact(kind)
        .map(|c| {
            let code = match kind {
                1 => u32::from(c[0]),
                2 => u32::from(u16::from_le_bytes([c[0], c[1]])),
                _ => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            };
            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect()
}

fn decode_str(layout: &ObjectLayout, data: &[u8]) -> Option<PyValue> {
    let length = u64_at(data, layout.str_length)? as usize;
    let state = *data.get(usize::from(layout.str_state))?;
    let kind = usize::from((state >> 2) & 7);
    let compact = state & (1 << 5) != 0;
    let ascii = state & (1 << 6) != 0;
    if !compact || !matches!(kind, 1 | 2 | 4) {
        // Legacy (non-compact) strings keep their characters elsewhere.
        return Some(PyValue::Other("str".to_string()));
    }
    let start = usize::from(if ascii {
        layout.str_ascii_data
    } else {
        layout.str_compact_data
    });
    let chars = data.get(start..).unwrap_or(&[]);
    let available = chars.len() / kind;
    let take = length.min(available);
    let text = compact_chars(kind, &chars[..take * kind]);
    Some(PyValue::Str {
        text,
        truncated: take < length,
    })
}

fn decode_bytes(layout: &ObjectLayout, data: &[u8]) -> Option<PyValue> {
    let length = u64_at(data, layout.var_size)? as usize;
    let bytes = data.get(usize::from(layout.bytes_data)..).unwrap_or(&[]);
    let take = length.min(bytes.len());
    Some(PyValue::Bytes {
        data: bytes[..take].to_vec(),
        truncated: take < length,
    })
}

/// An int's decimal text from its 30-bit digits.
fn decode_int(layout: &ObjectLayout, data: &[u8]) -> Option<String> {
    let head = u64_at(data, layout.var_size)?;
    let (negative, ndigits) = if layout.long_tag {
        // lv_tag: digit count << 3, bit 2 a flag, bits 0-1 the sign (0 +, 1 zero, 2 -).
        (head & 3 == 2, (head >> 3) as usize)
    } else {
        let size = head as i64;
        (size < 0, size.unsigned_abs() as usize)
    };
    let start = usize::from(layout.long_digits);
    let digits: Vec<u32> = (0..ndigits)
        .map(|i| {
            let at = start + 4 * i;
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x3fff_ffff)
        })
        .collect::<Option<_>>()?;
    let magnitude = digits_to_decimal(&digits);
    Some(if negative && magnitude != "0" {
        format!("-{magnitude}")
    } else {
        magnitude
    })
}

/// Base-2^30 little-endian digits to decimal, by repeated division by 10^9.
fn digits_to_decimal(digits: &[u32]) -> String {
    let mut n: Vec<u32> = digits.to_vec();
    while n.last() == Some(&0) {
        n.pop();
    }
    if n.is_empty() {
        return "0".to_string();
    }
    let mut groups = Vec::new();
    while !n.is_empty() {
        let mut rem: u64 = 0;
        for d in n.iter_mut().rev() {
            let cur = (rem << 30) | u64::from(*d);
            *d = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
        while n.last() == Some(&0) {
            n.pop();
        }
    }
    let mut out = groups.pop().map(|g| g.to_string()).unwrap_or_default();
    for g in groups.iter().rev() {
        out.push_str(&format!("{g:09}"));
    }
    out
}

/// The characters of a str as Python's `repr` writes them between its
/// quotes: `'`, `\\`, `\n`, `\r`, `\t` and the C0, DEL and C1 controls
/// escaped (a traced program's strings must not drive the terminal).
fn write_repr_chars(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                write!(f, "\\x{:02x}", c as u32)?
            }
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

impl fmt::Display for PyValue {
    /// Python's `repr`, with `...` where only part was captured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::None => f.write_str("None"),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::Int(text) => f.write_str(text),
            PyValue::Float(v) => write_float(f, *v),
            PyValue::Str { text, truncated } => {
                f.write_str("'")?;
                write_repr_chars(f, text)?;
                f.write_str(if *truncated { "'..." } else { "'" })
            }
            PyValue::Bytes { data, truncated } => {
                f.write_str("b'")?;
                for &b in data {
                    match b {
                        b'\'' => f.write_str("\\'")?,
                        b'\\' => f.write_str("\\\\")?,
                        b'\n' => f.write_str("\\n")?,
                        b'\r' => f.write_str("\\r")?,
                        b'\t' => f.write_str("\\t")?,
                        0x20..=0x7e => write!(f, "{}", b as char)?,
                        _ => write!(f, "\\x{b:02x}")?,
                    }
                }
                f.write_str(if *truncated { "'..." } else { "'" })
            }
            PyValue::Tuple { items, more } => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                if *more > 0 {
                    write!(f, ", ...{more} more")?;
                } else if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            PyValue::Other(type_name) => {
                f.write_str("<")?;
                write_repr_chars(f, type_name)?;
                f.write_str(" object>")
            }
            PyValue::Unreadable => f.write_str("<unreadable>"),
        }
    }
}

/// Python's float repr (`float_repr_style = 'short'`): the shortest digits
/// that round-trip, in fixed notation when the decimal exponent is in
/// [-4, 16), else scientific with a signed two-digit exponent.
fn write_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.is_nan() {
        return f.write_str("nan");
    }
    if v.is_infinite() {
        return f.write_str(if v > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    f.write_str(sign)?;
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            write!(f, "0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            write!(f, "{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            write!(f, "{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let sign = if exp < 0 { '-' } else { '+' };
        if rest.is_empty() {
            write!(f, "{first}e{sign}{:02}", exp.abs())
        } else {
            write!(f, "{first}.{rest}e{sign}{:02}", exp.abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .flat_map(|w| {
                (0..w.len())
                    .step_by(2)
                    .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
            })
            .collect()
    }

    fn v(minor: u8) -> ObjectLayout {
        ObjectLayout::for_version(PyVersion::new(3, minor, 0)).unwrap()
    }

    fn one(layout: &ObjectLayout, type_name: &str, data: &[u8]) -> PyValue {
        decode(
            layout,
            Captured {
                type_name: Some(type_name),
                data,
            },
            &[],
        )
    }

    // Memory dumps of live objects (see the module docs for how they were taken).
    #[test]
    fn python_3_11_objects() {
        let l = v(11);
        let ascii = hex(
            "0300000000000000 8099950000000000 0500000000000000 da5c0595c41b25f0 e581173700000000 0000000000000000 68656c6c6f000000",
        );
        assert_eq!(one(&l, "str", &ascii).to_string(), "'hello'");
        let nonascii = hex(
            "0300000000000000 8099950000000000 0500000000000000 92fcbcf223a89cb6 a4d7a30000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 68e96c6c6f000000",
        );
        assert_eq!(one(&l, "str", &nonascii).to_string(), "'héllo'");
        let neg = hex("04ca9a3b00000000 c09c950000000000 ffffffffffffffff 0500000000000000");
        assert_eq!(one(&l, "int", &neg), PyValue::Int("-5".into()));
        let zero = hex("9aca9a3b00000000 c09c950000000000 0000000000000000 0000000000000000");
        assert_eq!(one(&l, "int", &zero), PyValue::Int("0".into()));
        let big = hex(
            "0100000000000000 c09c950000000000 0300000000000000 0000000000000000 0004000000000000",
        );
        assert_eq!(
            one(&l, "int", &big),
            PyValue::Int("1180591620717411303424".into())
        ); // 2**70
        let b = hex(
            "0300000000000000 209b950000000000 0300000000000000 cfbf737b4f2307ab 78797a0000000000",
        );
        assert_eq!(one(&l, "bytes", &b).to_string(), "b'xyz'");
        let f = hex("0400000000000000 0019950000000000 000000000000f83f");
        assert_eq!(one(&l, "float", &f).to_string(), "1.5");
        let t = hex("3500000000000000 2078950000000000 0100000000000000 0100000000000000");
        assert_eq!(one(&l, "bool", &t), PyValue::Bool(true));
    }

    #[test]
    fn python_3_14_objects() {
        let l = v(14);
        assert_eq!(l.tuple_items, 32);
        let ascii = hex(
            "0300000000000000 80a7b50000000000 0500000000000000 854dc918598444e7 6500000000000000 68656c6c6f000000",
        );
        assert_eq!(one(&l, "str", &ascii).to_string(), "'hello'");
        let nonascii = hex(
            "0300000000000000 80a7b50000000000 0500000000000000 88729c410a4cd03d 2400000000000000 0000000000000000 0000000000000000 68e96c6c6f000000",
        );
        assert_eq!(one(&l, "str", &nonascii).to_string(), "'héllo'");
        let seven = hex("000000c000000500 c0aab50000000000 0c00000000000000 0700000000000000");
        assert_eq!(one(&l, "int", &seven), PyValue::Int("7".into()));
        let neg = hex("000000c000000500 c0aab50000000000 0e00000000000000 0500000000000000");
        assert_eq!(one(&l, "int", &neg), PyValue::Int("-5".into()));
        let zero = hex("000000c000000500 c0aab50000000000 0500000000000000 0000000000000000");
        assert_eq!(one(&l, "int", &zero), PyValue::Int("0".into()));
        let falsy = hex("000000c000000500 207cb50000000000 0100000000000000 0000000000000000");
        assert_eq!(one(&l, "bool", &falsy), PyValue::Bool(false));
    }

    #[test]
    fn tuples_nest_and_count_what_was_not_captured() {
        let l = v(13);
        let tuple = |len: u64| {
            let mut d = vec![0u8; 24];
            d[16..24].copy_from_slice(&len.to_le_bytes());
            d
        };
        let float = hex("0400000000000000 a0eb9f0000000000 0000000000000c40"); // 3.5
        let two = hex("ffffffff00000000 c06ea00000000000 0800000000000000 0200000000000000");
        let outer = tuple(2);
        let elements = [
            Captured {
                type_name: Some("int"),
                data: &two,
            },
            Captured {
                type_name: Some("float"),
                data: &float,
            },
        ];
        let value = decode(
            &l,
            Captured {
                type_name: Some("tuple"),
                data: &outer,
            },
            &elements,
        );
        assert_eq!(value.to_string(), "(2, 3.5)");
        let long = tuple(9);
        let value = decode(
            &l,
            Captured {
                type_name: Some("tuple"),
                data: &long,
            },
            &elements,
        );
        assert_eq!(value.to_string(), "(2, 3.5, ...7 more)");
        let single = tuple(1);
        let value = decode(
            &l,
            Captured {
                type_name: Some("tuple"),
                data: &single,
            },
            &elements,
        );
        assert_eq!(value.to_string(), "(2,)");
    }

    #[test]
    fn truncated_unreadable_and_other() {
        let l = v(13);
        // A 300-character ASCII str of which 16 characters were captured.
        let mut s = vec![0u8; 40];
        s[16..24].copy_from_slice(&300u64.to_le_bytes());
        s[32] = 0x64; // kind 1, compact, ascii
        s.extend_from_slice(b"0123456789abcdef");
        assert_eq!(one(&l, "str", &s).to_string(), "'0123456789abcdef'...");
        assert_eq!(one(&l, "code", &s).to_string(), "<code object>");
        assert_eq!(one(&l, "NoneType", &[]).to_string(), "None");
        assert_eq!(one(&l, "int", &[1, 2, 3]), PyValue::Unreadable);
        assert_eq!(
            decode(
                &l,
                Captured {
                    type_name: None,
                    data: &s
                },
                &[]
            ),
            PyValue::Unreadable
        );
        assert_eq!(one(&l, "str", &[]), PyValue::Unreadable);
    }

    #[test]
    fn reprs_escape_like_python() {
        let s = PyValue::Str {
            text: "it's\n\u{1}".into(),
            truncated: false,
        };
        assert_eq!(s.to_string(), r"'it\'s\n\x01'");
        let b = PyValue::Bytes {
            data: vec![0, b'a', 0xff],
            truncated: false,
        };
        assert_eq!(b.to_string(), r"b'\x00a\xff'");
        // Each pair checked against CPython's repr().
        for (v, repr) in [
            (1e22, "1e+22"),
            (2.0, "2.0"),
            (3.5, "3.5"),
            (0.1, "0.1"),
            (-0.0001, "-0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1234567890123456.7, "1234567890123456.8"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-1.5e-300, "-1.5e-300"),
            (100.0, "100.0"),
        ] {
            assert_eq!(PyValue::Float(v).to_string(), repr, "{v:e}");
        }
    }

    #[test]
    fn layout_table() {
        assert_eq!(ObjectLayout::for_version(PyVersion::new(3, 7, 0)), None);
        assert_eq!(v(9), BEFORE_312);
        assert_eq!(v(12), FROM_312);
        assert_eq!(v(15), FROM_314);
        assert_eq!(v(20), FROM_314);
        assert_eq!(digits_to_decimal(&[0, 0, 1024]), "1180591620717411303424");
        assert_eq!(digits_to_decimal(&[5]), "5");
        assert_eq!(digits_to_decimal(&[0, 1]), "1073741824");
    }
}
