//! `pytap trace`: the raw event stream, every marker hit as one line.

use std::collections::BTreeSet;
use std::io::{self, Write};

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::codegen::EmptyProbe;
use crate::engine::decode::Event;
use crate::engine::run::{self, Consumer, LoopOptions};
use crate::engine::session::Session;
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
    pub empty_probe: bool,
}

struct Stream<'a> {
    writer: EventWriter,
    header: PendingHeader,
    out: &'a mut dyn Write,
}

impl Consumer for Stream<'_> {
    fn event(&mut self, event: &Event<'_>, session: &Session) -> Result<()> {
        self.header.write(self.out)?;
        self.writer.write(self.out, event, session)?;
        Ok(())
    }

    fn finish(&mut self, _: &Session) -> Result<()> {
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
    if request.stream.attach.dump_bpf {
        common::stream(
            &request.stream,
            &markers,
            strict,
            None,
            &mut common::Discard,
            out,
        )?;
        return Ok(ExitCode::Ok);
    }
    if request.empty_probe {
        return run_empty(request, &markers, strict);
    }
    let writer = EventWriter::new(request.format);
    let header = PendingHeader::new(writer.header());
    let mut stream = Stream {
        writer,
        header,
        out,
    };
    let outcome = common::stream(
        &request.stream,
        &markers,
        strict,
        None,
        &mut stream,
        &mut io::sink(),
    )?;
    stream.out.flush()?;
    Ok(outcome.map_or(ExitCode::Ok, |o| common::exit_code(&o)))
}

/// `--empty-probe`: the same probes with programs that do nothing; nothing
/// is recorded, so no events is not a failure.
fn run_empty(request: &TraceRequest, markers: &BTreeSet<Marker>, strict: bool) -> Result<ExitCode> {
    let signals = common::signals()?;
    let mut empty = |_: &mut _, _| EmptyProbe;
    let opts = &request.stream;
    let mut attached = common::attach(&opts.target, markers, strict, &opts.attach, &mut empty)?;
    let options = LoopOptions {
        tick: None,
        duration: opts.duration,
    };
    let outcome = run::run(&mut attached, &signals, &mut common::Discard, &options)?;
    common::report(&attached, &outcome, 0);
    Ok(ExitCode::Ok)
}
