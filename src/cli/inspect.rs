//! `pytap list` and `pytap info`: the flags of the subcommands that read
//! a target without tracing it.

use std::path::PathBuf;

use clap::Args;

/// `pytap list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Interpreter binaries or libpython files to read
    #[arg(value_name = "PATH", required_unless_present = "pid")]
    pub paths: Vec<PathBuf>,
    /// A running process: list the markers of every module it maps
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Also list markers of providers other than `python`
    #[arg(long)]
    pub all_providers: bool,
    /// Print JSON (schema: docs/output.md)
    #[arg(long)]
    pub json: bool,
}

/// `pytap info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// An interpreter binary or libpython file
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["pid", "scan"],
        conflicts_with_all = ["pid", "scan"]
    )]
    pub path: Option<PathBuf>,
    /// A running process
    #[arg(short, long, value_name = "PID", conflicts_with = "scan")]
    pub pid: Option<u32>,
    /// Every CPython on this machine (python3* in PATH, /usr/bin,
    /// /usr/local/bin, and the libpythons in the library directories):
    /// which have markers, and what they can give
    #[arg(long)]
    pub scan: bool,
    /// Print JSON (schema: docs/output.md)
    #[arg(long)]
    pub json: bool,
}
