//! The BTF reader on small hand-built blobs: one of every kind (so a wrong
//! record length shifts every later id), an anonymous union and struct, a
//! typedef under a `const`, both bitfield encodings, both byte orders, and
//! blobs made to break it.

use super::*;

/// Writes a BTF blob type by type.
struct Blob {
    big_endian: bool,
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

impl Blob {
    fn new(big_endian: bool) -> Blob {
        Blob {
            big_endian,
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        at
    }

    fn word(&mut self, w: u32) {
        let bytes = if self.big_endian {
            w.to_be_bytes()
        } else {
            w.to_le_bytes()
        };
        self.types.extend_from_slice(&bytes);
    }

    /// A record header; the caller writes the trailer.
    fn record(&mut self, name: &str, kind: u32, flag: bool, vlen: u32, size_or_type: u32) -> u32 {
        let name = self.string(name);
        self.word(name);
        self.word(kind << 24 | u32::from(flag) << 31 | vlen);
        self.word(size_or_type);
        self.next_id += 1;
        self.next_id - 1
    }

    fn int(&mut self, name: &str, size: u32, offset: u32, bits: u32) -> u32 {
        let id = self.record(name, INT, false, 0, size);
        self.word(offset << 16 | bits);
        id
    }

    fn refers(&mut self, kind: u32, name: &str, to: u32) -> u32 {
        self.record(name, kind, false, 0, to)
    }

    fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        flag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let id = self.record(name, kind, flag, members.len() as u32, size);
        for (n, t, off) in members {
            let n = self.string(n);
            self.word(n);
            self.word(*t);
            self.word(*off);
        }
        id
    }

    fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let w = |out: &mut Vec<u8>, v: u32| {
            out.extend_from_slice(&if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let magic = if self.big_endian {
            BTF_MAGIC.to_be_bytes()
        } else {
            BTF_MAGIC.to_le_bytes()
        };
        out.extend_from_slice(&magic);
        out.extend_from_slice(&[1, 0]);
        w(&mut out, HEADER_LEN as u32);
        w(&mut out, 0);
        w(&mut out, self.types.len() as u32);
        w(&mut out, self.types.len() as u32);
        w(&mut out, self.strings.len() as u32);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// Kinds of the sample blob's types, by id.
const SAMPLE_KINDS: [Kind; 25] = {
    use Kind::*;
    [
        Int, Int, Ptr, Array, Enum, Fwd, Volatile, Restrict, FuncProto, Func, Var, Datasec, Float,
        DeclTag, TypeTag, Enum64, Struct, Typedef, Const, Union, Struct, Struct, Int, Int, Struct,
    ]
};

/// Every kind once, then a `task_struct` shaped like the kernel's where it
/// matters: `thread` is a `const thread_t`, a typedef of `thread_struct`
/// whose `fsbase` is an `unsigned long` behind a type tag; an anonymous
/// union and an anonymous struct; two `kind_flag` bitfields. `old_bits` uses
/// the older bitfield encoding (in the `INT`).
fn sample(big_endian: bool) -> Vec<u8> {
    let mut b = Blob::new(big_endian);
    let ulong = b.int("unsigned long", 8, 0, 64); // 1
    let int = b.int("int", 4, 0, 32); // 2
    let int_ptr = b.refers(PTR, "", int); // 3
    let arr = b.record("", ARRAY, false, 0, 0); // 4: int[4]
    for w in [int, int, 4] {
        b.word(w);
    }
    b.record("state", ENUM, false, 2, 4); // 5
    for (n, v) in [("RUNNING", 0), ("SLEEPING", 1)] {
        let n = b.string(n);
        b.word(n);
        b.word(v);
    }
    b.refers(FWD, "later", 0); // 6
    b.refers(VOLATILE, "", ulong); // 7
    b.refers(RESTRICT, "", int_ptr); // 8
    let proto = b.record("", FUNC_PROTO, false, 2, int); // 9
    for (n, t) in [("a", ulong), ("b", int_ptr)] {
        let n = b.string(n);
        b.word(n);
        b.word(t);
    }
    let func = b.record("do_it", FUNC, false, 1, proto); // 10
    let var = b.refers(VAR, "counter", int); // 11
    b.word(1);
    b.record(".data", DATASEC, false, 1, 8); // 12
    for w in [var, 0, 4] {
        b.word(w);
    }
    b.record("double", FLOAT, false, 0, 8); // 13
    b.refers(DECL_TAG, "tag", func); // 14
    b.word(u32::MAX); // component_idx -1: the function itself
    let tagged = b.refers(TYPE_TAG, "user", ulong); // 15
    b.record("big", ENUM64, false, 1, 8); // 16
    for w in [b.string("HUGE"), 1, 2] {
        b.word(w);
    }
    let thread = b.composite(
        STRUCT,
        "thread_struct",
        24,
        false,
        &[("sp", ulong, 0), ("es", int, 64), ("fsbase", tagged, 128)],
    ); // 17
    let thread_t = b.refers(TYPEDEF, "thread_t", thread); // 18
    let const_thread = b.refers(CONST, "", thread_t); // 19
    let anon_union = b.composite(UNION, "", 8, false, &[("a", int, 0), ("b", ulong, 0)]); // 20
    let anon_struct = b.composite(STRUCT, "", 8, false, &[("x", int, 0), ("y", int, 32)]); // 21
    b.composite(
        STRUCT,
        "task_struct",
        64,
        true,
        &[
            ("flags", int, 3 << 24),
            ("prio", int, 5 << 24 | 3),
            ("", anon_union, 64),
            ("thread", const_thread, 128),
            ("", anon_struct, 320),
            ("arr", arr, 384),
            ("ptr", int_ptr, 448),
        ],
    ); // 22
    let lo = b.int("lo4", 4, 0, 4); // 23
    let hi = b.int("hi4", 4, 4, 4); // 24
    b.composite(
        STRUCT,
        "old_bits",
        8,
        false,
        &[("lo", lo, 0), ("hi", hi, 0), ("whole", int, 32)],
    ); // 25
    assert_eq!(b.next_id as usize, SAMPLE_KINDS.len() + 1);
    b.finish()
}

fn check_sample(btf: &Btf) {
    assert_eq!(btf.type_count() as usize, SAMPLE_KINDS.len());
    for (i, kind) in SAMPLE_KINDS.iter().enumerate() {
        assert_eq!(
            btf.kind(i as u32 + 1).unwrap(),
            Some(*kind),
            "type {}",
            i + 1
        );
    }
    assert_eq!(btf.kind(0).unwrap(), None);
    assert_eq!(btf.name(22).unwrap(), b"task_struct");
    assert_eq!(btf.name(20).unwrap(), b"");
    assert_eq!(btf.name(16).unwrap(), b"big");
    assert_eq!(btf.find_composite("task_struct").unwrap(), 22);
    assert_eq!(btf.resolve(19).unwrap(), 17);
    assert_eq!(btf.resolve(15).unwrap(), 1);

    let offset = |path: &[&str]| btf.member_offset(path);
    assert_eq!(offset(&["task_struct", "thread", "fsbase"]).unwrap(), 32);
    assert_eq!(offset(&["task_struct", "thread", "sp"]).unwrap(), 16);
    assert_eq!(offset(&["task_struct", "thread", "es"]).unwrap(), 24);
    assert_eq!(offset(&["task_struct", "thread"]).unwrap(), 16);
    assert_eq!(offset(&["thread_struct", "fsbase"]).unwrap(), 16);
    // Anonymous members: found as if they were task_struct's own.
    assert_eq!(offset(&["task_struct", "a"]).unwrap(), 8);
    assert_eq!(offset(&["task_struct", "b"]).unwrap(), 8);
    assert_eq!(offset(&["task_struct", "x"]).unwrap(), 40);
    assert_eq!(offset(&["task_struct", "y"]).unwrap(), 44);
    assert_eq!(offset(&["old_bits", "whole"]).unwrap(), 4);

    let fsbase = btf.member(&["task_struct", "thread", "fsbase"]).unwrap();
    assert_eq!(fsbase.bit_offset, 256);
    assert_eq!(fsbase.type_id, 15);
    assert_eq!(btf.type_size(fsbase.type_id).unwrap(), 8);

    // Both bitfield encodings.
    let prio = btf.member(&["task_struct", "prio"]).unwrap();
    assert_eq!((prio.bit_offset, prio.bitfield_bits), (3, 5));
    let flags = btf.member(&["task_struct", "flags"]).unwrap();
    assert_eq!((flags.bit_offset, flags.bitfield_bits), (0, 3));
    let hi = btf.member(&["old_bits", "hi"]).unwrap();
    assert_eq!((hi.bit_offset, hi.bitfield_bits), (4, 4));
    let lo = btf.member(&["old_bits", "lo"]).unwrap();
    assert_eq!((lo.bit_offset, lo.bitfield_bits), (0, 4));
    for path in [
        &["task_struct", "prio"][..],
        &["task_struct", "flags"],
        &["old_bits", "lo"],
    ] {
        assert!(
            matches!(offset(path), Err(BtfError::Bitfield { .. })),
            "{path:?}"
        );
    }

    assert_eq!(btf.type_size(22).unwrap(), 64);
    assert_eq!(btf.type_size(19).unwrap(), 24);
    assert_eq!(btf.type_size(4).unwrap(), 16);
    assert_eq!(btf.type_size(3).unwrap(), POINTER_SIZE);
    assert_eq!(btf.type_size(7).unwrap(), 8);
    assert!(matches!(
        btf.type_size(10),
        Err(BtfError::Unsized { id: 10, .. })
    ));
    assert!(matches!(
        btf.type_size(0),
        Err(BtfError::Unsized { kind: None, .. })
    ));
    assert!(matches!(
        btf.type_size(26),
        Err(BtfError::BadTypeId { id: 26, .. })
    ));
}

#[test]
fn finds_members_through_typedefs_modifiers_and_anonymous_members() {
    check_sample(&Btf::parse(&sample(false)).unwrap());
}

#[test]
fn reads_big_endian_blobs_alike() {
    check_sample(&Btf::parse(&sample(true)).unwrap());
}

#[test]
fn refuses_paths_it_cannot_answer() {
    let btf = Btf::parse(&sample(false)).unwrap();
    let err = |path: &[&str]| btf.member_offset(path).unwrap_err();
    assert!(matches!(err(&["nope", "x"]), BtfError::NoSuchType { name } if name == "nope"));
    // A FWD is no definition.
    assert!(matches!(err(&["later", "x"]), BtfError::NoSuchType { .. }));
    match err(&["task_struct", "thread", "gs"]) {
        BtfError::NoSuchMember { within, member } => {
            assert_eq!(
                (within.as_str(), member.as_str()),
                ("task_struct.thread", "gs")
            );
        }
        e => panic!("{e}"),
    }
    match err(&["task_struct", "ptr", "x"]) {
        BtfError::NotComposite { within, kind, .. } => {
            assert_eq!(
                (within.as_str(), kind),
                ("task_struct.ptr", Some(Kind::Ptr))
            );
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        err(&["task_struct", "arr", "x"]),
        BtfError::NotComposite {
            kind: Some(Kind::Array),
            ..
        }
    ));
    for path in [&[][..], &["task_struct"], &["task_struct", ""], &["", "x"]] {
        assert!(matches!(err(path), BtfError::BadPath), "{path:?}");
    }
    assert_eq!(
        err(&["task_struct", "thread", "gs"]).to_string(),
        "task_struct.thread has no member \"gs\""
    );
}

fn header_with(blob: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut b = blob.to_vec();
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
    b
}

#[test]
fn refuses_malformed_headers_and_sections() {
    let good = sample(false);
    let parse = |b: &[u8]| Btf::parse(b).unwrap_err();
    assert!(matches!(
        parse(&good[..10]),
        BtfError::Truncated { len: 10 }
    ));
    let mut bad = good.clone();
    bad[0] = 0;
    assert!(matches!(parse(&bad), BtfError::BadMagic { .. }));
    let mut bad = good.clone();
    bad[2] = 2;
    assert!(matches!(
        parse(&bad),
        BtfError::UnsupportedVersion { version: 2 }
    ));
    assert!(matches!(
        parse(&header_with(&good, 4, 8)),
        BtfError::BadHeaderLen { hdr_len: 8 }
    ));
    assert!(matches!(
        parse(&header_with(&good, 4, u32::MAX)),
        BtfError::Truncated { .. }
    ));
    assert!(matches!(
        parse(&header_with(&good, 8, u32::MAX)),
        BtfError::SectionOutOfBounds {
            section: "type",
            ..
        }
    ));
    assert!(matches!(
        parse(&header_with(&good, 20, u32::MAX)),
        BtfError::SectionOutOfBounds {
            section: "string",
            ..
        }
    ));
    // A type section cut inside the last record.
    let type_len = u32::from_le_bytes(good[12..16].try_into().unwrap());
    assert!(matches!(
        parse(&header_with(&good, 12, type_len - 4)),
        BtfError::TypeTruncated { id: 25, .. }
    ));
    // A longer header (a later version's) is skipped over.
    let mut long = good[..HEADER_LEN].to_vec();
    long.extend_from_slice(&[0; 8]);
    long.extend_from_slice(&good[HEADER_LEN..]);
    check_sample(&Btf::parse(&header_with(&long, 4, HEADER_LEN as u32 + 8)).unwrap());
    // Every prefix is refused, none panics.
    for n in 0..good.len() {
        assert!(Btf::parse(&good[..n]).is_err(), "prefix of {n} bytes");
    }
}

#[test]
fn refuses_unknown_kinds() {
    for kind in [0, 20, 31] {
        let mut b = Blob::new(false);
        b.int("int", 4, 0, 32);
        b.record("x", kind, false, 0, 0);
        let err = Btf::parse(&b.finish()).unwrap_err();
        assert!(
            matches!(err, BtfError::UnknownKind { id: 2, kind: k } if u32::from(k) == kind),
            "{err}"
        );
    }
}

#[test]
fn cycles_and_blowups_end_in_errors() {
    let mut b = Blob::new(false);
    b.refers(TYPEDEF, "a", 2); // 1
    b.refers(CONST, "", 1); // 2
    b.composite(STRUCT, "loop", 8, false, &[("m", 1, 0)]); // 3
    b.composite(STRUCT, "self", 8, false, &[("", 4, 0)]); // 4: its own anonymous member
    b.composite(STRUCT, "bad_ref", 8, false, &[("m", 99, 0)]); // 5
    b.composite(STRUCT, "bad_name", 8, false, &[("x", 7, 0)]); // 6
    // 7..=10: four levels of 200 anonymous members each.
    let int = b.int("int", 4, 0, 32); // 7
    let mut inner = b.composite(STRUCT, "", 4, false, &[("x", int, 0); 200]);
    for _ in 0..3 {
        inner = b.composite(STRUCT, "", 4, false, &vec![("", inner, 0); 200]);
    }
    b.composite(STRUCT, "wide", 4, false, &vec![("", inner, 0); 200]);
    b.record("", ARRAY, false, 0, 0); // an array too long to have a size
    for w in [13, int, u32::MAX] {
        b.word(w);
    }
    let mut blob = b.finish();
    // Member "x" of bad_name: point its name past the string section.
    let bad_name_member = HEADER_LEN + 2 * 12 + 3 * 24 + 12;
    blob[bad_name_member..bad_name_member + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let btf = Btf::parse(&blob).unwrap();

    assert!(matches!(btf.resolve(1), Err(BtfError::TooDeep { .. })));
    assert!(matches!(btf.type_size(2), Err(BtfError::TooDeep { .. })));
    assert!(matches!(
        btf.member_offset(&["loop", "m", "x"]),
        Err(BtfError::TooDeep { .. })
    ));
    assert!(matches!(
        btf.member_offset(&["self", "x"]),
        Err(BtfError::TooDeep { .. })
    ));
    assert!(matches!(
        btf.member_offset(&["bad_ref", "m"]),
        Err(BtfError::BadTypeId {
            id: 99,
            referrer: 5
        })
    ));
    assert!(matches!(
        btf.member_offset(&["bad_name", "x"]),
        Err(BtfError::BadString { .. })
    ));
    assert!(matches!(
        btf.member_offset(&["wide", "nope"]),
        Err(BtfError::TooComplex { .. })
    ));
    // The first leaf is found long before the budget runs out.
    assert_eq!(btf.member_offset(&["wide", "x"]).unwrap(), 0);
    assert!(matches!(btf.type_size(13), Err(BtfError::Unsized { .. })));
}

#[test]
fn no_single_byte_change_makes_it_panic() {
    let good = sample(false);
    for at in 0..good.len() {
        for flip in [0xff, 0x80, 0x01] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            let Ok(btf) = Btf::parse(&bad) else { continue };
            for id in 0..=btf.type_count() + 1 {
                let _ = (
                    btf.kind(id),
                    btf.name(id),
                    btf.resolve(id),
                    btf.type_size(id),
                );
            }
            let _ = btf.member_offset(&["task_struct", "thread", "fsbase"]);
            let _ = btf.member_offset(&["old_bits", "hi"]);
        }
    }
}
