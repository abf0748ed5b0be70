//! `pytap audit`: the audit event stream, strace-like, with arguments
//! decoded from the target's memory. JSON Lines are `pytap trace`'s audit
//! events, so both tools share one schema.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Result, bail};
use glob::Pattern;

use crate::cpython::Marker;
use crate::engine::consumer::Consumer;
use crate::engine::decode::{Body, Event};
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::notice;
use crate::output::event::{Clock, EventWriter, Format, PendingHeader, Strings, args_repr};
use crate::output::{escape, fit};
use crate::runner::tool_run::{self, StreamOptions};

/// A `pytap audit` run.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
    /// Event name globs; empty means every event.
    pub events: Vec<Pattern>,
}

/// Parses `-e` values: comma-separated globs, repeatable.
pub fn event_globs(values: &[String]) -> Result<Vec<Pattern>> {
    let mut globs = Vec::new();
    for part in values.iter().flat_map(|v| v.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match Pattern::new(part) {
            Ok(p) => globs.push(p),
            Err(e) => bail!("-e '{part}': not a valid glob: {e}"),
        }
    }
    Ok(globs)
}

struct AuditView<'a> {
    events: &'a [Pattern],
    /// Whether each `-e` glob matched an event.
    matched: Vec<bool>,
    width: Option<usize>,
    header: PendingHeader,
    out: &'a mut dyn Write,
    clock: Clock,
    strings: Strings,
    json: Option<EventWriter>,
}

impl Consumer for AuditView<'_> {
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let Body::Audit(audit) = &event.body else {
            return Ok(());
        };
        let name = self.strings.get(&audit.event, event, source);
        let mut any = self.events.is_empty();
        for (p, matched) in self.events.iter().zip(&mut self.matched) {
            if p.matches(&name) {
                *matched = true;
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        self.header.write(self.out)?;
        if let Some(writer) = &mut self.json {
            writer.write(self.out, event, source)?;
            return Ok(());
        }
        let h = &event.header;
        let args = match source.audit_args(event, audit) {
            Some(args) => args_repr(&args),
            None => "(<arguments not captured>)".to_string(),
        };
        // 13 + 1 + 8 + 1 + 8 + 2 columns before the event.
        let call = format!("{}{args}", escape::text(&name));
        let call = match self.width {
            Some(w) => fit::middle(&call, w.saturating_sub(33).max(20)),
            None => call,
        };
        writeln!(
            self.out,
            "{:13.6} {:>8} {:>8}  {call}",
            self.clock.secs(h.ts_ns),
            h.pid,
            h.tid
        )?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn recovered(&self) -> u64 {
        self.strings.recovery.recovered + self.json.as_ref().map_or(0, |w| w.recovery.recovered)
    }

    fn finish(&mut self, _: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        Ok(())
    }
}

/// Runs `pytap audit`.
pub fn run(request: &AuditRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let markers: BTreeSet<Marker> = [Marker::Audit].into();
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict: true,
            tick: None,
            make_handler: &mut tool_run::full_records(&markers),
        },
        out,
        |out| AuditView {
            events: &request.events,
            matched: vec![false; request.events.len()],
            width: request.stream.width,
            header: PendingHeader::new(
                (request.format == Format::Text)
                    .then_some("      TIME(s)      PID      TID  EVENT(ARGS)\n"),
            ),
            out,
            clock: Clock::default(),
            strings: Strings::default(),
            json: (request.format == Format::Jsonl).then(|| EventWriter::new(Format::Jsonl)),
        },
        |view| {
            view.out.flush()?;
            for (p, matched) in view.events.iter().zip(&view.matched) {
                if !matched {
                    notice!("audit: -e '{}' matched no event during the run", p.as_str());
                }
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_split_on_commas() {
        let g = event_globs(&["open,socket.*".into(), "exec".into()]).unwrap();
        assert_eq!(g.len(), 3);
        assert!(g[1].matches("socket.connect") && !g[1].matches("socketx"));
        assert!(event_globs(&["[".into()]).is_err());
    }
}
