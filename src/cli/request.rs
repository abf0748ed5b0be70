//! Each subcommand's arguments made into its tool's request, with the sink
//! the tool writes to. Opening `-o FILE` is the only I/O here: it comes
//! first, so a bad path fails before anything is attached; the checks a
//! subcommand makes before that come before it. The shared steps (target,
//! attach settings, duration) are [`super::resolve`]'s.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::resolve as args;
use super::{
    AuditArgs, CallsArgs, DtraceArgs, DumpArgs, EngineArgs, ExportStyleArgs, FlowArgs, GcArgs,
    ImportsArgs, InfoArgs, ListArgs, OutputArgs, ProfileArgs, RecordArgs, SplitPart, StapArgs,
    TargetArgs, TopArgs, TraceArgs,
};
use crate::engine::codegen::EmptyProbe;
use crate::engine::codegen::record::Parts;
use crate::engine::codegen::split::Split;
use crate::output::event::Format;
use crate::output::sink::{Sink, SinkKind};
use crate::runner::sampling::{SampleTargets, SamplingOptions};
use crate::runner::tool_run::StreamOptions;
use crate::tool::top::TopRequest;
use crate::tool::{
    audit, calls, dtrace, dump, export, flow, gc, imports, info, list, profile, record, stap, trace,
};

/// Opens where a tool writes: `-o FILE` (created first, so a bad path fails
/// before anything is attached) or stdout.
pub fn open_output(path: Option<&Path>) -> std::io::Result<Sink> {
    match path {
        Some(path) => Sink::create(path),
        None => Sink::stdout(),
    }
}

/// The export style the flags ask for.
pub fn style(a: &ExportStyleArgs) -> export::Style {
    export::Style {
        weight: a.weight.into(),
        flame_chart: a.flame_chart,
        stacks: a.stacks,
    }
}

/// `pytap list`.
pub fn list(a: ListArgs) -> list::ListRequest {
    list::ListRequest {
        paths: a.paths,
        pid: a.pid,
        all_providers: a.all_providers,
    }
}

/// `pytap info`: what to describe.
pub fn info(a: InfoArgs) -> Result<info::InfoTarget> {
    Ok(match (a.path, a.pid, a.scan) {
        (_, _, true) => info::InfoTarget::Scan,
        (Some(path), _, _) => info::InfoTarget::Path(path),
        (None, Some(pid), _) => info::InfoTarget::Pid(pid),
        (None, None, false) => bail!("say what to describe: a PATH, -p PID or --scan"),
    })
}

/// The sink of a view's `-o`, and the stream of its target (with the
/// warning when the command's output shares the JSON Lines' stdout).
fn view_stream(
    target: &TargetArgs,
    engine: &EngineArgs,
    output: &OutputArgs,
) -> Result<(Sink, StreamOptions)> {
    let sink = open_output(output.output.as_deref())?;
    let stream = args::stream_options(target, engine, &sink)?;
    args::warn_shared_stdout(&stream, output.format.into(), output.output.is_some());
    Ok((sink, stream))
}

/// `pytap trace`.
pub fn trace(a: TraceArgs) -> Result<(Sink, trace::TraceRequest)> {
    let sink = open_output(a.output.as_deref())?;
    let stream = args::stream_options(&a.target, &a.engine, &sink)?;
    args::warn_shared_stdout(&stream, a.format.into(), a.output.is_some());
    let request = trace::TraceRequest {
        stream,
        markers: args::markers(&a.markers)?,
        format: a.format.into(),
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
    Ok((sink, request))
}

/// `pytap flow`.
pub fn flow(a: FlowArgs) -> Result<(Sink, flow::FlowRequest)> {
    let (sink, stream) = view_stream(&a.target, &a.engine, &a.output)?;
    if a.max_depth == Some(0) {
        bail!("--max-depth must be at least 1 (1 shows the outermost calls only)");
    }
    let request = flow::FlowRequest {
        stream,
        format: a.output.format.into(),
        style: a.style.into(),
        within: a
            .within
            .as_deref()
            .map(|w| flow::FuncFilter::parse(w, "--within"))
            .transpose()?,
        filters: a
            .filter
            .iter()
            .map(|f| flow::FuncFilter::parse(f, "--filter"))
            .collect::<Result<_>>()?,
        max_depth: a.max_depth,
    };
    Ok((sink, request))
}

/// `pytap gc`.
pub fn gc(a: GcArgs) -> Result<(Sink, gc::GcRequest)> {
    let (sink, stream) = view_stream(&a.target, &a.engine, &a.output)?;
    let format = a.output.format.into();
    Ok((sink, gc::GcRequest { stream, format }))
}

/// `pytap imports`.
pub fn imports(a: ImportsArgs) -> Result<(Sink, imports::ImportsRequest)> {
    let (sink, stream) = view_stream(&a.target, &a.engine, &a.output)?;
    let format = a.output.format.into();
    Ok((sink, imports::ImportsRequest { stream, format }))
}

/// `pytap audit`.
pub fn audit(a: AuditArgs) -> Result<(Sink, audit::AuditRequest)> {
    let (sink, stream) = view_stream(&a.target, &a.engine, &a.output)?;
    let request = audit::AuditRequest {
        stream,
        format: a.output.format.into(),
        events: audit::event_globs(&a.events)?,
    };
    Ok((sink, request))
}

/// `pytap top`: live (full-screen) when nothing asks otherwise and stdout
/// is a terminal.
pub fn top(a: TopArgs) -> Result<(Sink, TopRequest)> {
    let interval = args::interval(a.interval)?;
    if a.max_functions == 0 {
        bail!("--max-functions must be at least 1");
    }
    let (sink, stream) = view_stream(&a.target, &a.engine, &a.output)?;
    let format: Format = a.output.format.into();
    // A recording is replayed into the plain view: its intervals
    // come out in order, at the replay's pace.
    let live = !a.plain
        && a.target.input.is_none()
        && format == Format::Text
        && a.output.output.is_none()
        && sink.kind() == SinkKind::Terminal;
    let request = TopRequest {
        stream,
        format,
        interval,
        limit: a.limit,
        max_functions: a.max_functions,
        live,
        command_output: a.command_output,
        by_pid: a.by_pid,
    };
    Ok((sink, request))
}

/// `pytap calls` (no warning about a shared stdout: the table comes at
/// the end, after the command's output).
pub fn calls(a: CallsArgs) -> Result<(Sink, calls::CallsRequest)> {
    if a.max_functions == 0 {
        bail!("--max-functions must be at least 1");
    }
    let sink = open_output(a.output.output.as_deref())?;
    let stream = args::stream_options(&a.target, &a.engine, &sink)?;
    let request = calls::CallsRequest {
        stream,
        format: a.output.format.into(),
        sort: a.sort.into(),
        limit: a.limit,
        hist: a.hist,
        max_functions: a.max_functions,
        by_pid: a.by_pid,
    };
    Ok((sink, request))
}

/// `pytap stap`.
pub fn stap(a: StapArgs) -> Result<(Sink, stap::StapRequest)> {
    let sink = open_output(a.output.as_deref())?;
    let mut script_args = a.args;
    let script = if a.inline.is_empty() {
        a.script
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
            inline: a.inline,
            includes: a.include,
            args: script_args,
            dialect: pytap_script::check::Dialect::Stap,
        },
        target,
        stream,
        raw_markers: a.run.raw_markers,
    };
    Ok((sink, request))
}

/// What `pytap dtrace` does: list probes (`-l`) or run a program.
#[derive(Debug)]
pub enum DtraceJob {
    /// `-l`.
    List(dtrace::list::ListRequest),
    /// A run.
    Run(dtrace::DtraceRequest),
}

/// `pytap dtrace`: dtrace's options, then a listing or a run.
pub fn dtrace(a: &DtraceArgs) -> Result<(Sink, DtraceJob)> {
    if a.cpp {
        bail!("-C: pytap has no C preprocessor; write the program without #include/#define lines");
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
            _ => bail!("-x {name}: not an option pytap's dtrace has"),
        }
    }
    let sink = open_output(a.output.as_deref())?;
    if a.list {
        return Ok((sink, DtraceJob::List(dtrace_list(a)?)));
    }
    if !a.providers.is_empty() || !a.modules.is_empty() || !a.functions.is_empty() {
        bail!("-P, -m and -f select probes to list: use them with -l (clauses name their probes)");
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
    Ok((sink, DtraceJob::Run(request)))
}

/// `pytap dtrace -l`: the probes of a process, or of binaries.
fn dtrace_list(a: &DtraceArgs) -> Result<dtrace::list::ListRequest> {
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
        let number = provider
            .strip_prefix("python")
            .or_else(|| provider.strip_prefix("pid"));
        if let Some(pid) = number.and_then(|n| n.parse().ok())
            && request.pid.is_none()
        {
            request.pid = Some(pid);
        }
    }
    // `pid$target`, `python$target`: the process listed.
    if let Some(pid) = request.pid {
        for d in &mut request.descriptions {
            *d = d.replace("$target", &pid.to_string());
        }
    }
    if request.pid.is_none() {
        request.binaries = a.modules.iter().map(PathBuf::from).collect();
        request.modules.clear();
        if request.binaries.is_empty() {
            bail!("-l: name a process (-p PID, -P pythonPID) or a binary (-m python3.11)");
        }
    }
    Ok(request)
}

/// `pytap record`: the recording is a file; the sink (stdout) only
/// carries `--dump-bpf`.
pub fn record(a: RecordArgs) -> Result<(Sink, record::RecordRequest)> {
    let sink = Sink::stdout()?;
    let mut stream = args::stream_options(&a.target, &a.engine, &sink)?;
    // A pipe on stdout is not the recording's reader.
    stream.output_pipe = None;
    if a.format == Some(super::ExportFormatArg::Pprof) {
        bail!(
            "--format pprof is a sampled profile's format, and record writes traced events: \
             record samples with --profile, then pytap export -i FILE --format pprof"
        );
    }
    let profile = match a.profile {
        false => None,
        true => {
            if a.engine.dump_bpf {
                bail!("--dump-bpf shows the marker programs; --profile attaches none");
            }
            if !a.target.binaries.is_empty() {
                bail!("--binary chooses marker binaries; --profile --all samples every CPython");
            }
            let target = SampleTargetArgs {
                pids: &a.target.pids,
                command: a.target.command.as_deref(),
                all: a.target.all,
                argv: &a.target.argv,
                children: a.target.children,
                no_children: a.target.no_children,
            };
            let mode = a.mode.map_or(crate::model::profile::Mode::Cpu, Into::into);
            let rate = a.rate.unwrap_or(99);
            Some(sampling(target, rate, mode, a.engine.duration)?)
        }
    };
    let request = record::RecordRequest {
        stream,
        markers: args::markers(&a.markers)?,
        output: a.output,
        export: a.format.map(|f| (f.into(), style(&a.style))),
        profile,
    };
    Ok((sink, request))
}

/// `pytap dump`.
pub fn dump(a: DumpArgs) -> dump::DumpRequest {
    dump::DumpRequest {
        pids: a.pids,
        all: a.all,
        json: a.format == super::FormatArg::Jsonl,
        max_depth: a.max_depth.max(1),
        locals: a.locals,
    }
}

/// pprof and Perfetto are binary: they go to a file (`-o`), never a
/// terminal.
fn binary_needs_a_file(
    format: Option<crate::export::profile::ProfileFormat>,
    output: Option<&Path>,
) -> Result<()> {
    use crate::export::profile::ProfileFormat;
    let name = match format {
        Some(ProfileFormat::Pprof) => "pprof",
        Some(ProfileFormat::Perfetto) => "perfetto",
        _ => return Ok(()),
    };
    if output.is_none() {
        bail!("--format {name} writes a binary file: give it with -o FILE");
    }
    Ok(())
}

/// What to sample and how, from `profile`'s (or `record --profile`'s)
/// flags: one of `-p`, `-c`, `--all` or `-- CMD`.
pub fn sampling(
    target: SampleTargetArgs<'_>,
    rate_hz: u32,
    mode: crate::model::profile::Mode,
    duration: Option<f64>,
) -> Result<(SampleTargets, SamplingOptions)> {
    let given = usize::from(!target.pids.is_empty())
        + usize::from(target.command.is_some())
        + usize::from(target.all)
        + usize::from(!target.argv.is_empty());
    if given != 1 {
        bail!("say what to profile: one of -p PID, -c CMD, --all or -- CMD...");
    }
    if !(1..=10_000).contains(&rate_hz) {
        bail!("--rate {rate_hz}: give 1 to 10000 samples a second");
    }
    let targets = if !target.pids.is_empty() {
        SampleTargets::Pids(target.pids.to_vec())
    } else if target.all {
        SampleTargets::All
    } else if let Some(command) = target.command {
        SampleTargets::Command(args::command_words(command)?)
    } else {
        SampleTargets::Command(target.argv.to_vec())
    };
    let is_command = matches!(targets, SampleTargets::Command(_));
    let duration = match duration {
        Some(secs) => Some(args::interval(secs)?),
        None => None,
    };
    let options = SamplingOptions {
        rate_hz,
        mode,
        duration,
        children: if is_command {
            !target.no_children
        } else {
            target.children
        },
        tick: None,
        ring_bytes: 4 << 20,
        native: false,
    };
    Ok((targets, options))
}

/// The target flags [`sampling`] reads.
#[derive(Debug, Clone, Copy)]
pub struct SampleTargetArgs<'a> {
    /// `-p`.
    pub pids: &'a [u32],
    /// `-c`.
    pub command: Option<&'a std::ffi::OsStr>,
    /// `--all`.
    pub all: bool,
    /// `-- CMD`.
    pub argv: &'a [std::ffi::OsString],
    /// `--children`.
    pub children: bool,
    /// `--no-children`.
    pub no_children: bool,
}

/// `pytap profile`: the request and where it writes.
pub fn profile(a: ProfileArgs) -> Result<(Sink, profile::ProfileRequest)> {
    let format = a.format.format();
    binary_needs_a_file(format, a.output.as_deref())?;
    let (targets, options) = match &a.input {
        // The recording says how its samples were taken.
        Some(_) => (
            SampleTargets::Pids(Vec::new()),
            SamplingOptions {
                rate_hz: a.rate,
                mode: a.mode.into(),
                duration: None,
                children: false,
                tick: None,
                ring_bytes: 0,
                native: false,
            },
        ),
        None => sampling(
            SampleTargetArgs {
                pids: &a.pids,
                command: a.command.as_deref(),
                all: a.all,
                argv: &a.argv,
                children: a.children,
                no_children: a.no_children,
            },
            a.rate,
            a.mode.into(),
            a.duration,
        )?,
    };
    if let Some(input) = &a.input
        && a.output.as_deref() == Some(input.as_path())
    {
        bail!(
            "{}: the output is the recording itself: give another -o",
            input.display()
        );
    }
    if a.native && a.mode == crate::cli::ModeArg::Wall {
        bail!(
            "--native frames come with the kernel's samples of threads on a CPU: use it with \
             --mode cpu or gil"
        );
    }
    let live = a.input.is_none()
        && a.output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let sink = open_output(a.output.as_deref())?;
    Ok((
        sink,
        profile::ProfileRequest {
            input: a.input,
            targets,
            options: SamplingOptions {
                native: a.native,
                ..options
            },
            format,
            top_rows: a.rows.max(1),
            live,
        },
    ))
}
