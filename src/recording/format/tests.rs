//! The format's pieces round-tripped: varints, audit arguments, string
//! references, headers.

use super::*;

#[test]
fn varints_round_trip_at_their_edges() {
    for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
        let mut b = Vec::new();
        put_uvarint(&mut b, v);
        assert_eq!(Cursor::new(&b).uvarint(), Some(v));
    }
    for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
        let mut b = Vec::new();
        put_ivarint(&mut b, v);
        assert_eq!(Cursor::new(&b).ivarint(), Some(v));
    }
    // Eleven continuation bytes, and a tenth byte past 64 bits.
    assert_eq!(Cursor::new(&[0xff; 11]).uvarint(), None);
    let mut over = vec![0xff; 9];
    over.push(0x02);
    assert_eq!(Cursor::new(&over).uvarint(), None);
}

#[test]
fn audit_arguments_round_trip() {
    let args = AuditArgs {
        values: vec![
            PyValue::Str {
                text: "/etc/hosts".into(),
                truncated: false,
            },
            PyValue::Int("-12345678901234567890".into()),
            PyValue::Float(2.5),
            PyValue::Tuple {
                items: vec![PyValue::None, PyValue::Bool(true)],
                more: 3,
            },
            PyValue::Bytes {
                data: vec![0, 255],
                truncated: true,
            },
            PyValue::Other("dict".into()),
            PyValue::Unreadable,
        ],
        more: 2,
    };
    let mut b = Vec::new();
    put_args(&mut b, Some(&args));
    put_args(&mut b, None);
    let mut c = Cursor::new(&b);
    assert_eq!(c.args(), Some(Some(args)));
    assert_eq!(c.args(), Some(None));
    assert_eq!(c.pos, b.len());
    // Cut short: more may come. Beyond what a probe captures: malformed.
    let mut short = Cursor::new(&b[..5]);
    assert_eq!((short.args(), short.bad), (None, false));
    for bytes in [
        &[1, 9][..],                                                 // 9 arguments
        &[1, 1, V_TUPLE, 1, V_TUPLE, 1, V_TUPLE, 0, 0, 0, 0, 0][..], // three tuples deep
        &[1, 1, 99, 0][..],                                          // no such type
        &[2][..],                                                    // no such presence byte
    ] {
        let mut c = Cursor::new(bytes);
        assert_eq!((c.args(), c.bad), (None, true), "{bytes:?}");
    }
}

#[test]
fn string_refs_keep_their_state() {
    for state in [StrState::Complete, StrState::Truncated, StrState::KeptEnd] {
        assert_eq!(parse_string_ref(string_ref(41, state)), (Some(41), state));
    }
    assert_eq!(
        parse_string_ref(string_ref(0, StrState::Unreadable(-14))),
        (None, StrState::Unreadable(14))
    );
}

#[test]
fn headers_of_other_files_and_versions_are_refused() {
    assert_eq!(check_header(&header()), Ok(()));
    assert_eq!(
        check_header(b"\x7fELF\x02\x01\x01\0\0\0\0\0"),
        Err(FormatError::NotRecording)
    );
    // Versions 1 (without thread ends) and 2 (without samples) are
    // still read.
    for version in [1, 2] {
        let mut older = header();
        older[8] = version;
        assert_eq!(check_header(&older), Ok(()));
    }
    let mut newer = header();
    newer[8] = 4;
    assert_eq!(check_header(&newer), Err(FormatError::Version(4)));
}
