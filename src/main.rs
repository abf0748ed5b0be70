//! The `pytap` binary: parse arguments, run a tool, turn errors into one
//! line on stderr and an exit code.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use pytap::cli::OutputArgs;
use pytap::cli::{Cli, Command};
use pytap::engine::codegen::EmptyProbe;
use pytap::error::ExitCode;
use pytap::tool::{args, audit, calls, flow, gc, imports, info, list, top, trace};

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli.command, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ProcessExit::from(code as u8),
        Err(e) if is_broken_pipe(&e) => ProcessExit::from(ExitCode::Ok as u8),
        Err(e) => {
            eprintln!("pytap: {}", one_line(&e));
            ProcessExit::from(ExitCode::Error as u8)
        }
    }
}

fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(args) => {
            let request = list::ListRequest {
                paths: args.paths,
                pid: args.pid,
                all_providers: args.all_providers,
            };
            list::run(&request, args.json, out)?;
        }
        Command::Info(args) => {
            let target = match (args.path, args.pid) {
                (Some(path), _) => info::InfoTarget::Path(path),
                (None, Some(pid)) => info::InfoTarget::Pid(pid),
                (None, None) => unreachable!("clap requires a path or a pid"),
            };
            info::run(&target, args.json, out)?;
        }
        Command::Trace(a) => {
            let request = trace::TraceRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                markers: args::markers(&a.markers)?,
                format: a.format,
                empty_probe: (a.empty_probe || a.clock_probe).then_some(EmptyProbe {
                    clock: a.clock_probe,
                }),
            };
            return to_output(a.output.as_ref(), out, |w| trace::run(&request, w));
        }
        Command::Flow(a) => {
            let request = flow::FlowRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
                style: a.style,
                within: a
                    .within
                    .as_deref()
                    .map(flow::FuncFilter::parse)
                    .transpose()?,
                filters: a
                    .filter
                    .iter()
                    .map(|f| flow::FuncFilter::parse(f))
                    .collect::<anyhow::Result<_>>()?,
                max_depth: a.max_depth,
            };
            return tool_output(&a.output, out, |w| flow::run(&request, w));
        }
        Command::Gc(a) => {
            let request = gc::GcRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
            };
            return tool_output(&a.output, out, |w| gc::run(&request, w));
        }
        Command::Imports(a) => {
            let request = imports::ImportsRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
            };
            return tool_output(&a.output, out, |w| imports::run(&request, w));
        }
        Command::Audit(a) => {
            let request = audit::AuditRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
                events: audit::event_globs(&a.events)?,
            };
            return tool_output(&a.output, out, |w| audit::run(&request, w));
        }
        Command::Top(a) => {
            if !(a.interval > 0.0 && a.interval <= 3600.0) {
                anyhow::bail!("--interval must be between 0 and 3600 seconds");
            }
            if a.max_functions == 0 {
                anyhow::bail!("--max-functions must be at least 1");
            }
            let request = top::TopRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
                interval: std::time::Duration::from_secs_f64(a.interval),
                limit: a.limit,
                max_functions: a.max_functions,
                live: !a.plain
                    && a.output.format == pytap::output::event::Format::Text
                    && a.output.output.is_none()
                    && std::io::IsTerminal::is_terminal(&std::io::stdout()),
            };
            return tool_output(&a.output, out, |w| top::run(&request, w));
        }
        Command::Calls(a) => {
            if a.max_functions == 0 {
                anyhow::bail!("--max-functions must be at least 1");
            }
            let request = calls::CallsRequest {
                stream: args::stream_options(&a.target, &a.engine)?,
                format: a.output.format,
                sort: a.sort,
                limit: a.limit,
                hist: a.hist,
                max_functions: a.max_functions,
            };
            return tool_output(&a.output, out, |w| calls::run(&request, w));
        }
    }
    Ok(ExitCode::Ok)
}

fn tool_output(
    output: &OutputArgs,
    out: &mut dyn Write,
    run: impl FnOnce(&mut dyn Write) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    to_output(output.output.as_ref(), out, run)
}

/// Runs a tool writing to `-o FILE` (created first, so a bad path fails
/// before anything is attached) or to stdout.
fn to_output(
    path: Option<&std::path::PathBuf>,
    out: &mut dyn Write,
    run: impl FnOnce(&mut dyn Write) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    match path {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            run(&mut BufWriter::with_capacity(1 << 20, file))
        }
        None => run(out),
    }
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
