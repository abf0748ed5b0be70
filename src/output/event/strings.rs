//! The strings of events: resolved (recovered from the binary when the
//! probe could not read them), cached per function for the tools, and
//! shown as the tools show them (`...`, `…`, `<unreadable>`).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::engine::decode::{Body, Event, RawStr, StrState};
use crate::engine::recover::Recovery;
use crate::engine::source::Source;
use crate::model::stack::FuncId;
use crate::output::escape;

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
