//! `pytap trace`: the raw event stream, every marker hit as one line.
//!
//! With `--stacks`, gc, import and audit events carry the Python stack of
//! that moment: live, the stack the marker's own program walked after its
//! record ([`walked`]: exact, on every version with these markers, no
//! function probe needed); replaying a recording, the stack rebuilt from
//! the recorded function events ([`CallStacks`]), the one thing a
//! recording can give.

mod walked;

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
use crate::engine::samples::RawSample;
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
    /// With `--stacks` replayed: each thread's calls.
    calls: Option<CallStacks>,
    /// With `--stacks` live: the stacks the events' programs walked.
    walked: Option<walked::Walked>,
}

impl Stream<'_> {
    /// Writes the lines whose stacks are settled, in order.
    fn write_ready(&mut self) -> Result<()> {
        if let Some(walked) = &mut self.walked {
            while let Some(line) = walked.pop() {
                self.out.write_all(&line)?;
            }
        }
        Ok(())
    }
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
        if let Some(walked) = &mut self.walked {
            walked.thread_ended(tid);
            self.write_ready()?;
        }
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        if let Some(calls) = &mut self.calls {
            calls.stacks.forget(pid);
            calls.stacks.forget(old_tid);
        }
        if let Some(walked) = &mut self.walked {
            walked.process_executed(pid);
            self.write_ready()?;
        }
        Ok(())
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        if let Some(walked) = &mut self.walked
            && !walked.passes(event)
        {
            let line = self.writer.json_line(event, source);
            walked.event(event, line, source);
            return self.write_ready();
        }
        let stack = match &mut self.calls {
            Some(calls) => calls.follow(event, source),
            None => None,
        };
        self.writer
            .write_with_stack(self.out, event, source, stack)?;
        Ok(())
    }

    fn stack(&mut self, sample: &RawSample, source: &dyn Source) -> Result<()> {
        if let Some(walked) = &mut self.walked {
            walked.stack(sample, source);
            self.write_ready()?;
        }
        Ok(())
    }

    fn stacks_drained(&mut self, before: u64) -> Result<()> {
        if let Some(walked) = &mut self.walked {
            walked.drained(before);
            self.write_ready()?;
        }
        Ok(())
    }

    fn finish(&mut self, source: &dyn Source) -> Result<()> {
        if let Some(walked) = &mut self.walked {
            walked.finish(source);
            self.write_ready()?;
        }
        self.header.write(self.out)?;
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        self.walked
            .as_ref()
            .map(walked::Walked::notes)
            .unwrap_or_default()
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
    let stacks = match request.stacks {
        true => Some(stacks_path(request, &markers)?),
        false => None,
    };
    let walk = match stacks {
        Some(StacksPath::Walked { fsbase }) => Some(fsbase),
        _ => None,
    };
    // Following calls, 3.15's generator creations open no frame.
    let follow_calls = stacks == Some(StacksPath::Calls);
    let mut make_handler = tool_run::records_flagging_creations(&markers, follow_calls, walk);
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
                calls: follow_calls.then(CallStacks::default),
                walked: walk.map(|_| walked::Walked::default()),
            }
        },
        |stream| Ok(stream.out.flush()?),
    )
}

/// Where `--stacks` gets its stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StacksPath {
    /// Walked by the markers' own programs (live).
    Walked {
        /// `task_struct.thread.fsbase` on this kernel.
        fsbase: u32,
    },
    /// Rebuilt from the function events (a recording).
    Calls,
}

/// Where `--stacks` gets its stacks for `request`, or why it cannot.
fn stacks_path(request: &TraceRequest, markers: &BTreeSet<Marker>) -> Result<StacksPath> {
    if request.format != Format::Jsonl {
        anyhow::bail!("--stacks adds the stack to JSON Lines: use it with --format jsonl");
    }
    let TargetSpec::Recording(path) = &request.stream.target else {
        let fsbase = crate::engine::sampler::fsbase_offset()?;
        return Ok(StacksPath::Walked { fsbase });
    };
    // A recording holds no stacks: they are rebuilt from its calls.
    let recorded = crate::runner::replay::markers_of(path)?;
    for m in [Marker::FunctionEntry, Marker::FunctionReturn] {
        if !markers.contains(&m) {
            anyhow::bail!(
                "--stacks of a recording follows its calls: it needs {m} among the markers"
            );
        }
        if recorded.as_ref().is_some_and(|r| !r.contains(&m)) {
            anyhow::bail!(
                "--stacks of a recording follows its calls: the recording has no {m} events"
            );
        }
    }
    Ok(StacksPath::Calls)
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
