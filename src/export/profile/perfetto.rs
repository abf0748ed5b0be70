//! A sampled profile as a Perfetto trace (`Trace`, as ui.perfetto.dev and
//! trace processor read it), in Perfetto's own representation of samples:
//! one `PerfSample` per sample (its pid, tid and callstack), each in a
//! packet with the sample's timestamp, on one packet sequence whose
//! interned data holds the frames and callstacks, encoded with the
//! exports' protobuf encoder ([`crate::export::protobuf`]) and the field
//! numbers of [`crate::export::perfetto::proto`]. Trace processor puts
//! them in its `perf_sample` table, on each thread, and the UI draws them
//! as a thread's samples and their flame graph.
//!
//! - The first packet clears the sequence's incremental state and makes
//!   `CLOCK_MONOTONIC` the trace's clock (the sampler's: `bpf_ktime_get_ns`,
//!   and wall mode's reads), as the timeline's export does.
//! - Each process and each thread sampled has a `TrackDescriptor` with its
//!   pid, tid and names, so that trace processor names them.
//! - A frame is interned once, in the packet of the first sample that has
//!   it: its function name is the frame's text as the other profile outputs
//!   give it (`function (file:line)`), with the file as its source path and
//!   the line as its line number besides, for readers that show them. Its
//!   mapping is its file's (one mapping per file, named by it), and its
//!   `rel_pc` is its index in the profile: frames carry no address, and
//!   trace processor tells a mapping's frames apart by `rel_pc`.
//! - A callstack is interned once per distinct stack, frames outermost
//!   first (Perfetto's "bottom frame first"), its `frame_ids` unpacked as
//!   profile_common.proto declares them.
//! - Samples come in the order of their timestamps; each is one sample
//!   (Perfetto has no weight per sample: in every mode a sample weighs one
//!   period).
//!
//! It needs each sample's time: past the profile's timeline limit
//! ([`crate::model::profile::TIMELINE_SAMPLES`]) there is none, and the
//! writer says so rather than write a trace that shows less than the
//! profile holds.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Result, bail};

use crate::export::perfetto::proto::*;
use crate::export::protobuf::Encoder;
use crate::model::label::sampled_frame;
use crate::model::profile::{FrameId, Profile, TIMELINE_SAMPLES};

/// Bytes buffered before they are written out.
const FLUSH_AT: usize = 1 << 20;

/// What has been interned on the sequence.
#[derive(Debug, Default)]
struct Interned<'p> {
    /// Frames, by their index in the profile.
    frames: Vec<bool>,
    /// Each file's iid (of its mapping, mapping path and source path).
    files: HashMap<&'p str, u64>,
    /// Each stack's callstack iid.
    callstacks: HashMap<&'p [FrameId], u64>,
}

/// Writes `profile` as a Perfetto trace to `out`.
pub fn write(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    let Some(samples) = profile.in_time() else {
        bail!(
            "the profile holds more samples than pytap keeps the times of ({TIMELINE_SAMPLES}), \
             and a Perfetto trace needs each sample's time: profile for less long or at a lower \
             --rate, or write another --format"
        );
    };
    let mut e = Encoder::new();
    e.begin(TRACE_PACKET);
    e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
    e.uint(P_SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
    monotonic_clock(&mut e, samples.first().map_or(0, |s| s.0));
    e.end();
    describe_threads(profile, &mut e);
    let mut interned = Interned {
        frames: vec![false; profile.frames().len()],
        ..Interned::default()
    };
    for (ts, thread, frames) in samples {
        open_packet(&mut e, Some(ts));
        let callstack = match interned.callstacks.get(frames) {
            Some(iid) => *iid,
            None => intern_stack(profile, frames, &mut interned, &mut e),
        };
        e.begin(P_PERF_SAMPLE);
        e.uint(PS_PID, u64::from(thread.pid));
        e.uint(PS_TID, u64::from(thread.tid));
        e.uint(PS_CALLSTACK_IID, callstack);
        e.end();
        e.end();
        if e.len() >= FLUSH_AT {
            out.write_all(e.as_bytes())?;
            e.clear();
        }
    }
    out.write_all(e.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A track descriptor for each process and thread sampled (processes
/// first, each before its threads), with their names where known.
fn describe_threads(profile: &Profile, e: &mut Encoder) {
    let mut processes: HashMap<u32, u64> = HashMap::new();
    let mut next_uuid = 0u64;
    for (key, info) in profile.threads() {
        let parent = match processes.get(&key.pid) {
            Some(uuid) => *uuid,
            None => {
                next_uuid += 1;
                processes.insert(key.pid, next_uuid);
                e.begin(TRACE_PACKET);
                e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
                e.begin(P_TRACK_DESCRIPTOR);
                e.uint(TD_UUID, next_uuid);
                e.begin(TD_PROCESS);
                e.int(PD_PID, i64::from(key.pid as i32));
                if !info.process.is_empty() {
                    e.string(PD_NAME, &info.process);
                }
                e.end();
                e.end();
                e.end();
                next_uuid
            }
        };
        next_uuid += 1;
        e.begin(TRACE_PACKET);
        e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
        e.begin(P_TRACK_DESCRIPTOR);
        e.uint(TD_UUID, next_uuid);
        e.uint(TD_PARENT_UUID, parent);
        e.begin(TD_THREAD);
        e.int(THD_PID, i64::from(key.pid as i32));
        e.int(THD_TID, i64::from(key.tid as i32));
        if !info.name.is_empty() {
            e.string(THD_NAME, &info.name);
        }
        e.end();
        e.end();
        e.end();
    }
}

/// Interns `frames` as a callstack (and the frames and files it has that
/// are new) in the open packet: its iid.
fn intern_stack<'p>(
    profile: &'p Profile,
    frames: &'p [FrameId],
    interned: &mut Interned<'p>,
    e: &mut Encoder,
) -> u64 {
    e.begin(P_INTERNED_DATA);
    for &id in frames {
        let seen = &mut interned.frames[id.0 as usize];
        if std::mem::replace(seen, true) {
            continue;
        }
        let frame = profile.frame(id);
        let next = interned.files.len() as u64 + 1;
        let file = *interned.files.entry(&frame.file).or_insert_with(|| {
            let path = if frame.file.is_empty() {
                "<no file>"
            } else {
                &frame.file
            };
            entry(e, I_MAPPING_PATHS, next, path.as_bytes());
            entry(e, I_SOURCE_PATHS, next, path.as_bytes());
            e.begin(I_MAPPINGS);
            e.uint(MAPPING_IID, next);
            e.uint(MAPPING_PATH_STRING_IDS, next);
            e.end();
            next
        });
        let iid = u64::from(id.0) + 1;
        let name = sampled_frame(&frame.function, &frame.file, frame.line);
        entry(e, I_FUNCTION_NAMES, iid, name.as_bytes());
        e.begin(I_FRAMES);
        e.uint(FRAME_IID, iid);
        e.uint(FRAME_FUNCTION_NAME_ID, iid);
        e.uint(FRAME_MAPPING_ID, file);
        e.uint(FRAME_REL_PC, u64::from(id.0));
        e.uint(FRAME_SOURCE_PATH_IID, file);
        if frame.line > 0 {
            e.uint(FRAME_LINE_NUMBER, u64::from(frame.line));
        }
        e.end();
    }
    let iid = interned.callstacks.len() as u64 + 1;
    interned.callstacks.insert(frames, iid);
    e.begin(I_CALLSTACKS);
    e.uint(CALLSTACK_IID, iid);
    for id in frames.iter().rev() {
        e.uint(CALLSTACK_FRAME_IDS, u64::from(id.0) + 1);
    }
    e.end();
    e.end();
    iid
}

#[cfg(test)]
mod tests;
