//! Events as text lines or JSON Lines (the schema is in docs/output.md).
//!
//! Strings the probe could not read are recovered from the binary when
//! they point into it (see `engine::recover`); what stays unreadable is
//! shown as such, never as an empty string. Truncated strings are marked.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};

use crate::cpython::objects::PyValue;
use crate::engine::abi::KindMarker;
use crate::engine::decode::{AuditArgs, Body, Event, RawStr, StrState};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;
use crate::model::stack::{Frame, FuncId};
use crate::output::escape;

/// Output format of event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text lines for people.
    Text,
    /// One JSON object per line.
    Jsonl,
}

/// A string ready to print: the bytes, and what is wrong with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a> {
    /// Bytes (UTF-8 from CPython; printed lossily otherwise).
    pub bytes: Cow<'a, [u8]>,
    /// Only a part: the first, or with `kept_end` the last.
    pub truncated: bool,
    /// A truncated file name that kept its end (its file name).
    pub kept_end: bool,
    /// Could not be read at all.
    pub unreadable: bool,
}

impl Text<'_> {
    /// Lossy UTF-8; a string that kept its end starts with `…`.
    pub fn as_str(&self) -> Cow<'_, str> {
        if self.kept_end {
            return Cow::Owned(format!("…{}", String::from_utf8_lossy(&self.bytes)));
        }
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Resolves a captured string, recovering it from the binary if needed.
pub fn text<'a>(
    raw: &RawStr<'a>,
    event: &Event<'_>,
    source: &dyn Source,
    recovery: &mut Recovery,
) -> Text<'a> {
    match raw.state {
        StrState::Complete => Text {
            bytes: Cow::Borrowed(raw.bytes),
            truncated: false,
            kept_end: false,
            unreadable: false,
        },
        StrState::Truncated | StrState::KeptEnd => Text {
            bytes: Cow::Borrowed(raw.bytes),
            truncated: true,
            kept_end: raw.state == StrState::KeptEnd,
            unreadable: false,
        },
        StrState::Unreadable(_) => match raw
            .at
            .address()
            .and_then(|at| source.recover(recovery, event, at))
        {
            Some(bytes) => Text {
                bytes: Cow::Owned(bytes),
                truncated: false,
                kept_end: false,
                unreadable: false,
            },
            None => Text {
                bytes: Cow::Borrowed(b""),
                truncated: false,
                kept_end: false,
                unreadable: true,
            },
        },
    }
}

/// Event strings for the tools: recovered from the binary when the probe
/// could not read them, and shown as [`shown`] does.
#[derive(Debug, Default)]
pub struct Strings {
    /// String recovery (and its count, for the summary).
    pub recovery: Recovery,
    /// The functions named so far, so that naming an event's function
    /// costs a lookup and a comparison instead of two new strings.
    funcs: FuncCache,
}

/// Functions by (process, filename reference, funcname reference), each
/// with the bytes it was made from. A reference can name other text later
/// (freed code whose memory holds new code), so a hit counts only when
/// the bytes and their states are the same; strings that had to be
/// recovered from the binary are not kept (their bytes are not in the
/// event).
#[derive(Debug, Default)]
struct FuncCache {
    map: HashMap<(u32, u64, u64), CachedFunc, foldhash::fast::FixedState>,
}

#[derive(Debug)]
struct CachedFunc {
    filename: (Box<[u8]>, StrState),
    funcname: (Box<[u8]>, StrState),
    func: FuncId,
}

impl CachedFunc {
    fn made_from(&self, filename: &RawStr<'_>, funcname: &RawStr<'_>) -> bool {
        self.filename.1 == filename.state
            && self.funcname.1 == funcname.state
            && *self.filename.0 == *filename.bytes
            && *self.funcname.0 == *funcname.bytes
    }
}

/// Functions kept at most (a program that compiles code without end must
/// not grow pytap without end: the cache starts again).
const FUNC_CACHE_MAX: usize = 1 << 16;

impl Strings {
    /// The string, ready to print.
    pub fn get(&mut self, raw: &RawStr<'_>, event: &Event<'_>, source: &dyn Source) -> String {
        shown(&text(raw, event, source, &mut self.recovery))
    }

    /// The function a function event names, and its line (`None` for
    /// other events).
    pub fn func(&mut self, event: &Event<'_>, source: &dyn Source) -> Option<(FuncId, i32)> {
        let Body::Function {
            filename,
            funcname,
            lineno,
        } = &event.body
        else {
            return None;
        };
        let key = (event.header.pid, filename.at.key(), funcname.at.key());
        if let Some(hit) = self.funcs.map.get(&key)
            && hit.made_from(filename, funcname)
        {
            return Some((hit.func.clone(), *lineno));
        }
        let func = FuncId {
            filename: self.get(filename, event, source).into(),
            funcname: self.get(funcname, event, source).into(),
        };
        let readable = |s: &RawStr<'_>| !matches!(s.state, StrState::Unreadable(_));
        if readable(filename) && readable(funcname) {
            if self.funcs.map.len() >= FUNC_CACHE_MAX {
                self.funcs.map.clear();
            }
            self.funcs.map.insert(
                key,
                CachedFunc {
                    filename: (filename.bytes.into(), filename.state),
                    funcname: (funcname.bytes.into(), funcname.state),
                    func: func.clone(),
                },
            );
        }
        Some((func, *lineno))
    }
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
        self.json_line(&mut line, event, source, stack);
        let written = out.write_all(&line);
        self.bytes = line;
        written
    }

    fn json_line(
        &mut self,
        line: &mut Vec<u8>,
        event: &Event<'_>,
        source: &dyn Source,
        stack: Option<&[Frame]>,
    ) {
        let h = &event.header;
        let mut digits = itoa::Buffer::new();
        line.extend_from_slice(b"{\"marker\":\"");
        line.extend_from_slice(h.kind.marker().name().as_bytes());
        line.extend_from_slice(b"\",\"pid\":");
        line.extend_from_slice(digits.format(h.pid).as_bytes());
        line.extend_from_slice(b",\"tid\":");
        line.extend_from_slice(digits.format(h.tid).as_bytes());
        line.extend_from_slice(b",\"ts_ns\":");
        line.extend_from_slice(digits.format(h.ts_ns).as_bytes());
        line.extend_from_slice(b",\"cpu\":");
        // The in-process capture records no CPU.
        if h.flags & crate::engine::abi::FLAG_IN_PROCESS != 0 {
            line.extend_from_slice(b"null");
        } else {
            line.extend_from_slice(digits.format(h.cpu).as_bytes());
        }
        // Names of the fields that were truncated or unreadable (at most
        // two of each: a function event's strings).
        let mut truncated: [&str; 2] = [""; 2];
        let mut unreadable: [&str; 2] = [""; 2];
        let (mut n_truncated, mut n_unreadable) = (0, 0);
        let mut field = |line: &mut Vec<u8>, name: &'static str, t: &Text<'_>| {
            if t.truncated && n_truncated < 2 {
                truncated[n_truncated] = name;
                n_truncated += 1;
            }
            line.extend_from_slice(b",\"");
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b"\":");
            if t.unreadable {
                if n_unreadable < 2 {
                    unreadable[n_unreadable] = name;
                    n_unreadable += 1;
                }
                line.extend_from_slice(b"null");
            } else {
                escape::json_prefixed_into(line, if t.kept_end { "…" } else { "" }, &t.bytes);
            }
        };
        match &event.body {
            Body::Function {
                filename,
                funcname,
                lineno,
            } => {
                let file = text(filename, event, source, &mut self.recovery);
                let func = text(funcname, event, source, &mut self.recovery);
                field(line, "filename", &file);
                field(line, "funcname", &func);
                line.extend_from_slice(b",\"lineno\":");
                line.extend_from_slice(digits.format(*lineno).as_bytes());
            }
            Body::GcStart { generation } => {
                line.extend_from_slice(b",\"generation\":");
                line.extend_from_slice(digits.format(*generation).as_bytes());
            }
            Body::GcDone { collected } => {
                line.extend_from_slice(b",\"collected\":");
                line.extend_from_slice(digits.format(*collected).as_bytes());
            }
            Body::Import { module, found } => {
                let name = text(module, event, source, &mut self.recovery);
                field(line, "module", &name);
                if let Some(found) = found {
                    line.extend_from_slice(if *found {
                        b",\"found\":true"
                    } else {
                        b",\"found\":false"
                    });
                }
            }
            Body::Audit(audit) => {
                let name = text(&audit.event, event, source, &mut self.recovery);
                field(line, "event", &name);
                line.extend_from_slice(b",\"args\":");
                match source.audit_args(event, audit) {
                    Some(args) => {
                        // (Writing to a Vec cannot fail.)
                        let _ = json_args(line, &args);
                    }
                    None => line.extend_from_slice(b"null"),
                }
            }
        }
        for (key, list) in [
            ("truncated", &truncated[..n_truncated]),
            ("unreadable", &unreadable[..n_unreadable]),
        ] {
            if !list.is_empty() {
                line.extend_from_slice(b",\"");
                line.extend_from_slice(key.as_bytes());
                line.extend_from_slice(b"\":[");
                for (i, name) in list.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.push(b'"');
                    line.extend_from_slice(name.as_bytes());
                    line.push(b'"');
                }
                line.push(b']');
            }
        }
        if let Some(stack) = stack {
            line.extend_from_slice(b",\"stack\":[");
            for (i, frame) in stack.iter().rev().enumerate() {
                line.extend_from_slice(if i > 0 {
                    b",{\"funcname\":"
                } else {
                    b"{\"funcname\":"
                });
                escape::json_into(line, frame.func.funcname.as_bytes());
                line.extend_from_slice(b",\"filename\":");
                escape::json_into(line, frame.func.filename.as_bytes());
                line.extend_from_slice(b",\"lineno\":");
                line.extend_from_slice(digits.format(frame.line).as_bytes());
                line.push(b'}');
            }
            line.push(b']');
        }
        line.extend_from_slice(b"}\n");
    }
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

/// Appends [`shown`]`(t)` to `line` without allocating.
pub fn push_shown(line: &mut String, t: &Text<'_>) {
    if t.unreadable {
        line.push_str("<unreadable>");
        return;
    }
    if t.kept_end {
        line.push('…');
    }
    escape::text_into(line, &t.bytes);
    if t.truncated && !t.kept_end {
        line.push_str("...");
    }
}

/// A name as the tools keep it: `...` after what a truncated string kept
/// of its start, `…` before what a long path kept of its end,
/// `<unreadable>` when lost. Control characters are kept (JSON escapes
/// them, and filters match them); text output escapes them when it
/// writes the name ([`escape::text`]).
pub fn shown(t: &Text<'_>) -> String {
    if t.unreadable {
        "<unreadable>".to_string()
    } else if t.kept_end {
        t.as_str().into_owned()
    } else if t.truncated {
        format!("{}...", t.as_str())
    } else {
        t.as_str().into_owned()
    }
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

/// Writes a JSON string literal (escaped as [`escape::json_into`] does).
pub fn json_str(out: &mut dyn Write, s: &str) -> io::Result<()> {
    thread_local! {
        static LITERAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LITERAL.with_borrow_mut(|literal| {
        literal.clear();
        escape::json_into(literal, s.as_bytes());
        out.write_all(literal)
    })
}

/// The arguments as a JSON array (value encoding in docs/output.md).
pub fn json_args(out: &mut dyn Write, args: &AuditArgs) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, v) in args.values.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        json_value(out, v)?;
    }
    if args.more > 0 {
        write!(
            out,
            "{}{{\"more\":{}}}",
            if args.values.is_empty() { "" } else { "," },
            args.more
        )?;
    }
    out.write_all(b"]")
}

/// One decoded Python value as JSON.
pub fn json_value(out: &mut dyn Write, v: &PyValue) -> io::Result<()> {
    match v {
        PyValue::None => out.write_all(b"null"),
        PyValue::Bool(b) => write!(out, "{b}"),
        PyValue::Int(text) => {
            // Integers beyond 64 bits stay exact as strings.
            if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
                out.write_all(text.as_bytes())
            } else {
                out.write_all(b"{\"int\":")?;
                json_str(out, text)?;
                out.write_all(b"}")
            }
        }
        PyValue::Float(f) if f.is_finite() => write!(out, "{}", PyValue::Float(*f)),
        PyValue::Float(f) => {
            out.write_all(b"{\"float\":")?;
            json_str(out, &PyValue::Float(*f).to_string())?;
            out.write_all(b"}")
        }
        PyValue::Str { text, truncated } => {
            if *truncated {
                out.write_all(b"{\"str\":")?;
                json_str(out, text)?;
                out.write_all(b",\"truncated\":true}")
            } else {
                json_str(out, text)
            }
        }
        PyValue::Bytes { data, truncated } => {
            // Each byte as the character with that code (Latin-1), so any
            // bytes survive JSON's UTF-8.
            let latin1: String = data.iter().map(|&b| char::from(b)).collect();
            out.write_all(b"{\"bytes\":")?;
            json_str(out, &latin1)?;
            if *truncated {
                out.write_all(b",\"truncated\":true")?;
            }
            out.write_all(b"}")
        }
        PyValue::Tuple { items, more } => json_args(
            out,
            &AuditArgs {
                values: items.clone(),
                more: *more,
            },
        ),
        PyValue::Other(type_name) => {
            out.write_all(b"{\"object\":")?;
            json_str(out, type_name)?;
            out.write_all(b"}")
        }
        PyValue::Unreadable => out.write_all(b"{\"unreadable\":true}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &PyValue) -> String {
        let mut out = Vec::new();
        json_value(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_as_json() {
        assert_eq!(json(&PyValue::Int("5".into())), "5");
        assert_eq!(
            json(&PyValue::Int("1180591620717411303424".into())),
            "{\"int\":\"1180591620717411303424\"}"
        );
        assert_eq!(json(&PyValue::Float(3.5)), "3.5");
        assert_eq!(json(&PyValue::Float(f64::NAN)), "{\"float\":\"nan\"}");
        assert_eq!(
            json(&PyValue::Bytes {
                data: vec![b'b', 0xff],
                truncated: false
            }),
            "{\"bytes\":\"b\u{ff}\"}"
        );
        assert_eq!(
            json(&PyValue::Str {
                text: "a\"\n".into(),
                truncated: false
            }),
            "\"a\\\"\\n\""
        );
        let t = PyValue::Tuple {
            items: vec![PyValue::Int("2".into()), PyValue::None],
            more: 3,
        };
        assert_eq!(json(&t), "[2,null,{\"more\":3}]");
        assert_eq!(
            json(&PyValue::Other("code".into())),
            "{\"object\":\"code\"}"
        );
        // Every output parses as JSON.
        for v in [
            t,
            PyValue::Str {
                text: "\u{1}é".into(),
                truncated: true,
            },
            PyValue::Bool(false),
        ] {
            serde_json::from_str::<serde_json::Value>(&json(&v)).unwrap();
        }
    }
}
