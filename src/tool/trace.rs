//! `pytap trace`: the raw event stream, every marker hit as one line.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::abi::EventKind;
use crate::engine::codegen::MapTable;
use crate::engine::codegen::split::{Split, SplitProbe};
use crate::engine::codegen::{EmptyProbe, Handler};
use crate::engine::consumer::Consumer;
use crate::engine::decode::{Body, Event};
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::model::stack::{self, Frame, Stacks};
use crate::output::event::{EventWriter, Format, PendingHeader, Strings};
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::{self, StreamOptions};

/// A `pytap trace` run.
#[derive(Debug, Clone)]
pub struct TraceRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Markers asked for; `None` means every marker the target has.
    pub markers: Option<BTreeSet<Marker>>,
    /// Text or JSON Lines.
    pub format: Format,
    /// Attach do-nothing programs instead (benchmark baseline).
    pub empty_probe: Option<EmptyProbe>,
    /// Attach the function-record program without one of its parts
    /// instead (the benchmark's split; nothing is written).
    pub split_probe: Option<Split>,
    /// Give gc, import and audit events the Python stack at that moment
    /// (JSON Lines).
    pub stacks: bool,
}

struct Stream<'a> {
    writer: EventWriter,
    header: PendingHeader,
    out: &'a mut dyn Write,
    /// With `--stacks`: each thread's calls.
    calls: Option<CallStacks>,
}

/// Each thread's Python stack, rebuilt from function events as `flow`
/// rebuilds it (3.15's generator creations left out).
#[derive(Debug, Default)]
struct CallStacks {
    stacks: Stacks,
    strings: Strings,
}

impl CallStacks {
    /// Follows a function event; for any other event, the thread's stack.
    fn follow(&mut self, event: &Event<'_>, source: &dyn Source) -> Option<&[Frame]> {
        let h = &event.header;
        if !matches!(event.body, Body::Function { .. }) {
            return Some(self.stacks.frames(h.tid));
        }
        let entry = h.kind == EventKind::FunctionEntry;
        if h.kind == EventKind::Line || stack::is_creation(h) {
            return None;
        }
        let (func, lineno) = self.strings.func(event, source)?;
        if entry {
            self.stacks.enter(h.tid, func, lineno, h.ts_ns);
        } else {
            let _ = self.stacks.ret(h.tid, &func, h.ts_ns);
        }
        None
    }
}

impl Consumer for Stream<'_> {
    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        if let Some(calls) = &mut self.calls {
            calls.stacks.forget(tid);
        }
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        if let Some(calls) = &mut self.calls {
            calls.stacks.forget(pid);
            calls.stacks.forget(old_tid);
        }
        Ok(())
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        let stack = match &mut self.calls {
            Some(calls) => calls.follow(event, source),
            None => None,
        };
        self.writer
            .write_with_stack(self.out, event, source, stack)?;
        Ok(())
    }

    fn finish(&mut self, _: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        Ok(())
    }

    fn recovered(&self) -> u64 {
        self.writer.recovery.recovered
    }
}

/// Runs `pytap trace`, writing events to `out` and the summary to stderr.
pub fn run(request: &TraceRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let (markers, strict) = tool_run::asked_or_all(&request.markers);
    // The benchmark's probes: the same sites with programs that do
    // nothing, or part of trace's work (`--dump-bpf` shows them). Nothing
    // is written, so no events is not a failure.
    if let Some(probe) = request.empty_probe {
        run_benchmark_probe(request, &markers, strict, out, &mut |_, _, _| probe)?;
        return Ok(ExitCode::Ok);
    }
    if let Some(split) = request.split_probe {
        let mut split = |table: &mut MapTable, maps, _: &[_]| SplitProbe::new(split, maps, table);
        run_benchmark_probe(request, &markers, strict, out, &mut split)?;
        return Ok(ExitCode::Ok);
    }
    if request.stacks {
        if request.format != Format::Jsonl {
            anyhow::bail!("--stacks adds the stack to JSON Lines: use it with --format jsonl");
        }
        let recorded = match &request.stream.target {
            TargetSpec::Recording(path) => crate::runner::replay::markers_of(path)?,
            _ => None,
        };
        for m in [Marker::FunctionEntry, Marker::FunctionReturn] {
            if !markers.contains(&m) {
                anyhow::bail!("--stacks follows calls: it needs {m} among the markers");
            }
            if recorded.as_ref().is_some_and(|r| !r.contains(&m)) {
                anyhow::bail!("--stacks follows calls: the recording has no {m} events");
            }
        }
    }
    // With --stacks, 3.15's generator creations open no frame.
    let mut make_handler = tool_run::records_flagging_creations(&markers, request.stacks, None);
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict,
            tick: None,
            make_handler: &mut make_handler,
        },
        out,
        |out| {
            let mut writer = EventWriter::new(request.format);
            writer.width = request.stream.width;
            Stream {
                header: PendingHeader::new(writer.header()),
                writer,
                out,
                calls: request.stacks.then(CallStacks::default),
            }
        },
        |stream| Ok(stream.out.flush()?),
    )
}

/// Runs one of the benchmark's probes, discarding what it sends.
fn run_benchmark_probe<H: Handler + 'static>(
    request: &TraceRequest,
    markers: &BTreeSet<Marker>,
    strict: bool,
    out: &mut dyn Write,
    make_handler: &mut tool_run::MakeHandler<'_, H>,
) -> Result<()> {
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers,
            strict,
            tick: None,
            make_handler,
        },
        out,
        |_| tool_run::Discard,
        |_| Ok(()),
    )?;
    Ok(())
}
