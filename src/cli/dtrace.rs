//! `pytap dtrace`'s flags: dtrace's own, as people use them with Python.

use std::path::PathBuf;

use clap::Args;

use super::{EngineArgs, ScriptRunArgs};

/// `pytap dtrace`.
#[derive(Debug, Args)]
pub struct DtraceArgs {
    /// The D program file
    #[arg(short = 's', value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// A D program on the command line (repeatable); with -l, the probes to list
    #[arg(short = 'n', value_name = "PROGRAM")]
    pub programs: Vec<String>,
    /// Macro arguments: `$1` (a number), `$$1` (a string), …
    #[arg(value_name = "ARGS", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Quiet: only what the program prints (no CPU/ID/FUNCTION:NAME lines)
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Run CMD (split like a shell would; shell syntax runs through
    /// /bin/sh) and trace its process tree; `$target` is its pid
    #[arg(short = 'c', value_name = "CMD", conflicts_with = "pid")]
    pub command: Option<std::ffi::OsString>,
    /// Trace process PID (`$target`)
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<u32>,
    /// Write the program's output to FILE instead of stdout
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A dtrace option: `quiet` (the others dtrace has are accepted where
    /// pytap has nothing to set, e.g. bufsize, and refused otherwise)
    #[arg(short = 'x', value_name = "OPT[=VALUE]")]
    pub options: Vec<String>,
    /// Allow probe descriptions that match no probe
    #[arg(short = 'Z')]
    pub zdefs: bool,
    /// Run the C preprocessor: pytap has none, and says so
    #[arg(short = 'C')]
    pub cpp: bool,
    /// Allow destructive actions: accepted (pytap has none)
    #[arg(short = 'w')]
    pub destructive: bool,
    /// List probes instead of running (with -p, -P, -m, -f or -n)
    #[arg(short = 'l')]
    pub list: bool,
    /// With -l: probes of this provider (`python1234`, `python*`)
    #[arg(short = 'P', value_name = "PROVIDER")]
    pub providers: Vec<String>,
    /// With -l: probes of this module (`python3.11`, `libpython3.11.so.1.0`;
    /// a program on PATH or a file is read when no process is given)
    #[arg(short = 'm', value_name = "MODULE")]
    pub modules: Vec<String>,
    /// With -l: probes in this C function
    #[arg(short = 'f', value_name = "FUNCTION")]
    pub functions: Vec<String>,
    /// What D programs run on.
    #[command(flatten)]
    pub run: ScriptRunArgs,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}
