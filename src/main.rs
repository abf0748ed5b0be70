//! The `pytap` binary: parse arguments, run a tool, turn errors into one
//! line on stderr and an exit code.
//!
//! Nothing here panics on output: a closed stdout (`pytap … | head`) ends
//! the run quietly with status 0, and a closed or full stderr loses the
//! messages, not the cleanup (see [`pytap::output::notice`]).

use std::io::{self, Write};
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use pytap::cli::request::{self, DtraceJob};
use pytap::cli::{Cli, Command};
use pytap::engine::follow::LaunchError;
use pytap::error::ExitCode;
use pytap::notice;
use pytap::output::sink::Sink;
use pytap::tool::{
    audit, calls, dtrace, dump, export, flow, gc, imports, info, list, profile, record, stap, top,
    trace,
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

/// The subcommand's request, its tool, its exit code.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(a) => {
            let json = a.json;
            let request = request::list(a);
            with_sink(Sink::stdout()?, |w| {
                list::run(&request, json, w)?;
                Ok(ExitCode::Ok)
            })
        }
        Command::Info(a) => {
            let json = a.json;
            let target = request::info(a)?;
            with_sink(Sink::stdout()?, |w| {
                info::run(&target, json, w)?;
                Ok(ExitCode::Ok)
            })
        }
        Command::Dump(a) => {
            let request = request::dump(a);
            with_sink(Sink::stdout()?, |w| dump::run(&request, w))
        }
        Command::Profile(a) => {
            let (sink, request) = request::profile(a)?;
            with_sink(sink, |w| profile::run(&request, w))
        }
        Command::Trace(a) => {
            let (sink, request) = request::trace(a)?;
            with_sink(sink, |w| trace::run(&request, w))
        }
        Command::Flow(a) => {
            let (sink, request) = request::flow(a)?;
            with_sink(sink, |w| flow::run(&request, w))
        }
        Command::Gc(a) => {
            let (sink, request) = request::gc(a)?;
            with_sink(sink, |w| gc::run(&request, w))
        }
        Command::Imports(a) => {
            let (sink, request) = request::imports(a)?;
            with_sink(sink, |w| imports::run(&request, w))
        }
        Command::Audit(a) => {
            let (sink, request) = request::audit(a)?;
            with_sink(sink, |w| audit::run(&request, w))
        }
        Command::Top(a) => {
            let (sink, request) = request::top(a)?;
            with_sink(sink, |w| top::run(&request, w))
        }
        Command::Calls(a) => {
            let (sink, request) = request::calls(a)?;
            with_sink(sink, |w| calls::run(&request, w))
        }
        Command::Stap(a) => {
            let (sink, request) = request::stap(a)?;
            with_sink(sink, |w| stap::run(&request, w))
        }
        Command::Dtrace(a) => match request::dtrace(&a)? {
            (sink, DtraceJob::List(request)) => with_sink(sink, |w| {
                Ok(if dtrace::list::run(&request, w)? {
                    ExitCode::Ok
                } else {
                    ExitCode::NothingTraced
                })
            }),
            (sink, DtraceJob::Run(request)) => with_sink(sink, |w| dtrace::run(&request, w)),
        },
        Command::Record(a) => {
            // The sink stays open for the run (`--dump-bpf` goes there).
            let (_stdout, request) = request::record(a)?;
            record::run(&request)
        }
        Command::Export(a) => export::run(
            &a.input,
            a.format.into(),
            request::style(&a.style),
            a.output.as_deref(),
        ),
        Command::Completions(a) => with_sink(Sink::stdout()?, |w| {
            w.write_all(&pytap::cli::completions(a.shell))?;
            Ok(ExitCode::Ok)
        }),
        Command::Man => with_sink(Sink::stdout()?, |w| {
            w.write_all(&pytap::cli::man_page()?)?;
            Ok(ExitCode::Ok)
        }),
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
