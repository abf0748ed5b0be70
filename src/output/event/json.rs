//! JSON: string literals, decoded Python values, and the JSON Lines event
//! line (`{"marker":…}`, schema in docs/output.md), built in one buffer
//! without the formatting machinery.

use std::io::{self, Write};

use super::{Text, text};
use crate::cpython::objects::PyValue;
use crate::engine::abi::KindMarker;
use crate::engine::decode::{AuditArgs, Body, Event, Header};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;
use crate::model::stack::Frame;
use crate::output::escape;

/// Appends one event's JSON line to `line`; with `stack`, its `"stack"`
/// (innermost frame first).
pub(super) fn event_line(
    line: &mut Vec<u8>,
    event: &Event<'_>,
    source: &dyn Source,
    recovery: &mut Recovery,
    stack: Option<&[Frame]>,
) {
    line.push(b'{');
    head(line, &event.header);
    let mut lossy = LossyFields::default();
    body(line, event, source, recovery, &mut lossy);
    lossy.write(line);
    if let Some(stack) = stack {
        stack_field(line, stack);
    }
    line.extend_from_slice(b"}\n");
}

/// The header's fields: marker, pid, tid, ts_ns, cpu.
fn head(line: &mut Vec<u8>, h: &Header) {
    let mut digits = itoa::Buffer::new();
    line.extend_from_slice(b"\"marker\":\"");
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
}

/// Names of the string fields that were truncated or unreadable (at most
/// two of each: a function event's strings), for `"truncated"` and
/// `"unreadable"`.
#[derive(Debug, Default)]
struct LossyFields {
    truncated: [&'static str; 2],
    n_truncated: usize,
    unreadable: [&'static str; 2],
    n_unreadable: usize,
}

impl LossyFields {
    /// Appends string field `name` (`null` when unreadable), noting what
    /// it lost.
    fn field(&mut self, line: &mut Vec<u8>, name: &'static str, t: &Text<'_>) {
        if t.truncated && self.n_truncated < 2 {
            self.truncated[self.n_truncated] = name;
            self.n_truncated += 1;
        }
        line.extend_from_slice(b",\"");
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b"\":");
        if t.unreadable {
            if self.n_unreadable < 2 {
                self.unreadable[self.n_unreadable] = name;
                self.n_unreadable += 1;
            }
            line.extend_from_slice(b"null");
        } else {
            escape::json_prefixed_into(line, if t.kept_end { "…" } else { "" }, &t.bytes);
        }
    }

    /// Appends `"truncated"` and `"unreadable"`, each when not empty.
    fn write(&self, line: &mut Vec<u8>) {
        for (key, list) in [
            ("truncated", &self.truncated[..self.n_truncated]),
            ("unreadable", &self.unreadable[..self.n_unreadable]),
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
    }
}

/// The fields of the event's kind.
fn body(
    line: &mut Vec<u8>,
    event: &Event<'_>,
    source: &dyn Source,
    recovery: &mut Recovery,
    lossy: &mut LossyFields,
) {
    let mut digits = itoa::Buffer::new();
    match &event.body {
        Body::Function {
            filename,
            funcname,
            lineno,
        } => {
            let file = text(filename, event, source, recovery);
            let func = text(funcname, event, source, recovery);
            lossy.field(line, "filename", &file);
            lossy.field(line, "funcname", &func);
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
            let name = text(module, event, source, recovery);
            lossy.field(line, "module", &name);
            if let Some(found) = found {
                line.extend_from_slice(if *found {
                    b",\"found\":true"
                } else {
                    b",\"found\":false"
                });
            }
        }
        Body::Audit(audit) => {
            let name = text(&audit.event, event, source, recovery);
            lossy.field(line, "event", &name);
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
}

/// Adds `"stack"` to a whole line of [`event_line`] made without it.
pub(super) fn add_stack(line: &mut Vec<u8>, stack: &[Frame]) {
    if line.ends_with(b"}\n") {
        line.truncate(line.len() - 2);
        stack_field(line, stack);
        line.extend_from_slice(b"}\n");
    }
}

/// `"stack"`: the frames, innermost first.
fn stack_field(line: &mut Vec<u8>, stack: &[Frame]) {
    let mut digits = itoa::Buffer::new();
    line.extend_from_slice(b",\"stack\":[");
    for (i, frame) in stack.iter().rev().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"funcname\":");
        escape::json_into(line, frame.func.funcname.as_bytes());
        line.extend_from_slice(b",\"filename\":");
        escape::json_into(line, frame.func.filename.as_bytes());
        line.extend_from_slice(b",\"lineno\":");
        line.extend_from_slice(digits.format(frame.line).as_bytes());
        line.push(b'}');
    }
    line.push(b']');
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
