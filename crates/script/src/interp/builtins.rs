//! Built-in functions as the interpreter runs them: the context's, string
//! functions with SystemTap's semantics (`tokenize`'s `strsep` loop,
//! `text_str`'s escapes, `strtol`), `thread_indent`'s counters, and the
//! actions (`exit`, `error`, `warn`, `log`).

use super::{Interp, RunError, World, err};
use crate::builtins::Builtin;
use crate::source::Span;
use crate::value::Value;

impl Interp {
    pub(super) fn builtin(
        &mut self,
        b: Builtin,
        args: &[Value],
        w: &mut World<'_>,
        span: Span,
    ) -> Result<Value, RunError> {
        let long = |i: usize| args.get(i).map_or(0, Value::long);
        let bytes = |i: usize| args.get(i).map_or(&b""[..], Value::bytes);
        Ok(match b {
            Builtin::Pid => Value::Long(w.ctx.pid()),
            Builtin::Tid => Value::Long(w.ctx.tid()),
            Builtin::Ppid => Value::Long(w.ctx.ppid()),
            Builtin::Uid => Value::Long(w.ctx.uid()),
            Builtin::Cpu => Value::Long(w.ctx.cpu()),
            Builtin::Execname => Value::Str(w.ctx.execname()),
            Builtin::Target => Value::Long(w.ctx.target()),
            Builtin::Pp => Value::Str(Vec::new()),
            Builtin::Probefunc => Value::Str(w.ctx.probe().function),
            Builtin::Probemod => Value::Str(w.ctx.probe().module),
            Builtin::ProbeId => Value::Long(w.ctx.probe().id),
            Builtin::GettimeofdayS => Value::Long(w.ctx.now_ns() / 1_000_000_000),
            Builtin::GettimeofdayMs => Value::Long(w.ctx.now_ns() / 1_000_000),
            Builtin::GettimeofdayUs => Value::Long(w.ctx.now_ns() / 1_000),
            Builtin::GettimeofdayNs => Value::Long(w.ctx.now_ns()),
            Builtin::ThreadIndent
            | Builtin::Indent
            | Builtin::ThreadIndentDepth
            | Builtin::IndentDepth => self.indent_builtin(b, long(0), w),
            Builtin::UserString | Builtin::UserStringN | Builtin::UserString2 => {
                let max = (b == Builtin::UserStringN).then(|| long(1).max(0) as usize);
                match w.ctx.user_string(long(0), max) {
                    Ok(s) => Value::Str(s),
                    Err(_) if b == Builtin::UserString2 => Value::Str(bytes(1).to_vec()),
                    Err(why) => {
                        return Err(err(
                            span,
                            format!("user string copy fault at {:#x}: {why}", long(0)),
                        ));
                    }
                }
            }
            Builtin::Pystack => Value::Str(w.ctx.python_stack(long(0).max(0) as usize)),
            Builtin::Ustack => Value::Str(w.ctx.native_stack(long(0).max(0) as usize)),
            Builtin::Timestamp => Value::Long(w.ctx.monotonic_ns()),
            Builtin::Probename => Value::Str(Vec::new()),
            Builtin::Strlen
            | Builtin::Substr
            | Builtin::DSubstr
            | Builtin::Basename
            | Builtin::Dirname
            | Builtin::Strstr
            | Builtin::Stringat
            | Builtin::Isinstr
            | Builtin::Strpos
            | Builtin::StrReplace
            | Builtin::Strtol
            | Builtin::Isdigit
            | Builtin::TextStr => string_builtin(b, args, span)?,
            Builtin::Tokenize | Builtin::TokenizeNext => {
                let delim = if b == Builtin::Tokenize {
                    bytes(1)
                } else {
                    bytes(0)
                };
                if b == Builtin::Tokenize && !bytes(0).is_empty() {
                    self.tokens = bytes(0).to_vec();
                    self.token_at = 0;
                }
                Value::Str(self.next_token(delim))
            }
            Builtin::Exit => {
                self.exit_requested = true;
                Value::Long(0)
            }
            Builtin::Error => {
                return Err(err(span, String::from_utf8_lossy(bytes(0)).into_owned()));
            }
            Builtin::Warn => {
                w.out.warn(&String::from_utf8_lossy(bytes(0)));
                Value::Long(0)
            }
            Builtin::Log => {
                let mut line = bytes(0).to_vec();
                line.push(b'\n');
                w.out.write(&line);
                Value::Long(0)
            }
        })
    }

    /// `thread_indent(n)`, `indent(n)` and their `_depth` forms: the
    /// thread's (or the one global) depth moved by `delta`.
    fn indent_builtin(&mut self, b: Builtin, delta: i64, w: &mut World<'_>) -> Value {
        match b {
            Builtin::ThreadIndent | Builtin::Indent => {
                let thread = b == Builtin::ThreadIndent;
                let now = w.ctx.now_ns() / 1_000;
                let state = if thread {
                    self.indent.entry(w.ctx.tid()).or_insert((0, 0))
                } else {
                    &mut self.global_indent
                };
                let depth = indent_step(state, delta, now);
                let elapsed = now - state.1;
                let desc = if thread {
                    let mut d = w.ctx.execname();
                    d.extend_from_slice(format!("({})", w.ctx.tid()).as_bytes());
                    d
                } else {
                    Vec::new()
                };
                Value::Str(indent_text(elapsed, &desc, depth))
            }
            Builtin::ThreadIndentDepth | Builtin::IndentDepth => {
                let state = if b == Builtin::ThreadIndentDepth {
                    self.indent.entry(w.ctx.tid()).or_insert((0, 0))
                } else {
                    &mut self.global_indent
                };
                let now = state.1;
                Value::Long(indent_step(state, delta, now))
            }
            _ => unreachable!("not an indent built-in"),
        }
    }

    /// The next non-empty token (SystemTap's `strsep` loop).
    fn next_token(&mut self, delim: &[u8]) -> Vec<u8> {
        while self.token_at <= self.tokens.len() {
            let rest = &self.tokens[self.token_at.min(self.tokens.len())..];
            if self.token_at == self.tokens.len() {
                self.token_at += 1;
                return Vec::new();
            }
            let end = rest
                .iter()
                .position(|c| delim.contains(c))
                .unwrap_or(rest.len());
            let token = rest[..end].to_vec();
            self.token_at += end + 1;
            if !token.is_empty() {
                return token;
            }
        }
        Vec::new()
    }
}

/// The string functions: pure, on the values given.
fn string_builtin(b: Builtin, args: &[Value], span: Span) -> Result<Value, RunError> {
    let long = |i: usize| args.get(i).map_or(0, Value::long);
    let bytes = |i: usize| args.get(i).map_or(&b""[..], Value::bytes);
    Ok(match b {
        Builtin::Strlen => Value::Long(bytes(0).len() as i64),
        Builtin::Substr => {
            let s = bytes(0);
            let start = (long(1).max(0) as usize).min(s.len());
            let len = long(2).max(0) as usize;
            Value::Str(s[start..(start.saturating_add(len)).min(s.len())].to_vec())
        }
        Builtin::DSubstr => Value::Str(d_substr(bytes(0), long(1), long(2))),
        Builtin::Basename => Value::Str(basename(bytes(0))),
        Builtin::Dirname => Value::Str(dirname(bytes(0))),
        Builtin::Strstr => {
            let (s, t) = (bytes(0), bytes(1));
            Value::Str(
                s.windows(t.len().max(1))
                    .position(|w| t.is_empty() || w == t)
                    .map_or_else(Vec::new, |at| s[at..].to_vec()),
            )
        }
        Builtin::Stringat => {
            let s = bytes(0);
            let i = long(1);
            if i < 0 || i as usize >= s.len() {
                return Err(err(
                    span,
                    format!(
                        "stringat: position {i} is outside a string of {} bytes",
                        s.len()
                    ),
                ));
            }
            Value::Long(i64::from(s[i as usize]))
        }
        Builtin::Isinstr => Value::Long(i64::from(find(bytes(0), bytes(1)).is_some())),
        Builtin::Strpos => Value::Long(find(bytes(0), bytes(1)).map_or(-1, |i| i as i64)),
        Builtin::StrReplace => {
            let (s, from, to) = (bytes(0), bytes(1), bytes(2));
            if from.is_empty() {
                Value::Str(s.to_vec())
            } else {
                let mut out = Vec::new();
                let mut rest = s;
                while let Some(i) = find(rest, from) {
                    out.extend_from_slice(&rest[..i]);
                    out.extend_from_slice(to);
                    rest = &rest[i + from.len()..];
                }
                out.extend_from_slice(rest);
                Value::Str(out)
            }
        }
        Builtin::Strtol => Value::Long(strtol(bytes(0), long(1))),
        Builtin::Isdigit => {
            Value::Long(i64::from(bytes(0).first().is_some_and(u8::is_ascii_digit)))
        }
        Builtin::TextStr => Value::Str(text_str(bytes(0))),
        _ => unreachable!("not a string built-in"),
    })
}

/// One `thread_indent` step on `(counter, base_us)` at time `now`: the
/// depth to indent by (SystemTap's `_generic_indent`: the time base
/// restarts whenever the counter is 0 before the step).
pub fn indent_step(state: &mut (i64, i64), delta: i64, now: i64) -> i64 {
    if state.0 == 0 {
        state.1 = now;
    }
    let x = state.0 + delta.max(0);
    state.0 += delta;
    if x > 0 { x - 1 } else { 0 }
}

/// `thread_indent`'s text: `"%6d %s:%-*s"`.
pub fn indent_text(elapsed_us: i64, desc: &[u8], depth: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + desc.len() + depth.clamp(0, 64) as usize);
    let mut digits = itoa::Buffer::new();
    let us = digits.format(elapsed_us);
    out.resize(6usize.saturating_sub(us.len()), b' ');
    out.extend_from_slice(us.as_bytes());
    out.push(b' ');
    out.extend_from_slice(desc);
    out.push(b':');
    out.resize(out.len() + depth.clamp(0, 4096) as usize, b' ');
    out
}
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn strtol(s: &[u8], base: i64) -> i64 {
    let text = String::from_utf8_lossy(s);
    let t = text.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (base, t) = match base {
        0 if t.starts_with("0x") || t.starts_with("0X") => (16, &t[2..]),
        0 if t.starts_with('0') && t.len() > 1 => (8, &t[1..]),
        0 => (10, t),
        16 => (
            16,
            t.strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(t),
        ),
        b => (b.clamp(2, 36) as u32, t),
    };
    let digits: String = t.chars().take_while(|c| c.is_digit(base)).collect();
    let v = i64::from_str_radix(&digits, base).unwrap_or(0);
    if neg { v.wrapping_neg() } else { v }
}

/// SystemTap's `text_str`: C escapes for what is not printable ASCII.
pub fn text_str(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in s {
        match c {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\x0b' => out.extend_from_slice(b"\\v"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\x07' => out.extend_from_slice(b"\\a"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\{c:03o}").as_bytes()),
        }
    }
    out
}

/// D's `substr(s, index, length)`: a negative index counts from the end,
/// a negative length stops that many bytes before it.
pub fn d_substr(s: &[u8], index: i64, length: i64) -> Vec<u8> {
    let n = s.len() as i64;
    let start = if index < 0 {
        (n + index).max(0)
    } else {
        index.min(n)
    };
    let end = if length < 0 {
        (n + length).max(start)
    } else {
        start.saturating_add(length).min(n)
    };
    s[start as usize..end.max(start) as usize].to_vec()
}

/// D's `basename`: the last component, trailing slashes ignored.
pub fn basename(path: &[u8]) -> Vec<u8> {
    let trimmed = trim_slashes(path);
    if trimmed.is_empty() {
        return if path.is_empty() {
            b".".to_vec()
        } else {
            b"/".to_vec()
        };
    }
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(at) => trimmed[at + 1..].to_vec(),
        None => trimmed.to_vec(),
    }
}

/// D's `dirname`: all but the last component.
pub fn dirname(path: &[u8]) -> Vec<u8> {
    let trimmed = trim_slashes(path);
    if trimmed.is_empty() {
        return if path.is_empty() {
            b".".to_vec()
        } else {
            b"/".to_vec()
        };
    }
    match trimmed.iter().rposition(|&c| c == b'/') {
        None => b".".to_vec(),
        Some(at) => {
            let dir = trim_slashes(&trimmed[..at]);
            if dir.is_empty() {
                b"/".to_vec()
            } else {
                dir.to_vec()
            }
        }
    }
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod d_tests {
    use super::*;

    #[test]
    fn d_string_functions() {
        assert_eq!(basename(b"/usr/lib/python3.11/os.py"), b"os.py");
        assert_eq!(basename(b"os.py"), b"os.py");
        assert_eq!(basename(b"/a/b/"), b"b");
        assert_eq!(basename(b"/"), b"/");
        assert_eq!(dirname(b"/usr/lib/os.py"), b"/usr/lib");
        assert_eq!(dirname(b"os.py"), b".");
        assert_eq!(dirname(b"/os.py"), b"/");
        assert_eq!(d_substr(b"coconut", 3, i64::from(i32::MAX)), b"onut");
        assert_eq!(d_substr(b"coconut", -4, 2), b"on");
        assert_eq!(d_substr(b"coconut", 1, -2), b"ocon");
    }
}
