//! Events as text lines or JSON Lines (the schema is in docs/output.md):
//! the writer and its text line here, the JSON line and JSON values in
//! [`json`], the events' strings in [`strings`].
//!
//! Strings the probe could not read are recovered from the binary when
//! they point into it (see `engine::recover`); what stays unreadable is
//! shown as such, never as an empty string. Truncated strings are marked.

use std::io::{self, Write};

use crate::engine::abi::KindMarker;
use crate::engine::decode::{AuditArgs, Body, Event};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;
use crate::model::stack::Frame;

mod json;
mod strings;
pub use json::{json_args, json_str, json_value};
pub use strings::{Strings, Text, push_shown, shown, text};

/// Output format of event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text lines for people.
    Text,
    /// One JSON object per line.
    Jsonl,
}

/// A header line written just before a tool's first line, or at the end if
/// none came: never before the attach succeeded, so an error stays one line.
#[derive(Debug, Default)]
pub struct PendingHeader(Option<&'static str>);

impl PendingHeader {
    /// A header (with its newline), or none.
    pub fn new(header: Option<&'static str>) -> PendingHeader {
        PendingHeader(header)
    }

    /// Writes the header if it has not been written yet.
    pub fn write(&mut self, out: &mut dyn Write) -> io::Result<()> {
        match self.0.take() {
            Some(h) => out.write_all(h.as_bytes()),
            None => Ok(()),
        }
    }
}

/// Seconds since the first event a tool saw (its time column).
#[derive(Debug, Default, Clone, Copy)]
pub struct Clock {
    origin: Option<u64>,
}

impl Clock {
    /// Seconds from the first timestamp given to this one.
    pub fn secs(&mut self, ts_ns: u64) -> f64 {
        let origin = *self.origin.get_or_insert(ts_ns);
        ts_ns.saturating_sub(origin) as f64 / 1e9
    }
}

/// Writes events in one format.
#[derive(Debug)]
pub struct EventWriter {
    format: Format,
    origin: Option<u64>,
    /// String recovery (and its count, for the summary).
    pub recovery: Recovery,
    /// Text lines fit this width (a terminal's); `None` keeps them whole.
    pub width: Option<usize>,
    /// The text line being built (reused: no allocation per event).
    line: String,
    /// The JSON line being built (likewise).
    bytes: Vec<u8>,
}

impl EventWriter {
    /// A writer for `format`.
    pub fn new(format: Format) -> EventWriter {
        EventWriter {
            format,
            origin: None,
            recovery: Recovery::default(),
            width: None,
            line: String::new(),
            bytes: Vec::new(),
        }
    }

    /// The text header line (text format only).
    pub fn header(&self) -> Option<&'static str> {
        (self.format == Format::Text)
            .then_some("      TIME(s)      PID      TID  CPU  MARKER                     ARGS\n")
    }

    /// Writes one event.
    pub fn write(
        &mut self,
        out: &mut dyn Write,
        event: &Event<'_>,
        source: &dyn Source,
    ) -> io::Result<()> {
        self.write_with_stack(out, event, source, None)
    }

    /// Writes one event; a JSON line gets `"stack"`, the thread's Python
    /// stack at that moment, innermost frame first (`--stacks`).
    pub fn write_with_stack(
        &mut self,
        out: &mut dyn Write,
        event: &Event<'_>,
        source: &dyn Source,
        stack: Option<&[Frame]>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => self.write_text(out, event, source),
            Format::Jsonl => self.write_json(out, event, source, stack),
        }
    }

    /// One event's JSON line, without its stack, which [`add_stack`] adds
    /// once it is known (`--stacks`: an event waits for the stack its
    /// program walked).
    pub fn json_line(&mut self, event: &Event<'_>, source: &dyn Source) -> Vec<u8> {
        let mut line = Vec::new();
        json::event_line(&mut line, event, source, &mut self.recovery, None);
        line
    }

    fn write_text(
        &mut self,
        out: &mut dyn Write,
        event: &Event<'_>,
        source: &dyn Source,
    ) -> io::Result<()> {
        use std::fmt::Write as _;
        let h = &event.header;
        let origin = *self.origin.get_or_insert(h.ts_ns);
        // Seconds with six decimals, from integers: what `{:13.6}` of the
        // float would print, without float formatting on every event.
        let us = h.ts_ns.saturating_sub(origin) / 1000;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        // The in-process capture records no CPU.
        let in_process = h.flags & crate::engine::abi::FLAG_IN_PROCESS != 0;
        // The columns of `{:>6}.{:06} {:>8} {:>8} {:>4}  {:<26} `, written
        // without the formatting machinery (a measurable share of the
        // consumer's time per event).
        let mut digits = itoa::Buffer::new();
        push_right(&mut line, digits.format(us / 1_000_000), 6);
        line.push('.');
        push_zero_padded(&mut line, digits.format(us % 1_000_000), 6);
        line.push(' ');
        push_right(&mut line, digits.format(h.pid), 8);
        line.push(' ');
        push_right(&mut line, digits.format(h.tid), 8);
        line.push(' ');
        if in_process {
            push_right(&mut line, "-", 4);
        } else {
            push_right(&mut line, digits.format(h.cpu), 4);
        }
        line.push_str("  ");
        let name = h.kind.marker().name();
        line.push_str(name);
        for _ in name.len()..26 {
            line.push(' ');
        }
        line.push(' ');
        let args_start = line.len();
        match &event.body {
            Body::Function {
                filename,
                funcname,
                lineno,
            } => {
                let file = text(filename, event, source, &mut self.recovery);
                let func = text(funcname, event, source, &mut self.recovery);
                push_shown(&mut line, &func);
                line.push_str(" (");
                push_shown(&mut line, &file);
                line.push(':');
                line.push_str(digits.format(*lineno));
                line.push(')');
            }
            Body::GcStart { generation } => {
                let _ = write!(line, "generation {generation}");
            }
            Body::GcDone { collected } => {
                let _ = write!(line, "collected {collected}");
            }
            Body::Import { module, found } => {
                push_shown(&mut line, &text(module, event, source, &mut self.recovery));
                match found {
                    None => {}
                    Some(true) => line.push_str(" (found)"),
                    Some(false) => line.push_str(" (not found)"),
                }
            }
            Body::Audit(audit) => {
                push_shown(
                    &mut line,
                    &text(&audit.event, event, source, &mut self.recovery),
                );
                match source.audit_args(event, audit) {
                    Some(args) => line.push_str(&args_repr(&args)),
                    None => line.push_str("(<arguments not captured>)"),
                }
            }
        }
        // The columns before ARGS take 65 characters.
        if let Some(w) = self.width {
            let args =
                crate::output::fit::middle(&line[args_start..], w.saturating_sub(65).max(20));
            line.truncate(args_start);
            line.push_str(&args);
        }
        line.push('\n');
        let written = out.write_all(line.as_bytes());
        self.line = line;
        written
    }

    fn write_json(
        &mut self,
        out: &mut dyn Write,
        event: &Event<'_>,
        source: &dyn Source,
        stack: Option<&[Frame]>,
    ) -> io::Result<()> {
        // The whole line is built in one reused buffer and written at once:
        // no allocation, no formatting machinery, one call into the sink.
        let mut line = std::mem::take(&mut self.bytes);
        line.clear();
        json::event_line(&mut line, event, source, &mut self.recovery, stack);
        let written = out.write_all(&line);
        self.bytes = line;
        written
    }
}

/// Adds `"stack"` (outermost frame first in `stack`, written innermost
/// first) to a line [`EventWriter::json_line`] made.
pub fn add_stack(line: &mut Vec<u8>, stack: &[Frame]) {
    json::add_stack(line, stack);
}

/// Appends `s` right-aligned in `width` columns (ASCII).
fn push_right(line: &mut String, s: &str, width: usize) {
    for _ in s.len()..width {
        line.push(' ');
    }
    line.push_str(s);
}

/// Appends `s` (digits) zero-padded to `width`.
fn push_zero_padded(line: &mut String, s: &str, width: usize) {
    for _ in s.len()..width {
        line.push('0');
    }
    line.push_str(s);
}

/// `(1, 'a', b'b', None, (2, 3.5))`: the arguments as Python would print them.
pub fn args_repr(args: &AuditArgs) -> String {
    let mut s = String::from("(");
    for (i, v) in args.values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&v.to_string());
    }
    if args.more > 0 {
        s.push_str(&format!(", ...{} more", args.more));
    }
    s.push(')');
    s
}
