//! The speedscope export (speedscope.app's file format,
//! <https://www.speedscope.app/file-format-schema.json>): one evented
//! profile per thread over one shared table of frames.
//!
//! A call's frame is `{name, file, line}`; gc collections and imports are
//! frames named `[gc generation N]` and `[import NAME]`. Each profile is
//! named `NAME (pid P, tid T)` (the thread's name, else its process's, else
//! `python`), in nanoseconds, its `O`/`C` events' `at` (and its
//! `startValue`/`endValue`) counted from the first event of the recording.
//!
//! Memory does not grow with the events: only the frames table (distinct
//! frames) is kept, and each thread's events, written as JSON, go to one
//! unlinked temporary file in chunks (each thread buffers up to 64 KiB,
//! all threads up to 8 MiB), copied into the output at the end.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};

use super::folded::Key;
use crate::model::label::{self, Style, thread as thread_label};
use crate::model::slice::{End, Item, Sink, Thread};
use crate::model::stack::Frame;
use crate::output::event::json_str;
use crate::recording::StringTable;

/// A thread's buffer is spilled past this many bytes.
const THREAD_BUFFER: usize = 1 << 16;
/// All buffers are spilled past this many bytes in all.
const ALL_BUFFERS: usize = 8 << 20;

/// One thread's profile.
#[derive(Debug)]
struct Profile {
    thread: Thread,
    name: Option<String>,
    start: u64,
    end: u64,
    events: u64,
    /// Frames open (innermost last), to close what is left at the end.
    open: Vec<usize>,
    /// Events not yet spilled (JSON, comma-separated).
    buf: Vec<u8>,
    /// Spilled chunks: offset in the spill file and length.
    chunks: Vec<(u64, usize)>,
}

/// The speedscope sink: keeps the frames, spills the events, and writes
/// the file at [`Sink::finish`].
#[derive(Debug)]
pub struct SpeedscopeSink<W: Write> {
    out: W,
    name: String,
    frames: HashMap<Key, usize>,
    /// The frames as JSON objects, comma-separated.
    frames_json: Vec<u8>,
    origin: Option<u64>,
    profiles: Vec<Profile>,
    index: HashMap<Thread, usize>,
    processes: HashMap<u32, String>,
    spill: Option<(File, u64)>,
    buffered: usize,
    /// Spill limits: per thread, and all threads.
    limits: (usize, usize),
}

impl<W: Write> SpeedscopeSink<W> {
    /// A sink writing a speedscope file named `name` to `out`.
    pub fn new(out: W, name: String) -> Self {
        SpeedscopeSink {
            out,
            name,
            frames: HashMap::new(),
            frames_json: Vec::new(),
            origin: None,
            profiles: Vec::new(),
            index: HashMap::new(),
            processes: HashMap::new(),
            spill: None,
            buffered: 0,
            limits: (THREAD_BUFFER, ALL_BUFFERS),
        }
    }

    /// The output (call after [`Sink::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn profile(&mut self, thread: Thread) -> usize {
        let profiles = &mut self.profiles;
        *self.index.entry(thread).or_insert_with(|| {
            profiles.push(Profile {
                thread,
                name: None,
                start: 0,
                end: 0,
                events: 0,
                open: Vec::new(),
                buf: Vec::new(),
                chunks: Vec::new(),
            });
            profiles.len() - 1
        })
    }

    fn frame(&mut self, item: Option<&Item>, strings: &StringTable) -> Result<usize> {
        let key = Key::of(item);
        if let Some(&i) = self.frames.get(&key) {
            return Ok(i);
        }
        let i = self.frames.len();
        self.frames.insert(key, i);
        let b = &mut self.frames_json;
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"name\":");
        match item {
            Some(Item::Call(c)) => {
                json_str(b, strings.get(c.funcname))?;
                b.extend_from_slice(b",\"file\":");
                json_str(b, strings.get(c.filename))?;
                write!(b, ",\"line\":{}", c.lineno)?;
            }
            Some(item) => json_str(b, &label::slice(item, strings, Style::Profile))?,
            None => json_str(b, "[unknown]")?,
        }
        b.push(b'}');
        Ok(i)
    }

    /// Appends an `O`/`C` event of `frame` at `ts_ns` to profile `p`.
    fn event(&mut self, p: usize, open: bool, frame: usize, ts_ns: u64) -> Result<()> {
        let origin = *self.origin.get_or_insert(ts_ns);
        let at = ts_ns.saturating_sub(origin);
        let Some(profile) = self.profiles.get_mut(p) else {
            return Ok(());
        };
        if profile.events == 0 {
            profile.start = at;
        }
        profile.end = profile.end.max(at);
        let before = profile.buf.len();
        if profile.events > 0 {
            profile.buf.push(b',');
        }
        profile.events += 1;
        let kind = if open { 'O' } else { 'C' };
        write!(
            profile.buf,
            "{{\"type\":\"{kind}\",\"frame\":{frame},\"at\":{at}}}"
        )?;
        self.buffered += profile.buf.len() - before;
        if profile.buf.len() >= self.limits.0 {
            self.spill(p)?;
        }
        if self.buffered >= self.limits.1 {
            for p in 0..self.profiles.len() {
                self.spill(p)?;
            }
        }
        Ok(())
    }

    /// Moves profile `p`'s buffered events to the spill file.
    fn spill(&mut self, p: usize) -> Result<()> {
        let Some(profile) = self.profiles.get_mut(p) else {
            return Ok(());
        };
        if profile.buf.is_empty() {
            return Ok(());
        }
        let (file, len) = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert((spill_file()?, 0)),
        };
        file.write_all(&profile.buf)?;
        profile.chunks.push((*len, profile.buf.len()));
        *len += profile.buf.len() as u64;
        self.buffered = self.buffered.saturating_sub(profile.buf.len());
        profile.buf = Vec::new();
        Ok(())
    }
}

/// A new temporary file, already unlinked.
fn spill_file() -> Result<File> {
    let dir = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut last = None;
    for attempt in 0..16 {
        let path = dir.join(format!(
            "pytap-speedscope-{}-{stamp}-{attempt}",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no attempt"));
    Err(e).with_context(|| format!("creating a temporary file in {}", dir.display()))
}

impl<W: Write> Sink for SpeedscopeSink<W> {
    fn process(&mut self, pid: u32, name: &str) -> Result<()> {
        self.processes.insert(pid, name.to_owned());
        Ok(())
    }

    fn thread(&mut self, thread: Thread, name: &str) -> Result<()> {
        let p = self.profile(thread);
        if let Some(profile) = self.profiles.get_mut(p) {
            profile.name = Some(name.to_owned());
        }
        Ok(())
    }

    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()> {
        let frame = self.frame(stack.last().map(|f| &f.func), strings)?;
        let p = self.profile(thread);
        if let Some(profile) = self.profiles.get_mut(p) {
            profile.open.push(frame);
        }
        self.event(p, true, frame, ts_ns)
    }

    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        _stack: &[Frame<Item>],
        _how: &End,
        _strings: &StringTable,
    ) -> Result<()> {
        let p = self.profile(thread);
        match self
            .profiles
            .get_mut(p)
            .and_then(|profile| profile.open.pop())
        {
            Some(frame) => self.event(p, false, frame, ts_ns),
            None => Ok(()),
        }
    }

    fn finish(&mut self, _strings: &StringTable) -> Result<()> {
        // Frames a malformed timeline left open close at their thread's end.
        for p in 0..self.profiles.len() {
            let Some(profile) = self.profiles.get_mut(p) else {
                continue;
            };
            let end = profile.end + self.origin.unwrap_or(0);
            for frame in std::mem::take(&mut profile.open).into_iter().rev() {
                self.event(p, false, frame, end)?;
            }
        }
        let mut out = BufWriter::new(&mut self.out);
        out.write_all(b"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\"")?;
        write!(
            out,
            ",\"exporter\":\"pytap {}\",\"name\":",
            env!("CARGO_PKG_VERSION")
        )?;
        json_str(&mut out, &self.name)?;
        out.write_all(b",\"activeProfileIndex\":0,\"shared\":{\"frames\":[")?;
        out.write_all(&self.frames_json)?;
        out.write_all(b"]},\"profiles\":[")?;
        let mut chunk = Vec::new();
        let profiles = self.profiles.iter().filter(|p| p.events > 0);
        for (i, profile) in profiles.enumerate() {
            let label = thread_label(profile.thread, profile.name.as_deref(), &self.processes);
            out.write_all(if i > 0 { b",\n" } else { b"\n" })?;
            out.write_all(b"{\"type\":\"evented\",\"name\":")?;
            json_str(&mut out, &label)?;
            write!(
                out,
                ",\"unit\":\"nanoseconds\",\"startValue\":{},\"endValue\":{},\"events\":[",
                profile.start, profile.end
            )?;
            for &(offset, len) in &profile.chunks {
                let Some((file, _)) = &self.spill else {
                    break;
                };
                chunk.resize(len, 0);
                file.read_exact_at(&mut chunk, offset)?;
                out.write_all(&chunk)?;
            }
            out.write_all(&profile.buf)?;
            out.write_all(b"]}")?;
        }
        out.write_all(b"\n]}\n")?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testing::frame;
    use crate::model::slice::{Audit, Call};
    use serde_json::{Value, json};

    /// Checks a profile's events: balanced, nested, `at` non-decreasing and
    /// within its start and end; returns how many frames were opened.
    fn check(profile: &Value) -> usize {
        assert_eq!(profile["type"], "evented");
        assert_eq!(profile["unit"], "nanoseconds");
        let (start, end) = (&profile["startValue"], &profile["endValue"]);
        let (start, end) = (start.as_u64().unwrap(), end.as_u64().unwrap());
        let (mut open, mut last, mut count) = (vec![], start, 0);
        for e in profile["events"].as_array().unwrap() {
            let at = e["at"].as_u64().unwrap();
            assert!(last <= at && at <= end, "{at} outside {last}..={end}");
            last = at;
            match e["type"].as_str() {
                Some("O") => {
                    open.push(e["frame"].clone());
                    count += 1;
                }
                Some("C") => assert_eq!(open.pop().as_ref(), Some(&e["frame"])),
                other => panic!("event type {other:?}"),
            }
        }
        assert!(open.is_empty());
        count
    }

    #[test]
    fn profiles_per_thread() -> Result<()> {
        let mut s = StringTable::default();
        let (f, file, json) = (s.push(b"f"), s.push(b"/a.py"), s.push(b"json"));
        let f = frame(Item::Call(Call {
            funcname: f,
            filename: file,
            lineno: 2,
        }));
        let gc = frame(Item::Gc { generation: 0 });
        let import = frame(Item::Import { module: json });
        let (t, u) = (Thread { pid: 5, tid: 5 }, Thread { pid: 5, tid: 6 });
        let mut sink = SpeedscopeSink::new(Vec::new(), "demo \"run\"".into());
        sink.process(5, "python3")?;
        sink.thread(t, "MainThread")?;
        sink.begin(t, 1000, std::slice::from_ref(&f), &s)?;
        sink.begin(u, 1100, std::slice::from_ref(&import), &s)?;
        sink.begin(t, 1200, &[f.clone(), gc.clone()], &s)?;
        sink.end(t, 1300, &[f.clone(), gc], &End::Collected(0), &s)?;
        sink.end(u, 1400, &[import], &End::Imported(true), &s)?;
        sink.end(t, 1500, &[f], &End::Unfinished, &s)?;
        sink.finish(&s)?;
        let v: Value = serde_json::from_slice(&sink.into_inner())?;
        assert_eq!(
            v["$schema"],
            "https://www.speedscope.app/file-format-schema.json"
        );
        assert_eq!(
            v["exporter"],
            format!("pytap {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(v["name"], "demo \"run\"");
        assert_eq!(v["activeProfileIndex"], 0);
        assert_eq!(
            v["shared"]["frames"],
            json!([
                {"name": "f", "file": "/a.py", "line": 2},
                {"name": "[import json]"},
                {"name": "[gc generation 0]"},
            ])
        );
        let profiles = v["profiles"].as_array().cloned().unwrap_or_default();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0]["name"], "MainThread (pid 5, tid 5)");
        assert_eq!(profiles[1]["name"], "python3 (pid 5, tid 6)");
        assert_eq!((check(&profiles[0]), check(&profiles[1])), (2, 1));
        assert_eq!(
            profiles[0]["events"][1],
            json!({"type": "O", "frame": 2, "at": 200})
        );
        assert_eq!(
            (&profiles[1]["startValue"], &profiles[1]["endValue"]),
            (&json!(100), &json!(400))
        );
        Ok(())
    }

    #[test]
    fn events_spill_and_come_back_in_order() -> Result<()> {
        let mut s = StringTable::default();
        let file = s.push(b"/a.py");
        let names: Vec<u32> = (0..50)
            .map(|i| s.push(format!("f{i}").as_bytes()))
            .collect();
        let mut sink = SpeedscopeSink::new(Vec::new(), "x".into());
        sink.limits = (1000, 5000);
        let mut stacks = vec![vec![]; 3];
        for i in 0..3000u64 {
            let tid = (i % 3) as u32;
            let stack: &mut Vec<Frame<Item>> = &mut stacks[tid as usize];
            let t = Thread { pid: 1, tid };
            if stack.len() < 5 && (i / 3) % 7 != 6 {
                let funcname = names[(i % 50) as usize];
                stack.push(frame(Item::Call(Call {
                    funcname,
                    filename: file,
                    lineno: 1,
                })));
                sink.begin(t, i, stack, &s)?;
            } else if !stack.is_empty() {
                sink.end(t, i, stack, &End::Returned, &s)?;
                stack.pop();
            }
        }
        // One frame is closed here, what is left open at `finish`.
        sink.end(Thread { pid: 1, tid: 0 }, 3000, &[], &End::Unfinished, &s)?;
        assert!(sink.spill.as_ref().is_some_and(|(_, len)| *len > 5000));
        sink.finish(&s)?;
        let v: Value = serde_json::from_slice(&sink.into_inner())?;
        let profiles = v["profiles"].as_array().cloned().unwrap_or_default();
        let opened: usize = profiles.iter().map(check).sum();
        assert!(opened > 1000, "{opened}");
        Ok(())
    }

    #[test]
    fn empty_and_odd_input() -> Result<()> {
        let s = StringTable::default();
        let mut sink = SpeedscopeSink::new(Vec::new(), String::new());
        let t = Thread { pid: 1, tid: 1 };
        sink.end(t, 5, &[], &End::Returned, &s)?;
        let audit = Audit {
            thread: t,
            ts_ns: 5,
            event: "x",
            args: None,
        };
        sink.audit(&audit, &[], &s)?;
        sink.thread(Thread { pid: 1, tid: 2 }, "idle")?;
        sink.begin(t, 3, &[], &s)?;
        sink.finish(&s)?;
        let v: Value = serde_json::from_slice(&sink.into_inner())?;
        assert_eq!(v["shared"]["frames"], json!([{"name": "[unknown]"}]));
        let profiles = v["profiles"].as_array().cloned().unwrap_or_default();
        assert_eq!(profiles.len(), 1);
        assert_eq!(check(&profiles[0]), 1);
        Ok(())
    }
}
