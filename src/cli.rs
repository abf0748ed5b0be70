//! Command-line arguments: clap definitions only, no I/O.
//!
//! `main` turns these into requests for the tools. Help texts are written to
//! teach: each subcommand says what it shows and gives an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Trace CPython's static markers (USDT) with eBPF";

const LONG_ABOUT: &str = "\
Trace CPython's static markers (USDT) with eBPF.

CPython built with --with-dtrace (Debian, Ubuntu, Fedora) carries markers for
function entry and return, lines, garbage collections, imports and audit
events. pytap finds them in an interpreter, a libpython or a running process,
tells you which ones really fire on that CPython version, and traces them.";

const AFTER_HELP: &str = "\
Examples:
  pytap list /usr/bin/python3.11          every marker site, readelf-style
  pytap list -p 1234                      markers of a running process, live semaphores
  pytap info -p 1234                      CPython version and what each marker will do

Exit status: 0 success, 1 nothing was traced, 2 error (bad target, missing
privileges, bad arguments).";

/// pytap's command line.
#[derive(Debug, Parser)]
#[command(name = "pytap", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every marker site of binaries, libraries or a process (like readelf -n)
    #[command(after_help = "\
Examples:
  pytap list /usr/bin/python3.11
  pytap list /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 --json
  pytap list -p 1234                    # also shows each semaphore's live value

A path without markers that links libpython (a shared build) lists the
libpython it would load. Columns: PC and SEMAPHORE as readelf -n prints them;
OFFSET and SEM.OFFSET are the file offsets a uprobe and its semaphore attach
at, computed through this very file's program headers.")]
    List(ListArgs),
    /// Show the CPython version of a target and what each marker will really do
    #[command(after_help = "\
Examples:
  pytap info /usr/bin/python3.11
  pytap info -p 1234 --json

Verdicts: fires, armed (fires completely once pytap arms it, as it does),
unbalanced (entries and returns do not pair up; pytap's tools cope), absent,
unknown (a version pytap has no facts about).")]
    Info(InfoArgs),
}

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
        required_unless_present = "pid",
        conflicts_with = "pid"
    )]
    pub path: Option<PathBuf>,
    /// A running process
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Print JSON (schema: docs/output.md)
    #[arg(long)]
    pub json: bool,
}
