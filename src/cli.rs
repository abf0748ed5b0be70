//! Command-line arguments: clap definitions only, no I/O.
//!
//! `main` turns these into requests for the tools. Help texts are written to
//! teach: each subcommand says what it shows and gives an example.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::event::Format;

mod dtrace;
mod record;
pub mod resolve;
mod trace;
pub use dtrace::DtraceArgs;
pub use record::{ExportArgs, ExportStyleArgs, RecordArgs};
pub use trace::{SplitPart, TraceArgs};

const ABOUT: &str = "Trace CPython's static markers (USDT) with eBPF";

const LONG_ABOUT: &str = "\
Trace CPython's static markers (USDT) with eBPF.

CPython built with --with-dtrace (Debian, Ubuntu, Fedora) carries markers for
function entry and return, lines, garbage collections, imports and audit
events. pytap finds them in an interpreter, a libpython or a running process,
tells you which ones really fire on that CPython version, and traces them:
raw, as the HOWTO's views (flow, top, calls, gc, imports, audit), or with
SystemTap scripts that pytap compiles to BPF itself (stap).";

const AFTER_HELP: &str = "\
Examples:
  pytap list /usr/bin/python3.11          every marker site, readelf-style
  pytap list -p 1234                      markers of a running process, live semaphores
  pytap info -p 1234                      CPython version and what each marker will do
  pytap trace -c 'python3 app.py'         every event of a command, from its first line
  pytap trace -m gc-start -p 1234         one marker of a running process
  pytap stap top.stp -c 'python3 app.py'  a SystemTap script (the HOWTO's included)

Exit status: 0 success, 1 nothing was traced, 2 error (bad target, missing
privileges, bad arguments).";

/// The version line: the program and the JSON schema version (docs/output.md).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (JSON schema 2)");

/// pytap's command line.
#[derive(Debug, Parser)]
#[command(name = "pytap", version = VERSION, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
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
    #[command(display_order = 2)]
    List(ListArgs),
    /// Show the CPython version of a target and what each marker will really do
    #[command(after_help = "\
Examples:
  pytap info /usr/bin/python3.11
  pytap info -p 1234 --json
  pytap info --scan                    # which interpreters here have markers

Verdicts: fires, armed (fires completely once pytap arms it, as it does),
unbalanced (entries and returns do not pair up; pytap's tools cope), absent,
unknown (a version pytap has no facts about).")]
    #[command(display_order = 1)]
    Info(InfoArgs),
    /// Stream every marker event of a process or command (text or JSON Lines)
    #[command(after_help = "\
Examples:
  pytap trace -c 'python3.11 app.py'
  pytap trace -m function__entry -m function__return -p 1234 --format jsonl -o calls.jsonl
  pytap trace -m audit --all
  pytap trace --dump-bpf -c 'python3.11 app.py'    # show the BPF programs, load nothing

Markers are spelled as CPython (function__entry) or DTrace (function-entry)
spells them; the default is every marker the target has. A marker the target's
CPython version lacks is an error that says why. On CPython 3.11, asking for
function__entry makes pytap arm the line marker's semaphore, without which 3.11
fires almost no entries. The summary (events seen and lost, why it ended) goes
to stderr. Ctrl-C, SIGTERM or SIGHUP detach cleanly; the traced program keeps
running.")]
    #[command(display_order = 10)]
    Trace(TraceArgs),
    /// The call hierarchy: one indented line per function entry and return
    #[command(after_help = "\
Examples:
  pytap flow -c 'python3.11 app.py'
  pytap flow --style dtrace --within '*/app.py:main' -p 1234
  pytap flow --filter 'app/*' --max-depth 3 -- python3.11 app.py

The default style is the HOWTO's SystemTap output: microseconds since the
thread's first event, exe(tid), indentation by depth, => entry, <= return,
`funcname in filename:lineno`. --style dtrace is the HOWTO's DTrace output:
nanosecond timestamp, probe name, indentation, basename:funcname:lineno.
Depths are per thread and repaired where CPython's markers do not pair up
(see `pytap info`): a return matches the innermost frame of its function,
frames it skips never returned and are dropped, a return with no entry
(3.15's __init__ shim) is not shown, and 3.15's generator creations are
recognised by reading the frame and not shown. --within with an exact
function name (FUNC or FILE:FUNC) is filtered in the kernel: what runs
outside costs no event. Needs function markers: CPython 3.8-3.11 and 3.15+
(3.11 is armed automatically).")]
    #[command(display_order = 11)]
    Flow(FlowArgs),
    /// Garbage collections: generation, pause and objects collected, with a summary
    #[command(after_help = "\
Examples:
  pytap gc -p 1234
  pytap gc --format jsonl -c 'python3.11 app.py'

One line per collection (gc__start to gc__done on the same thread), then per
generation: collections, total, mean and max pause, objects collected and a
log2 histogram of pauses.")]
    #[command(display_order = 14)]
    Gc(GcArgs),
    /// The import tree: inclusive and self time per module, found or not
    #[command(after_help = "\
Examples:
  pytap imports -c 'python3.11 -c \"import json\"'
  pytap imports -p 1234 --format jsonl

Like `python -X importtime`, for any process and live: one line per import
as it finishes (so children come before their parent), with self and
cumulative microseconds and the module indented by nesting.")]
    #[command(display_order = 15)]
    Imports(ImportsArgs),
    /// Audit events, strace-like, with decoded arguments
    #[command(after_help = "\
Examples:
  pytap audit -p 1234
  pytap audit -e 'open,socket.*,subprocess.Popen' --all

Arguments are decoded from the target's memory without running code in it
(str, bytes, int, float, None, bool, nested tuples; other objects by type).")]
    #[command(display_order = 16)]
    Audit(AuditArgs),
    /// The most entered functions every interval, counted in the kernel
    #[command(after_help = "\
Examples:
  pytap top -p 1234                  # live full-screen view: s sort, p pause, q quit
  pytap top --all --plain --interval 5
  pytap top -n 0 --format jsonl -c 'python3.11 app.py'

The HOWTO's top: every interval the functions entered most, with PID,
FILENAME, LINE (the def line), FUNCTION and CALLS, across one process or all.
Calls are counted in the kernel (one map update per call, no event per
call), names are sent once per function. When stdout is a terminal the view
is live and full-screen; otherwise, or with --plain, a table per interval.
When the target exits the last partial interval is shown too. Counts
function__entry (3.11 is armed automatically; 3.12-3.14 have no function
markers).")]
    #[command(display_order = 12)]
    Top(TopArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout
    #[command(after_help = "\
Examples:
  pytap completions bash > /etc/bash_completion.d/pytap
  pytap completions zsh > \"${fpath[1]}/_pytap\"
  pytap completions fish > ~/.config/fish/completions/pytap.fish

Generated from the same definitions as --help, so they never drift.")]
    #[command(display_order = 40)]
    Completions(CompletionsArgs),
    /// Print pytap's manual page (roff) on stdout
    #[command(after_help = "\
Examples:
  pytap man | man -l -
  pytap man > /usr/local/share/man/man1/pytap.1

Generated from the same definitions as --help: every subcommand and option.")]
    #[command(display_order = 41)]
    Man,
    /// Per function: calls, total, self and mean time, p50/p99, histograms
    #[command(after_help = "\
Examples:
  pytap calls -c 'python3.11 app.py'
  pytap calls -p 1234 --duration 10 --sort self -n 30
  pytap calls --hist --format jsonl -- python3.11 app.py

Collects until the target exits, Ctrl-C or --duration, then prints one row
per function (file, name, def line). Calls are counted exactly; TOTAL is
inclusive time counted once per outermost activation (recursion is not
summed per level), SELF excludes callees, MEAN/P50/P99 are per call
(percentiles within 1.6 %). Calls are counted in the kernel and entries and
returns cross as small records without strings.")]
    #[command(display_order = 13)]
    Calls(CallsArgs),
    /// Run a SystemTap script, compiled to BPF by pytap (no kernel module, no compiler)
    #[command(after_help = "\
Examples:
  pytap stap show-call-hierarchy.stp -c 'python3.11 test.py'
  pytap stap top.stp
  pytap stap -I tapsets/ tapset-call-hierarchy.stp -x 1234
  pytap stap -e 'global n
    probe python.function.entry { n[funcname] <<< 1 }
    probe end { foreach (f in n @count- limit 5) printf(\"%s %d\\n\", f, @count(n[f])) }' \\
    -c 'python3.11 app.py'
  pytap stap --dump-bpf top.stp -c 'python3.11 app.py'

Scripts are SystemTap's language: probes on `process(\"PATH\").mark(\"NAME\")`
(the markers of CPython), `process.mark(...)` (the -c/-x target), the python
tapset's aliases (`python.function.entry`, …), `begin`, `end` and
`timer.ms(N)`; globals, arrays, statistics, printf. Probe bodies at markers
run in the kernel; begin, end and timers run in pytap. With -c or -x, probes
watch the target's process tree; without, every process running the named
binaries. docs/scripts.md lists what is supported and what differs from
SystemTap.")]
    #[command(display_order = 20)]
    Stap(StapArgs),
    /// Run a D program (dtrace's language), compiled to BPF by pytap
    #[command(after_help = "\
Examples:
  pytap dtrace -q -s call_stack.d -c 'python3.11 script.py'
  pytap dtrace -n 'python$target:::function-entry { @[copyinstr(arg1)] = count(); }' -p 1234
  pytap dtrace -n 'python*:::gc-done { @[\"collected\"] = quantize(arg0); }' -c 'python3.11 app.py'
  pytap dtrace -l -P python1234
  pytap dtrace -l -m python3.11 -n 'python*:::gc-*'

D clauses are `provider:module:function:name /predicate/ { actions }` on the
python provider's probes (`python$target:::function-entry`; dashes stand for
CPython's double underscores), BEGIN, END and tick-N (1sec, 100ms, 10hz).
Clauses at markers run in the kernel; BEGIN, END and ticks run in pytap.
Aggregations (count, sum, avg, min, max, quantize, lquantize) are kept in the
kernel and printed at the end as dtrace prints them. docs/scripts.md has the
D table: what is supported, what is not, what differs.")]
    #[command(display_order = 21)]
    Dtrace(DtraceArgs),
    /// Record every event of a run to a file (replay it with -i, or export it)
    #[command(after_help = record::RECORD_HELP)]
    #[command(display_order = 30)]
    Record(RecordArgs),
    /// Export a recording: Perfetto, Chrome JSON, speedscope, folded stacks, SVG
    #[command(after_help = record::EXPORT_HELP)]
    #[command(display_order = 31)]
    Export(ExportArgs),
}

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
    pub command: Option<std::ffi::OsString>,
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
    pub fn target(&self, pid: Option<u32>, command: Option<&std::ffi::OsStr>) -> TargetArgs {
        TargetArgs {
            pids: pid.into_iter().collect(),
            command: command.map(std::ffi::OsStr::to_os_string),
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

/// `pytap completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells pytap writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

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
    pub sort: crate::tool::calls::CallsSort,
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

/// Output settings of the tracing tools.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format (JSON schemas: docs/output.md)
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Line style of `pytap flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowStyle {
    /// The HOWTO's SystemTap output (thread_indent).
    Systemtap,
    /// The HOWTO's DTrace output (call_stack.d).
    Dtrace,
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
    pub style: FlowStyle,
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

/// Which processes to trace: one of `-p`, `-c`, `--all` or `-- CMD...`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A running process (repeatable)
    #[arg(short, long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// A command to launch and trace from its first instruction (split into
    /// words like a shell would; shell syntax runs through /bin/sh)
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub command: Option<std::ffi::OsString>,
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
    /// at least 8 and at most 64; raise it if a run reports lost events);
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

/// A completion script for `shell`, generated from these definitions.
pub fn completions(shell: CompletionShell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "pytap", &mut out);
    out
}

/// pytap's manual page (roff), generated from these definitions: the
/// program, then one section per subcommand with its options.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut out = Vec::new();
    // One page holds every command (there is no pytap-list(1)): the
    // program's sections, a list of the commands naming the sections below,
    // then a section per command.
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    // In the order --help lists them.
    let mut subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    subs.sort_by_key(|s| s.get_display_order());
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.extend_from_slice(
            format!(
                ".TP\n\\fBpytap {}\\fR\n{} (section PYTAP {} below)\n",
                sub.get_name(),
                about.replace('\\', "\\\\").replace('-', "\\-"),
                sub.get_name().to_uppercase()
            )
            .as_bytes(),
        );
    }
    man.render_extra_section(&mut out)?;
    man.render_version_section(&mut out)?;
    for sub in subs {
        let name = format!("pytap {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let man = clap_mangen::Man::new(sub);
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        man.render_extra_section(&mut out)?;
    }
    Ok(out)
}
