//! `pytap trace`: the raw event stream, every marker hit as one line.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::codegen::EmptyProbe;
use crate::engine::codegen::MapTable;
use crate::engine::decode::Event;
use crate::engine::run::Consumer;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::output::event::{EventWriter, Format, PendingHeader};
use crate::tool::common::{self, StreamOptions};

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
}

struct Stream<'a> {
    writer: EventWriter,
    header: PendingHeader,
    out: &'a mut dyn Write,
}

impl Consumer for Stream<'_> {
    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        self.writer.write(self.out, event, source)?;
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
    let (markers, strict) = match &request.markers {
        Some(m) => (m.clone(), true),
        None => (Marker::ALL.into_iter().collect(), false),
    };
    if let Some(probe) = request.empty_probe {
        // The same probes with programs that do nothing (`--dump-bpf`
        // shows them): nothing is recorded, so no events is not a failure.
        let mut empty = |_: &mut MapTable, _, _: &[_]| probe;
        common::run_tool(
            common::ToolRun {
                stream: &request.stream,
                markers: &markers,
                strict,
                tick: None,
                make_handler: &mut empty,
            },
            out,
            |_| common::Discard,
            |_| Ok(()),
        )?;
        return Ok(ExitCode::Ok);
    }
    common::run_tool(
        common::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict,
            tick: None,
            make_handler: &mut common::full_records(&markers),
        },
        out,
        |out| {
            let mut writer = EventWriter::new(request.format);
            writer.width = request.stream.width;
            Stream {
                header: PendingHeader::new(writer.header()),
                writer,
                out,
            }
        },
        |stream| Ok(stream.out.flush()?),
    )
}
