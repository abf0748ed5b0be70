//! `pytap dtrace`: D programs (the HOWTO's `call_stack.d`, one-liners
//! with aggregations) run as dtrace runs them.
//!
//! A D program goes through the same compiler as SystemTap scripts
//! (`pytap-script`'s D front end), the same engine and the same runtime
//! as `pytap stap`; what is D's own is here: the options (`-q`, `-x`,
//! pragmas), the firing lines of non-quiet mode, the aggregations printed
//! at the end, and the `-l` listing ([`list`]).

pub mod list;
pub mod probes;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use pytap_script::check::Dialect;
use pytap_script::dtrace::aggprint;
use pytap_script::interp::{Interp, RunError, World};
use pytap_script::ir::Program;

use crate::error::ExitCode;
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::StreamOptions;
use crate::tool::stap::{self, StapRequest, compile::Sources};

/// A `pytap dtrace` run.
#[derive(Debug, Clone)]
pub struct DtraceRequest {
    /// `-s FILE`.
    pub script: Option<PathBuf>,
    /// `-n` programs.
    pub programs: Vec<String>,
    /// Macro arguments.
    pub args: Vec<String>,
    /// `-q` or `-x quiet` (the program's own pragma is the compiler's business).
    pub quiet: bool,
    /// `-Z` or `-x zdefs`: descriptions may match no probe.
    pub zdefs: bool,
    /// `-c`/`-p`.
    pub target: Option<TargetSpec>,
    /// Attach settings, duration, children.
    pub stream: StreamOptions,
    /// Deliver exactly what the markers fire.
    pub raw_markers: bool,
}

/// The header dtrace prints before the first firing when not quiet (the
/// runtime writes it before the first output).
pub const HEADER: &str = "CPU     ID                    FUNCTION:NAME\n";

/// Runs `pytap dtrace`.
pub fn run(request: &DtraceRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let stap_request = StapRequest {
        sources: Sources {
            script: request.script.clone(),
            inline: request.programs.clone(),
            includes: Vec::new(),
            args: request.args.clone(),
            // A `#pragma D option quiet` makes it quiet too (the compiler reads it).
            dialect: Dialect::D {
                quiet: request.quiet,
                zdefs: request.zdefs,
            },
        },
        target: request.target.clone(),
        stream: request.stream.clone(),
        raw_markers: request.raw_markers,
    };
    stap::run(&stap_request, out)
}

/// The end of a D run: dtrace's `"\n"`, then every aggregation `printa`
/// has not printed, in order of first use.
pub fn print_remaining(
    interp: &mut Interp,
    program: &Program,
    world: &mut World<'_>,
) -> Result<(), RunError> {
    let mut text = vec![b'\n'];
    for (g, global) in program.globals.iter().enumerate() {
        if global.agg.is_none() || interp.printed.contains(&g) {
            continue;
        }
        let entries = interp.aggregation(program, g, world, global.span)?;
        let normal = interp.normal.get(&g).copied().unwrap_or(1);
        aggprint::print(global, entries, normal, None, &mut text).map_err(|e| RunError {
            span: global.span,
            message: e.into(),
        })?;
    }
    world.out.write(&text);
    Ok(())
}
