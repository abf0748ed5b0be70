//! `pytap imports`: the import tree, like `python -X importtime` but for any
//! process and live. Each import is printed when it finishes, so children
//! come before their parent, with self and cumulative time and the module
//! indented by nesting.

use std::collections::BTreeSet;
use std::io::{self, Write};

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::consumer::Consumer;
use crate::engine::decode::{Body, Event};
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::model::stack::{Returned, Stacks};
use crate::output::escape;
use crate::output::event::{Clock, Format, PendingHeader, Strings, json_str};
use crate::runner::tool_run::{self, StreamOptions};

/// A `pytap imports` run.
#[derive(Debug, Clone)]
pub struct ImportsRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
}

/// A finished import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Module name.
    pub module: String,
    /// Whether it was found.
    pub found: bool,
    /// Nesting (0 = imported by non-import code).
    pub depth: usize,
    /// The import that triggered it.
    pub parent: Option<String>,
    /// When it started.
    pub start_ns: u64,
    /// Start to done.
    pub cumulative_ns: u64,
    /// Cumulative minus the nested imports.
    pub self_ns: u64,
}

/// Per-thread stacks of imports in progress, paired by the one rule of
/// [`Stacks`]: a done matches the innermost start of the same module, and
/// starts above it never finished (they are dropped).
#[derive(Debug, Default)]
pub struct ImportTree {
    stacks: Stacks<String>,
}

impl ImportTree {
    /// Forgets a thread's imports in progress (it ended, or its process
    /// executed another program).
    pub fn forget(&mut self, tid: u32) {
        self.stacks.forget(tid);
    }

    /// An import starts.
    pub fn start(&mut self, tid: u32, module: String, ts_ns: u64) {
        self.stacks.enter(tid, module, 0, ts_ns);
    }

    /// Dones that matched no start (the import began before attaching).
    pub fn unmatched(&self) -> u64 {
        self.stacks.unmatched_returns
    }

    /// An import is done.
    pub fn done(&mut self, tid: u32, module: &str, found: bool, ts_ns: u64) -> Option<Finished> {
        let Returned::Matched { frame, depth, .. } =
            self.stacks.ret_matching(tid, |m| m == module, ts_ns)
        else {
            return None;
        };
        let cumulative_ns = ts_ns.saturating_sub(frame.entered_ns);
        Some(Finished {
            module: frame.func,
            found,
            depth,
            parent: self.stacks.frames(tid).last().map(|p| p.func.clone()),
            start_ns: frame.entered_ns,
            cumulative_ns,
            self_ns: cumulative_ns.saturating_sub(frame.child_ns),
        })
    }
}

struct ImportsView<'a> {
    format: Format,
    header: PendingHeader,
    out: &'a mut dyn Write,
    clock: Clock,
    strings: Strings,
    tree: ImportTree,
}

impl Consumer for ImportsView<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.tree.forget(tid);
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        self.tree.forget(pid);
        self.tree.forget(old_tid);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let h = &event.header;
        let Body::Import { module, found } = &event.body else {
            return Ok(());
        };
        let name = self.strings.get(module, event, source);
        self.clock.secs(h.ts_ns);
        match found {
            None => self.tree.start(h.tid, name, h.ts_ns),
            Some(found) => {
                if let Some(f) = self.tree.done(h.tid, &name, *found, h.ts_ns) {
                    self.header.write(self.out)?;
                    let secs = self.clock.secs(f.start_ns);
                    write_import(self.out, self.format, h.pid, h.tid, secs, &f)?;
                }
            }
        }
        Ok(())
    }

    fn recovered(&self) -> u64 {
        self.strings.recovery.recovered
    }

    fn finish(&mut self, _: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        Ok(())
    }
}

fn write_import(
    out: &mut dyn Write,
    format: Format,
    pid: u32,
    tid: u32,
    secs: f64,
    f: &Finished,
) -> io::Result<()> {
    match format {
        Format::Text => writeln!(
            out,
            "{secs:13.6} {pid:>8} {tid:>8} {:>12} | {:>14} | {:indent$}{}{}",
            f.self_ns / 1000,
            f.cumulative_ns / 1000,
            "",
            escape::text(&f.module),
            if f.found { "" } else { " (not found)" },
            indent = 2 * f.depth
        ),
        Format::Jsonl => {
            write!(
                out,
                "{{\"type\":\"import\",\"pid\":{pid},\"tid\":{tid},\"ts_ns\":{},\"module\":",
                f.start_ns
            )?;
            json_str(out, &f.module)?;
            write!(
                out,
                ",\"found\":{},\"depth\":{},\"parent\":",
                f.found, f.depth
            )?;
            match &f.parent {
                Some(p) => json_str(out, p)?,
                None => out.write_all(b"null")?,
            }
            writeln!(
                out,
                ",\"self_ns\":{},\"cumulative_ns\":{}}}",
                f.self_ns, f.cumulative_ns
            )
        }
    }
}

/// Runs `pytap imports`.
pub fn run(request: &ImportsRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let markers: BTreeSet<Marker> =
        [Marker::ImportFindLoadStart, Marker::ImportFindLoadDone].into();
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict: true,
            tick: None,
            make_handler: &mut tool_run::full_records(&markers),
        },
        out,
        |out| ImportsView {
            format: request.format,
            header: PendingHeader::new((request.format == Format::Text).then_some(
                "      TIME(s)      PID      TID     SELF(us) | CUMULATIVE(us) | MODULE\n",
            )),
            out,
            clock: Clock::default(),
            strings: Strings::default(),
            tree: ImportTree::default(),
        },
        |view| Ok(view.out.flush()?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_imports_have_self_and_cumulative_time() {
        let mut t = ImportTree::default();
        t.start(1, "json".into(), 0);
        t.start(1, "json.decoder".into(), 10);
        t.start(1, "re".into(), 12);
        let re = t.done(1, "re", true, 20).unwrap();
        assert_eq!(
            (re.depth, re.parent.as_deref(), re.cumulative_ns, re.self_ns),
            (2, Some("json.decoder"), 8, 8)
        );
        let dec = t.done(1, "json.decoder", true, 30).unwrap();
        assert_eq!((dec.depth, dec.cumulative_ns, dec.self_ns), (1, 20, 12));
        t.start(1, "nope".into(), 31);
        let nope = t.done(1, "nope", false, 32).unwrap();
        assert!(!nope.found);
        let json = t.done(1, "json", true, 40).unwrap();
        assert_eq!(
            (json.depth, json.parent, json.cumulative_ns, json.self_ns),
            (0, None, 40, 19)
        );
        assert_eq!(t.done(1, "json", true, 50), None);
        assert_eq!(t.unmatched(), 1);
    }
}
