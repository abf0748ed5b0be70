//! `pytap trace`: the raw event stream, every marker hit as one line.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::codegen::EmptyProbe;
use crate::engine::codegen::record::FullRecords;
use crate::engine::decode::Event;
use crate::engine::run::{self, Consumer, LoopOptions, TargetSpec};
use crate::engine::session::Session;
use crate::error::ExitCode;
use crate::output::event::{EventWriter, Format};
use crate::tool::common::{self, AttachOptions};

/// A `pytap trace` run.
#[derive(Debug, Clone)]
pub struct TraceRequest {
    /// What to trace.
    pub target: TargetSpec,
    /// Markers asked for; `None` means every marker the target has.
    pub markers: Option<BTreeSet<Marker>>,
    /// Text or JSON Lines.
    pub format: Format,
    /// Attach settings.
    pub attach: AttachOptions,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Attach do-nothing programs instead (benchmark baseline).
    pub empty_probe: bool,
}

struct Stream<'a> {
    writer: EventWriter,
    out: &'a mut dyn Write,
}

impl Consumer for Stream<'_> {
    fn event(&mut self, event: &Event<'_>, session: &Session) -> Result<()> {
        self.writer.write(self.out, event, session)?;
        Ok(())
    }
}

/// Runs `pytap trace`, writing events to `out` and the summary to stderr.
pub fn run(request: &TraceRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let (markers, strict) = match &request.markers {
        Some(m) => (m.clone(), true),
        None => (Marker::ALL.into_iter().collect(), false),
    };
    let mut make_handler = |_: &mut _, maps| FullRecords {
        maps,
        markers: markers.clone(),
    };
    if request.attach.dump_bpf {
        return common::dump_bpf(
            &request.target,
            &markers,
            strict,
            &request.attach,
            &mut make_handler,
            out,
        );
    }
    let signals = common::signals()?;
    let mut attached = if request.empty_probe {
        let mut empty = |_: &mut _, _| EmptyProbe;
        common::attach(
            &request.target,
            &markers,
            strict,
            &request.attach,
            &mut empty,
        )?
    } else {
        common::attach(
            &request.target,
            &markers,
            strict,
            &request.attach,
            &mut make_handler,
        )?
    };
    let writer = EventWriter::new(request.format);
    if let Some(header) = writer.header() {
        out.write_all(header.as_bytes())?;
    }
    let mut stream = Stream { writer, out };
    let options = LoopOptions {
        tick: None,
        duration: request.duration,
    };
    let outcome = run::run(&mut attached, &signals, &mut stream, &options)?;
    stream.out.flush()?;
    common::report(&attached, &outcome, stream.writer.recovery.recovered);
    if request.empty_probe {
        // Nothing is recorded on purpose: no events is not a failure.
        return Ok(ExitCode::Ok);
    }
    Ok(common::exit_code(&outcome))
}
