//! A profile as speedscope's file format
//! (<https://www.speedscope.app/file-format-schema.json>): one `sampled`
//! profile per thread (threads by pid and tid, each named `NAME (pid P,
//! tid T)`), over one shared table of frames, `{name, file, line}` (the
//! file and line left out where the sampler did not know them).
//!
//! Weights are nanoseconds in every mode (a sample weighs its period, or
//! in `wall` mode the time its thread was off CPU), which speedscope shows
//! as time; a profile that carries no weight at all is written in samples
//! (unit `none`). Each thread's samples are in the order they were taken
//! when the profile kept its timeline ([`Profile::timeline`]: consecutive
//! samples of one stack are one, with their summed weight), so that
//! speedscope's time-order view shows the run; past the timeline's limit,
//! each distinct stack is one sample with its totals, which the
//! left-heavy and sandwich views show the same.

use std::io::{BufWriter, Write};

use anyhow::Result;

use crate::model::label::sampled_thread;
use crate::model::profile::{Profile, ThreadTimeline, Totals};
use crate::output::event::json_str;

/// Writes `profile` as a speedscope file named `name` to `out`.
pub fn write(profile: &Profile, name: &str, out: &mut dyn Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    let stacks = profile.stacks();
    let in_ns = stacks.is_empty() || stacks.iter().any(|(_, _, t)| t.weight_ns > 0);
    let threads: Vec<_> = match profile.timeline() {
        Some(timeline) => timeline,
        // Each thread's stacks, which `stacks()` gives thread by thread.
        None => {
            let mut threads: Vec<ThreadTimeline<'_>> = Vec::new();
            for (thread, frames, totals) in &stacks {
                match threads.last_mut() {
                    Some((t, samples)) if t == thread => samples.push((frames, *totals)),
                    _ => threads.push((*thread, vec![(frames, *totals)])),
                }
            }
            threads
        }
    };
    out.write_all(b"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",")?;
    write!(
        out,
        "\"exporter\":\"pytap {}\",\"name\":",
        env!("CARGO_PKG_VERSION")
    )?;
    json_str(&mut out, name)?;
    out.write_all(b",\"activeProfileIndex\":0,\"shared\":{\"frames\":[")?;
    write_frames(profile, &mut out)?;
    out.write_all(b"\n]},\"profiles\":[")?;
    for (i, thread) in threads.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        write_thread(profile, thread, in_ns, &mut out)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(())
}

/// One thread's sampled profile, weighed in nanoseconds (`in_ns`) or
/// samples.
fn write_thread(
    profile: &Profile,
    (thread, samples): &ThreadTimeline<'_>,
    in_ns: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let weight = |t: &Totals| if in_ns { t.weight_ns } else { t.samples };
    let end: u64 = samples.iter().map(|(_, t)| weight(t)).sum();
    out.write_all(b"{\"type\":\"sampled\",\"name\":")?;
    json_str(out, &sampled_thread(*thread, profile.thread(*thread)))?;
    let unit = if in_ns { "nanoseconds" } else { "none" };
    write!(
        out,
        ",\"unit\":\"{unit}\",\"startValue\":0,\"endValue\":{end},\"samples\":["
    )?;
    for (n, (frames, _)) in samples.iter().enumerate() {
        out.write_all(if n == 0 { b"[" } else { b",[" })?;
        // speedscope's stacks go from the root to the leaf.
        for (k, id) in frames.iter().rev().enumerate() {
            let comma = if k == 0 { "" } else { "," };
            write!(out, "{comma}{}", id.0)?;
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"],\"weights\":[")?;
    for (n, (_, totals)) in samples.iter().enumerate() {
        let comma = if n == 0 { "" } else { "," };
        write!(out, "{comma}{}", weight(totals))?;
    }
    out.write_all(b"]}")?;
    Ok(())
}

/// The shared frames, by id, comma-separated.
fn write_frames(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    for (i, frame) in profile.frames().iter().enumerate() {
        out.write_all(if i == 0 {
            b"\n{\"name\":"
        } else {
            b",\n{\"name\":"
        })?;
        json_str(out, &frame.function)?;
        if !frame.file.is_empty() {
            out.write_all(b",\"file\":")?;
            json_str(out, &frame.file)?;
        }
        if frame.line > 0 {
            write!(out, ",\"line\":{}", frame.line)?;
        }
        out.write_all(b"}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
