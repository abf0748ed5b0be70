//! A profile as pprof's `perftools.profiles.Profile` (profile.proto, as
//! `go tool pprof` and most profilers' viewers read it), gzip-compressed
//! (by flate2's pure-Rust backend), encoded with the exports' protobuf
//! encoder ([`crate::export::protobuf`]).
//!
//! - Two values per sample: `samples/count` and `MODE/nanoseconds`
//!   (`cpu`, `wall` or `gil`: a sample's weight), the second the default;
//!   the period is `MODE/nanoseconds`, 1e9 / rate.
//! - One sample per distinct stack of a thread, its locations innermost
//!   first, labelled with the thread: `thread` and `process` (its names,
//!   left out when empty), `pid` and `tid` (numbers), so that
//!   `-tagfocus`/`-tagroot` can pick threads apart.
//! - One mapping, which says its locations have functions, files and
//!   lines already (else pprof would look for a binary to symbolize them
//!   with, and complain that it has none), and one location per frame in
//!   it (no address: a frame is a function and a line), one function per name, file and kind, its
//!   `start_line` 0 (the sampler sees the line run, not the line a
//!   function starts at). Only native functions have a `system_name` (their
//!   symbol): a Python function has none, and pprof would take one for a
//!   symbol to demangle, which makes `<module>` or `<listcomp>` nothing
//!   (its C++ heuristics strip `<…>` as template parameters).
//! - `time_nanos` when the start is known, `duration_nanos`, and comments:
//!   the exporter, and the samples truncated and frames unknown if any.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::export::protobuf::Encoder;
use crate::model::profile::{FrameKind, Profile};

// profile.proto's field numbers.
const PROFILE_SAMPLE_TYPE: u32 = 1;
const PROFILE_SAMPLE: u32 = 2;
const PROFILE_MAPPING: u32 = 3;
const PROFILE_LOCATION: u32 = 4;
const PROFILE_FUNCTION: u32 = 5;
const PROFILE_STRING_TABLE: u32 = 6;
const PROFILE_TIME_NANOS: u32 = 9;
const PROFILE_DURATION_NANOS: u32 = 10;
const PROFILE_PERIOD_TYPE: u32 = 11;
const PROFILE_PERIOD: u32 = 12;
const PROFILE_COMMENT: u32 = 13;
const PROFILE_DEFAULT_SAMPLE_TYPE: u32 = 14;
const VALUE_TYPE_TYPE: u32 = 1;
const VALUE_TYPE_UNIT: u32 = 2;
const SAMPLE_LOCATION_ID: u32 = 1;
const SAMPLE_VALUE: u32 = 2;
const SAMPLE_LABEL: u32 = 3;
const LABEL_KEY: u32 = 1;
const LABEL_STR: u32 = 2;
const LABEL_NUM: u32 = 3;
const MAPPING_ID: u32 = 1;
const MAPPING_HAS_FUNCTIONS: u32 = 7;
const MAPPING_HAS_FILENAMES: u32 = 8;
const MAPPING_HAS_LINE_NUMBERS: u32 = 9;
const LOCATION_ID: u32 = 1;
const LOCATION_MAPPING_ID: u32 = 2;
const LOCATION_LINE: u32 = 4;
const LINE_FUNCTION_ID: u32 = 1;
const LINE_LINE: u32 = 2;
const FUNCTION_ID: u32 = 1;
const FUNCTION_NAME: u32 = 2;
const FUNCTION_SYSTEM_NAME: u32 = 3;
const FUNCTION_FILENAME: u32 = 4;

/// The one mapping's id.
const MAPPING: u64 = 1;

/// The string table: `""` first, each string once.
#[derive(Debug)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, u64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// A sample's label: key, and a string or a number.
enum Label {
    Str(u64, u64),
    Num(u64, u64),
}

/// `profile` as an uncompressed `perftools.profiles.Profile` message.
pub fn encode(profile: &Profile) -> Vec<u8> {
    let mut s = Strings::new();
    let mut e = Encoder::new();
    let (samples, count) = (s.id("samples"), s.id("count"));
    let (mode, nanoseconds) = (s.id(profile.mode.name()), s.id("nanoseconds"));
    for (kind, unit) in [(samples, count), (mode, nanoseconds)] {
        value_type(&mut e, PROFILE_SAMPLE_TYPE, kind, unit);
    }
    self::samples(profile, &mut s, &mut e);
    e.begin(PROFILE_MAPPING);
    e.uint(MAPPING_ID, MAPPING);
    for field in [
        MAPPING_HAS_FUNCTIONS,
        MAPPING_HAS_FILENAMES,
        MAPPING_HAS_LINE_NUMBERS,
    ] {
        e.bool(field, true);
    }
    e.end();
    locations(profile, &mut s, &mut e);
    let comments = comments(profile).map(|c| s.id(&c)).collect::<Vec<_>>();
    for string in &s.table {
        e.string(PROFILE_STRING_TABLE, string);
    }
    if profile.start_unix_ns > 0 {
        e.uint(PROFILE_TIME_NANOS, profile.start_unix_ns);
    }
    e.uint(PROFILE_DURATION_NANOS, profile.duration_ns);
    value_type(&mut e, PROFILE_PERIOD_TYPE, mode, nanoseconds);
    if profile.rate_hz > 0 {
        e.uint(PROFILE_PERIOD, 1_000_000_000 / u64::from(profile.rate_hz));
    }
    e.packed(PROFILE_COMMENT, &comments);
    e.uint(PROFILE_DEFAULT_SAMPLE_TYPE, mode);
    e.as_bytes().to_vec()
}

/// The functions (one per name, file and kind) and the locations (one per
/// frame, its id the frame's plus one: 0 is no location).
fn locations(profile: &Profile, s: &mut Strings, e: &mut Encoder) {
    let mut functions: HashMap<(&str, &str, FrameKind), u64> = HashMap::new();
    let mut locations: Vec<(u64, u64)> = Vec::with_capacity(profile.frames().len());
    for f in profile.frames() {
        let next = functions.len() as u64 + 1;
        let id = *functions
            .entry((&f.function, &f.file, f.kind))
            .or_insert_with(|| {
                let (name, file) = (s.id(&f.function), s.id(&f.file));
                e.begin(PROFILE_FUNCTION);
                e.uint(FUNCTION_ID, next);
                e.uint(FUNCTION_NAME, name);
                if f.kind == FrameKind::Native {
                    e.uint(FUNCTION_SYSTEM_NAME, name);
                }
                e.uint(FUNCTION_FILENAME, file);
                e.end();
                next
            });
        locations.push((id, u64::from(f.line)));
    }
    for (i, (function, line)) in locations.iter().enumerate() {
        e.begin(PROFILE_LOCATION);
        e.uint(LOCATION_ID, i as u64 + 1);
        e.uint(LOCATION_MAPPING_ID, MAPPING);
        e.begin(LOCATION_LINE);
        e.uint(LINE_FUNCTION_ID, *function);
        if *line > 0 {
            e.uint(LINE_LINE, *line);
        }
        e.end();
        e.end();
    }
}

/// One sample per distinct stack of a thread, labelled with the thread.
fn samples(profile: &Profile, s: &mut Strings, e: &mut Encoder) {
    let [thread_key, process_key, pid_key, tid_key] =
        ["thread", "process", "pid", "tid"].map(|k| s.id(k));
    let mut ids = Vec::new();
    for (thread, frames, totals) in profile.stacks() {
        let names = profile
            .thread(thread)
            .map_or(["", ""], |i| [i.name.as_str(), i.process.as_str()]);
        let mut labels = Vec::with_capacity(4);
        for (key, name) in [thread_key, process_key].into_iter().zip(names) {
            if !name.is_empty() {
                labels.push(Label::Str(key, s.id(name)));
            }
        }
        labels.push(Label::Num(pid_key, u64::from(thread.pid)));
        labels.push(Label::Num(tid_key, u64::from(thread.tid)));
        ids.clear();
        ids.extend(frames.iter().map(|f| u64::from(f.0) + 1));
        e.begin(PROFILE_SAMPLE);
        e.packed(SAMPLE_LOCATION_ID, &ids);
        e.packed(SAMPLE_VALUE, &[totals.samples, totals.weight_ns]);
        for label in labels {
            e.begin(SAMPLE_LABEL);
            let (key, field, value) = match label {
                Label::Str(key, value) => (key, LABEL_STR, value),
                Label::Num(key, value) => (key, LABEL_NUM, value),
            };
            e.uint(LABEL_KEY, key);
            e.uint(field, value);
            e.end();
        }
        e.end();
    }
}

/// A `ValueType` message as field `field`.
fn value_type(e: &mut Encoder, field: u32, kind: u64, unit: u64) {
    e.begin(field);
    e.uint(VALUE_TYPE_TYPE, kind);
    e.uint(VALUE_TYPE_UNIT, unit);
    e.end();
}

/// The profile's comments: who wrote it, and what it lacks.
fn comments(profile: &Profile) -> impl Iterator<Item = String> {
    let exporter = format!("pytap {}", env!("CARGO_PKG_VERSION"));
    let truncated = (profile.truncated > 0).then(|| {
        format!(
            "samples truncated at the depth limit: {}",
            profile.truncated
        )
    });
    let unknown =
        (profile.unknown_frames > 0).then(|| format!("frames unknown: {}", profile.unknown_frames));
    [Some(exporter), truncated, unknown].into_iter().flatten()
}

/// Writes `profile` as a gzipped pprof file to `out`.
pub fn write(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&encode(profile))?;
    gz.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
