//! The `pytap` binary: parse arguments, run a tool, turn errors into one
//! line on stderr and an exit code.
//!
//! Nothing here panics on output: a closed stdout (`pytap … | head`) ends
//! the run quietly with status 0, and a closed or full stderr loses the
//! messages, not the cleanup (see [`pytap::output::notice`]).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use pytap::cli::resolve as args;
use pytap::cli::{Cli, Command, SplitPart};
use pytap::engine::codegen::EmptyProbe;
use pytap::engine::codegen::record::Parts;
use pytap::engine::codegen::split::Split;
use pytap::engine::follow::LaunchError;
use pytap::error::ExitCode;
use pytap::notice;
use pytap::output::sink::Sink;
use pytap::tool::{
    audit, calls, dtrace, export, flow, gc, imports, info, list, record, stap, top, trace,
};

fn main() -> ProcessExit {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => ProcessExit::from(code as u8),
        Err(e) if is_broken_pipe(&e) => ProcessExit::from(ExitCode::Ok as u8),
        // Stopped before anything could be traced: not an error.
        Err(e)
            if e.downcast_ref::<LaunchError>()
                .is_some_and(|l| matches!(l, LaunchError::Stopped { .. })) =>
        {
            notice!("{}", one_line(&e));
            ProcessExit::from(ExitCode::NothingTraced as u8)
        }
        // A script that does not compile: its diagnostics, as they are.
        Err(e) if e.downcast_ref::<stap::compile::ScriptErrors>().is_some() => {
            pytap::output::notice::raw(&e.to_string());
            ProcessExit::from(ExitCode::Error as u8)
        }
        Err(e) => {
            notice!("{}", one_line(&e));
            ProcessExit::from(ExitCode::Error as u8)
        }
    }
}

/// Opens where a tool writes: `-o FILE` (created first, so a bad path fails
/// before anything is attached) or stdout.
fn open_output(path: Option<&Path>) -> io::Result<Sink> {
    match path {
        Some(path) => Sink::create(path),
        None => Sink::stdout(),
    }
}

/// The export style the flags ask for.
fn style(a: &pytap::cli::ExportStyleArgs) -> export::Style {
    export::Style {
        weight: a.weight,
        flame_chart: a.flame_chart,
        stacks: a.stacks,
    }
}

/// Runs a tool on its sink and waits until what it wrote is written (a
/// write error is the run's).
fn with_sink(
    mut sink: Sink,
    run: impl FnOnce(&mut dyn Write) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let code = run(&mut sink)?;
    sink.settle()?;
    Ok(code)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(args) => {
            let request = list::ListRequest {
                paths: args.paths,
                pid: args.pid,
                all_providers: args.all_providers,
            };
            with_sink(Sink::stdout()?, |out| {
                list::run(&request, args.json, out)?;
                Ok(ExitCode::Ok)
            })
        }
        Command::Info(args) => {
            let target = match (args.path, args.pid, args.scan) {
                (_, _, true) => info::InfoTarget::Scan,
                (Some(path), _, _) => info::InfoTarget::Path(path),
                (None, Some(pid), _) => info::InfoTarget::Pid(pid),
                (None, None, false) => {
                    anyhow::bail!("say what to describe: a PATH, -p PID or --scan")
                }
            };
            with_sink(Sink::stdout()?, |out| {
                info::run(&target, args.json, out)?;
                Ok(ExitCode::Ok)
            })
        }
        Command::Trace(a) => {
            let sink = open_output(a.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.format, a.output.is_some());
            let request = trace::TraceRequest {
                stream,
                markers: args::markers(&a.markers)?,
                format: a.format,
                empty_probe: (a.empty_probe || a.clock_probe).then_some(EmptyProbe {
                    clock: a.clock_probe,
                }),
                split_probe: a.split_probe.map(|p| match p {
                    SplitPart::Whole => Split::Parts(Parts::Whole),
                    SplitPart::NoStrings => Split::Parts(Parts::NoStrings),
                    SplitPart::ObjectHeaders => Split::Parts(Parts::ObjectHeaders),
                    SplitPart::NoOutput => Split::Parts(Parts::NoOutput),
                    SplitPart::KernelTiming => Split::KernelTiming,
                }),
                stacks: a.stacks,
            };
            with_sink(sink, |w| trace::run(&request, w))
        }
        Command::Flow(a) => {
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.output.format, a.output.output.is_some());
            if a.max_depth == Some(0) {
                anyhow::bail!("--max-depth must be at least 1 (1 shows the outermost calls only)");
            }
            let request = flow::FlowRequest {
                stream,
                format: a.output.format,
                style: a.style,
                within: a
                    .within
                    .as_deref()
                    .map(|w| flow::FuncFilter::parse(w, "--within"))
                    .transpose()?,
                filters: a
                    .filter
                    .iter()
                    .map(|f| flow::FuncFilter::parse(f, "--filter"))
                    .collect::<anyhow::Result<_>>()?,
                max_depth: a.max_depth,
            };
            with_sink(sink, |w| flow::run(&request, w))
        }
        Command::Gc(a) => {
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.output.format, a.output.output.is_some());
            let request = gc::GcRequest {
                stream,
                format: a.output.format,
            };
            with_sink(sink, |w| gc::run(&request, w))
        }
        Command::Imports(a) => {
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.output.format, a.output.output.is_some());
            let request = imports::ImportsRequest {
                stream,
                format: a.output.format,
            };
            with_sink(sink, |w| imports::run(&request, w))
        }
        Command::Audit(a) => {
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.output.format, a.output.output.is_some());
            let request = audit::AuditRequest {
                stream,
                format: a.output.format,
                events: audit::event_globs(&a.events)?,
            };
            with_sink(sink, |w| audit::run(&request, w))
        }
        Command::Top(a) => {
            let interval = args::interval(a.interval)?;
            if a.max_functions == 0 {
                anyhow::bail!("--max-functions must be at least 1");
            }
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            args::warn_shared_stdout(&stream, a.output.format, a.output.output.is_some());
            // A recording is replayed into the plain view: its intervals
            // come out in order, at the replay's pace.
            let live = !a.plain
                && a.target.input.is_none()
                && a.output.format == pytap::output::event::Format::Text
                && a.output.output.is_none()
                && sink.kind() == pytap::output::sink::SinkKind::Terminal;
            let request = top::TopRequest {
                stream,
                format: a.output.format,
                interval,
                limit: a.limit,
                max_functions: a.max_functions,
                live,
                command_output: a.command_output,
                by_pid: a.by_pid,
            };
            with_sink(sink, |w| top::run(&request, w))
        }
        Command::Completions(a) => with_sink(Sink::stdout()?, |out| {
            out.write_all(&pytap::cli::completions(a.shell))?;
            Ok(ExitCode::Ok)
        }),
        Command::Man => with_sink(Sink::stdout()?, |out| {
            out.write_all(&pytap::cli::man_page()?)?;
            Ok(ExitCode::Ok)
        }),
        Command::Calls(a) => {
            if a.max_functions == 0 {
                anyhow::bail!("--max-functions must be at least 1");
            }
            let sink = open_output(a.output.output.as_deref())?;
            let stream = args::stream_options(&a.target, &a.engine, &sink)?;
            let request = calls::CallsRequest {
                stream,
                format: a.output.format,
                sort: a.sort,
                limit: a.limit,
                hist: a.hist,
                max_functions: a.max_functions,
                by_pid: a.by_pid,
            };
            with_sink(sink, |w| calls::run(&request, w))
        }
        Command::Stap(a) => {
            let sink = open_output(a.output.as_deref())?;
            let mut script_args = a.args.clone();
            let script = if a.inline.is_empty() {
                a.script.clone()
            } else {
                // With -e every positional argument is the script's.
                if let Some(s) = &a.script {
                    script_args.insert(0, s.display().to_string());
                }
                None
            };
            let target_args = a.run.target(a.pid, a.command.as_deref());
            let stream = args::stream_options(&target_args, &a.engine, &sink)?;
            let target = (!target_args.all).then(|| stream.target.clone());
            let request = stap::StapRequest {
                sources: stap::compile::Sources {
                    script,
                    inline: a.inline.clone(),
                    includes: a.include.clone(),
                    args: script_args,
                    dialect: pytap_script::check::Dialect::Stap,
                },
                target,
                stream,
                raw_markers: a.run.raw_markers,
            };
            with_sink(sink, |w| stap::run(&request, w))
        }
        Command::Dtrace(a) => dtrace_command(&a),
        Command::Record(a) => {
            // The recording is a file; stdout only carries `--dump-bpf`.
            let sink = Sink::stdout()?;
            let mut stream = args::stream_options(&a.target, &a.engine, &sink)?;
            // A pipe on stdout is not the recording's reader.
            stream.output_pipe = None;
            let request = record::RecordRequest {
                stream,
                markers: args::markers(&a.markers)?,
                output: a.output,
                export: a.format.map(|f| (f, style(&a.style))),
            };
            record::run(&request)
        }
        Command::Export(a) => export::run(&a.input, a.format, style(&a.style), a.output.as_deref()),
    }
}

/// `pytap dtrace`: a listing (`-l`) or a run.
fn dtrace_command(a: &pytap::cli::DtraceArgs) -> anyhow::Result<ExitCode> {
    if a.cpp {
        anyhow::bail!(
            "-C: pytap has no C preprocessor; write the program without #include/#define lines"
        );
    }
    let mut quiet = a.quiet;
    let mut zdefs = a.zdefs;
    for opt in &a.options {
        let (name, _) = opt.split_once('=').unwrap_or((opt, ""));
        match name {
            "quiet" => quiet = true,
            "zdefs" => zdefs = true,
            "destructive" | "bufsize" | "aggsize" | "aggrate" | "switchrate" | "dynvarsize"
            | "strsize" | "cleanrate" | "statusrate" | "nspec" | "specsize" => {}
            _ => anyhow::bail!("-x {name}: not an option pytap's dtrace has"),
        }
    }
    let sink = open_output(a.output.as_deref())?;
    if a.list {
        let mut request = dtrace::list::ListRequest {
            pid: a.pid,
            providers: a.providers.clone(),
            modules: a.modules.clone(),
            functions: a.functions.clone(),
            descriptions: a.programs.clone(),
            ..Default::default()
        };
        // A provider naming a process (`python1234`) lists that process.
        for p in a.providers.iter().chain(&a.programs) {
            let provider = p.split(':').next().unwrap_or("");
            if let Some(pid) = provider.strip_prefix("python").and_then(|n| n.parse().ok())
                && request.pid.is_none()
            {
                request.pid = Some(pid);
            }
        }
        if request.pid.is_none() {
            request.binaries = a.modules.iter().map(std::path::PathBuf::from).collect();
            request.modules.clear();
            if request.binaries.is_empty() {
                anyhow::bail!(
                    "-l: name a process (-p PID, -P pythonPID) or a binary (-m python3.11)"
                );
            }
        }
        return with_sink(sink, |w| {
            Ok(if dtrace::list::run(&request, w)? {
                ExitCode::Ok
            } else {
                ExitCode::NothingTraced
            })
        });
    }
    if !a.providers.is_empty() || !a.modules.is_empty() || !a.functions.is_empty() {
        anyhow::bail!(
            "-P, -m and -f select probes to list: use them with -l (clauses name their probes)"
        );
    }
    let target_args = a.run.target(a.pid, a.command.as_deref());
    let stream = args::stream_options(&target_args, &a.engine, &sink)?;
    let target = (!target_args.all).then(|| stream.target.clone());
    let request = dtrace::DtraceRequest {
        script: a.script.clone(),
        programs: a.programs.clone(),
        args: a.args.clone(),
        quiet,
        zdefs,
        target,
        stream,
        raw_markers: a.run.raw_markers,
    };
    with_sink(sink, |w| dtrace::run(&request, w))
}

/// The error and its causes on one line, each cause once: typed errors
/// already name their cause in their message, context layers do not.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Output to a closed pipe (`pytap list ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}
