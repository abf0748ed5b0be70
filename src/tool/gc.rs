//! `pytap gc`: every collection with its generation, pause (gc__start to
//! gc__done on the same thread) and objects collected, then a summary per
//! generation with a histogram of pauses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::consumer::Consumer;
use crate::engine::decode::{Body, Event};
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::model::stack::{Returned, Stacks};
use crate::output::event::{Clock, Format, PendingHeader};
use crate::output::hist::Log2Hist;
use crate::runner::tool_run::{self, StreamOptions};

/// A `pytap gc` run.
#[derive(Debug, Clone)]
pub struct GcRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
}

/// Pauses of one generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenStats {
    /// Collections.
    pub collections: u64,
    /// Sum of pauses.
    pub total_ns: u64,
    /// Longest pause.
    pub max_ns: u64,
    /// Objects collected.
    pub collected: i64,
    /// Pauses, in nanoseconds.
    pub hist: Log2Hist,
}

/// One finished collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// When it started.
    pub start_ns: u64,
    /// Generation.
    pub generation: i32,
    /// gc__done − gc__start.
    pub pause_ns: u64,
    /// Objects collected.
    pub collected: i64,
}

/// Pairs starts with dones per thread, by the one rule of [`Stacks`] (a
/// done ends the innermost collection open on its thread; CPython never
/// nests them), and keeps the per-generation stats.
#[derive(Debug, Default)]
pub struct GcPairing {
    open: Stacks<i32>,
    /// Per generation.
    pub generations: BTreeMap<i32, GenStats>,
}

impl GcPairing {
    /// Forgets a thread's collection in progress (it ended, or its
    /// process executed another program).
    pub fn forget(&mut self, tid: u32) {
        self.open.forget(tid);
    }

    /// gc__done events with no gc__start (collection began before attach).
    pub fn unpaired(&self) -> u64 {
        self.open.unmatched_returns
    }

    /// Feeds a gc__start.
    pub fn start(&mut self, tid: u32, ts_ns: u64, generation: i32) {
        self.open.enter(tid, generation, 0, ts_ns);
    }

    /// Feeds a gc__done; returns the finished collection.
    pub fn done(&mut self, pid: u32, tid: u32, ts_ns: u64, collected: i64) -> Option<Collection> {
        let Returned::Matched { frame, .. } = self.open.ret_matching(tid, |_| true, ts_ns) else {
            return None;
        };
        let (start_ns, generation) = (frame.entered_ns, frame.func);
        let pause_ns = ts_ns.saturating_sub(start_ns);
        let stats = self.generations.entry(generation).or_default();
        stats.collections += 1;
        stats.total_ns += pause_ns;
        stats.max_ns = stats.max_ns.max(pause_ns);
        stats.collected += collected;
        stats.hist.add(pause_ns);
        Some(Collection {
            pid,
            tid,
            start_ns,
            generation,
            pause_ns,
            collected,
        })
    }
}

struct GcView<'a> {
    format: Format,
    header: PendingHeader,
    out: &'a mut dyn Write,
    clock: Clock,
    pairing: GcPairing,
}

impl Consumer for GcView<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.pairing.forget(tid);
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        self.pairing.forget(pid);
        self.pairing.forget(old_tid);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn event(&mut self, event: &Event<'_>, _: &dyn Source) -> Result<()> {
        let h = &event.header;
        match event.body {
            Body::GcStart { generation } => self.pairing.start(h.tid, h.ts_ns, generation),
            Body::GcDone { collected } => {
                if let Some(c) = self.pairing.done(h.pid, h.tid, h.ts_ns, collected) {
                    self.header.write(self.out)?;
                    let secs = self.clock.secs(c.start_ns);
                    write_collection(self.out, self.format, &c, secs)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _: &dyn Source) -> Result<()> {
        self.header.write(self.out)?;
        Ok(())
    }
}

fn write_collection(
    out: &mut dyn Write,
    format: Format,
    c: &Collection,
    secs: f64,
) -> io::Result<()> {
    match format {
        Format::Text => writeln!(
            out,
            "{secs:13.6} {:>8} {:>8} {:>4} {:>11.1} {:>10}",
            c.pid,
            c.tid,
            c.generation,
            c.pause_ns as f64 / 1e3,
            c.collected
        ),
        Format::Jsonl => writeln!(
            out,
            "{{\"type\":\"collection\",\"pid\":{},\"tid\":{},\"ts_ns\":{},\"generation\":{},\"pause_ns\":{},\"collected\":{}}}",
            c.pid, c.tid, c.start_ns, c.generation, c.pause_ns, c.collected
        ),
    }
}

/// The per-generation summary.
pub fn write_summary(
    out: &mut dyn Write,
    format: Format,
    generations: &BTreeMap<i32, GenStats>,
) -> io::Result<()> {
    match format {
        Format::Text => {
            writeln!(
                out,
                "\nGEN  COLLECTIONS    TOTAL(ms)     MEAN(us)      MAX(us)  COLLECTED"
            )?;
            for (g, s) in generations {
                writeln!(
                    out,
                    "{g:>3}  {:>11} {:>12.3} {:>12.1} {:>12.1} {:>10}",
                    s.collections,
                    s.total_ns as f64 / 1e6,
                    s.total_ns as f64 / 1e3 / s.collections.max(1) as f64,
                    s.max_ns as f64 / 1e3,
                    s.collected
                )?;
            }
            for (g, s) in generations {
                writeln!(out, "\npauses of generation {g} (ns):")?;
                out.write_all(s.hist.render(1).as_bytes())?;
            }
            Ok(())
        }
        Format::Jsonl => {
            for (g, s) in generations {
                let hist: Vec<String> = s
                    .hist
                    .buckets()
                    .iter()
                    .map(|(lo, hi, n)| {
                        format!("{{\"low_ns\":{lo},\"high_ns\":{hi},\"count\":{n}}}")
                    })
                    .collect();
                writeln!(
                    out,
                    "{{\"type\":\"generation\",\"generation\":{g},\"collections\":{},\"total_ns\":{},\"max_ns\":{},\"collected\":{},\"histogram\":[{}]}}",
                    s.collections,
                    s.total_ns,
                    s.max_ns,
                    s.collected,
                    hist.join(",")
                )?;
            }
            Ok(())
        }
    }
}

/// Runs `pytap gc`.
pub fn run(request: &GcRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let markers: BTreeSet<Marker> = [Marker::GcStart, Marker::GcDone].into();
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict: true,
            tick: None,
            make_handler: &mut tool_run::full_records(&markers),
        },
        out,
        |out| GcView {
            format: request.format,
            header: PendingHeader::new(
                (request.format == Format::Text)
                    .then_some("      TIME(s)      PID      TID  GEN   PAUSE(us)  COLLECTED\n"),
            ),
            out,
            clock: Clock::default(),
            pairing: GcPairing::default(),
        },
        |view| {
            write_summary(view.out, request.format, &view.pairing.generations)?;
            Ok(view.out.flush()?)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_per_thread_and_sums_per_generation() {
        let mut p = GcPairing::default();
        p.start(1, 100, 0);
        p.start(2, 105, 2);
        let a = p.done(9, 1, 150, 3).unwrap();
        assert_eq!((a.generation, a.pause_ns, a.collected), (0, 50, 3));
        assert_eq!(p.done(9, 1, 160, 1), None, "no open collection on thread 1");
        let b = p.done(9, 2, 305, 7).unwrap();
        assert_eq!((b.generation, b.pause_ns), (2, 200));
        p.start(1, 400, 0);
        p.done(9, 1, 410, 0).unwrap();
        let g0 = &p.generations[&0];
        assert_eq!(
            (g0.collections, g0.total_ns, g0.max_ns, g0.collected),
            (2, 60, 50, 3)
        );
        assert_eq!(p.unpaired(), 1);
        let mut text = Vec::new();
        write_summary(&mut text, Format::Text, &p.generations).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("  0            2        0.000          0.0          0.1          3"),
            "{text}"
        );
    }
}
