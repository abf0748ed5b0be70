//! `pytap calls`: per function, the exact number of calls, total, self and
//! mean time, p50/p99 and optionally a log2 latency histogram.
//!
//! The kernel counts calls per function and streams lean entry/return
//! records (no strings; names cross once per function, see
//! [`crate::engine::codegen::count`]); times come from the kernel's
//! timestamps, paired per thread by [`Stacks`], which repairs what
//! CPython's markers leave unpaired. Recursion is counted right: a
//! function's total is the time of its outermost activations only (an
//! inner one is already inside it), its self time sums every activation's
//! own time, and its mean and percentiles are per call.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

use anyhow::{Result, bail};

use crate::cpython::Marker;
use crate::engine::abi::EventKind;
use crate::engine::codegen::MapTable;
use crate::engine::codegen::count::{LeanCalls, count_map_spec};
use crate::engine::consumer::Consumer;
use crate::engine::decode::Event;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::model::label;
use crate::model::stack::{FuncId, Returned, Stacks};
use crate::notice;
use crate::output::escape;
use crate::output::event::{Format, json_str};
use crate::output::fit;
use crate::output::hist::Log2Hist;
use crate::output::quantile::Quantiles;
use crate::runner::tool_run::{self, StreamOptions};
use crate::tool::names::FuncNames;

/// Sort columns of `pytap calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallsSort {
    /// Number of calls.
    Calls,
    /// Total (inclusive) time.
    Total,
    /// Self (exclusive) time.
    SelfTime,
    /// Mean time per call.
    Mean,
    /// Median time per call.
    P50,
    /// 99th percentile per call.
    P99,
    /// Function name.
    Name,
}

/// A `pytap calls` run.
#[derive(Debug, Clone)]
pub struct CallsRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
    /// Sort column.
    pub sort: CallsSort,
    /// Functions shown (0: all).
    pub limit: usize,
    /// Print a latency histogram per function.
    pub hist: bool,
    /// Size of the kernel's count map.
    pub max_functions: u32,
    /// One row per process and function.
    pub by_pid: bool,
}

/// A function, as the table groups calls: across a process tree unless
/// split by process (`--by-pid`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncKey {
    /// The process, with `--by-pid`.
    pub pid: Option<u32>,
    /// File name.
    pub filename: std::sync::Arc<str>,
    /// Function name.
    pub funcname: std::sync::Arc<str>,
    /// The `def` line (the entry's line number).
    pub lineno: i32,
}

/// What is known of one function.
#[derive(Debug, Clone, Default)]
pub struct FuncStats {
    /// Calls that returned.
    pub calls: u64,
    /// Time of the outermost activations.
    pub total_ns: u64,
    /// Sum of every activation's own time.
    pub self_ns: u64,
    /// Per-call durations (for the mean and percentiles).
    pub durations: Quantiles,
    /// Per-call durations, log2.
    pub hist: Log2Hist,
}

/// Pairs entries and returns and accumulates per function (pure).
#[derive(Debug, Default)]
pub struct CallStats {
    /// Per-thread stacks.
    pub stacks: Stacks,
    /// Per function.
    pub funcs: HashMap<FuncKey, FuncStats>,
    /// Keep processes apart.
    pub by_pid: bool,
}

impl CallStats {
    /// An entry.
    pub fn enter(&mut self, tid: u32, func: FuncId, line: i32, ts_ns: u64) {
        self.stacks.enter(tid, func, line, ts_ns);
    }

    /// A return in process `pid`.
    pub fn ret(&mut self, pid: u32, tid: u32, func: &FuncId, ts_ns: u64) {
        let Returned::Matched { frame, .. } = self.stacks.ret_call(tid, func, ts_ns) else {
            return;
        };
        let duration = ts_ns.saturating_sub(frame.entered_ns);
        let outermost = !self.stacks.frames(tid).iter().any(|f| f.func == frame.func);
        let stats = self
            .funcs
            .entry(FuncKey {
                pid: self.by_pid.then_some(pid),
                filename: frame.func.filename,
                funcname: frame.func.funcname,
                lineno: frame.line,
            })
            .or_default();
        stats.calls += 1;
        if outermost {
            stats.total_ns += duration;
        }
        stats.self_ns += duration.saturating_sub(frame.child_ns);
        stats.durations.add(duration);
        stats.hist.add(duration);
    }

    /// The functions, sorted.
    pub fn sorted(&self, sort: CallsSort) -> Vec<(&FuncKey, &FuncStats)> {
        let mut rows: Vec<_> = self.funcs.iter().collect();
        let mean = |s: &FuncStats| s.durations.sum() / u128::from(s.calls.max(1));
        rows.sort_by(|(ka, a), (kb, b)| {
            let by = match sort {
                CallsSort::Calls => b.calls.cmp(&a.calls),
                CallsSort::Total => b.total_ns.cmp(&a.total_ns),
                CallsSort::SelfTime => b.self_ns.cmp(&a.self_ns),
                CallsSort::Mean => mean(b).cmp(&mean(a)),
                CallsSort::P50 => b.durations.quantile(0.5).cmp(&a.durations.quantile(0.5)),
                CallsSort::P99 => b.durations.quantile(0.99).cmp(&a.durations.quantile(0.99)),
                CallsSort::Name => ka.funcname.cmp(&kb.funcname),
            };
            by.then_with(|| ka.cmp(kb))
        });
        rows
    }
}

/// Writes the table (or JSON Lines, one function per line).
pub fn write_table(
    out: &mut dyn Write,
    request: &CallsRequest,
    stats: &CallStats,
) -> io::Result<()> {
    let rows = stats.sorted(request.sort);
    let shown = if request.limit == 0 {
        &rows[..]
    } else {
        &rows[..rows.len().min(request.limit)]
    };
    match request.format {
        Format::Text => {
            write_text_rows(out, request, shown)?;
            if shown.len() < rows.len() {
                writeln!(
                    out,
                    "({} more functions; -n 0 shows all)",
                    rows.len() - shown.len()
                )?;
            }
            Ok(())
        }
        Format::Jsonl => {
            for (k, s) in shown {
                write_json_row(out, k, s, request.hist)?;
            }
            Ok(())
        }
    }
}

/// The mean call's duration.
fn mean_ns(s: &FuncStats) -> u128 {
    s.durations.sum() / u128::from(s.calls.max(1))
}

/// The text table's header and rows (with `--hist`, each row's histogram
/// under it).
fn write_text_rows(
    out: &mut dyn Write,
    request: &CallsRequest,
    shown: &[(&FuncKey, &FuncStats)],
) -> io::Result<()> {
    let us = |ns: u64| ns as f64 / 1e3;
    let ms = |ns: u64| ns as f64 / 1e6;
    let pid_header = if request.by_pid { "    PID " } else { "" };
    writeln!(
        out,
        "{pid_header}{:>10} {:>12} {:>12} {:>10} {:>10} {:>10}  FUNCTION (FILE:LINE)",
        "CALLS", "TOTAL(ms)", "SELF(ms)", "MEAN(us)", "P50(us)", "P99(us)"
    )?;
    // The columns before FUNCTION take 70 characters (78 with PID).
    let room = request
        .stream
        .width
        .map(|w| w.saturating_sub(70 + pid_header.len()).max(20));
    for (k, s) in shown {
        let mean = mean_ns(s) as u64;
        let pid = k.pid.map(|p| format!("{p:>7} ")).unwrap_or_default();
        let func = label::call_site(
            escape::text(&k.funcname),
            escape::text(&k.filename),
            k.lineno,
        );
        let func = match room {
            Some(room) => fit::middle(&func, room),
            None => func,
        };
        writeln!(
            out,
            "{pid}{:>10} {:>12.3} {:>12.3} {:>10.1} {:>10.1} {:>10.1}  {func}",
            s.calls,
            ms(s.total_ns),
            ms(s.self_ns),
            us(mean),
            us(s.durations.quantile(0.5)),
            us(s.durations.quantile(0.99)),
        )?;
        if request.hist {
            out.write_all(s.hist.render(1).as_bytes())?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// One function's JSON line (with `hist`, its histogram's buckets).
fn write_json_row(out: &mut dyn Write, k: &FuncKey, s: &FuncStats, hist: bool) -> io::Result<()> {
    write!(out, "{{")?;
    if let Some(pid) = k.pid {
        write!(out, "\"pid\":{pid},")?;
    }
    out.write_all(b"\"filename\":")?;
    json_str(out, &k.filename)?;
    out.write_all(b",\"funcname\":")?;
    json_str(out, &k.funcname)?;
    write!(
        out,
        ",\"lineno\":{},\"calls\":{},\"total_ns\":{},\"self_ns\":{},\"mean_ns\":{},\"p50_ns\":{},\"p99_ns\":{}",
        k.lineno,
        s.calls,
        s.total_ns,
        s.self_ns,
        mean_ns(s),
        s.durations.quantile(0.5),
        s.durations.quantile(0.99)
    )?;
    if hist {
        let buckets: Vec<String> = s
            .hist
            .buckets()
            .iter()
            .map(|(lo, hi, n)| format!("{{\"low_ns\":{lo},\"high_ns\":{hi},\"count\":{n}}}"))
            .collect();
        write!(out, ",\"histogram\":[{}]", buckets.join(","))?;
    }
    writeln!(out, "}}")
}

struct CallsView<'a> {
    out: &'a mut dyn Write,
    names: FuncNames,
    stats: CallStats,
    unnamed: u64,
}

impl Consumer for CallsView<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.stats.stacks.forget(tid);
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        self.stats.stacks.forget(pid);
        self.stats.stacks.forget(old_tid);
        Ok(())
    }

    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        let Some((_, func)) = self.names.resolve(event, source) else {
            self.unnamed += 1;
            return Ok(());
        };
        let h = &event.header;
        match h.kind {
            EventKind::FunctionEntry => {
                let line = match &event.body {
                    crate::engine::decode::Body::Function { lineno, .. } => *lineno,
                    _ => 0,
                };
                self.stats.enter(h.tid, func, line, h.ts_ns);
            }
            EventKind::FunctionReturn => self.stats.ret(h.pid, h.tid, &func, h.ts_ns),
            _ => {}
        }
        Ok(())
    }

    fn recovered(&self) -> u64 {
        self.names.strings.recovery.recovered
    }
}

/// Runs `pytap calls`: collects until the target exits or Ctrl-C, then prints.
pub fn run(request: &CallsRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let markers: BTreeSet<Marker> = [Marker::FunctionEntry, Marker::FunctionReturn].into();
    let mut make_handler = |maps: &mut MapTable, record, _: &[_]| LeanCalls {
        maps: record,
        counts: maps.add(count_map_spec(request.max_functions)),
        markers: markers.clone(),
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
        |out| CallsView {
            out,
            names: FuncNames::default(),
            stats: CallStats {
                by_pid: request.by_pid,
                ..CallStats::default()
            },
            unnamed: 0,
        },
        |view| {
            if view.unnamed > 0 {
                bail!(
                    "internal: {} lean records arrived before their function's names",
                    view.unnamed
                );
            }
            write_table(view.out, request, &view.stats)?;
            view.out.flush()?;
            let stacks = &view.stats.stacks;
            if stacks.unmatched_returns > 0 || stacks.orphan_entries > 0 {
                notice!(
                    "calls: {} returns without an entry and {} entries that never returned are not counted",
                    stacks.unmatched_returns,
                    stacks.orphan_entries
                );
            }
            if view.stats.stacks.shim_returns > 0 {
                notice!(
                    "calls: {} returns of 3.15's __init__ shim frame (CPython's own frame around a class's __init__; its entry never fires) are not counted",
                    view.stats.stacks.shim_returns
                );
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> FuncId {
        FuncId {
            filename: "t.py".into(),
            funcname: name.into(),
        }
    }

    #[test]
    fn recursion_is_not_summed_per_level() {
        // fib(2): fib(2) -> fib(1), fib(0); times in ns.
        let mut c = CallStats::default();
        c.enter(1, f("fib"), 1, 0);
        c.enter(1, f("fib"), 1, 10);
        c.ret(1, 1, &f("fib"), 20);
        c.enter(1, f("fib"), 1, 30);
        c.ret(1, 1, &f("fib"), 35);
        c.ret(1, 1, &f("fib"), 50);
        let s = &c.funcs[&FuncKey {
            pid: None,
            filename: "t.py".into(),
            funcname: "fib".into(),
            lineno: 1,
        }];
        assert_eq!(s.calls, 3);
        assert_eq!(s.total_ns, 50, "only the outermost activation");
        assert_eq!(s.self_ns, 10 + 5 + (50 - 15));
        assert_eq!(s.durations.sum(), 10 + 5 + 50);
    }

    #[test]
    fn sorting_and_output() {
        let mut c = CallStats::default();
        for i in 0..3 {
            c.enter(1, f("a"), 1, i * 100);
            c.ret(1, 1, &f("a"), i * 100 + 10);
        }
        c.enter(1, f("b"), 5, 1000);
        c.ret(1, 1, &f("b"), 5000);
        let names: Vec<&str> = c
            .sorted(CallsSort::Calls)
            .iter()
            .map(|(k, _)| &*k.funcname)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let names: Vec<&str> = c
            .sorted(CallsSort::Total)
            .iter()
            .map(|(k, _)| &*k.funcname)
            .collect();
        assert_eq!(names, ["b", "a"]);
        let request = CallsRequest {
            stream: StreamOptions::new(crate::runner::live::TargetSpec::Pids(vec![])),
            format: Format::Jsonl,
            sort: CallsSort::Name,
            limit: 0,
            hist: false,
            max_functions: 10,
            by_pid: false,
        };
        let mut out = Vec::new();
        write_table(&mut out, &request, &c).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "{\"filename\":\"t.py\",\"funcname\":\"a\",\"lineno\":1,\"calls\":3,\"total_ns\":30,\"self_ns\":30,\"mean_ns\":10,\"p50_ns\":10,\"p99_ns\":10}"
        );
    }
}
