//! `pytap dtrace`: D programs (the HOWTO's `call_stack.d`, one-liners
//! with aggregations) run as dtrace runs them.
//!
//! A D program goes through the same compiler as SystemTap scripts
//! (`pytap-script`'s D front end), the same engine and the same runtime
//! as `pytap stap`; what is D's own here is the options (`-q`, `-x`,
//! pragmas) and the `-l` listing ([`list`]). What D prints at run time
//! (the firing lines' header, the aggregations left at the end, the
//! probes' names) is the runtime's: `crate::script::dtrace` and
//! `crate::script::probes`.

pub mod list;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use pytap_script::check::Dialect;

use crate::error::ExitCode;
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::StreamOptions;
use crate::script::compile::Sources;
use crate::tool::stap::{self, StapRequest};

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
