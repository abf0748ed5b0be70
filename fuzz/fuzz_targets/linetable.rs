//! Line tables (another process's bytes): decoding any table in each
//! format never panics, gives sorted, disjoint, non-empty ranges, and
//! `line_at` (a binary search) answers for every offset what a plain scan
//! of those ranges does. Input: a kind byte, `co_firstlineno` (4 bytes,
//! little-endian), two query offsets (8 bytes each), then the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::cpython::linetable::{LineTable, LineTableKind};

const KINDS: [LineTableKind; 3] = [
    LineTableKind::Lnotab,
    LineTableKind::Pep626,
    LineTableKind::Locations,
];

fn scan(table: &LineTable, offset: i64, first_line: u32) -> Option<u32> {
    if offset < 0 {
        return Some(first_line);
    }
    table
        .ranges()
        .iter()
        .find(|r| i64::from(r.start) <= offset && offset < i64::from(r.end))
        .and_then(|r| r.line)
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Some((first_line, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let first_line = u32::from_le_bytes(*first_line);
    let Some((a, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((b, table)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let kind = KINDS[usize::from(kind) % KINDS.len()];
    let decoded = LineTable::decode(kind, table, first_line);
    let ranges = decoded.ranges();
    // CPython's readers bound a table's entries at 64 Ki; so does pytap's.
    assert!(ranges.len() <= 1 << 16);
    for pair in ranges.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:?}");
    }
    let mut offsets = vec![
        i64::from_le_bytes(*a),
        i64::from_le_bytes(*b),
        -1,
        0,
        i64::MIN,
        i64::MAX,
        i64::from(u32::MAX),
    ];
    for r in ranges {
        assert!(r.start < r.end, "{r:?}");
        offsets.extend([r.start, r.end - 1, r.end].map(i64::from));
    }
    for offset in offsets {
        assert_eq!(
            decoded.line_at(offset),
            scan(&decoded, offset, first_line),
            "offset {offset}"
        );
    }
});
