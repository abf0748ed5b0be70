//! How frames and threads are named, in every view and export (pure).
//!
//! A Python call is `funcname (filename:lineno)` where one string names it
//! ([`call_site`]: folded stacks, `calls`, Perfetto's stack annotation).
//! A gc collection or an import on the stack is named by its [`Style`]:
//! trace viewers (Chrome, Perfetto) name them as their category, `gc` and
//! `import NAME`; profiles (folded stacks, speedscope, SVG) bracket what is
//! not a Python function, `[gc generation N]` and `[import NAME]`, so that
//! it cannot be taken for one.
//!
//! A sampled frame ([`sampled_frame`]: every profile output) is named the
//! way a call is, less what the sampler could not know; a thread, in flame
//! charts, speedscope and a profile's folded stacks, as `NAME (pid P, tid
//! T)`.

use std::borrow::Cow;
use std::fmt::Display;

use super::profile::{ThreadInfo, ThreadKey};
use super::slice::{Item, Thread};
use crate::recording::StringTable;

/// Who names the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A trace viewer: `gc`, `import NAME`.
    Viewer,
    /// A profile: `[gc generation N]`, `[import NAME]`.
    Profile,
}

/// The name of a slice: a call's function name, or what a gc collection
/// or an import is called in `style`.
pub fn slice<'s>(item: &Item, strings: &'s StringTable, style: Style) -> Cow<'s, str> {
    match (*item, style) {
        (Item::Call(c), _) => Cow::Borrowed(strings.get(c.funcname)),
        (Item::Gc { .. }, Style::Viewer) => Cow::Borrowed("gc"),
        (Item::Gc { generation }, Style::Profile) => {
            Cow::Owned(format!("[gc generation {generation}]"))
        }
        (Item::Import { module }, Style::Viewer) => {
            Cow::Owned(format!("import {}", strings.get(module)))
        }
        (Item::Import { module }, Style::Profile) => {
            Cow::Owned(format!("[import {}]", strings.get(module)))
        }
    }
}

/// The category a trace viewer files a slice under.
pub fn category(item: &Item) -> &'static str {
    match item {
        Item::Call(_) => "python",
        Item::Gc { .. } => "gc",
        Item::Import { .. } => "import",
    }
}

/// A call in one string: `funcname (filename:lineno)`.
pub fn call_site(funcname: impl Display, filename: impl Display, lineno: i32) -> String {
    format!("{funcname} ({filename}:{lineno})")
}

/// A slice in one string, as profiles show a frame: a call's
/// [`call_site`], else its [`slice`] name.
pub fn frame(item: &Item, strings: &StringTable) -> String {
    match *item {
        Item::Call(c) => call_site(strings.get(c.funcname), strings.get(c.filename), c.lineno),
        _ => slice(item, strings, Style::Profile).into_owned(),
    }
}

/// How flame charts and speedscope name a thread: `NAME (pid P, tid T)`,
/// NAME being the thread's name, else its process's, else `python`.
pub fn thread(
    thread: Thread,
    name: Option<&str>,
    processes: &std::collections::HashMap<u32, String>,
) -> String {
    let process = processes.get(&thread.pid).map(String::as_str);
    named_thread(name, process, thread.pid, thread.tid)
}

/// How profiles name a sampled thread, as [`thread`] names a traced one
/// (an empty name is no name).
pub fn sampled_thread(thread: ThreadKey, info: Option<&ThreadInfo>) -> String {
    fn given(name: &str) -> Option<&str> {
        Some(name).filter(|n| !n.is_empty())
    }
    let name = info.and_then(|i| given(&i.name));
    let process = info.and_then(|i| given(&i.process));
    named_thread(name, process, thread.pid, thread.tid)
}

fn named_thread(name: Option<&str>, process: Option<&str>, pid: u32, tid: u32) -> String {
    let name = name.or(process).unwrap_or("python");
    format!("{name} (pid {pid}, tid {tid})")
}

/// A sampled frame in one string: `function (file:line)` as a call is
/// named ([`call_site`]); `function (file)` when the line is not known (0:
/// a native frame, or a function's totals over its lines); the function
/// alone when the file is not known either (an unknown frame).
pub fn sampled_frame(function: &str, file: &str, line: u32) -> String {
    match (file, line) {
        ("", _) => function.to_owned(),
        (_, 0) => format!("{function} ({file})"),
        _ => call_site(function, file, i32::try_from(line).unwrap_or(i32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::slice::Call;

    #[test]
    fn each_style_names_gc_and_imports_its_way() {
        let mut strings = StringTable::default();
        let json = strings.push(b"json");
        let (f, file) = (strings.push(b"main"), strings.push(b"app.py"));
        let call = Item::Call(Call {
            funcname: f,
            filename: file,
            lineno: 3,
        });
        let gc = Item::Gc { generation: 2 };
        let import = Item::Import { module: json };
        let names = |style| [&call, &gc, &import].map(|i| slice(i, &strings, style).into_owned());
        assert_eq!(names(Style::Viewer), ["main", "gc", "import json"]);
        assert_eq!(
            names(Style::Profile),
            ["main", "[gc generation 2]", "[import json]"]
        );
        assert_eq!(frame(&call, &strings), "main (app.py:3)");
        assert_eq!(frame(&gc, &strings), "[gc generation 2]");
        assert_eq!(
            [&call, &gc, &import].map(category),
            ["python", "gc", "import"]
        );
    }

    #[test]
    fn sampled_frames_and_threads() {
        assert_eq!(sampled_frame("f", "a.py", 3), "f (a.py:3)");
        assert_eq!(
            sampled_frame("memcpy", "/lib/libc.so.6", 0),
            "memcpy (/lib/libc.so.6)"
        );
        assert_eq!(sampled_frame("<unknown 0x10>", "", 0), "<unknown 0x10>");
        let key = ThreadKey { pid: 4, tid: 5 };
        let info = |name: &str, process: &str| ThreadInfo {
            name: name.into(),
            process: process.into(),
        };
        let named = |i: Option<&ThreadInfo>| sampled_thread(key, i);
        assert_eq!(
            named(Some(&info("worker", "python3"))),
            "worker (pid 4, tid 5)"
        );
        assert_eq!(named(Some(&info("", "python3"))), "python3 (pid 4, tid 5)");
        assert_eq!(named(Some(&info("", ""))), "python (pid 4, tid 5)");
        assert_eq!(named(None), "python (pid 4, tid 5)");
    }
}
