//! `pytap flow`: the call hierarchy, one indented line per function entry
//! and return, in the HOWTO's SystemTap or DTrace style. Depths come from
//! [`Stacks`], which repairs what CPython's markers leave unpaired.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::abi::EventKind;
use crate::engine::codegen::MapTable;
use crate::engine::codegen::named::NamedMaps;
use crate::engine::codegen::within::{self, Within, WithinRecords};
use crate::engine::consumer::Consumer;
use crate::engine::decode::Event;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::model::stack::{self, FuncId, Returned, Stacks};
use crate::notice;
use crate::output::escape;
use crate::output::event::{Format, Strings};
use crate::runner::tool_run::{self, StreamOptions};

pub use crate::tool::filter::FuncFilter;

/// Line style of `pytap flow`'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStyle {
    /// The HOWTO's SystemTap output (thread_indent).
    Systemtap,
    /// The HOWTO's DTrace output (call_stack.d).
    Dtrace,
}

/// A `pytap flow` run.
#[derive(Debug, Clone)]
pub struct FlowRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
    /// Text style.
    pub style: FlowStyle,
    /// Show only what runs inside functions matching this.
    pub within: Option<FuncFilter>,
    /// Show only functions matching one of these.
    pub filters: Vec<FuncFilter>,
    /// Show only lines at most this deep (1 = outermost).
    pub max_depth: Option<usize>,
}

/// One line of the flow, before formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLine {
    /// Entry (true) or return.
    pub entry: bool,
    /// Process and thread.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Event time.
    pub ts_ns: u64,
    /// Nanoseconds since the thread's first event.
    pub thread_ns: u64,
    /// Depth shown (0 = outermost shown level).
    pub depth: usize,
    /// The function.
    pub func: FuncId,
    /// Line number from the marker.
    pub lineno: i32,
}

/// A function's entry or return on a thread, as the builder is fed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncEvent {
    /// Entry (true) or return.
    pub entry: bool,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Event time.
    pub ts_ns: u64,
    /// The function.
    pub func: FuncId,
    /// Line number from the marker.
    pub lineno: i32,
}

/// Turns entries and returns into flow lines: stacks, `--within`,
/// `--filter`, `--max-depth` (pure, so it is tested without a kernel).
#[derive(Debug, Default)]
pub struct FlowBuilder {
    /// The stacks.
    pub stacks: Stacks,
    first_ns: HashMap<u32, u64, foldhash::fast::FixedState>,
    within: Option<FuncFilter>,
    filters: Vec<FuncFilter>,
    max_depth: Option<usize>,
    /// Whether `--within` matched any entry.
    within_matched: bool,
    /// Whether each `--filter` matched any line.
    filters_matched: Vec<bool>,
}

impl FlowBuilder {
    /// A builder with the request's filters.
    pub fn new(
        within: Option<FuncFilter>,
        filters: Vec<FuncFilter>,
        max_depth: Option<usize>,
    ) -> Self {
        FlowBuilder {
            filters_matched: vec![false; filters.len()],
            within,
            filters,
            max_depth,
            ..FlowBuilder::default()
        }
    }

    /// Forgets a thread: it ended, or its process executed another program
    /// (its frames never return; the new program starts at depth 0).
    pub fn forget(&mut self, tid: u32) {
        self.stacks.forget(tid);
        self.first_ns.remove(&tid);
    }

    /// The filters (`--within` first) that matched nothing so far.
    pub fn unmatched(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(w) = self.within.as_ref().filter(|_| !self.within_matched) {
            out.push(format!("--within '{}'", w.text()));
        }
        for (f, matched) in self.filters.iter().zip(&self.filters_matched) {
            if !matched {
                out.push(format!("--filter '{}'", f.text()));
            }
        }
        out
    }

    /// The depth to show a frame at `depth` of thread `tid` at, or `None`
    /// when `--within` hides it: depths count from the outermost frame of
    /// the `--within` function.
    fn shown_depth(&self, tid: u32, depth: usize) -> Option<usize> {
        let Some(within) = &self.within else {
            return Some(depth);
        };
        let frames = self.stacks.frames(tid);
        frames[..=depth.min(frames.len().saturating_sub(1))]
            .iter()
            .position(|f| within.matches(&f.func))
            .map(|base| depth - base)
    }

    fn visible(&mut self, func: &FuncId, depth: usize) -> bool {
        let mut any = self.filters.is_empty();
        for (f, matched) in self.filters.iter().zip(&mut self.filters_matched) {
            if f.matches(func) {
                *matched = true;
                any = true;
            }
        }
        self.max_depth.is_none_or(|m| depth < m) && any
    }

    /// Feeds an entry or a return; returns the line to show, if any.
    pub fn feed(&mut self, event: FuncEvent) -> Option<FlowLine> {
        let FuncEvent {
            entry,
            pid,
            tid,
            ts_ns,
            func,
            lineno,
        } = event;
        let first = *self.first_ns.entry(tid).or_insert(ts_ns);
        let thread_ns = ts_ns.saturating_sub(first);
        let depth = if entry {
            if self.within.as_ref().is_some_and(|w| w.matches(&func)) {
                self.within_matched = true;
            }
            let depth = self.stacks.enter(tid, func.clone(), lineno, ts_ns);
            self.shown_depth(tid, depth)
        } else {
            // Decide visibility before the frame leaves the stack.
            let at = self.stacks.innermost(tid, |f| *f == func);
            let shown = at.and_then(|d| self.shown_depth(tid, d));
            match self.stacks.ret_call(tid, &func, ts_ns) {
                Returned::Matched { .. } => shown,
                Returned::Unmatched => None,
            }
        }?;
        self.visible(&func, depth).then_some(FlowLine {
            entry,
            pid,
            tid,
            ts_ns,
            thread_ns,
            depth,
            func,
            lineno,
        })
    }
}

struct FlowView<'a> {
    format: Format,
    style: FlowStyle,
    out: &'a mut dyn Write,
    strings: Strings,
    builder: FlowBuilder,
    /// The first process seen; once another one shows up, text lines carry
    /// their pid.
    first_pid: Option<u32>,
    several: bool,
    /// 3.15 generator creations, recognised by the probe and not shown.
    creations: u64,
    /// The line being formatted (reused).
    line: Vec<u8>,
}

impl Consumer for FlowView<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.builder.forget(tid);
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        self.builder.forget(pid);
        self.builder.forget(old_tid);
        Ok(())
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let h = &event.header;
        let Some((func, lineno)) = self.strings.func(event, source) else {
            return Ok(());
        };
        let entry = h.kind == EventKind::FunctionEntry;
        if stack::is_creation(h) {
            // No frame runs: 3.9 and 3.11 fire nothing here either.
            self.creations += 1;
            return Ok(());
        }
        if *self.first_pid.get_or_insert(h.pid) != h.pid {
            self.several = true;
        }
        if let Some(line) = self.builder.feed(FuncEvent {
            entry,
            pid: h.pid,
            tid: h.tid,
            ts_ns: h.ts_ns,
            func,
            lineno,
        }) {
            // SystemTap's execname(): the thread's name at this event.
            let names = source.tasks();
            let exe = names.comm(h.pid, h.tid);
            let mut text = std::mem::take(&mut self.line);
            text.clear();
            format_line(&mut text, self.format, self.style, exe, self.several, &line);
            let written = self.out.write_all(&text);
            self.line = text;
            written?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn recovered(&self) -> u64 {
        self.strings.recovery.recovered
    }
}

/// Formats one flow line. With `with_pid` (more than one process is
/// traced) a text line starts with `[PID] `; otherwise both text styles
/// are the HOWTO's, byte for byte.
pub fn write_line(
    out: &mut dyn Write,
    format: Format,
    style: FlowStyle,
    exe: &str,
    with_pid: bool,
    l: &FlowLine,
) -> io::Result<()> {
    let mut line = Vec::new();
    format_line(&mut line, format, style, exe, with_pid, l);
    out.write_all(&line)
}

/// Appends one flow line to `line` ([`write_line`]'s format), built without
/// the formatting machinery: flow writes a line for every call and return.
/// Names are the program's: text escapes their control characters.
pub fn format_line(
    line: &mut Vec<u8>,
    format: Format,
    style: FlowStyle,
    exe: &str,
    with_pid: bool,
    l: &FlowLine,
) {
    if with_pid && format == Format::Text {
        let mut digits = itoa::Buffer::new();
        line.push(b'[');
        line.extend_from_slice(digits.format(l.pid).as_bytes());
        line.extend_from_slice(b"] ");
    }
    match (format, style) {
        (Format::Jsonl, _) => json_line(line, l),
        (Format::Text, FlowStyle::Systemtap) => systemtap_line(line, exe, l),
        (Format::Text, FlowStyle::Dtrace) => dtrace_line(line, l),
    }
}

/// Appends `n` spaces.
fn spaces(line: &mut Vec<u8>, n: usize) {
    line.resize(line.len() + n, b' ');
}

/// Appends a name of the program's, its control characters escaped.
fn text(line: &mut Vec<u8>, s: &str) {
    line.extend_from_slice(escape::text(s).as_bytes());
}

/// How an entry's JSON line starts.
const JSON_ENTRY: &[u8] = b"{\"type\":\"entry\",\"pid\":";
/// How a return's JSON line starts.
const JSON_RETURN: &[u8] = b"{\"type\":\"return\",\"pid\":";

/// A JSON Lines flow line (`{"type":"entry",…}`).
fn json_line(line: &mut Vec<u8>, l: &FlowLine) {
    let mut digits = itoa::Buffer::new();
    line.extend_from_slice(if l.entry { JSON_ENTRY } else { JSON_RETURN });
    line.extend_from_slice(digits.format(l.pid).as_bytes());
    line.extend_from_slice(b",\"tid\":");
    line.extend_from_slice(digits.format(l.tid).as_bytes());
    line.extend_from_slice(b",\"ts_ns\":");
    line.extend_from_slice(digits.format(l.ts_ns).as_bytes());
    line.extend_from_slice(b",\"depth\":");
    line.extend_from_slice(digits.format(l.depth).as_bytes());
    line.extend_from_slice(b",\"funcname\":");
    escape::json_into(line, l.func.funcname.as_bytes());
    line.extend_from_slice(b",\"filename\":");
    escape::json_into(line, l.func.filename.as_bytes());
    line.extend_from_slice(b",\"lineno\":");
    line.extend_from_slice(digits.format(l.lineno).as_bytes());
    line.extend_from_slice(b"}\n");
}

/// The HOWTO's SystemTap line:
/// `{:>6} {exe}({tid}):{:indent$}{=>|<=} {func} in {file}:{line}`.
fn systemtap_line(line: &mut Vec<u8>, exe: &str, l: &FlowLine) {
    let mut digits = itoa::Buffer::new();
    let us = digits.format(l.thread_ns / 1000);
    spaces(line, 6usize.saturating_sub(us.len()));
    line.extend_from_slice(us.as_bytes());
    line.push(b' ');
    text(line, exe);
    line.push(b'(');
    line.extend_from_slice(digits.format(l.tid).as_bytes());
    line.extend_from_slice(b"):");
    spaces(line, l.depth + 1);
    line.extend_from_slice(if l.entry { b"=> " } else { b"<= " });
    text(line, &l.func.funcname);
    line.extend_from_slice(b" in ");
    text(line, &l.func.filename);
    line.push(b':');
    line.extend_from_slice(digits.format(l.lineno).as_bytes());
    line.push(b'\n');
}

/// The HOWTO's DTrace line: `{ts}\t{:>15}:{:indent$}{base}:{func}:{line}`.
fn dtrace_line(line: &mut Vec<u8>, l: &FlowLine) {
    let mut digits = itoa::Buffer::new();
    let base = l
        .func
        .filename
        .rsplit('/')
        .next()
        .unwrap_or(&l.func.filename);
    line.extend_from_slice(digits.format(l.ts_ns).as_bytes());
    line.extend_from_slice(if l.entry {
        b"\t function-entry:"
    } else {
        b"\tfunction-return:"
    });
    spaces(line, l.depth);
    text(line, base);
    line.push(b':');
    text(line, &l.func.funcname);
    line.push(b':');
    line.extend_from_slice(digits.format(l.lineno).as_bytes());
    line.push(b'\n');
}

/// Runs `pytap flow`.
pub fn run(request: &FlowRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let markers: BTreeSet<Marker> = [Marker::FunctionEntry, Marker::FunctionReturn].into();
    // `--within` an exact name is filtered in the kernel too.
    let kernel_within = request.within.as_ref().and_then(FuncFilter::literal_func);
    let mut make_handler = |maps: &mut MapTable, record, _: &[_]| WithinRecords {
        maps: record,
        within: kernel_within.clone().map(|name| Within {
            inside: maps.add(within::inside_map_spec()),
            name,
        }),
        markers: markers.clone(),
        flag_creations: true,
        named: kernel_within.is_none().then(|| NamedMaps::add_to(maps)),
        stacks: None,
    };
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict: true,
            tick: None,
            make_handler: &mut make_handler,
        },
        out,
        |out| FlowView {
            format: request.format,
            style: request.style,
            out,
            strings: Strings::default(),
            builder: FlowBuilder::new(
                request.within.clone(),
                request.filters.clone(),
                request.max_depth,
            ),
            first_pid: None,
            several: false,
            creations: 0,
            line: Vec::new(),
        },
        |view| {
            view.out.flush()?;
            for filter in view.builder.unmatched() {
                notice!("flow: {filter} matched no function during the run");
            }
            if view.creations > 0 {
                notice!(
                    "flow: {} generator creations not shown (3.15 fires function__entry when a generator is created; no frame runs)",
                    view.creations
                );
            }
            if view.builder.stacks.shim_returns > 0 {
                notice!(
                    "flow: {} returns of 3.15's __init__ shim frame not shown (CPython's own frame around a class's __init__; its entry never fires)",
                    view.builder.stacks.shim_returns
                );
            }
            let stacks = &view.builder.stacks;
            if stacks.unmatched_returns > 0 || stacks.orphan_entries > 0 {
                notice!(
                    "flow: {} returns without an entry not shown, {} entries that never returned closed by an outer return",
                    stacks.unmatched_returns,
                    stacks.orphan_entries
                );
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests;
