//! Tests of the pprof writer: every field decoded back, exactly.

use std::io::Read;

use flate2::read::GzDecoder;

use super::*;
use crate::export::protobuf::tests::{Msg, Value};
use crate::model::profile::Mode;
use crate::model::profile::testing::{self, PERIOD_NS as P};

/// A packed (or single) repeated varint field's values.
fn varints(m: &Msg, n: u32) -> Vec<u64> {
    let mut values = Vec::new();
    for (k, v) in &m.0 {
        match v {
            Value::Varint(x) if *k == n => values.push(*x),
            Value::Bytes(b) if *k == n => {
                let mut b = b.as_slice();
                while !b.is_empty() {
                    let mut v = 0u64;
                    for shift in (0..64).step_by(7) {
                        let (&byte, rest) = b.split_first().expect("a whole varint");
                        b = rest;
                        v |= u64::from(byte & 0x7f) << shift;
                        if byte < 0x80 {
                            break;
                        }
                    }
                    values.push(v);
                }
            }
            _ => {}
        }
    }
    values
}

/// A decoded profile, its string indices resolved.
struct Decoded {
    fields: Vec<u32>,
    strings: Vec<String>,
    top: Msg,
}

impl Decoded {
    fn new(bytes: &[u8]) -> Decoded {
        let top = Msg::parse(bytes);
        let strings = (top.all(PROFILE_STRING_TABLE).iter())
            .map(|b| String::from_utf8(b.to_vec()).expect("UTF-8"))
            .collect();
        let mut fields: Vec<u32> = top.0.iter().map(|(k, _)| *k).collect();
        fields.dedup();
        Decoded {
            fields,
            strings,
            top,
        }
    }

    fn str(&self, i: Option<u64>) -> &str {
        &self.strings[i.unwrap_or(0) as usize]
    }

    fn messages(&self, n: u32) -> Vec<Msg> {
        self.top.all(n).into_iter().map(Msg::parse).collect()
    }

    fn value_types(&self, n: u32) -> Vec<(&str, &str)> {
        let types = self.top.all(n).into_iter().map(Msg::parse);
        let pair = |m: Msg| (m.num(VALUE_TYPE_TYPE), m.num(VALUE_TYPE_UNIT));
        let pairs: Vec<_> = types.map(pair).collect();
        pairs
            .into_iter()
            .map(|(t, u)| (self.str(t), self.str(u)))
            .collect()
    }
}

/// A sample: its location ids, values and labels (key, string or number).
type Sample = (Vec<u64>, Vec<u64>, Vec<(String, String)>);

fn samples(d: &Decoded) -> Vec<Sample> {
    let label = |l: Msg| {
        let key = d.str(l.num(LABEL_KEY)).to_owned();
        match l.num(LABEL_STR) {
            Some(s) => (key, d.str(Some(s)).to_owned()),
            None => (key, l.num(LABEL_NUM).unwrap_or(0).to_string()),
        }
    };
    (d.messages(PROFILE_SAMPLE).into_iter())
        .map(|s| {
            let labels = s.all(SAMPLE_LABEL).into_iter().map(Msg::parse);
            (
                varints(&s, SAMPLE_LOCATION_ID),
                varints(&s, SAMPLE_VALUE),
                labels.map(label).collect(),
            )
        })
        .collect()
}

fn labels(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_field_of_a_profile() {
    let d = Decoded::new(&encode(&testing::profile()));
    let exporter = format!("pytap {}", env!("CARGO_PKG_VERSION"));
    // Each kind of field in one run (the string table after what it names).
    assert_eq!(d.fields, [1, 2, 3, 5, 4, 6, 9, 10, 11, 12, 13, 14]);
    assert_eq!(
        d.strings,
        [
            "",
            "samples",
            "count",
            "cpu",
            "nanoseconds",
            "thread",
            "process",
            "pid",
            "tid",
            "MainThread",
            "python3",
            "<module>",
            "app.py",
            "fib",
            "naïve;λ",
            "ünï.py",
            "<unknown 0x7f00>",
            "PyObject_Call",
            "/usr/lib/libpython3.11.so",
            exporter.as_str(),
            "frames unknown: 1",
        ]
    );
    let mappings = d.messages(PROFILE_MAPPING);
    assert_eq!(mappings.len(), 1);
    let m = &mappings[0];
    let has = [
        MAPPING_HAS_FUNCTIONS,
        MAPPING_HAS_FILENAMES,
        MAPPING_HAS_LINE_NUMBERS,
    ];
    assert_eq!(
        (m.num(MAPPING_ID), has.map(|f| m.num(f))),
        (Some(1), [Some(1); 3])
    );
    assert_eq!(
        d.value_types(PROFILE_SAMPLE_TYPE),
        [("samples", "count"), ("cpu", "nanoseconds")]
    );
    assert_eq!(d.value_types(PROFILE_PERIOD_TYPE), [("cpu", "nanoseconds")]);
    assert_eq!(d.top.num(PROFILE_PERIOD), Some(P));
    assert_eq!(d.top.num(PROFILE_DURATION_NANOS), Some(70_000_000));
    assert_eq!(
        d.top.num(PROFILE_TIME_NANOS),
        Some(1_700_000_000_000_000_000)
    );
    assert_eq!(d.str(d.top.num(PROFILE_DEFAULT_SAMPLE_TYPE)), "cpu");
    let comments: Vec<_> = (varints(&d.top, PROFILE_COMMENT).into_iter())
        .map(|c| d.str(Some(c)).to_owned())
        .collect();
    assert_eq!(comments, [exporter.as_str(), "frames unknown: 1"]);
    let functions: Vec<_> = (d.messages(PROFILE_FUNCTION).into_iter())
        .map(|f| {
            let name = d.str(f.num(FUNCTION_NAME));
            let system_name = d.str(f.num(FUNCTION_SYSTEM_NAME));
            let file = d.str(f.num(FUNCTION_FILENAME));
            (f.num(FUNCTION_ID), name, system_name, file)
        })
        .collect();
    assert_eq!(
        functions,
        [
            (Some(1), "<module>", "", "app.py"),
            (Some(2), "fib", "", "app.py"),
            (Some(3), "naïve;λ", "", "ünï.py"),
            (Some(4), "<unknown 0x7f00>", "", ""),
            // Only a native function has a symbol.
            (
                Some(5),
                "PyObject_Call",
                "PyObject_Call",
                "/usr/lib/libpython3.11.so"
            ),
        ]
    );
    let locations: Vec<_> = (d.messages(PROFILE_LOCATION).into_iter())
        .map(|l| {
            let lines: Vec<_> = l.all(LOCATION_LINE).into_iter().map(Msg::parse).collect();
            assert_eq!(
                (lines.len(), l.num(LOCATION_MAPPING_ID)),
                (1, Some(MAPPING))
            );
            let line = &lines[0];
            (
                l.num(LOCATION_ID),
                line.num(LINE_FUNCTION_ID),
                line.num(LINE_LINE),
            )
        })
        .collect();
    assert_eq!(
        locations,
        [
            (Some(1), Some(1), Some(10)),
            (Some(2), Some(2), Some(3)),
            (Some(3), Some(3), Some(7)),
            (Some(4), Some(4), None),
            (Some(5), Some(5), None),
        ]
    );
    let main = labels(&[
        ("thread", "MainThread"),
        ("process", "python3"),
        ("pid", "42"),
        ("tid", "42"),
    ]);
    let other = labels(&[("process", "python3"), ("pid", "42"), ("tid", "43")]);
    assert_eq!(
        samples(&d),
        [
            (vec![2, 2, 1], vec![3, 3 * P], main.clone()),
            (vec![3, 1], vec![1, P], main.clone()),
            (vec![4, 1], vec![1, P], main),
            (vec![5, 3], vec![2, 2 * P], other),
        ]
    );
}

#[test]
fn modes_and_what_a_profile_may_lack() {
    let mut p = Profile::new(Mode::Wall, 0);
    p.truncated = 2;
    // A function on two lines is one function, two locations.
    let frame = |line| crate::model::profile::Frame {
        function: "f".into(),
        file: "a.py".into(),
        line,
        kind: FrameKind::Python,
    };
    let (a, b) = (p.intern(frame(1)), p.intern(frame(2)));
    let t = crate::model::profile::ThreadKey { pid: 1, tid: 2 };
    p.add(t, &[a, b], 5, 0);
    p.add(t, &[], 7, 0);
    let d = Decoded::new(&encode(&p));
    assert_eq!(
        d.value_types(PROFILE_SAMPLE_TYPE),
        [("samples", "count"), ("wall", "nanoseconds")]
    );
    assert_eq!(d.str(d.top.num(PROFILE_DEFAULT_SAMPLE_TYPE)), "wall");
    // No rate, no start: no period, no time.
    assert_eq!(
        (d.top.num(PROFILE_PERIOD), d.top.num(PROFILE_TIME_NANOS)),
        (None, None)
    );
    assert_eq!(d.messages(PROFILE_FUNCTION).len(), 1);
    assert_eq!(d.messages(PROFILE_LOCATION).len(), 2);
    let ids = labels(&[("pid", "1"), ("tid", "2")]);
    assert_eq!(
        samples(&d),
        [
            (vec![], vec![1, 7], ids.clone()),
            (vec![1, 2], vec![1, 5], ids)
        ]
    );
    let comments = varints(&d.top, PROFILE_COMMENT);
    assert_eq!(
        d.str(comments.get(1).copied()),
        "samples truncated at the depth limit: 2"
    );
}

#[test]
fn the_file_is_the_message_gzipped() -> Result<()> {
    let p = testing::profile();
    let mut file = Vec::new();
    write(&p, &mut file)?;
    assert_eq!(file[..2], [0x1f, 0x8b]);
    let mut message = Vec::new();
    GzDecoder::new(file.as_slice()).read_to_end(&mut message)?;
    assert_eq!(message, encode(&p));
    Ok(())
}
