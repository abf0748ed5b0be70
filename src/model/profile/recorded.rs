//! A profile rebuilt from a recording of samples (`pytap record
//! --profile`), pure: the replay hands it what the reader read, in the
//! recording's order, and it makes the calls the live profiler made, in
//! the same order (frames interned as the recording's frame table lists
//! them, which is the order the profiler interned them in; threads named
//! where the profiler named them; each sample added with its weight and
//! time), so that every output of the profile is what the live run's
//! would have been.

use super::{Frame, FrameId, FrameKind, Mode, Profile, ThreadInfo, ThreadKey};
use crate::recording::StringTable;
use crate::recording::format::{
    FRAME_NATIVE, FRAME_PYTHON, ProfileMeta, RecordedFrame, RecordedSample, SAMPLE_TRUNCATED,
};
use crate::recording::read::SampledThread;

/// A profile being rebuilt.
#[derive(Debug)]
pub struct FromRecording {
    /// The profile so far.
    pub profile: Profile,
    /// The profile's id of each frame of the recording's table so far.
    frames: Vec<FrameId>,
    ids: Vec<FrameId>,
}

impl FromRecording {
    /// An empty profile with the recording's settings; `None` for a mode
    /// this pytap does not know.
    pub fn new(meta: &ProfileMeta) -> Option<FromRecording> {
        let mode = Mode::from_name(&meta.mode)?;
        Some(FromRecording {
            profile: Profile::new(mode, meta.rate_hz),
            frames: Vec::new(),
            ids: Vec::new(),
        })
    }

    /// Names a thread, as the recording says.
    pub fn thread(&mut self, t: &SampledThread) {
        let info = ThreadInfo {
            name: t.name.clone(),
            process: t.process.clone(),
        };
        (self.profile).name_thread(
            ThreadKey {
                pid: t.pid,
                tid: t.tid,
            },
            info,
        );
    }

    /// Adds a sample whose frames are in `table` (the reader checked that
    /// they are) and whose strings are in `strings`.
    pub fn sample(&mut self, s: &RecordedSample, table: &[RecordedFrame], strings: &StringTable) {
        for f in &table[self.frames.len().min(table.len())..] {
            let kind = match f.kind {
                FRAME_PYTHON => FrameKind::Python,
                FRAME_NATIVE => FrameKind::Native,
                _ => FrameKind::Unknown,
            };
            let id = self.profile.intern(Frame {
                function: strings.get(f.function).into(),
                file: strings.get(f.file).into(),
                line: f.line,
                kind,
            });
            self.frames.push(id);
        }
        self.ids.clear();
        (self.ids).extend(s.frames.iter().filter_map(|i| self.frames.get(*i as usize)));
        if s.flags & SAMPLE_TRUNCATED != 0 {
            self.profile.truncated += 1;
        }
        let thread = ThreadKey {
            pid: s.pid,
            tid: s.tid,
        };
        (self.profile).add(thread, &self.ids, s.weight_ns, s.ts_ns);
    }
}

/// The recording's kind of a frame ([`RecordedFrame::kind`]).
pub fn recorded_kind(kind: FrameKind) -> u8 {
    match kind {
        FrameKind::Python => FRAME_PYTHON,
        FrameKind::Native => FRAME_NATIVE,
        FrameKind::Unknown => crate::recording::format::FRAME_UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::testing;

    /// The test profile, as a recording would hold it, rebuilt.
    #[test]
    fn a_profile_rebuilt_from_its_samples_is_the_same_profile() {
        let live = testing::profile();
        let mut strings = StringTable::default();
        let mut table = Vec::new();
        for f in live.frames() {
            table.push(RecordedFrame {
                function: strings.push(f.function.as_bytes()),
                file: strings.push(f.file.as_bytes()),
                line: f.line,
                kind: recorded_kind(f.kind),
            });
        }
        let meta = ProfileMeta {
            mode: "cpu".into(),
            rate_hz: 100,
        };
        let mut rebuilt = FromRecording::new(&meta).unwrap();
        for (key, info) in live.threads() {
            rebuilt.thread(&SampledThread {
                pid: key.pid,
                tid: key.tid,
                name: info.name.clone(),
                process: info.process.clone(),
            });
        }
        for (ts_ns, thread, frames) in live.in_time().unwrap() {
            let sample = RecordedSample {
                ts_ns,
                pid: thread.pid,
                tid: thread.tid,
                weight_ns: testing::PERIOD_NS,
                flags: 0,
                frames: frames.iter().map(|f| f.0).collect(),
            };
            rebuilt.sample(&sample, &table, &strings);
        }
        let p = rebuilt.profile;
        assert_eq!(p.frames(), live.frames());
        assert_eq!(p.stacks(), live.stacks());
        assert_eq!(p.timeline(), live.timeline());
        assert_eq!(p.in_time(), live.in_time());
        assert_eq!(p.functions(), live.functions());
        let threads = |p: &Profile| {
            p.threads()
                .map(|(k, i)| (*k, i.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(threads(&p), threads(&live));
        assert_eq!((p.mode, p.rate_hz, p.unknown_frames), (live.mode, 100, 1));
        assert!(
            FromRecording::new(&ProfileMeta {
                mode: "heap".into(),
                rate_hz: 1
            })
            .is_none()
        );
    }
}
