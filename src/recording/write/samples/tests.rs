//! Samples written and read back: frames, names and samples in their
//! order, a recording cut anywhere, and references to what is not there.

use super::*;
use crate::recording::format::{
    FRAME_PYTHON, FRAME_UNKNOWN, Meta, ProfileMeta, RecordedFrame, RecordedSample,
};
use crate::recording::read::{Reader, SampledThread};

fn start() -> Meta {
    Meta::Start {
        pytap: "test".into(),
        realtime_ns: 1,
        monotonic_ns: 2,
        target: vec!["python3".into()],
        markers: vec![],
        profile: Some(ProfileMeta {
            mode: "wall".into(),
            rate_hz: 99,
        }),
    }
}

/// A recording of three samples of two threads, one truncated.
fn recording() -> Vec<u8> {
    let mut r = Recorder::new(Vec::new(), &start()).unwrap();
    let main = r.frame("main", "app.py", 3, FRAME_PYTHON).unwrap();
    let f = r.frame("f", "app.py", 7, FRAME_PYTHON).unwrap();
    r.sampled_thread(7, 7, "python3", "python3").unwrap();
    fn sample(ts_ns: u64, tid: u32, frames: &[u32], truncated: bool) -> SampleRecord<'_> {
        SampleRecord {
            ts_ns,
            pid: 7,
            tid,
            weight_ns: 10_101_010,
            truncated,
            frames,
        }
    }
    r.sample(&sample(5_000, 7, &[f, main], false)).unwrap();
    let more = r.frame("<more>", "", 0, FRAME_UNKNOWN).unwrap();
    r.sampled_thread(7, 8, "", "python3").unwrap();
    // Earlier than the one before (another CPU): a negative delta.
    r.sample(&sample(4_000, 8, &[more, f], true)).unwrap();
    r.sample(&sample(9_000, 7, &[], false)).unwrap();
    let end = Meta::End {
        events: 0,
        lost: 1,
        malformed: 0,
        reason: "exited".into(),
        status: Some(0),
        signal: None,
        monotonic_ns: 3,
        samples: Some(r.samples),
        without_python: Some(4),
        sampled_ns: Some(1_000_000),
    };
    r.end(&end).unwrap()
}

/// Each sample read, with the names read before it.
type Seen = Vec<(Vec<SampledThread>, RecordedSample)>;

/// Everything read.
fn read(bytes: &[u8]) -> (Reader<&[u8]>, Seen) {
    let mut reader = Reader::new(bytes).unwrap();
    let mut seen = Vec::new();
    while reader.advance().unwrap() {
        assert!(reader.event().is_none());
        let names = std::mem::take(&mut reader.sampled_threads);
        seen.push((names, reader.sample().unwrap().clone()));
    }
    (reader, seen)
}

#[test]
fn samples_read_back_with_their_frames_and_thread_names() {
    let bytes = recording();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 3);
    let (reader, seen) = read(&bytes);
    let thread = |tid, name: &str| SampledThread {
        pid: 7,
        tid,
        name: name.into(),
        process: "python3".into(),
    };
    let sample = |ts_ns, tid, frames: Vec<u32>, flags| RecordedSample {
        ts_ns,
        pid: 7,
        tid,
        weight_ns: 10_101_010,
        flags,
        frames,
    };
    assert_eq!(
        seen,
        [
            (vec![thread(7, "python3")], sample(5_000, 7, vec![1, 0], 0)),
            (vec![thread(8, "")], sample(4_000, 8, vec![2, 1], 1)),
            (vec![], sample(9_000, 7, vec![], 0)),
        ]
    );
    let s = |id| reader.strings.get(id).to_string();
    let frames: Vec<_> = (reader.frames.iter())
        .map(|f: &RecordedFrame| (s(f.function), s(f.file), f.line, f.kind))
        .collect();
    assert_eq!(
        frames,
        [
            ("main".into(), "app.py".into(), 3, FRAME_PYTHON),
            ("f".into(), "app.py".into(), 7, FRAME_PYTHON),
            ("<more>".into(), String::new(), 0, FRAME_UNKNOWN),
        ]
    );
    // "app.py" and "python3" once each.
    assert_eq!(bytes.windows(6).filter(|w| w == b"app.py").count(), 1);
    assert_eq!((reader.samples, reader.events), (3, 0));
    assert_eq!(reader.start, Some(start()));
    let Some(Meta::End {
        samples,
        without_python,
        sampled_ns,
        ..
    }) = reader.end
    else {
        panic!("no end: {:?}", reader.end)
    };
    assert_eq!(
        (samples, without_python, sampled_ns),
        (Some(3), Some(4), Some(1_000_000))
    );
    assert!(!reader.cut_short);
}

#[test]
fn a_recording_of_samples_cut_anywhere_reads_a_prefix() {
    let bytes = recording();
    let (_, all) = read(&bytes);
    for cut in 12..bytes.len() {
        let (reader, seen) = read(&bytes[..cut]);
        assert!(reader.cut_short, "cut at {cut}");
        assert_eq!(seen[..], all[..seen.len()], "cut at {cut}");
    }
}

#[test]
fn samples_and_frames_referring_to_nothing_are_malformed() {
    let mut r = Recorder::new(Vec::new(), &start()).unwrap();
    let f = r.frame("f", "a.py", 1, FRAME_PYTHON).unwrap();
    let good = r.out.len();
    // A frame id the table does not have.
    r.sample(&SampleRecord {
        ts_ns: 1,
        pid: 1,
        tid: 1,
        weight_ns: 1,
        truncated: false,
        frames: &[f + 1],
    })
    .unwrap();
    let mut reader = Reader::new(&r.out[..]).unwrap();
    let err = reader.advance().unwrap_err().to_string();
    assert_eq!(err, format!("malformed sample at byte {good}"));
    // A frame whose strings were never written, and one of no known kind.
    for bad in [
        &[crate::recording::format::TAG_FRAME, 9, 0, 1, 0][..],
        &[crate::recording::format::TAG_FRAME, 0, 0, 1, 7][..],
    ] {
        let mut bytes = r.out[..good].to_vec();
        bytes.extend_from_slice(bad);
        let mut reader = Reader::new(&bytes[..]).unwrap();
        let err = reader.advance().unwrap_err().to_string();
        assert_eq!(err, format!("malformed frame at byte {good}"), "{bad:?}");
    }
}
