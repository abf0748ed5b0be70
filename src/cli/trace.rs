//! `pytap trace`'s flags, with the benchmark's hidden ones.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EngineArgs, FormatArg, TargetArgs};

/// `pytap trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// A marker to trace (repeatable; default: all the target has)
    #[arg(short, long = "marker", value_name = "MARKER")]
    pub markers: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Write events to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --format jsonl: give each gc, import and audit event the
    /// Python stack at that moment ("stack", innermost frame first, each
    /// frame's running line). Live, the marker's own probe reads it from
    /// the interpreter's memory: no function probe, any version with these
    /// markers. Replaying a recording (-i), it is rebuilt from the
    /// recorded function events
    #[arg(long)]
    pub stacks: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Attach programs that do nothing (`r0 = 0; exit`): the benchmark's
    /// baseline for the kernel's own cost per event
    #[arg(long, hide = true)]
    pub empty_probe: bool,
    /// Attach programs that only read the clock (`bpf_ktime_get_ns`): the
    /// benchmark's floor for tools that time every event
    #[arg(long, hide = true, conflicts_with = "empty_probe")]
    pub clock_probe: bool,
    /// Attach the function-record program reading every name (whole), or
    /// without one of its parts (no-strings, object-headers, no-output),
    /// or the floor of timing
    /// calls in the kernel (kernel-timing): the benchmark's split of what
    /// tracing costs
    #[arg(long, hide = true, value_name = "PART", conflicts_with_all = ["empty_probe", "clock_probe"])]
    pub split_probe: Option<SplitPart>,
}

/// `--split-probe`'s parts left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitPart {
    /// Nothing left out, and every record whole: both names read on every
    /// event (trace's program before names were sent once).
    Whole,
    /// No string read.
    NoStrings,
    /// Each string's object header read instead of the string.
    ObjectHeaders,
    /// Everything but the output.
    NoOutput,
    /// Instead of records, the floor of timing calls in the kernel: a
    /// thread's stack of entry times and a per-function total.
    KernelTiming,
}
