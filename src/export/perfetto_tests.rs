//! Tests of the Perfetto sink: its bytes decoded back.
use super::super::protobuf::tests::{Msg, Value};
use super::*;
use crate::cpython::objects::PyValue;
use crate::engine::decode::AuditArgs;
use crate::export::testing::frame;

/// A decoded track event: time, type, track, name, annotations.
#[derive(Debug, PartialEq)]
struct Ev(u64, u64, u64, String, Vec<(String, String)>);

/// A track descriptor: uuid, parent, pid, tid, name.
type Desc = (u64, u64, u64, u64, String);

/// Reads a trace back: the packets' flags, track descriptors and track
/// events, resolving iids.
fn read(trace: &[u8]) -> (Vec<u64>, Vec<Desc>, Vec<Ev>) {
    let mut interned: HashMap<(u32, u64), String> = HashMap::new();
    let (mut flags, mut tracks, mut events) = (vec![], vec![], vec![]);
    let trace = Msg::parse(trace);
    assert!(trace.0.iter().all(|(n, _)| *n == TRACE_PACKET));
    for p in trace.all(TRACE_PACKET).into_iter().map(Msg::parse) {
        assert_eq!(p.num(P_SEQUENCE_ID), Some(SEQUENCE_ID));
        flags.push(p.num(P_SEQUENCE_FLAGS).unwrap_or(0));
        for data in p.all(P_INTERNED_DATA).into_iter().map(Msg::parse) {
            for (kind, entry) in &data.0 {
                let Value::Bytes(e) = entry else {
                    panic!("{entry:?}")
                };
                let e = Msg::parse(e);
                let (iid, name) = (e.num(ENTRY_IID), e.text(ENTRY_NAME));
                let old = interned.insert((*kind, iid.unwrap()), name.unwrap());
                assert!(old.is_none(), "interned twice");
            }
        }
        for d in p.all(P_TRACK_DESCRIPTOR).into_iter().map(Msg::parse) {
            let (uuid, parent) = (d.num(TD_UUID).unwrap(), d.num(TD_PARENT_UUID));
            let (desc, tid, name) = match d.all(TD_THREAD).first() {
                Some(t) => (Msg::parse(t), THD_TID, THD_NAME),
                None => (Msg::parse(d.all(TD_PROCESS)[0]), 0, PD_NAME),
            };
            let (pid, tid) = (desc.num(PD_PID).unwrap(), desc.num(tid).unwrap_or(0));
            let name = desc.text(name).unwrap_or_default();
            tracks.push((uuid, parent.unwrap_or(0), pid, tid, name));
        }
        for te in p.all(P_TRACK_EVENT).into_iter().map(Msg::parse) {
            let get = |k, iid| interned.get(&(k, iid)).cloned().unwrap_or_default();
            let mut args = vec![];
            for a in te.all(TE_ANNOTATIONS).into_iter().map(Msg::parse) {
                let name = get(I_ANNOTATION_NAMES, a.num(DA_NAME_IID).unwrap());
                let value = match (a.0[1].0, a.num(a.0[1].0)) {
                    (DA_BOOL, Some(b)) => (b == 1).to_string(),
                    (DA_INT, Some(i)) => (i as i64).to_string(),
                    (DA_UINT, Some(u)) => u.to_string(),
                    (DA_STRING_IID, Some(i)) => get(I_STRING_VALUES, i),
                    (DA_STRING, None) => a.text(DA_STRING).unwrap(),
                    other => panic!("annotation {other:?}"),
                };
                args.push((name, value));
            }
            let name = te.num(TE_NAME_IID).map(|i| get(I_EVENT_NAMES, i));
            let (ts, kind) = (p.num(P_TIMESTAMP).unwrap(), te.num(TE_TYPE).unwrap());
            let track = te.num(TE_TRACK_UUID).unwrap();
            events.push(Ev(ts, kind, track, name.unwrap_or_default(), args));
        }
    }
    (flags, tracks, events)
}

fn call(funcname: u32, filename: u32, lineno: i32) -> Frame<Item> {
    frame(Item::Call(Call {
        funcname,
        filename,
        lineno,
    }))
}

fn args(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let pair = |(a, b): &(&str, &str)| (a.to_string(), b.to_string());
    list.iter().map(pair).collect()
}

#[test]
fn a_timeline_round_trips() -> Result<()> {
    let mut s = StringTable::default();
    let (f, file, json) = (s.push(b"f"), s.push(b"/a.py"), s.push(b"json"));
    let f = call(f, file, 3);
    let gc = frame(Item::Gc { generation: 2 });
    let json = frame(Item::Import { module: json });
    let t = Thread { pid: 10, tid: 11 };
    let mut sink = PerfettoSink::new(Vec::new(), true);
    sink.process(10, "python3")?;
    sink.thread(t, "MainThread")?;
    sink.begin(t, 100, std::slice::from_ref(&f), &s)?;
    sink.begin(t, 150, &[f.clone(), gc.clone()], &s)?;
    sink.end(t, 160, &[f.clone(), gc], &End::Collected(5), &s)?;
    sink.begin(t, 170, &[f.clone(), json.clone()], &s)?;
    sink.end(t, 180, &[f.clone(), json], &End::Imported(true), &s)?;
    let x = PyValue::Str {
        text: "x".into(),
        truncated: false,
    };
    let audit = AuditArgs {
        values: vec![x, PyValue::Int("3".into())],
        more: 2,
    };
    let audit = Audit {
        thread: t,
        ts_ns: 190,
        event: "open",
        args: Some(&audit),
    };
    sink.audit(&audit, std::slice::from_ref(&f), &s)?;
    sink.end(t, 200, std::slice::from_ref(&f), &End::Returned, &s)?;
    sink.thread(t, "worker")?;
    sink.begin(t, 210, std::slice::from_ref(&f), &s)?;
    sink.end(t, 300, &[f], &End::Unfinished, &s)?;
    sink.finish(&s)?;
    let (flags, tracks, events) = read(&sink.into_inner());
    assert_eq!(flags[0], SEQ_INCREMENTAL_STATE_CLEARED);
    assert!(!flags[1..].contains(&SEQ_INCREMENTAL_STATE_CLEARED));
    let (p, th, n) = (1, 2, |n: &str| n.to_string());
    let named = [
        (p, 0, 10, 0, n("python3")),
        (th, p, 10, 11, n("MainThread")),
    ];
    assert_eq!(tracks[..2], named);
    assert_eq!(tracks[2..], [(th, p, 10, 11, n("worker"))]);
    let stack = ("stack", "f (/a.py:3)");
    let (b, e, i) = (TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT);
    let begin_f = |ts| Ev(ts, b, th, n("f"), args(&[("file", "/a.py"), ("line", "3")]));
    let audit_args = args(&[("arg0", "'x'"), ("arg1", "3"), ("more", "2"), stack]);
    let import_args = args(&[("module", "json"), stack]);
    let expected = [
        begin_f(100),
        Ev(150, b, th, n("gc"), args(&[("generation", "2"), stack])),
        Ev(160, e, th, n(""), args(&[("collected", "5")])),
        Ev(170, b, th, n("import json"), import_args),
        Ev(180, e, th, n(""), args(&[("found", "true")])),
        Ev(190, i, th, n("open"), audit_args),
        Ev(200, e, th, n(""), vec![]),
        begin_f(210),
        Ev(300, e, th, n(""), args(&[("unfinished", "true")])),
    ];
    assert_eq!(events, expected);
    Ok(())
}

#[test]
fn odd_input_does_not_panic() -> Result<()> {
    let s = StringTable::default();
    let t = Thread {
        pid: u32::MAX,
        tid: 0,
    };
    let undefined = call(7, 9, -1);
    let mut sink = PerfettoSink::new(Vec::new(), false);
    sink.begin(t, 1, &[], &s)?;
    sink.begin(t, 2, std::slice::from_ref(&undefined), &s)?;
    sink.end(t, 3, &[undefined], &End::Returned, &s)?;
    sink.end(t, 4, &[], &End::Unfinished, &s)?;
    let audit = Audit {
        thread: t,
        ts_ns: 5,
        event: "",
        args: None,
    };
    sink.audit(&audit, &[], &s)?;
    let module = UNREADABLE;
    sink.begin(t, 6, &[frame(Item::Import { module })], &s)?;
    sink.end(t, 7, &[], &End::Imported(false), &s)?;
    sink.thread(Thread { pid: 1, tid: 2 }, "idle")?;
    sink.finish(&s)?;
    let (_, tracks, events) = read(&sink.into_inner());
    assert_eq!((tracks.len(), events.len()), (4, 7));
    assert_eq!(events[1].4, args(&[("file", ""), ("line", "-1")]));
    assert_eq!(events[5].3, "import <unreadable>");
    Ok(())
}
