//! `pytap record`'s and `pytap export`'s flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EngineArgs, TargetArgs};
use crate::export::{ExportFormat, Weight};

/// `pytap record --help`'s examples and notes.
pub const RECORD_HELP: &str = "\
Examples:
  pytap record -o run.pytap -c '/usr/bin/python3.11 app.py'
  pytap record -o run.pytap -p 1234 --duration 10
  pytap record --format perfetto -o run.pftrace -c '/usr/bin/python3.11 app.py'

Then, from the recording:
  pytap flow -i run.pytap              # the call hierarchy, as flow would have shown it live
  pytap top -i run.pytap --interval 1  # intervals cut by the events' timestamps
  pytap calls -i run.pytap
  pytap export -i run.pytap --format svg -o flame.svg

A recording holds every event as the probes saw it, each name stored once, with
the run's metadata (what was traced, binaries and their CPython versions, thread
names over time, what was lost). It is written as the events arrive: a run that
is killed leaves a recording that reads up to its last whole event. The format
is in docs/recording.md. With --format, pytap records to a temporary file next
to FILE and writes the export when the run ends.";

/// `pytap export --help`'s examples and notes.
pub const EXPORT_HELP: &str = "\
Examples:
  pytap export -i run.pytap --format perfetto -o run.pftrace   # ui.perfetto.dev
  pytap export -i run.pytap --format chrome -o run.json        # chrome://tracing
  pytap export -i run.pytap --format speedscope -o run.speedscope.json
  pytap export -i run.pytap --format folded > run.folded       # flamegraph.pl, inferno
  pytap export -i run.pytap --format svg -o flame.svg
  pytap export -i run.pytap --format svg --flame-chart -o chart.svg

Every call is a slice on its thread's track, nested exactly: a return whose
entry came before the recording started is dropped (and counted), frames
still open at the end close at their thread's last event and are flagged
unfinished. Folded stacks and flame graphs weigh each stack by the exact
wall time spent in it and not in a callee (--weight calls: by calls). The
formats are described in docs/export.md.";

/// `--format` of an export ([`ExportFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    /// Perfetto's native protobuf trace (ui.perfetto.dev).
    Perfetto,
    /// Chrome Trace Event JSON (chrome://tracing, older tools).
    Chrome,
    /// speedscope's evented profile format (speedscope.app).
    Speedscope,
    /// Folded stacks, `a;b;c N` (flamegraph.pl, inferno, and others).
    Folded,
    /// An SVG flame graph.
    Svg,
}

impl From<ExportFormatArg> for ExportFormat {
    fn from(arg: ExportFormatArg) -> Self {
        match arg {
            ExportFormatArg::Perfetto => ExportFormat::Perfetto,
            ExportFormatArg::Chrome => ExportFormat::Chrome,
            ExportFormatArg::Speedscope => ExportFormat::Speedscope,
            ExportFormatArg::Folded => ExportFormat::Folded,
            ExportFormatArg::Svg => ExportFormat::Svg,
        }
    }
}

/// `--weight` of folded stacks and flame graphs ([`Weight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightArg {
    /// Nanoseconds spent in the stack and not in a callee.
    Time,
    /// Calls that returned with this stack.
    Calls,
}

impl From<WeightArg> for Weight {
    fn from(arg: WeightArg) -> Self {
        match arg {
            WeightArg::Time => Weight::Time,
            WeightArg::Calls => Weight::Calls,
        }
    }
}

/// How an export is drawn (`pytap export`, `pytap record --format`).
#[derive(Debug, Args)]
pub struct ExportStyleArgs {
    /// Folded stacks and flame graphs: weigh stacks by the wall time spent
    /// in them (ns), or by calls
    #[arg(long, value_enum, default_value = "time")]
    pub weight: WeightArg,
    /// SVG and folded: a flame chart (stacks in time order, per thread)
    /// instead of a flame graph
    #[arg(long)]
    pub flame_chart: bool,
    /// Perfetto: give each gc, import and audit event the Python stack at
    /// that moment
    #[arg(long)]
    pub stacks: bool,
}

/// `pytap record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// A marker to record (repeatable; default: all the target has)
    #[arg(short, long = "marker", value_name = "MARKER")]
    pub markers: Vec<String>,
    /// The recording to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Write this export instead of a recording
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ExportFormatArg>,
    /// How the export is drawn.
    #[command(flatten)]
    pub style: ExportStyleArgs,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording (made by `pytap record`)
    #[arg(short, long = "input", value_name = "FILE")]
    pub input: PathBuf,
    /// What to write
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: ExportFormatArg,
    /// Write to FILE (default: stdout, except for perfetto on a terminal)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// How the export is drawn.
    #[command(flatten)]
    pub style: ExportStyleArgs,
}
