//! `pytap dtrace`: D programs (the HOWTO's `call_stack.d`, one-liners
//! with aggregations) run as dtrace runs them.
//!
//! A D program goes through the same compiler as SystemTap scripts
//! (`pytap-script`'s D front end), the same engine and the same runtime
//! as `pytap stap`; what is D's own is here: the options (`-q`, `-x`,
//! pragmas), the firing lines of non-quiet mode, the aggregations printed
//! at the end, and the `-l` listing ([`list`]).

pub mod list;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use pytap_script::check::Dialect;
use pytap_script::dtrace::aggprint;
use pytap_script::interp::{Interp, RunError, World};
use pytap_script::ir::Program;

use crate::engine::run::TargetSpec;
use crate::error::ExitCode;
use crate::tool::common::StreamOptions;
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
    /// `-q` or `-x quiet`.
    pub quiet: bool,
    /// `-c`/`-p`.
    pub target: Option<TargetSpec>,
    /// Attach settings, duration, children.
    pub stream: StreamOptions,
    /// Deliver exactly what the markers fire.
    pub raw_markers: bool,
}

/// The header dtrace prints before the first firing when not quiet.
const HEADER: &str = "CPU     ID                    FUNCTION:NAME\n";

/// Writes [`HEADER`] before the first output.
struct HeaderFirst<'a> {
    inner: &'a mut dyn Write,
    pending: bool,
}

impl Write for HeaderFirst<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.pending && !buf.is_empty() {
            self.pending = false;
            self.inner.write_all(HEADER.as_bytes())?;
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether the program asks for quiet mode itself (`#pragma D option
/// quiet`, `#!/usr/sbin/dtrace -qs`); errors are left to the compiler.
fn quiet_by_pragma(texts: &[String]) -> bool {
    texts.iter().any(|text| {
        pytap_script::dtrace::parse(
            pytap_script::source::FileId(0),
            text,
            &pytap_script::dtrace::DOptions {
                macro_args: vec!["0".into(); 10],
                quiet: false,
            },
        )
        .is_ok_and(|p| p.option("quiet"))
    })
}

/// Runs `pytap dtrace`.
pub fn run(request: &DtraceRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let mut texts = request.programs.clone();
    if let Some(path) = &request.script {
        texts.push(std::fs::read_to_string(path).unwrap_or_default());
    }
    let quiet = request.quiet || quiet_by_pragma(&texts);
    let stap_request = StapRequest {
        sources: Sources {
            script: request.script.clone(),
            inline: request.programs.clone(),
            includes: Vec::new(),
            args: request.args.clone(),
            dialect: Dialect::D { quiet },
        },
        target: request.target.clone(),
        stream: request.stream.clone(),
        raw_markers: request.raw_markers,
    };
    if quiet {
        stap::run(&stap_request, out)
    } else {
        let mut out = HeaderFirst {
            inner: out,
            pending: true,
        };
        stap::run(&stap_request, &mut out)
    }
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
        let entries = pytap_script::interp::aggs::aggregation(program, g, world, global.span)?;
        let normal = interp.normal.get(&g).copied().unwrap_or(1);
        aggprint::print(global, entries, normal, None, &mut text).map_err(|message| RunError {
            span: global.span,
            message,
        })?;
    }
    world.out.write(&text);
    Ok(())
}
