//! Line numbers from a code object's line table, as each CPython version
//! computes them itself (`PyCode_Addr2Line`).
//!
//! A frame read from memory gives a code object and a position in its
//! bytecode; the line is in a table the code object keeps, in one of three
//! formats:
//!
//! - 3.8–3.9, `co_lnotab`: pairs (address increment, signed line
//!   increment); a line holds from its address up to the next pair's.
//! - 3.10, `co_linetable` (PEP 626): pairs (byte length of a range, signed
//!   line delta), a delta of -128 meaning the range has no line.
//! - 3.11 and later, the location table (`Objects/locations.md`): entries
//!   whose first byte is `1CCCCLLL` (length − 1 in code units, a code that
//!   says how the line and columns follow), then varints.
//!
//! [`LineTable::decode`] turns a table into address ranges once (a
//! sampler asks for the same code object's lines again and again), and
//! [`LineTable::line_at`] answers for a byte offset. Tables come from
//! another process: a table that ends mid-entry keeps the ranges decoded
//! before, and nothing here panics on any input (a fuzz target holds it
//! to that).

/// Which format a version's line table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTableKind {
    /// `co_lnotab`, 3.8–3.9.
    Lnotab,
    /// `co_linetable` of 3.10 (PEP 626 ranges).
    Pep626,
    /// The location table of 3.11 and later.
    Locations,
}

impl LineTableKind {
    /// The format of CPython 3.`minor`.
    pub fn for_minor(minor: u8) -> LineTableKind {
        match minor {
            ..=9 => LineTableKind::Lnotab,
            10 => LineTableKind::Pep626,
            _ => LineTableKind::Locations,
        }
    }
}

/// One range of bytecode and its line (`None`: no line, as `co_lines()`
/// says for instructions the compiler gave none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    /// First byte offset of the range.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
    /// Its line.
    pub line: Option<u32>,
}

/// A decoded line table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineTable {
    ranges: Vec<LineRange>,
    first_line: u32,
}

/// The most ranges kept of one table: CPython's own readers bound theirs
/// too (a 64 KiB table has at most that many entries).
const MAX_RANGES: usize = 1 << 16;

impl LineTable {
    /// Decodes `table` of a code object whose `co_firstlineno` is
    /// `first_line`.
    pub fn decode(kind: LineTableKind, table: &[u8], first_line: u32) -> LineTable {
        let ranges = match kind {
            LineTableKind::Lnotab => lnotab(table, first_line),
            LineTableKind::Pep626 => pep626(table, first_line),
            LineTableKind::Locations => locations(table, first_line),
        };
        LineTable { ranges, first_line }
    }

    /// The line of the instruction at byte `offset`; an offset before the
    /// first instruction (a frame not yet started) is on the code's first
    /// line, as CPython says.
    pub fn line_at(&self, offset: i64) -> Option<u32> {
        if offset < 0 {
            return Some(self.first_line);
        }
        let offset = u32::try_from(offset).ok()?;
        let at = self.ranges.partition_point(|r| r.end <= offset);
        self.ranges
            .get(at)
            .filter(|r| r.start <= offset)
            .and_then(|r| r.line)
    }

    /// The ranges, in address order.
    pub fn ranges(&self) -> &[LineRange] {
        &self.ranges
    }
}

/// The line `delta` away, held to `0..=u32::MAX`: a hostile table's
/// varint delta can be near `i64::MAX`, which must not overflow.
fn add_line(line: u32, delta: i64) -> u32 {
    u32::try_from(i64::from(line).saturating_add(delta).max(0)).unwrap_or(u32::MAX)
}

fn push(ranges: &mut Vec<LineRange>, start: u32, end: u32, line: Option<u32>) -> bool {
    if end > start {
        ranges.push(LineRange { start, end, line });
    }
    ranges.len() < MAX_RANGES
}

/// 3.8–3.9: the line of an address is the first line plus every line
/// increment whose pair's cumulative address is at or before it.
fn lnotab(table: &[u8], first_line: u32) -> Vec<LineRange> {
    let mut ranges = Vec::new();
    let (mut line, mut addr, mut start) = (first_line, 0u32, 0u32);
    for pair in table.chunks_exact(2) {
        addr = addr.saturating_add(u32::from(pair[0]));
        if addr > start {
            if !push(&mut ranges, start, addr, Some(line)) {
                return ranges;
            }
            start = addr;
        }
        line = add_line(line, i64::from(pair[1] as i8));
    }
    push(&mut ranges, start, u32::MAX, Some(line));
    ranges
}

/// 3.10: each pair is a range of `pair[0]` bytes; its line changes by
/// `pair[1]`, or it has none (-128, which leaves the running line alone).
fn pep626(table: &[u8], first_line: u32) -> Vec<LineRange> {
    let mut ranges = Vec::new();
    let (mut line, mut end) = (first_line, 0u32);
    for pair in table.chunks_exact(2) {
        let start = end;
        end = end.saturating_add(u32::from(pair[0]));
        let delta = pair[1] as i8;
        let this = if delta == -128 {
            None
        } else {
            line = add_line(line, i64::from(delta));
            Some(line)
        };
        if !push(&mut ranges, start, end, this) {
            break;
        }
    }
    ranges
}

/// A reader of the location table's varints (6 bits a byte, 0x40 when
/// more follow).
struct Varints<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Varints<'_> {
    fn unsigned(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(b & 63) << shift;
            if b & 64 == 0 {
                return Some(value);
            }
            shift += 6;
            if shift > 60 {
                return None;
            }
        }
    }

    fn signed(&mut self) -> Option<i64> {
        let v = self.unsigned()?;
        let magnitude = (v >> 1) as i64;
        Some(if v & 1 != 0 { -magnitude } else { magnitude })
    }
}

/// 3.11+: an entry starts at every byte with its high bit set; its code
/// says whether the line moves (13 and 14: a signed varint; 10–12: by
/// code − 10) or the range has none (15).
fn locations(table: &[u8], first_line: u32) -> Vec<LineRange> {
    let mut ranges = Vec::new();
    let (mut line, mut end) = (first_line, 0u32);
    let mut at = 0;
    while at < table.len() {
        let first = table[at];
        if first & 0x80 == 0 {
            // Not an entry's first byte: the table is not one CPython wrote.
            break;
        }
        let code = (first >> 3) & 15;
        let length = u32::from(first & 7) + 1;
        let mut reader = Varints {
            bytes: table,
            at: at + 1,
        };
        let this = match code {
            15 => None,
            13 | 14 => match reader.signed() {
                Some(delta) => {
                    line = add_line(line, delta);
                    Some(line)
                }
                None => break,
            },
            10..=12 => {
                line = add_line(line, i64::from(code - 10));
                Some(line)
            }
            _ => Some(line),
        };
        let start = end;
        end = end.saturating_add(length * 2);
        if !push(&mut ranges, start, end, this) {
            break;
        }
        at += 1;
        while at < table.len() && table[at] & 0x80 == 0 {
            at += 1;
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_lines_hold_until_the_next_address() {
        // Line 10 at 0, +1 at 6, +2 at 10 (an address step of 0 with a line step).
        let t = LineTable::decode(LineTableKind::Lnotab, &[6, 1, 4, 0, 0, 2], 10);
        assert_eq!(t.line_at(0), Some(10));
        assert_eq!(t.line_at(5), Some(10));
        assert_eq!(t.line_at(6), Some(11));
        assert_eq!(t.line_at(10), Some(13));
        assert_eq!(t.line_at(1000), Some(13));
        assert_eq!(t.line_at(-2), Some(10));
        // A negative line step (a loop's condition after its body).
        let t = LineTable::decode(LineTableKind::Lnotab, &[4, 3, 4, 0xfe], 1);
        assert_eq!(t.line_at(4), Some(4));
        assert_eq!(t.line_at(8), Some(2));
    }

    #[test]
    fn pep626_ranges_and_missing_lines() {
        let t = LineTable::decode(LineTableKind::Pep626, &[4, 0, 6, 1, 2, 0x80, 2, 1], 3);
        assert_eq!(t.line_at(0), Some(3));
        assert_eq!(t.line_at(4), Some(4));
        assert_eq!(t.line_at(10), None);
        // -128 left the running line alone: the next delta counts from 4.
        assert_eq!(t.line_at(12), Some(5));
        assert_eq!(t.line_at(14), None);
    }

    #[test]
    fn location_entries_of_every_form() {
        let table = [
            0x80 | (13 << 3) | 1, // no columns, 2 units, line +1 (varint 2)
            2,
            0x80 | (11 << 3), // one-line form, line +1, 1 unit
            0,
            5,
            0x80 | (15 << 3) | 2, // no location, 3 units
            0x80 | (14 << 3),     // long form, line -2 (varint 5), end line, columns
            5,
            0,
            1,
            1,
            0x80 | (3 << 3), // short form: same line
            7,
        ];
        let t = LineTable::decode(LineTableKind::Locations, &table, 20);
        assert_eq!(
            t.ranges(),
            &[
                LineRange {
                    start: 0,
                    end: 4,
                    line: Some(21)
                },
                LineRange {
                    start: 4,
                    end: 6,
                    line: Some(22)
                },
                LineRange {
                    start: 6,
                    end: 12,
                    line: None
                },
                LineRange {
                    start: 12,
                    end: 14,
                    line: Some(20)
                },
                LineRange {
                    start: 14,
                    end: 16,
                    line: Some(20)
                },
            ]
        );
        assert_eq!(t.line_at(16), None);
        // A long varint line delta (+1000 = 2000 unsigned, three groups).
        let big = [
            0x80 | (13 << 3),
            0x40 | (2000 & 63) as u8,
            0x40 | ((2000 >> 6) & 63) as u8,
            0,
        ];
        let t = LineTable::decode(LineTableKind::Locations, &big, 1);
        assert_eq!(t.line_at(0), Some(1001));
    }

    #[test]
    fn huge_line_deltas_saturate() {
        // Code 13 with an 11-group varint: 2^64 - 2 unsigned, so a delta of
        // +(2^63 - 1) (found by the linetable fuzz target: it overflowed).
        let mut up = vec![0x80 | (13 << 3), 0x7e];
        up.extend([0x7f; 9]);
        up.push(0x3f);
        let t = LineTable::decode(LineTableKind::Locations, &up, 5);
        assert_eq!(t.line_at(0), Some(u32::MAX));
        // The same magnitude downwards stops at line 0.
        up[1] = 0x7f;
        let t = LineTable::decode(LineTableKind::Locations, &up, 5);
        assert_eq!(t.line_at(0), Some(0));
    }

    #[test]
    fn truncated_and_hostile_tables_never_panic() {
        for kind in [
            LineTableKind::Lnotab,
            LineTableKind::Pep626,
            LineTableKind::Locations,
        ] {
            for table in [
                &[][..],
                &[0x80 | (14 << 3)],
                &[0xff; 9],
                &[0x7f, 0x80],
                &[0xe8, 0xff, 0xff, 0xff],
            ] {
                let t = LineTable::decode(kind, table, u32::MAX);
                let _ = t.line_at(i64::MAX);
                let _ = t.line_at(0);
            }
        }
    }
}
