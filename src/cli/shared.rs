//! What every tracing subcommand shares: which processes to trace
//! ([`TargetArgs`]), where and how events are written ([`OutputArgs`]),
//! and the engine's settings ([`EngineArgs`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::output::event::Format;

/// `--format` of the event streams ([`Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Aligned text lines for people.
    Text,
    /// One JSON object per line.
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Text => Format::Text,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

/// Output settings of the tracing tools.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format (JSON schemas: docs/output.md)
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Which processes to trace: one of `-p`, `-c`, `--all` or `-- CMD...`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A running process (repeatable)
    #[arg(short, long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// A command to launch and trace from its first instruction (split into
    /// words like a shell would; shell syntax runs through /bin/sh)
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub command: Option<OsString>,
    /// Every process running a binary with python markers: those running
    /// now, and later ones of the same binaries
    #[arg(long)]
    pub all: bool,
    /// With --all: trace every process running this interpreter or
    /// libpython, including ones that start later (repeatable)
    #[arg(long = "binary", value_name = "PATH", requires = "all")]
    pub binaries: Vec<PathBuf>,
    /// The command to launch, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub argv: Vec<OsString>,
    /// Read a recording made by `pytap record` instead of a live target:
    /// the same output the live view would have given
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// With -p: also trace the processes it starts from now on (forked
    /// workers, other interpreters it runs), each with its own binary's plan
    #[arg(long)]
    pub children: bool,
    /// With -c or --: trace only the command's own process, not the
    /// processes it starts (by default the whole tree is traced)
    #[arg(long)]
    pub no_children: bool,
    /// Arm function markers even where CPython's own probe code would
    /// make the target fail (a name that is not UTF-8 where its code comes
    /// from: the script, the working directory, PYTHONPATH, the
    /// interpreter's own path; CPython gh-156118)
    #[arg(long)]
    pub force: bool,
}

/// How 3.11's function__entry is armed (a development switch for measuring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArmArg {
    /// Raise the line semaphore from an instruction that never runs.
    Anchor,
    /// Attach to the line site itself.
    LineSite,
}

/// Which path serves function events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    /// Markers where they exist; on CPython 3.12–3.14, whose function
    /// markers are gone, pytap's agent inside a launched interpreter
    Auto,
    /// Markers only: nothing runs inside the traced process
    Markers,
    /// The agent inside every launched CPython 3.12+ (3.15 included) and
    /// a profile function in a launched 3.11; markers below 3.11
    InProcess,
}

/// Settings of the engine, shared by every tracing subcommand.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Print the BPF programs pytap would load (and the sites and maps), then exit
    #[arg(long)]
    pub dump_bpf: bool,
    /// Attach with one perf_event uprobe per site instead of one uprobe_multi link per module
    #[arg(long)]
    pub force_perf_event: bool,
    /// Ring buffer size in MiB, a power of two (default: 1 MiB per CPU,
    /// at least 16 and at most 64; raise it if a run reports lost events);
    /// the per-CPU rings function events are written into share as much
    /// again
    #[arg(long, value_name = "MIB")]
    pub buffer_size: Option<u32>,
    /// Stop after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// How to arm CPython 3.11's function__entry
    #[arg(long, value_enum, default_value = "anchor", hide = true)]
    pub arm: ArmArg,
    /// Where function events come from (gc, import and audit events always
    /// come from markers)
    #[arg(long, value_enum, default_value = "auto")]
    pub capture: CaptureArg,
}
