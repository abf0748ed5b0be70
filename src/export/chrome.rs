//! The Chrome Trace Event JSON export (chrome://tracing, ui.perfetto.dev
//! and older tools): `{"traceEvents":[...],"displayTimeUnit":"ns"}`,
//! written as a stream, one event a line.
//!
//! Each slice is a complete event (`"ph":"X"`) written when it ends, so
//! inner slices come before the slice that contains them (viewers sort).
//! `ts` and `dur` are microseconds with three decimals (nanoseconds,
//! written exactly from the integers). Names of processes and threads are
//! metadata events (`"ph":"M"`), audit events are thread-scoped instants
//! (`"ph":"i"`, `"s":"t"`). Memory grows with stack depth, not events.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use crate::engine::decode::AuditArgs;
use crate::model::label::{self, Style};
use crate::model::slice::{Audit, End, Item, Sink, Thread};
use crate::model::stack::Frame;
use crate::output::event::json_str;
use crate::recording::StringTable;

/// Bytes buffered before they are written out.
const FLUSH_AT: usize = 1 << 16;

/// The Chrome JSON sink: writes to `out` as it goes (buffered), and ends
/// the JSON at [`Sink::finish`].
#[derive(Debug)]
pub struct ChromeSink<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Events written so far (for the commas).
    events: u64,
    /// Per thread, when its open slices began (innermost last).
    open: HashMap<Thread, Vec<u64>>,
}

/// An audit event's `args`, without their braces: `"argN"` as Python
/// prints each value, and `"more"` when some were not captured.
fn audit_args(b: &mut Vec<u8>, args: &AuditArgs) -> Result<()> {
    let mut text = String::new();
    for (i, v) in args.values.iter().enumerate() {
        use std::fmt::Write as _;
        text.clear();
        let _ = write!(text, "{v}");
        write!(b, "{}\"arg{i}\":", if i > 0 { "," } else { "" })?;
        json_str(b, &text)?;
    }
    if args.more > 0 {
        let sep = if args.values.is_empty() { "" } else { "," };
        write!(b, "{sep}\"more\":{}", args.more)?;
    }
    Ok(())
}

/// Writes `ns` as microseconds with three decimals.
fn micros(buf: &mut Vec<u8>, ns: u64) -> std::io::Result<()> {
    write!(buf, "{}.{:03}", ns / 1000, ns % 1000)
}

impl<W: Write> ChromeSink<W> {
    /// A sink writing Chrome JSON to `out`.
    pub fn new(out: W) -> Self {
        ChromeSink {
            out,
            buf: Vec::new(),
            events: 0,
            open: HashMap::new(),
        }
    }

    /// The output (call after [`Sink::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes one event: `{"ph":PH,"pid":P,"tid":T,"name":NAME`, then
    /// what `rest` adds, then the closing brace; writes the buffer out
    /// when it is big enough.
    fn event(
        &mut self,
        ph: &str,
        thread: Thread,
        name: &str,
        rest: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let Thread { pid, tid } = thread;
        let b = &mut self.buf;
        b.extend_from_slice(match self.events {
            0 => TRACE_EVENTS,
            _ => b",\n",
        });
        self.events += 1;
        b.push(b'{');
        write!(b, "\"ph\":\"{ph}\",\"pid\":{pid},\"tid\":{tid},\"name\":")?;
        json_str(b, name)?;
        rest(b)?;
        b.push(b'}');
        if b.len() >= FLUSH_AT {
            self.out.write_all(b)?;
            b.clear();
        }
        Ok(())
    }

    /// A metadata event naming a process or thread.
    fn metadata(&mut self, what: &str, thread: Thread, name: &str) -> Result<()> {
        self.event("M", thread, what, |b| {
            b.extend_from_slice(b",\"args\":{\"name\":");
            json_str(b, name)?;
            b.push(b'}');
            Ok(())
        })
    }
}

/// The start of the JSON document, before its first event (`finish`
/// writes the end).
const TRACE_EVENTS: &[u8] = b"{\"traceEvents\":[\n";

/// A complete slice's `args`, without their braces: what the item is, and
/// how it ended.
fn slice_args(
    b: &mut Vec<u8>,
    item: Option<&Item>,
    how: &End,
    strings: &StringTable,
) -> Result<()> {
    let mut sep = "";
    match item {
        Some(Item::Call(c)) => {
            b.extend_from_slice(b"\"file\":");
            json_str(b, strings.get(c.filename))?;
            write!(b, ",\"line\":{}", c.lineno)?;
            sep = ",";
        }
        Some(Item::Gc { generation }) => {
            write!(b, "\"generation\":{generation}")?;
            sep = ",";
        }
        Some(Item::Import { module }) => {
            b.extend_from_slice(b"\"module\":");
            json_str(b, strings.get(*module))?;
            sep = ",";
        }
        None => {}
    }
    match how {
        End::Returned => {}
        End::Collected(n) => write!(b, "{sep}\"collected\":{n}")?,
        End::Imported(found) => write!(b, "{sep}\"found\":{found}")?,
        End::Unfinished => write!(b, "{sep}\"unfinished\":true")?,
    }
    Ok(())
}

impl<W: Write> Sink for ChromeSink<W> {
    fn process(&mut self, pid: u32, name: &str) -> Result<()> {
        self.metadata("process_name", Thread { pid, tid: 0 }, name)
    }

    fn thread(&mut self, thread: Thread, name: &str) -> Result<()> {
        self.metadata("thread_name", thread, name)
    }

    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        _stack: &[Frame<Item>],
        _strings: &StringTable,
    ) -> Result<()> {
        self.open.entry(thread).or_default().push(ts_ns);
        Ok(())
    }

    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        how: &End,
        strings: &StringTable,
    ) -> Result<()> {
        let begun = self.open.get_mut(&thread).and_then(Vec::pop);
        let item = stack.last().map(|f| &f.func);
        let Some(begun) = begun.or_else(|| stack.last().map(|f| f.entered_ns)) else {
            return Ok(());
        };
        let (cat, name) = match item {
            Some(item) => (
                label::category(item),
                label::slice(item, strings, Style::Viewer),
            ),
            None => ("python", Cow::Borrowed("?")),
        };
        self.event("X", thread, &name, |b| {
            write!(b, ",\"cat\":\"{cat}\",\"ts\":")?;
            micros(b, begun)?;
            b.extend_from_slice(b",\"dur\":");
            micros(b, ts_ns.saturating_sub(begun))?;
            b.extend_from_slice(b",\"args\":{");
            slice_args(b, item, how, strings)?;
            b.push(b'}');
            Ok(())
        })
    }

    fn audit(
        &mut self,
        audit: &Audit<'_>,
        _stack: &[Frame<Item>],
        _strings: &StringTable,
    ) -> Result<()> {
        let Audit {
            thread,
            ts_ns,
            event,
            args,
        } = *audit;
        self.event("i", thread, event, |b| {
            b.extend_from_slice(b",\"cat\":\"audit\",\"s\":\"t\",\"ts\":");
            micros(b, ts_ns)?;
            b.extend_from_slice(b",\"args\":{");
            if let Some(args) = args {
                audit_args(b, args)?;
            }
            b.push(b'}');
            Ok(())
        })
    }

    fn finish(&mut self, _strings: &StringTable) -> Result<()> {
        if self.events == 0 {
            self.buf.extend_from_slice(b"{\"traceEvents\":[");
        }
        self.buf
            .extend_from_slice(b"\n],\"displayTimeUnit\":\"ns\"}\n");
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpython::objects::PyValue;
    use crate::export::testing::frame;
    use crate::model::slice::Call;
    use serde_json::{Value, json};

    #[test]
    fn events_nest_and_carry_their_args() -> Result<()> {
        let mut s = StringTable::default();
        let (f, file, json) = (s.push(b"f\"q"), s.push(b"/a\\b.py"), s.push(b"json"));
        let f = frame(Item::Call(Call {
            funcname: f,
            filename: file,
            lineno: 3,
        }));
        let gc = frame(Item::Gc { generation: 1 });
        let import = frame(Item::Import { module: json });
        let (t, u) = (Thread { pid: 7, tid: 8 }, Thread { pid: 7, tid: 9 });
        let mut sink = ChromeSink::new(Vec::new());
        sink.process(7, "python3")?;
        sink.thread(t, "Main\nThread")?;
        sink.begin(t, 1_000_001, std::slice::from_ref(&f), &s)?;
        sink.begin(u, 1_000_002, std::slice::from_ref(&import), &s)?;
        sink.begin(t, 1_500_000, &[f.clone(), gc.clone()], &s)?;
        sink.end(t, 1_600_000, &[f.clone(), gc], &End::Collected(4), &s)?;
        let args = AuditArgs {
            values: vec![PyValue::None, PyValue::Bool(true)],
            more: 3,
        };
        let audit = Audit {
            thread: t,
            ts_ns: 1_700_000,
            event: "os.exec",
            args: Some(&args),
        };
        sink.audit(&audit, std::slice::from_ref(&f), &s)?;
        sink.end(u, 2_000_000, &[import], &End::Imported(false), &s)?;
        sink.end(t, 2_000_000, &[f], &End::Unfinished, &s)?;
        sink.finish(&s)?;
        let text = String::from_utf8(sink.into_inner())?;
        assert!(text.lines().count() == 8, "one event a line:\n{text}");
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["displayTimeUnit"], "ns");
        let events = v["traceEvents"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            events[0],
            json!({"ph": "M", "pid": 7, "tid": 0, "name": "process_name",
            "args": {"name": "python3"}})
        );
        assert_eq!(events[1]["args"]["name"], "Main\nThread");
        assert_eq!(
            events[2],
            json!({"ph": "X", "pid": 7, "tid": 8, "name": "gc", "cat": "gc",
            "ts": 1500.0, "dur": 100.0, "args": {"generation": 1, "collected": 4}})
        );
        assert_eq!(
            events[3],
            json!({"ph": "i", "pid": 7, "tid": 8, "name": "os.exec",
            "cat": "audit", "s": "t", "ts": 1700.0,
            "args": {"arg0": "None", "arg1": "True", "more": 3}})
        );
        assert_eq!(events[4]["name"], "import json");
        assert_eq!(events[4]["args"], json!({"module": "json", "found": false}));
        assert_eq!(events[5]["name"], "f\"q");
        assert_eq!(
            events[5]["args"],
            json!({"file": "/a\\b.py", "line": 3, "unfinished": true})
        );
        // ns precision, and the gc slice nests in f on tid 8.
        assert!(text.contains("\"ts\":1000.001,\"dur\":999.999"));
        let span = |e: &Value| {
            let ts = e["ts"].as_f64().unwrap_or(-1.0);
            (ts, ts + e["dur"].as_f64().unwrap_or(-1.0))
        };
        let (outer, inner) = (span(&events[5]), span(&events[2]));
        assert!(outer.0 <= inner.0 && inner.1 <= outer.1);
        Ok(())
    }

    #[test]
    fn empty_and_odd_input() -> Result<()> {
        let s = StringTable::default();
        let mut sink = ChromeSink::new(Vec::new());
        sink.end(Thread { pid: 1, tid: 1 }, 5, &[], &End::Returned, &s)?;
        let audit = Audit {
            thread: Thread { pid: 1, tid: 1 },
            ts_ns: 5,
            event: "",
            args: None,
        };
        sink.audit(&audit, &[], &s)?;
        sink.finish(&s)?;
        let v: Value = serde_json::from_slice(&sink.into_inner())?;
        assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(1));
        let mut sink = ChromeSink::new(Vec::new());
        sink.finish(&s)?;
        let v: Value = serde_json::from_slice(&sink.into_inner())?;
        assert_eq!(v, json!({"traceEvents": [], "displayTimeUnit": "ns"}));
        Ok(())
    }
}
