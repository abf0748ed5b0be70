//! Command-line arguments: clap definitions only, no I/O.
//!
//! The subcommands are here; their flags are in the modules below, by
//! group, with clap's own value enums (the tools' types know nothing of
//! clap). `main` turns these into requests for the tools ([`request`]). Help texts are written to
//! teach: each subcommand says what it shows and gives an example.

use clap::{Parser, Subcommand};

mod docs;
mod dtrace;
mod inspect;
mod record;
pub mod request;
pub mod resolve;
mod script;
mod shared;
mod stacks;
mod trace;
mod views;
pub use docs::{CompletionShell, CompletionsArgs, completions, man_page};
pub use dtrace::DtraceArgs;
pub use inspect::{InfoArgs, ListArgs};
pub use record::{ExportArgs, ExportFormatArg, ExportStyleArgs, RecordArgs, WeightArg};
pub use script::{ScriptRunArgs, StapArgs};
pub use shared::{ArmArg, CaptureArg, EngineArgs, FormatArg, OutputArgs, TargetArgs};
pub use stacks::{DumpArgs, ModeArg, ProfileArgs, ProfileFormatArg};
pub use trace::{SplitPart, TraceArgs};
pub use views::{
    AuditArgs, CallsArgs, CallsSortArg, FlowArgs, FlowStyleArg, GcArgs, ImportsArgs, TopArgs,
};

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
    /// Every thread's Python stack now, read from outside the process
    #[command(after_help = "\
Examples:
  pytap dump -p 1234
  pytap dump -p 1234 --format jsonl
  pytap dump --all

Works on every CPython 3.8 to 3.15, built with markers or not: the stacks are
read from the process's memory (process_vm_readv), nothing is injected and the
process is not stopped. Each thread shows its id and name, whether it is active
(on a CPU or runnable) or idle, whether it holds the GIL, and its frames,
innermost first: function (the qualified name on 3.11+), file and line. A thread
caught changing its stack while it is read ends with a note, never with a wrong
frame. Exit status: 0 dumped, 1 (with --all) no Python process found, 2 error.")]
    #[command(display_order = 3)]
    Dump(DumpArgs),
    /// Where a Python program spends its time, from its stacks sampled in the kernel
    #[command(after_help = "\
Examples:
  pytap profile -p 1234 -d 10                       the top functions, own and total
  pytap profile --format svg -o flame.svg -- python3 app.py
  pytap profile --mode wall --format pprof -o app.pb.gz -p 1234
  pytap profile --mode gil -p 1234 -d 5             who holds the GIL
  pytap profile --format perfetto -o prof.pftrace -p 1234 -d 5   every sample in time
  pytap record --profile -o prof.pytap -- python3 app.py         keep the samples, then:
  pytap profile -i prof.pytap --format svg -o flame.svg

Works on every CPython 3.8 to 3.15, built with markers or not: a perf event on
every CPU runs a BPF program that reads the interrupted thread's Python frames
from the interpreter's memory (nothing is injected into the process, nothing
stops it). Modes: cpu (threads on a CPU), wall (every thread, sleeping and
blocked ones too, read from outside at the rate), gil (only the thread holding
the GIL). Frames are named from the process's memory and checked against what
the kernel read: a frame whose code was freed meanwhile shows as unknown (and
is counted), never as another function. -c and -- start the command and profile
it and the processes it starts once their interpreter is up. The summary
(samples, lost, unknown frames) goes to stderr. -i FILE reads a recording of
samples (pytap record --profile) and writes what the live run would have
written. Exit status: 0 samples taken, 1 none, 2 error (a recording without
samples is one).")]
    #[command(display_order = 4)]
    Profile(ProfileArgs),
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
tapset's aliases (`python.function.entry`, …), functions by symbol
(`process.function(\"NAME\")`), `begin`, `end`, `timer.ms(N)` and
`timer.profile`; globals, arrays, statistics, printf, sprint_pybacktrace().
Probe bodies at markers and functions run in the kernel, as does
`timer.profile` (250 Hz on every CPU, in whatever runs there) and a
`timer.hz(N)` whose body reads the thread it interrupts (pid(), execname(),
a backtrace): a sampling profiler in one line,
  probe timer.profile { if (pid() == target()) s[sprint_pybacktrace()] <<< 1 }
begin, end and the other timers run in pytap. With -c or -x, probes
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
  pytap dtrace -n 'profile-997 /pid == $target/ { @[jstack()] = count(); }' -p 1234
  pytap dtrace -l -P python1234
  pytap dtrace -l -m python3.11 -n 'python*:::gc-*'

D clauses are `provider:module:function:name /predicate/ { actions }` on the
python provider's probes (`python$target:::function-entry`; dashes stand for
CPython's double underscores), the pid provider's functions
(`pid$target::clock_nanosleep:entry`), profile-N (on every CPU, 997 or 10ms),
BEGIN, END and tick-N (1sec, 100ms, 10hz). Clauses at markers, functions and
profile-N run in the kernel; BEGIN, END and ticks run in pytap. jstack() is
the Python stack. A script without python probes runs on any CPython 3.8-3.15,
built with markers or without.
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
