//! The profile's Perfetto trace decoded back: its threads, and each
//! sample's time, thread and frames, resolved through the interned data.

use std::collections::HashMap;

use super::*;
use crate::export::protobuf::tests::{Msg, Value};
use crate::model::profile::testing::{self, MAIN, OTHER};
use crate::model::profile::{Frame, FrameKind, Mode, ThreadKey};

/// A decoded trace.
#[derive(Debug, Default)]
struct Decoded {
    /// Each packet's sequence flags.
    flags: Vec<u64>,
    /// (pid, tid or 0 for a process, name).
    tracks: Vec<(u64, u64, String)>,
    /// (timestamp, pid, tid, frames outermost first).
    samples: Vec<(u64, u64, u64, Vec<String>)>,
    /// Each frame's (name, source path, line).
    frames: HashMap<u64, (String, String, u64)>,
    clock: Option<u64>,
}

fn entries(data: &Msg, field: u32) -> Vec<Msg> {
    data.all(field).into_iter().map(Msg::parse).collect()
}

fn read(trace: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    let mut strings: HashMap<(u32, u64), String> = HashMap::new();
    let mut mappings: HashMap<u64, u64> = HashMap::new();
    let mut callstacks: HashMap<u64, Vec<u64>> = HashMap::new();
    let trace = Msg::parse(trace);
    for p in trace.all(TRACE_PACKET).into_iter().map(Msg::parse) {
        assert_eq!(p.num(P_SEQUENCE_ID), Some(SEQUENCE_ID));
        d.flags.push(p.num(P_SEQUENCE_FLAGS).unwrap_or(0));
        if let Some(c) = p.all(P_CLOCK_SNAPSHOT).first() {
            let clock = Msg::parse(Msg::parse(c).all(CS_CLOCKS)[0]);
            assert_eq!(clock.num(CLOCK_ID), Some(BUILTIN_CLOCK_MONOTONIC));
            d.clock = clock.num(CLOCK_TIMESTAMP);
        }
        for t in p.all(P_TRACK_DESCRIPTOR).into_iter().map(Msg::parse) {
            let (desc, tid, name) = match t.all(TD_THREAD).first() {
                Some(th) => (Msg::parse(th), THD_TID, THD_NAME),
                None => (Msg::parse(t.all(TD_PROCESS)[0]), 0, PD_NAME),
            };
            let name = desc.text(name).unwrap_or_default();
            let tid = if tid == 0 { 0 } else { desc.num(tid).unwrap() };
            d.tracks.push((desc.num(PD_PID).unwrap(), tid, name));
        }
        for data in p.all(P_INTERNED_DATA).into_iter().map(Msg::parse) {
            for field in [I_FUNCTION_NAMES, I_MAPPING_PATHS, I_SOURCE_PATHS] {
                for s in entries(&data, field) {
                    let key = (field, s.num(ENTRY_IID).unwrap());
                    let old = strings.insert(key, s.text(ENTRY_NAME).unwrap());
                    assert!(old.is_none(), "{key:?} interned twice");
                }
            }
            for m in entries(&data, I_MAPPINGS) {
                mappings.insert(
                    m.num(MAPPING_IID).unwrap(),
                    m.num(MAPPING_PATH_STRING_IDS).unwrap(),
                );
            }
            for f in entries(&data, I_FRAMES) {
                let get = |table, field| strings[&(table, f.num(field).unwrap())].clone();
                let name = get(I_FUNCTION_NAMES, FRAME_FUNCTION_NAME_ID);
                let source = get(I_SOURCE_PATHS, FRAME_SOURCE_PATH_IID);
                // The mapping is the source file's.
                let mapping = mappings[&f.num(FRAME_MAPPING_ID).unwrap()];
                assert_eq!(strings[&(I_MAPPING_PATHS, mapping)], source);
                let line = f.num(FRAME_LINE_NUMBER).unwrap_or(0);
                let old = (d.frames).insert(f.num(FRAME_IID).unwrap(), (name, source, line));
                assert!(old.is_none(), "a frame interned twice");
            }
            for c in entries(&data, I_CALLSTACKS) {
                // Unpacked, as profile_common.proto declares them.
                let ids = (c.0.iter())
                    .filter(|(k, _)| *k == CALLSTACK_FRAME_IDS)
                    .map(|(_, v)| match v {
                        Value::Varint(id) => *id,
                        Value::Bytes(_) => panic!("packed frame_ids"),
                    })
                    .collect();
                callstacks.insert(c.num(CALLSTACK_IID).unwrap(), ids);
            }
        }
        for s in p.all(P_PERF_SAMPLE).into_iter().map(Msg::parse) {
            let stack = &callstacks[&s.num(PS_CALLSTACK_IID).unwrap()];
            let frames = stack.iter().map(|id| d.frames[id].0.clone()).collect();
            let (pid, tid) = (s.num(PS_PID).unwrap(), s.num(PS_TID).unwrap());
            d.samples
                .push((p.num(P_TIMESTAMP).unwrap(), pid, tid, frames));
        }
    }
    d
}

fn trace(p: &Profile) -> Decoded {
    let mut out = Vec::new();
    write(p, &mut out).unwrap();
    read(&out)
}

#[test]
fn every_sample_is_a_perf_sample_with_its_time_thread_and_frames() {
    let d = trace(&testing::profile());
    assert_eq!(d.flags[0], SEQ_INCREMENTAL_STATE_CLEARED);
    assert_eq!(d.clock, Some(1000));
    let samples: Vec<_> = d.flags[1..].iter().zip(&d.samples).collect();
    assert!(!samples.is_empty());
    assert_eq!(
        d.tracks,
        [
            (42, 0, "python3".into()),
            (42, 42, "MainThread".into()),
            // An empty name is no name.
            (42, 43, String::new()),
        ]
    );
    let fib = "fib (app.py:3)";
    let module = "<module> (app.py:10)";
    let naive = "naïve;λ (ünï.py:7)";
    let native = "PyObject_Call (/usr/lib/libpython3.11.so)";
    let s = |ts, t: ThreadKey, frames: &[&str]| {
        let frames = frames.iter().map(|f| f.to_string()).collect();
        (ts, u64::from(t.pid), u64::from(t.tid), frames)
    };
    assert_eq!(
        d.samples,
        [
            s(1000, MAIN, &[module, fib, fib]),
            s(2000, MAIN, &[module, fib, fib]),
            s(3000, OTHER, &[naive, native]),
            s(4000, MAIN, &[module, naive]),
            s(5000, MAIN, &[module, fib, fib]),
            s(6000, OTHER, &[naive, native]),
            s(7000, MAIN, &[module, "<unknown 0x7f00>"]),
        ]
    );
    // Each frame's file and line, beside its name.
    let mut frames: Vec<_> = d.frames.into_values().collect();
    frames.sort();
    assert_eq!(
        frames[..2],
        [
            ("<module> (app.py:10)".into(), "app.py".into(), 10),
            ("<unknown 0x7f00>".into(), "<no file>".into(), 0),
        ]
    );
    assert_eq!(frames.len(), 5);
}

#[test]
fn samples_of_several_threads_come_in_time_order() {
    let mut p = Profile::new(Mode::Wall, 10);
    let f = p.intern(Frame {
        function: "f".into(),
        file: "a.py".into(),
        line: 1,
        kind: FrameKind::Python,
    });
    let (a, b) = (ThreadKey { pid: 1, tid: 1 }, ThreadKey { pid: 1, tid: 2 });
    p.add(a, &[f], 5, 300);
    p.add(b, &[f], 5, 100);
    p.add(a, &[f], 5, 400);
    p.add(b, &[], 5, 350);
    let d = trace(&p);
    let order: Vec<_> = d.samples.iter().map(|s| (s.0, s.2, s.3.len())).collect();
    assert_eq!(order, [(100, 2, 1), (300, 1, 1), (350, 2, 0), (400, 1, 1)]);
    // Unnamed: the tracks have no names.
    assert_eq!(d.tracks[0], (1, 0, String::new()));
}

#[test]
fn a_profile_past_its_timeline_is_refused_in_one_line() {
    let mut p = testing::profile();
    p.limit_timeline(0);
    let err = write(&p, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("needs each sample's time"), "{err}");
    assert!(!err.contains('\n'));
    // An empty profile is a trace with its clock and nothing else.
    let d = trace(&Profile::new(Mode::Cpu, 99));
    assert_eq!((d.samples.len(), d.tracks.len(), d.clock), (0, 0, Some(0)));
}
