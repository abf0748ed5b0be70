//! A small protobuf wire-format encoder (pure: it writes into a byte
//! buffer it owns), enough for Perfetto's trace format and pprof's
//! profiles: varints, packed repeated varints, and length-delimited
//! fields (bytes, strings and nested messages).
//!
//! Nested messages are written in place, into the one reusable buffer: a
//! message opened with [`Encoder::begin`] reserves one byte for its length,
//! and [`Encoder::end`] writes the length there, moving the message's bytes
//! up in the rare case its length needs more than one varint byte. Every
//! varint is written in its canonical (shortest) form.

/// Wire type of varint fields (ints, bools, enums).
const VARINT: u32 = 0;
/// Wire type of length-delimited fields (bytes, strings, messages).
const LEN: u32 = 2;

/// Appends `v` as a varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// How many bytes `v` takes as a varint.
pub fn varint_len(v: u64) -> usize {
    // 1 + (bits above the first 7) / 7, with 0 taking one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes protobuf fields into a growing buffer, which the caller takes
/// the bytes of ([`Encoder::as_bytes`]) and clears to reuse.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    /// Where each open message's reserved length byte is, innermost last.
    open: Vec<usize>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// The bytes written so far (complete only when no message is open).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many bytes have been written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets what was written (and any open message), keeping the
    /// buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.open.clear();
    }

    fn tag(&mut self, field: u32, wire: u32) {
        put_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
    }

    /// An unsigned varint field (`uint32`, `uint64`, enums).
    pub fn uint(&mut self, field: u32, v: u64) {
        self.tag(field, VARINT);
        put_varint(&mut self.buf, v);
    }

    /// A signed `int32`/`int64` field (negative values take ten bytes, as
    /// protobuf encodes them).
    pub fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    /// A `bool` field.
    pub fn bool(&mut self, field: u32, v: bool) {
        self.uint(field, u64::from(v));
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        self.tag(field, LEN);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// A packed repeated varint field (`repeated uint64`, `repeated int64`
    /// of non-negative values): one length-delimited run of varints, as
    /// proto3 writes them; nothing when `values` is empty.
    pub fn packed(&mut self, field: u32, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        self.tag(field, LEN);
        let len: usize = values.iter().map(|v| varint_len(*v)).sum();
        put_varint(&mut self.buf, len as u64);
        for v in values {
            put_varint(&mut self.buf, *v);
        }
    }

    /// Opens a nested message as field `field`: what follows, up to the
    /// matching [`Encoder::end`], is its content.
    pub fn begin(&mut self, field: u32) {
        self.tag(field, LEN);
        self.open.push(self.buf.len());
        self.buf.push(0);
    }

    /// Closes the innermost open message (does nothing if none is open).
    pub fn end(&mut self) {
        let Some(at) = self.open.pop() else {
            return;
        };
        let content = at + 1;
        let len = self.buf.len() - content;
        if len < 0x80 {
            self.buf[at] = len as u8;
            return;
        }
        // The length needs more than the byte reserved: move the content up.
        let n = varint_len(len as u64);
        let old_end = self.buf.len();
        self.buf.resize(old_end + n - 1, 0);
        self.buf.copy_within(content..old_end, at + n);
        let mut v = len as u64;
        for b in &mut self.buf[at..at + n] {
            *b = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
            v >>= 7;
        }
    }

    /// How many messages are open.
    pub fn depth(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A decoded field's value.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Value {
        Varint(u64),
        Bytes(Vec<u8>),
    }

    /// Decodes one message's fields (varint and length-delimited only), or
    /// `None` on malformed input.
    pub(crate) fn decode(mut b: &[u8]) -> Option<Vec<(u32, Value)>> {
        fn varint(b: &mut &[u8]) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&byte, rest) = b.split_first()?;
                *b = rest;
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Some(v);
                }
            }
            None
        }
        let mut fields = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b)?;
            let field = (key >> 3) as u32;
            match key & 7 {
                0 => fields.push((field, Value::Varint(varint(&mut b)?))),
                2 => {
                    let len = varint(&mut b)? as usize;
                    let (data, rest) = (b.get(..len)?, b.get(len..)?);
                    fields.push((field, Value::Bytes(data.to_vec())));
                    b = rest;
                }
                _ => return None,
            }
        }
        Some(fields)
    }

    /// A decoded message, with lookups by field number.
    pub(crate) struct Msg(pub(crate) Vec<(u32, Value)>);

    impl Msg {
        /// Decodes `b` (panics if malformed: for tests).
        pub(crate) fn parse(b: &[u8]) -> Msg {
            Msg(decode(b).expect("well-formed protobuf"))
        }

        /// The first varint field `n`.
        pub(crate) fn num(&self, n: u32) -> Option<u64> {
            self.0.iter().find_map(|(k, v)| match v {
                Value::Varint(x) if *k == n => Some(*x),
                _ => None,
            })
        }

        /// Every length-delimited field `n`.
        pub(crate) fn all(&self, n: u32) -> Vec<&[u8]> {
            (self.0.iter())
                .filter_map(|(k, v)| match v {
                    Value::Bytes(b) if *k == n => Some(b.as_slice()),
                    _ => None,
                })
                .collect()
        }

        /// The first length-delimited field `n`, as text.
        pub(crate) fn text(&self, n: u32) -> Option<String> {
            let b = self.all(n).first().copied()?;
            Some(String::from_utf8_lossy(b).into_owned())
        }
    }

    #[test]
    fn varints() {
        for (v, bytes) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (u64::MAX, vec![0xff; 9].into_iter().chain([1]).collect()),
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len(), "{v}");
        }
    }

    #[test]
    fn fields() {
        let mut e = Encoder::new();
        e.uint(1, 150);
        e.int(2, -1);
        e.bool(3, true);
        e.string(4, "hi");
        assert_eq!(
            e.as_bytes(),
            [
                0x08, 0x96, 0x01, // 1: 150
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // 2: -1
                0x18, 0x01, // 3: true
                0x22, 0x02, b'h', b'i', // 4: "hi"
            ]
        );
    }

    #[test]
    fn packed_varints() {
        let mut e = Encoder::new();
        e.packed(1, &[]);
        assert!(e.is_empty());
        e.packed(4, &[3, 270, 86942]);
        // The example of protobuf's encoding guide.
        assert_eq!(
            e.as_bytes(),
            [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]
        );
    }

    #[test]
    fn nested_short_and_long() {
        let mut e = Encoder::new();
        e.begin(1);
        e.uint(1, 7);
        e.begin(2);
        let long = "x".repeat(200);
        e.string(3, &long);
        e.end();
        e.begin(4);
        e.end();
        e.end();
        assert_eq!(e.depth(), 0);
        let outer = decode(e.as_bytes()).unwrap();
        assert_eq!(outer.len(), 1);
        let Value::Bytes(msg) = &outer[0].1 else {
            panic!("not bytes")
        };
        let inner = decode(msg).unwrap();
        assert_eq!(inner[0], (1, Value::Varint(7)));
        let Value::Bytes(two) = &inner[1].1 else {
            panic!("not bytes")
        };
        assert_eq!(inner[1].0, 2);
        assert_eq!(
            decode(two).unwrap(),
            vec![(3, Value::Bytes(long.into_bytes()))]
        );
        assert_eq!(inner[2], (4, Value::Bytes(vec![])));
        // Canonical: the 203-byte message's length takes two bytes.
        assert_eq!(&msg[2..5], [0x12, 0xcb, 0x01]);
    }

    #[test]
    fn end_without_begin_is_harmless() {
        let mut e = Encoder::new();
        e.end();
        assert!(e.is_empty());
        e.begin(1);
        e.clear();
        e.end();
        assert_eq!(e.len(), 0);
    }
}
