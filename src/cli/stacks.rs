//! The flags of the tools that read Python stacks from memory: `dump`
//! (and, beside it, the sampler's `profile`).

use clap::Args;

use super::FormatArg;

/// `pytap dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A running process (repeat for several)
    #[arg(
        short,
        long = "pid",
        value_name = "PID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub pids: Vec<u32>,
    /// Every Python process on the machine (those pytap cannot read are skipped)
    #[arg(long)]
    pub all: bool,
    /// Output format (JSON schema: docs/output.md)
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Frames per thread at most
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_depth: usize,
    /// Each frame's local variables: the value of None, bools, ints,
    /// floats, strs and bytes, the size of lists, tuples, dicts and sets,
    /// the type of anything else (nothing is run in the process)
    #[arg(long)]
    pub locals: bool,
}

/// `--mode` of `pytap profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Threads on a CPU when sampled (where CPU time goes)
    Cpu,
    /// Every thread, running, sleeping or blocked, weighted by wall time
    Wall,
    /// Only the thread holding the GIL (where the GIL goes)
    Gil,
}

impl From<ModeArg> for crate::model::profile::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Cpu => Self::Cpu,
            ModeArg::Wall => Self::Wall,
            ModeArg::Gil => Self::Gil,
        }
    }
}

/// `--format` of `pytap profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileFormatArg {
    /// The functions taking the most time, own and total (the default)
    Top,
    /// Folded stacks (flamegraph.pl, inferno, speedscope read them)
    Folded,
    /// An SVG flame graph
    Svg,
    /// speedscope's JSON (https://www.speedscope.app)
    Speedscope,
    /// pprof's gzipped protobuf (go tool pprof, Pyroscope, Parca, Grafana)
    Pprof,
    /// A Perfetto trace: every sample on its thread, in time (ui.perfetto.dev)
    Perfetto,
}

impl ProfileFormatArg {
    /// The export format, `None` for the top table.
    pub fn format(self) -> Option<crate::export::profile::ProfileFormat> {
        use crate::export::profile::ProfileFormat;
        match self {
            ProfileFormatArg::Top => None,
            ProfileFormatArg::Folded => Some(ProfileFormat::Folded),
            ProfileFormatArg::Svg => Some(ProfileFormat::Svg),
            ProfileFormatArg::Speedscope => Some(ProfileFormat::Speedscope),
            ProfileFormatArg::Pprof => Some(ProfileFormat::Pprof),
            ProfileFormatArg::Perfetto => Some(ProfileFormat::Perfetto),
        }
    }
}

/// `pytap profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// A running process (repeatable)
    #[arg(short, long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// A command to start and profile (split into words like a shell would;
    /// shell syntax runs through /bin/sh)
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub command: Option<std::ffi::OsString>,
    /// Every process running CPython, now and later
    #[arg(long)]
    pub all: bool,
    /// The command to start, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub argv: Vec<std::ffi::OsString>,
    /// Read a recording of samples (pytap record --profile) instead of a live
    /// target: the output the live profile would have given
    #[arg(
        short = 'i',
        long = "input",
        value_name = "FILE",
        conflicts_with_all = ["pids", "command", "all", "argv", "rate", "mode", "duration", "children", "no_children"]
    )]
    pub input: Option<std::path::PathBuf>,
    /// With -p: also profile the processes it starts
    #[arg(long)]
    pub children: bool,
    /// With -c or --: profile only the command's own process
    #[arg(long)]
    pub no_children: bool,
    /// Samples a second (per CPU in cpu and gil modes, per thread in wall mode)
    #[arg(long, value_name = "HZ", default_value_t = 99)]
    pub rate: u32,
    /// Stop after this many seconds (the program keeps running)
    #[arg(short, long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// What a sample counts
    #[arg(long, value_enum, default_value = "cpu")]
    pub mode: ModeArg,
    /// Native (C) frames too, each eval loop's in the place of the Python
    /// frames it runs: unwound by frame pointers, so only where the
    /// interpreter was built with them (pytap says when it was not, and
    /// shows Python frames only)
    #[arg(long)]
    pub native: bool,
    /// What to write
    #[arg(long, value_enum, default_value = "top")]
    pub format: ProfileFormatArg,
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Rows of the top table
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub rows: usize,
}
