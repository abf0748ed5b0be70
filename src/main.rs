//! The `pytap` binary: parse arguments, run a tool, turn errors into one
//! line on stderr and an exit code.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use pytap::cli::{Cli, Command};
use pytap::error::ExitCode;
use pytap::tool::{args, info, list, trace};

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
                target: args::target_spec(&a.target)?,
                markers: args::markers(&a.markers)?,
                format: a.format,
                attach: args::attach_options(&a.engine)?,
                duration: args::duration(&a.engine)?,
                empty_probe: a.empty_probe,
            };
            return match &a.output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                    trace::run(&request, &mut BufWriter::with_capacity(1 << 20, file))
                }
                None => trace::run(&request, out),
            };
        }
    }
    Ok(ExitCode::Ok)
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
