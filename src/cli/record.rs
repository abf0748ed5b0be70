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
  pytap record --profile --rate 499 -o prof.pytap -- python3 app.py

Then, from the recording:
  pytap flow -i run.pytap              # the call hierarchy, as flow would have shown it live
  pytap top -i run.pytap --interval 1  # intervals cut by the events' timestamps
  pytap calls -i run.pytap
  pytap export -i run.pytap --format svg -o flame.svg
  pytap profile -i prof.pytap --format folded   # what pytap profile would have written
  pytap export -i prof.pytap --format perfetto -o prof.pftrace

A recording holds every event as the probes saw it, each name stored once, with
the run's metadata (what was traced, binaries and their CPython versions, thread
names over time, what was lost). It is written as the events arrive: a run that
is killed leaves a recording that reads up to its last whole event. The format
is in docs/recording.md. With --format, pytap records to a temporary file next
to FILE and writes the export when the run ends.

With --profile it holds the stack sampler's samples instead (no marker is
attached: any CPython 3.8-3.15, with or without markers), each frame named as
pytap profile names it while the program runs (function, file, line: code
objects cannot be read once the program has exited), with each sample's
thread, time and weight, and the sampler's mode and rate.";

/// `pytap export --help`'s examples and notes.
pub const EXPORT_HELP: &str = "\
Examples:
  pytap export -i run.pytap --format perfetto -o run.pftrace   # ui.perfetto.dev
  pytap export -i run.pytap --format chrome -o run.json        # chrome://tracing
  pytap export -i run.pytap --format speedscope -o run.speedscope.json
  pytap export -i run.pytap --format folded > run.folded       # flamegraph.pl, inferno
  pytap export -i run.pytap --format svg -o flame.svg
  pytap export -i run.pytap --format svg --flame-chart -o chart.svg

A recording of samples (pytap record --profile) is written as pytap profile
--format would have written its profile (pprof too). A recording of events:
every call is a slice on its thread's track, nested exactly: a return whose
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
    /// pprof's gzipped protobuf (a recording of samples only).
    Pprof,
}

impl From<ExportFormatArg> for ExportFormat {
    fn from(arg: ExportFormatArg) -> Self {
        match arg {
            ExportFormatArg::Perfetto => ExportFormat::Perfetto,
            ExportFormatArg::Chrome => ExportFormat::Chrome,
            ExportFormatArg::Speedscope => ExportFormat::Speedscope,
            ExportFormatArg::Folded => ExportFormat::Folded,
            ExportFormatArg::Svg => ExportFormat::Svg,
            ExportFormatArg::Pprof => ExportFormat::Pprof,
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
    #[arg(
        short,
        long = "marker",
        value_name = "MARKER",
        conflicts_with = "profile"
    )]
    pub markers: Vec<String>,
    /// Record the stack sampler's samples (pytap profile's) instead of marker
    /// events: read them back with pytap profile -i FILE or pytap export -i FILE
    #[arg(long, conflicts_with = "format")]
    pub profile: bool,
    /// With --profile: samples a second (per CPU in cpu and gil modes, per
    /// thread in wall mode) [default: 99]
    #[arg(long, value_name = "HZ", requires = "profile")]
    pub rate: Option<u32>,
    /// With --profile: what a sample counts [default: cpu]
    #[arg(long, value_enum, value_name = "MODE", requires = "profile")]
    pub mode: Option<super::ModeArg>,
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
