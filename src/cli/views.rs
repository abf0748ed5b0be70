//! The views' flags: `pytap flow`, `top`, `calls`, `gc`, `imports` and
//! `audit`, with the choices only they have (flow's style, calls' sort
//! column) as clap values turned into the tools' own types.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EngineArgs, OutputArgs, TargetArgs};
use crate::tool::calls::CallsSort;
use crate::tool::flow::FlowStyle;

/// `pytap calls`.
#[derive(Debug, Args)]
pub struct CallsArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Sort by this column
    #[arg(short, long, value_enum, default_value = "total")]
    pub sort: CallsSortArg,
    /// Functions shown (0: all)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// A log2 histogram of call durations per function
    #[arg(long)]
    pub hist: bool,
    /// One row per process and function (by default a process tree's
    /// calls of a function are added up)
    #[arg(long)]
    pub by_pid: bool,
    /// Distinct functions the kernel can count (calls of more still stream whole)
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub max_functions: u32,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap calls --sort` ([`CallsSort`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallsSortArg {
    /// Number of calls.
    Calls,
    /// Total (inclusive) time.
    Total,
    /// Self (exclusive) time.
    #[value(name = "self")]
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

impl From<CallsSortArg> for CallsSort {
    fn from(arg: CallsSortArg) -> Self {
        match arg {
            CallsSortArg::Calls => CallsSort::Calls,
            CallsSortArg::Total => CallsSort::Total,
            CallsSortArg::SelfTime => CallsSort::SelfTime,
            CallsSortArg::Mean => CallsSort::Mean,
            CallsSortArg::P50 => CallsSort::P50,
            CallsSortArg::P99 => CallsSort::P99,
            CallsSortArg::Name => CallsSort::Name,
        }
    }
}

/// `pytap top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds between views (no short form: `-i` is a recording, as in
    /// every view)
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
    /// Functions per view (0: all)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Plain tables even on a terminal
    #[arg(long)]
    pub plain: bool,
    /// Distinct functions the kernel can count (calls of more are reported as not counted)
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub max_functions: u32,
    /// In the live view, write the traced command's output (stdout and
    /// stderr) to FILE instead of showing it when the view closes
    #[arg(long, value_name = "FILE")]
    pub command_output: Option<PathBuf>,
    /// One row per process and function (by default a process tree's
    /// calls of a function are added up: PID shows the lowest pid and `+`)
    #[arg(long)]
    pub by_pid: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap flow --style` ([`FlowStyle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowStyleArg {
    /// The HOWTO's SystemTap output (thread_indent).
    Systemtap,
    /// The HOWTO's DTrace output (call_stack.d).
    Dtrace,
}

impl From<FlowStyleArg> for FlowStyle {
    fn from(arg: FlowStyleArg) -> Self {
        match arg {
            FlowStyleArg::Systemtap => FlowStyle::Systemtap,
            FlowStyleArg::Dtrace => FlowStyle::Dtrace,
        }
    }
}

/// `pytap flow`.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Text style
    #[arg(long, value_enum, default_value = "systemtap")]
    pub style: FlowStyleArg,
    /// Show only what runs inside calls of FUNC (and FUNC itself): a
    /// function glob, or `FILE:FUNC` with globs on both, like --filter
    #[arg(long, value_name = "FUNC")]
    pub within: Option<String>,
    /// Show only functions matching GLOB: `FUNC`, or `FILE:FUNC` with globs
    /// on both (repeatable); depths stay those of the whole stack
    #[arg(long, value_name = "GLOB")]
    pub filter: Vec<String>,
    /// Show only calls at most N deep (1 = outermost frames)
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap imports`.
#[derive(Debug, Args)]
pub struct ImportsArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `pytap audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Only events matching these globs (comma-separated, repeatable), e.g.
    /// 'open,socket.*'
    #[arg(short, long = "event", value_name = "GLOBS")]
    pub events: Vec<String>,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}
