//! `pytap top`: the HOWTO's top-like view, the most entered functions of
//! each interval. Calls are counted in the kernel ([`CountCalls`]); each
//! interval reads the count map and shows what grew, so the view costs one
//! map update per call whatever the rate. The last, partial interval is
//! shown too when the target exits, so no call goes uncounted.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cpython::Marker;
use crate::engine::abi::CallKey;
use crate::engine::codegen::MapTable;
use crate::engine::codegen::count::{COUNT_MAP, CountCalls, count_map_spec};
use crate::engine::consumer::Consumer;
use crate::engine::decode::Event;
use crate::engine::session::Session;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::notice;
use crate::output::escape;
use crate::output::event::{Format, json_str};
use crate::output::fit;
use crate::runner::tool_run::{self, StreamOptions};
use crate::tool::names::FuncNames;

/// A `pytap top` run.
#[derive(Debug, Clone)]
pub struct TopRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Text or JSON Lines.
    pub format: Format,
    /// Interval between views.
    pub interval: Duration,
    /// Rows per view (0: all).
    pub limit: usize,
    /// Size of the kernel's count map.
    pub max_functions: u32,
    /// Live full-screen view (stdout is a terminal and not `--plain`).
    pub live: bool,
    /// Live view of a launched command: where its output goes (default:
    /// kept and printed when the view closes).
    pub command_output: Option<std::path::PathBuf>,
    /// One row per process and function (by default a process tree's
    /// calls of a function are added up).
    pub by_pid: bool,
}

/// One row of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Process (the lowest pid, when the calls of several processes are
    /// added up).
    pub pid: u32,
    /// How many processes made these calls (1 with `--by-pid`).
    pub processes: u32,
    /// File name.
    pub filename: String,
    /// Line (the `def` line).
    pub lineno: i32,
    /// Function name.
    pub funcname: String,
    /// Calls in the interval.
    pub calls: u64,
}

/// Turns successive count-map snapshots into per-interval rows.
#[derive(Debug, Default)]
pub struct Deltas {
    seen: HashMap<CallKey, u64>,
    /// One row per process and function, rather than per function.
    pub by_pid: bool,
}

impl Deltas {
    /// Deltas with rows split by process (`by_pid`) or added up.
    pub fn new(by_pid: bool) -> Deltas {
        Deltas {
            seen: HashMap::new(),
            by_pid,
        }
    }

    /// The calls since the last snapshot of every key that has a name;
    /// keys without one yet (their full record is still in flight) keep
    /// their calls for the next interval. The calls of one function
    /// (file, name, `def` line) in several processes (a process tree) are
    /// added up unless `by_pid`. Sorted by calls, most first.
    pub fn rows(&mut self, snapshot: &[(CallKey, u64)], names: &FuncNames) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for (key, count) in snapshot {
            let Some(func) = names.get(key) else {
                continue;
            };
            let before = self.seen.insert(*key, *count).unwrap_or(0);
            let calls = count.saturating_sub(before);
            if calls > 0 {
                rows.push(Row {
                    pid: key.pid,
                    processes: 1,
                    filename: func.filename.to_string(),
                    lineno: key.lineno,
                    funcname: func.funcname.to_string(),
                    calls,
                });
            }
        }
        if !self.by_pid {
            rows = merge_processes(rows);
        }
        rows.sort_by(|a, b| {
            b.calls.cmp(&a.calls).then_with(|| {
                (a.pid, &a.filename, a.lineno, &a.funcname).cmp(&(
                    b.pid,
                    &b.filename,
                    b.lineno,
                    &b.funcname,
                ))
            })
        });
        rows
    }
}

/// Adds up the rows of one function (file, name, line) in several
/// processes; a merged row shows the lowest pid and how many processes.
fn merge_processes(rows: Vec<Row>) -> Vec<Row> {
    let mut by_func: HashMap<(String, i32, String), (Row, std::collections::BTreeSet<u32>)> =
        HashMap::new();
    for row in rows {
        let key = (row.filename.clone(), row.lineno, row.funcname.clone());
        match by_func.get_mut(&key) {
            Some((merged, pids)) => {
                merged.calls += row.calls;
                merged.pid = merged.pid.min(row.pid);
                pids.insert(row.pid);
                merged.processes = pids.len() as u32;
            }
            None => {
                let pids = [row.pid].into();
                by_func.insert(key, (row, pids));
            }
        }
    }
    by_func.into_values().map(|(row, _)| row).collect()
}

/// The PID column: the pid, or the lowest pid and `+` when several
/// processes' calls are added up.
pub fn pid_cell(row: &Row) -> String {
    if row.processes > 1 {
        format!("{}+", row.pid)
    } else {
        row.pid.to_string()
    }
}

/// Calls counted in pytap rather than in the kernel: the entries the
/// in-process capture delivers (CPython 3.12–3.14), and every entry of a
/// replayed recording, by the same keys as the kernel's counts.
#[derive(Debug, Default)]
pub struct InProcessCounts {
    counts: HashMap<CallKey, u64>,
}

impl InProcessCounts {
    /// Counts `event` if it is a function entry the kernel did not count
    /// (an in-process one, or any when replaying).
    pub fn count(&mut self, event: &Event<'_>, source: &dyn Source) {
        if (event.header.flags & crate::engine::abi::FLAG_IN_PROCESS != 0 || source.replaying())
            && event.header.kind == crate::engine::abi::EventKind::FunctionEntry
            && let Some(key) = crate::tool::names::key_of(event)
        {
            *self.counts.entry(key).or_insert(0) += 1;
        }
    }

    /// The kernel's counts (live) with these after them.
    pub fn with_kernel(&self, source: &dyn Source) -> Result<Vec<(CallKey, u64)>> {
        let mut all = match source.session() {
            Some(session) => kernel_counts(session)?,
            None => Vec::new(),
        };
        all.extend(self.counts.iter().map(|(k, v)| (*k, *v)));
        Ok(all)
    }

    /// Whether any call was counted here.
    pub fn any(&self) -> bool {
        !self.counts.is_empty()
    }
}

fn kernel_counts(session: &Session) -> Result<Vec<(CallKey, u64)>> {
    let map = session
        .map_named(COUNT_MAP)
        .ok_or_else(|| anyhow::anyhow!("internal: no count map"))?;
    let mut out = Vec::new();
    let mut key = [0u8; CallKey::SIZE];
    let mut next = [0u8; CallKey::SIZE];
    let mut value = [0u8; 8];
    let mut first = true;
    while map.next_key((!first).then_some(&key[..]), &mut next)? {
        first = false;
        key = next;
        if map.lookup(&key, &mut value)?
            && let Some(k) = CallKey::from_bytes(&key)
        {
            out.push((k, u64::from_le_bytes(value)));
        }
    }
    Ok(out)
}

/// What `top` counted, for the summary: calls counted in the kernel, and
/// the records that crossed (one per function, carrying its names).
pub fn describe(calls: u64, records: u64, in_process: bool) -> String {
    if in_process {
        return format!("{calls} calls counted ({records} events from inside the interpreter)");
    }
    format!("{calls} calls counted in the kernel ({records} function names received)")
}

/// One interval of `top`: its number, its length and its rows (most
/// calls first).
#[derive(Debug, Clone, Copy)]
pub struct Interval<'a> {
    /// Counted from 1.
    pub number: u64,
    /// Its length in seconds.
    pub secs: f64,
    /// Every function entered in it.
    pub rows: &'a [Row],
}

/// How `top`'s views are written, the same for every interval.
#[derive(Debug, Clone, Copy)]
pub struct ViewLayout {
    /// Text or JSON Lines.
    pub format: Format,
    /// Rows shown (0: all).
    pub limit: usize,
    /// The terminal's width, which text fits in.
    pub width: Option<usize>,
}

/// Writes one interval's view. Text has the HOWTO's columns (`top.stp`'s
/// `%6d %80s %6d %30s %6d`): within the layout's `width` (a terminal's),
/// the file name column takes what the others leave and long names are
/// shortened in the middle; without one the HOWTO's widths are kept and
/// nothing is cut.
pub fn write_view(
    out: &mut dyn Write,
    layout: &ViewLayout,
    interval: &Interval<'_>,
) -> io::Result<()> {
    let rows = interval.rows;
    let shown = if layout.limit == 0 {
        rows
    } else {
        &rows[..rows.len().min(layout.limit)]
    };
    match layout.format {
        Format::Text => write_text_view(out, interval, shown, layout.width),
        Format::Jsonl => write_json_view(out, interval, shown),
    }
}

/// The text view: a title line, the header, the rows shown.
fn write_text_view(
    out: &mut dyn Write,
    interval: &Interval<'_>,
    shown: &[Row],
    width: Option<usize>,
) -> io::Result<()> {
    let Interval { number, secs, rows } = *interval;
    let total: u64 = rows.iter().map(|r| r.calls).sum();
    writeln!(
        out,
        "--- interval {number} ({secs:.3} s): {total} calls, {} functions",
        rows.len()
    )?;
    // PID, LINE, FUNCTION and CALLS with their separators.
    let others = 6 + 1 + 1 + 6 + 1 + 30 + 1 + 6;
    let file_width = match width {
        Some(w) => w.saturating_sub(others).max(12),
        None => 80,
    };
    // Names are the program's: control characters escaped.
    let fit = |s: &str, w: usize| match width {
        Some(_) => fit::middle(&escape::text(s), w),
        None => escape::text(s).into_owned(),
    };
    writeln!(
        out,
        "{:>6} {:>file_width$} {:>6} {:>30} {:>6}",
        "PID", "FILENAME", "LINE", "FUNCTION", "CALLS"
    )?;
    for r in shown {
        writeln!(
            out,
            "{:>6} {:>file_width$} {:>6} {:>30} {:>6}",
            pid_cell(r),
            fit(&r.filename, file_width),
            r.lineno,
            fit(&r.funcname, 30),
            r.calls
        )?;
    }
    Ok(())
}

/// The JSON view: one object per interval, its rows in an array.
fn write_json_view(out: &mut dyn Write, interval: &Interval<'_>, shown: &[Row]) -> io::Result<()> {
    let Interval { number, secs, rows } = *interval;
    let total: u64 = rows.iter().map(|r| r.calls).sum();
    write!(
        out,
        "{{\"interval\":{number},\"seconds\":{secs:.6},\"calls\":{total},\"functions\":{},\"rows\":[",
        rows.len()
    )?;
    for (i, r) in shown.iter().enumerate() {
        write!(
            out,
            "{}{{\"pid\":{},\"filename\":",
            if i > 0 { "," } else { "" },
            r.pid
        )?;
        json_str(out, &r.filename)?;
        write!(out, ",\"lineno\":{},\"funcname\":", r.lineno)?;
        json_str(out, &r.funcname)?;
        write!(out, ",\"calls\":{}", r.calls)?;
        if r.processes > 1 {
            write!(out, ",\"processes\":{}", r.processes)?;
        }
        write!(out, "}}")?;
    }
    writeln!(out, "]}}")
}

struct TopView<'a> {
    out: &'a mut dyn Write,
    layout: ViewLayout,
    names: FuncNames,
    deltas: Deltas,
    interval: u64,
    last: Instant,
    /// A replay's interval start (recorded time): the first event's
    /// timestamp, then each tick's.
    replay_last: Option<u64>,
    calls: u64,
    in_process: InProcessCounts,
}

impl Consumer for TopView<'_> {
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.names.resolve(event, source);
        self.in_process.count(event, source);
        if source.replaying() {
            self.replay_last.get_or_insert(event.header.ts_ns);
        }
        Ok(())
    }

    fn tick(&mut self, source: &dyn Source) -> Result<()> {
        let rows = self
            .deltas
            .rows(&self.in_process.with_kernel(source)?, &self.names);
        self.interval += 1;
        self.calls += rows.iter().map(|r| r.calls).sum::<u64>();
        let secs = match source.clock_ns() {
            // Replayed: the interval's recorded length.
            Some(now) => {
                let from = self.replay_last.replace(now).unwrap_or(now);
                now.saturating_sub(from) as f64 / 1e9
            }
            None => self.last.elapsed().as_secs_f64(),
        };
        self.last = Instant::now();
        let interval = Interval {
            number: self.interval,
            secs,
            rows: &rows,
        };
        write_view(self.out, &self.layout, &interval)?;
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn recovered(&self) -> u64 {
        self.names.strings.recovery.recovered
    }

    fn describe(&self, events: u64) -> String {
        if self.replay_last.is_some() {
            return format!("{} calls counted ({events} function entries)", self.calls);
        }
        describe(self.calls, events, self.in_process.any())
    }
}

/// Runs `pytap top`.
pub fn run(request: &TopRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let marker = Marker::FunctionEntry;
    let markers: BTreeSet<Marker> = [marker].into();
    let mut make_handler = |maps: &mut MapTable, record, _: &[_]| CountCalls {
        maps: record,
        counts: maps.add(count_map_spec(request.max_functions)),
        marker,
    };
    if request.live && !request.stream.attach.dump_bpf {
        return crate::tool::top_live::run(request, &markers, &mut make_handler);
    }
    tool_run::run_tool(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict: true,
            tick: Some(request.interval),
            make_handler: &mut make_handler,
        },
        out,
        |out| {
            // Which marker the CALLS column counts (the live view's title says it too).
            notice!("top counts {marker} (one per call)");
            TopView {
                out,
                layout: ViewLayout {
                    format: request.format,
                    limit: request.limit,
                    width: request.stream.width,
                },
                names: FuncNames::default(),
                deltas: Deltas::new(request.by_pid),
                interval: 0,
                last: Instant::now(),
                replay_last: None,
                calls: 0,
                in_process: InProcessCounts::default(),
            }
        },
        |_| Ok(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, func: &str, calls: u64) -> Row {
        Row {
            pid,
            processes: 1,
            filename: "/app/pool.py".into(),
            lineno: 7,
            funcname: func.into(),
            calls,
        }
    }

    #[test]
    fn a_functions_calls_in_several_processes_are_added_up() {
        let mut rows = merge_processes(vec![row(12, "f", 100), row(10, "f", 50), row(12, "g", 3)]);
        rows.sort_by(|a, b| a.funcname.cmp(&b.funcname));
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].pid, rows[0].processes, rows[0].calls),
            (10, 2, 150)
        );
        assert_eq!(pid_cell(&rows[0]), "10+");
        assert_eq!(pid_cell(&rows[1]), "12");
    }
}
