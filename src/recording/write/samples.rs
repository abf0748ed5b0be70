//! The stack sampler's samples in a recording (format version 3): frames
//! ([`super::format::TAG_FRAME`]), sampled threads' names
//! ([`super::format::TAG_SAMPLED_THREAD`]) and samples
//! ([`super::format::TAG_SAMPLE`]).
//!
//! The frames are named by the caller, at record time: a code object
//! cannot be read once the process has exited, so the recording keeps
//! what the profiler made of it (function, file, line), not its address.
//! The caller interns them ([`Recorder::frame`] writes a new one each
//! call): it knows its frames by id already, and a sample is written as
//! ids, with no string looked up.

use std::io::Write;

use anyhow::Result;

use super::Recorder;
use crate::recording::format::{self, TAG_FRAME, TAG_SAMPLE, TAG_SAMPLED_THREAD};

/// A sample to write: frame ids are those [`Recorder::frame`] returned.
#[derive(Debug, Clone, Copy)]
pub struct SampleRecord<'a> {
    /// CLOCK_MONOTONIC when it was taken.
    pub ts_ns: u64,
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// What it weighs.
    pub weight_ns: u64,
    /// Its stack was cut at the depth limit.
    pub truncated: bool,
    /// Frame ids, innermost first.
    pub frames: &'a [u32],
}

impl<W: Write> Recorder<W> {
    /// Writes the next frame of the frame table (strings first): its id.
    pub fn frame(&mut self, function: &str, file: &str, line: u32, kind: u8) -> Result<u32> {
        let function = self.intern(function.as_bytes())?;
        let file = self.intern(file.as_bytes())?;
        let r = &mut self.record;
        r.clear();
        r.push(TAG_FRAME);
        format::put_uvarint(r, u64::from(function));
        format::put_uvarint(r, u64::from(file));
        format::put_uvarint(r, u64::from(line));
        r.push(kind);
        self.out.write_all(&self.record)?;
        self.next_frame += 1;
        Ok(self.next_frame - 1)
    }

    /// A sampled thread is named `name`, in process `process`, from here
    /// on.
    pub fn sampled_thread(&mut self, pid: u32, tid: u32, name: &str, process: &str) -> Result<()> {
        let name = self.intern(name.as_bytes())?;
        let process = self.intern(process.as_bytes())?;
        let r = &mut self.record;
        r.clear();
        r.push(TAG_SAMPLED_THREAD);
        for v in [pid, tid, name, process] {
            format::put_uvarint(r, u64::from(v));
        }
        Ok(self.out.write_all(&self.record)?)
    }

    /// Writes a sample.
    pub fn sample(&mut self, s: &SampleRecord<'_>) -> Result<()> {
        let r = &mut self.record;
        r.clear();
        r.push(TAG_SAMPLE);
        format::put_ivarint(r, s.ts_ns.wrapping_sub(self.prev_ts) as i64);
        format::put_uvarint(r, u64::from(s.pid));
        format::put_uvarint(r, u64::from(s.tid));
        format::put_uvarint(r, s.weight_ns);
        format::put_uvarint(
            r,
            if s.truncated {
                format::SAMPLE_TRUNCATED
            } else {
                0
            },
        );
        format::put_uvarint(r, s.frames.len() as u64);
        for id in s.frames {
            format::put_uvarint(r, u64::from(*id));
        }
        self.out.write_all(&self.record)?;
        self.prev_ts = s.ts_ns;
        self.samples += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
