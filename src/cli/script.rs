//! `pytap stap`'s flags, and what scripts and D programs share: the
//! target they run on and how faithfully probes see the markers.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::Args;

use super::{EngineArgs, TargetArgs};

/// `pytap stap`.
#[derive(Debug, Args)]
pub struct StapArgs {
    /// The script file (with -e, every positional argument is for the script)
    #[arg(value_name = "SCRIPT")]
    pub script: Option<PathBuf>,
    /// Arguments for the script: `$1` (a number), `@1` (a string), …
    #[arg(value_name = "ARGS", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Run CMD (split like a shell would; shell syntax runs through
    /// /bin/sh) and trace its process tree; the run ends when it exits
    #[arg(short = 'c', value_name = "CMD", conflicts_with = "pid")]
    pub command: Option<OsString>,
    /// Trace process PID (and, with --children, what it starts)
    #[arg(short = 'x', value_name = "PID")]
    pub pid: Option<u32>,
    /// Script text, instead of or besides a file (repeatable)
    #[arg(short = 'e', value_name = "SCRIPT")]
    pub inline: Vec<String>,
    /// Also read the tapsets (*.stp) of DIR, before pytap's own (repeatable)
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Write the script's output to FILE instead of stdout
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// SystemTap's guru mode: accepted and ignored (pytap runs no embedded C)
    #[arg(short = 'g', hide = true)]
    pub guru: bool,
    /// What scripts and D programs run on.
    #[command(flatten)]
    pub run: ScriptRunArgs,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The flags `pytap stap` and `pytap dtrace` share.
#[derive(Debug, Args)]
pub struct ScriptRunArgs {
    /// Run probes on exactly what the markers fire: keep 3.15's generator
    /// creations and `__init__` shim returns (by default they are dropped,
    /// as `pytap flow` drops them)
    #[arg(long)]
    pub raw_markers: bool,
    /// With a process id (stap's -x, dtrace's -p): also trace the processes
    /// it starts from now on
    #[arg(long)]
    pub children: bool,
    /// With -c: trace only the command's own process
    #[arg(long)]
    pub no_children: bool,
    /// Arm function markers even where CPython's own probe code would fail
    /// (a name that is not UTF-8 where the program's code comes from:
    /// CPython gh-156118)
    #[arg(long)]
    pub force: bool,
}

impl ScriptRunArgs {
    /// The target of a script run on process `pid` or command `command`
    /// (every process running the script's binaries when neither).
    pub fn target(&self, pid: Option<u32>, command: Option<&OsStr>) -> TargetArgs {
        TargetArgs {
            pids: pid.into_iter().collect(),
            command: command.map(OsStr::to_os_string),
            all: pid.is_none() && command.is_none(),
            binaries: Vec::new(),
            argv: Vec::new(),
            input: None,
            children: self.children,
            no_children: self.no_children,
            force: self.force,
        }
    }
}
