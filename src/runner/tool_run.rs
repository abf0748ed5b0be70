//! What every tracing tool shares: attach options, the standard maps, the
//! attach step (with `--dump-bpf`), the end-of-run report and exit codes.
//! A tool brings only its handler (what the probes do) and its consumer
//! (what userspace does with the events).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use pytap_sys::pty::Pty;
use pytap_sys::signal::SignalFd;

use crate::capture::{self, Capture};
use crate::cpython::Marker;
use crate::engine::abi;
use crate::engine::capture_mode::CaptureMode;
use crate::engine::codegen::inplace;
use crate::engine::codegen::named::NamedMaps;
use crate::engine::codegen::record::{FullRecords, RecordMaps};
use crate::engine::codegen::task::traced_map_spec;
use crate::engine::codegen::within::WithinRecords;
use crate::engine::codegen::{Handler, MapKind, MapSpec, MapTable};
use crate::engine::consumer::{Consumer, End};
use crate::engine::hazard;
use crate::engine::marker_choice::MarkerChoice;
use crate::engine::plan::{ArmMode, AttachTarget, Plan};
use crate::engine::session::{COUNTERS_MAP, Session};
use crate::error::ExitCode;
use crate::notice;
use crate::process;
use crate::runner::live::{self as run, Attached, Outcome, TargetSpec};

/// Settings every tracing tool takes.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Attach with perf_event uprobes even where uprobe_multi exists.
    pub force_perf_event: bool,
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub buffer_bytes: u32,
    /// How 3.11's function__entry is armed.
    pub arm: ArmMode,
    /// Print the programs instead of loading them.
    pub dump_bpf: bool,
    /// Which path serves function events (`--capture`).
    pub capture: CaptureMode,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            force_perf_event: false,
            buffer_bytes: 4 << 20,
            arm: ArmMode::Anchor,
            dump_bpf: false,
            capture: CaptureMode::Auto,
        }
    }
}

/// The maps every plan has: the event ring buffer, the per-CPU counters,
/// the staging buffer and, unless every process is traced (`traced`
/// false), the map of traced processes the task programs filter on; with
/// `rings`, the per-CPU rings function and import records are written
/// into in place ([`inplace`]), as large together as the ring buffer.
pub fn standard_maps(buffer_bytes: u32, traced: bool, rings: bool) -> (MapTable, RecordMaps) {
    let mut maps = MapTable::default();
    let events = maps.add(MapSpec {
        name: "events".into(),
        kind: MapKind::RingBuf,
        key_size: 0,
        value_size: 0,
        max_entries: buffer_bytes,
    });
    let counters = maps.add(MapSpec {
        name: COUNTERS_MAP.into(),
        kind: MapKind::PercpuArray,
        key_size: 4,
        value_size: 8,
        max_entries: abi::COUNTERS,
    });
    let staging = maps.add(MapSpec {
        name: "staging".into(),
        kind: MapKind::PercpuArray,
        key_size: 4,
        value_size: abi::STAGING_BYTES as u32,
        max_entries: 1,
    });
    let rings = rings.then(|| {
        let cpus = pytap_sys::possible_cpus().unwrap_or(1) as u32;
        let (spec, size) = inplace::rings_spec(buffer_bytes, cpus);
        inplace::Rings {
            map: maps.add(spec),
            size,
        }
    });
    if traced {
        maps.add(traced_map_spec());
    }
    (
        maps,
        RecordMaps {
            events,
            counters,
            staging,
            rings,
        },
    )
}

/// Builds a tool's handler, given the standard maps and a table to add its own to.
pub type MakeHandler<'a, H> = dyn FnMut(&mut MapTable, RecordMaps, &[AttachTarget]) -> H + 'a;

fn plan<H: Handler + 'static>(
    targets: Vec<AttachTarget>,
    MarkerChoice { markers, strict }: MarkerChoice<'_>,
    options: &AttachOptions,
    capture: CaptureMode,
    traced: bool,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<Plan> {
    let (mut maps, record_maps) = standard_maps(options.buffer_bytes, traced, true);
    let handler = make_handler(&mut maps, record_maps, &targets);
    Ok(Plan::new(
        targets,
        markers,
        strict,
        maps,
        Box::new(handler),
        options.arm,
        capture,
    )?)
}

/// Finds the targets, plans, loads and attaches. `strict` makes a marker
/// the target lacks an error (the user named it) rather than skipped.
/// Function events of a launched CPython 3.12–3.14 (or any 3.12+ with
/// `--capture in-process`) come from pytap's agent inside it.
pub fn attach<H: Handler + 'static>(
    stream: &StreamOptions,
    markers: &BTreeSet<Marker>,
    strict: bool,
    make_handler: &mut MakeHandler<'_, H>,
    signals: &SignalFd,
) -> Result<Attached> {
    let traced = !matches!(stream.target, TargetSpec::All { .. });
    let (mode, capture) = capture_for(stream, markers)?;
    let env = capture
        .as_ref()
        .map(Capture::launch_env)
        .unwrap_or_default();
    let follow = run::Follow {
        children: stream.children,
        terminal: stream.command_terminal.as_deref(),
        signals,
        env: &env,
    };
    let mut capture = capture;
    let mut attached = run::attach(&stream.target, follow, &mut |targets| {
        check_capture(stream, markers, mode, &targets)?;
        attach_agents(capture.as_mut(), stream, mode, &targets)?;
        let markers = hazard::check(&targets, markers, strict, stream.force, mode)?;
        let plan = plan(
            targets,
            MarkerChoice {
                markers: &markers,
                strict,
            },
            &stream.attach,
            mode,
            traced,
            make_handler,
        )?;
        let mut plan = plan;
        plan.guard_names = !stream.force;
        let session = Session::start(plan, stream.attach.force_perf_event)?;
        for note in &session.plan.notes {
            notice!("{note}");
        }
        Ok(session)
    })?;
    attached.capture = capture;
    Ok(attached)
}

/// Which path serves the function events of `markers` for `stream`'s
/// target, and the capture directory when it is the agent: a launched
/// command only (nothing is injected into running processes, and `--all`
/// never injects anything).
pub fn capture_for(
    stream: &StreamOptions,
    markers: &BTreeSet<Marker>,
) -> Result<(CaptureMode, Option<Capture>)> {
    let wants_functions = markers.iter().any(|m| CaptureMode::SERVES.contains(m));
    let mode = match &stream.target {
        TargetSpec::Command(argv) if wants_functions => {
            let mode = stream.attach.capture.for_command(argv);
            avoid_unsafe_names(stream, argv, mode)
        }
        // A running 3.14 can be given the agent (PEP 768); 3.12 and 3.13
        // are refused once the targets are known; others keep their
        // markers (a running 3.11 cannot be given a profile function).
        TargetSpec::Pids(_) if wants_functions && stream.attach.capture != CaptureMode::Markers => {
            CaptureMode::Auto
        }
        _ => CaptureMode::Markers,
    };
    if mode == CaptureMode::Markers {
        return Ok((mode, None));
    }
    let capture = Capture::create(capture::Events::of(markers), mode)?;
    Ok((mode, Some(capture)))
}

/// With the markers about to serve a launched command's function events:
/// the in-process capture instead, when the command's code may have names
/// that are not UTF-8 (its arguments, pytap's working directory or
/// environment, which it inherits, or its interpreter's path; see
/// [`hazard`]) and its interpreter can be given the agent (3.11, 3.12+).
/// `--force`, or a capture mode asked for, leaves the mode as it is.
fn avoid_unsafe_names(stream: &StreamOptions, argv: &[OsString], mode: CaptureMode) -> CaptureMode {
    if mode != CaptureMode::Markers || stream.attach.capture != CaptureMode::Auto || stream.force {
        return mode;
    }
    let program = argv
        .first()
        .and_then(|p| pytap_sys::ptrace::find_program(p));
    let served = program
        .as_deref()
        .and_then(|path| crate::process::module::Module::open(path, path).ok())
        .and_then(|m| m.py_version())
        .is_some_and(|v| CaptureMode::InProcess.serves(v.minor_version()));
    if !served {
        return mode;
    }
    let program = program.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    match hazard::Exposure::of_launch(argv, program.as_deref()).first_non_utf8() {
        Some(what) => {
            notice!("{}", hazard::captured_message(&what));
            CaptureMode::InProcess
        }
        None => mode,
    }
}

/// `-p` on CPython 3.14 (and 3.12+ with `--capture in-process`): the
/// agent is loaded into each process through PEP 768.
pub fn attach_agents(
    capture: Option<&mut Capture>,
    stream: &StreamOptions,
    mode: CaptureMode,
    targets: &[AttachTarget],
) -> Result<()> {
    let Some(capture) = capture else {
        return Ok(());
    };
    if !matches!(stream.target, TargetSpec::Pids(_)) {
        return Ok(());
    }
    for t in targets {
        let served = t
            .module
            .py_version()
            .is_some_and(|v| mode.serves(v.minor_version()));
        if served {
            for &pid in &t.pids {
                capture
                    .attach(pid, &t.module)
                    .with_context(|| format!("loading pytap's agent into pid {pid}"))?;
            }
        }
    }
    Ok(())
}

/// Before the targets run: what the agent cannot do for them, said.
pub fn check_capture(
    stream: &StreamOptions,
    markers: &BTreeSet<Marker>,
    mode: CaptureMode,
    targets: &[AttachTarget],
) -> Result<()> {
    let wants_functions = markers.iter().any(|m| CaptureMode::SERVES.contains(m));
    if matches!(stream.target, TargetSpec::Pids(_))
        && wants_functions
        && stream.attach.capture != CaptureMode::Markers
    {
        refuse_running_in_process(targets)?;
    }
    if mode != CaptureMode::Markers {
        refuse_agent_blocked(targets, mode)?;
    }
    Ok(())
}

/// A launched CPython the agent serves, started with an option that keeps
/// the agent from loading (`-I`, `-E`, `-S`): say so before it runs.
fn refuse_agent_blocked(targets: &[AttachTarget], mode: CaptureMode) -> Result<()> {
    for t in targets {
        let Some(version) = t.module.py_version() else {
            continue;
        };
        let (major, minor) = version.minor_version();
        if !mode.serves((major, minor)) {
            continue;
        }
        for &pid in &t.pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if let Some(option) = capture::option_refusing_agent(&cmdline) {
                let why = match option {
                    'S' => "skips the site module, which loads pytap's agent",
                    _ => "ignores PYTHONPATH, through which pytap's agent loads",
                };
                let instead = if minor >= 14 {
                    "; or start it without pytap and attach with `-p` (PEP 768)"
                } else {
                    ""
                };
                anyhow::bail!(
                    "pid {pid} (CPython {major}.{minor}) was started with -{option}, which {why}: \
                     its function events can only come from that agent (3.12 to 3.14 have no \
                     function markers); run it under pytap without -{option}{instead}"
                );
            }
        }
    }
    Ok(())
}

/// `-p` on a CPython whose function markers are gone: say why nothing can
/// be captured there, and what works.
fn refuse_running_in_process(targets: &[AttachTarget]) -> Result<()> {
    for t in targets {
        let Some(version) = t.module.py_version() else {
            continue;
        };
        let (major, minor) = version.minor_version();
        // 3.14 takes the agent through PEP 768.
        if !((3, 12)..=(3, 13)).contains(&(major, minor)) {
            continue;
        }
        let pids: Vec<String> = t.pids.iter().map(u32::to_string).collect();
        anyhow::bail!(
            "pid {} runs CPython {major}.{minor}, whose function markers are gone (cpython#104280): \
             its function events can only come from inside the interpreter, which pytap arranges \
             when it launches the program (`pytap flow -- python{major}.{minor} app.py`); a running \
             3.12 or 3.13 has no way to load it (3.14 has: PEP 768)",
            pids.join(", "),
        );
    }
    Ok(())
}

/// `--dump-bpf`: plans against the targets (a command is resolved without
/// being run) and prints sites, programs and maps.
pub fn dump_bpf<H: Handler + 'static>(
    stream: &StreamOptions,
    markers: &BTreeSet<Marker>,
    strict: bool,
    make_handler: &mut MakeHandler<'_, H>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let targets = match &stream.target {
        TargetSpec::Recording(path) => {
            anyhow::bail!("{}: a recording runs no programs", path.display())
        }
        TargetSpec::Command(argv) => {
            let module = process::resolve_command(argv)?;
            vec![AttachTarget {
                module: Arc::new(module),
                pids: Vec::new(),
            }]
        }
        TargetSpec::Pids(pids) => {
            let mut targets = Vec::new();
            for &pid in pids {
                for module in process::discover_process(pid)?.modules {
                    targets.push(AttachTarget {
                        module: Arc::new(module),
                        pids: vec![pid],
                    });
                }
            }
            targets
        }
        TargetSpec::All { binaries } => process::all_modules(binaries)?
            .into_iter()
            .map(|(m, _)| AttachTarget {
                module: Arc::new(m),
                pids: Vec::new(),
            })
            .collect(),
    };
    let traced = !matches!(stream.target, TargetSpec::All { .. });
    let plan = plan(
        targets,
        MarkerChoice { markers, strict },
        &stream.attach,
        CaptureMode::Markers,
        traced,
        make_handler,
    )?;
    out.write_all(plan.dump().as_bytes())?;
    Ok(ExitCode::Ok)
}

/// What every streaming tool's request carries besides its own options.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// What to trace.
    pub target: TargetSpec,
    /// Attach settings.
    pub attach: AttachOptions,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Trace the processes the targets start (a command's tree by default,
    /// `-p --children`).
    pub children: bool,
    /// Arm function markers even where CPython's probe code would fail.
    pub force: bool,
    /// stdout, when it is a pipe: the run ends quietly when its reader
    /// goes away.
    pub output_pipe: Option<Arc<OwnedFd>>,
    /// A terminal to launch the command on (a live view captures what the
    /// command writes there).
    pub command_terminal: Option<Arc<Pty>>,
    /// The width text views fit (the output is a terminal); `None` keeps
    /// every value whole.
    pub width: Option<usize>,
}

impl StreamOptions {
    /// Options for `target` with everything else as the defaults.
    pub fn new(target: TargetSpec) -> StreamOptions {
        StreamOptions {
            target,
            attach: AttachOptions::default(),
            duration: None,
            children: true,
            force: false,
            output_pipe: None,
            command_terminal: None,
            width: None,
        }
    }
}

/// The markers a tool that streams what it is asked for records, and
/// whether a marker a target lacks is an error: those asked for (strict),
/// else every marker the target has.
pub fn asked_or_all(asked: &Option<BTreeSet<Marker>>) -> (BTreeSet<Marker>, bool) {
    match asked {
        Some(m) => (m.clone(), true),
        None => (Marker::ALL.into_iter().collect(), false),
    }
}

/// The handler of `trace` and `record`: full records of `markers`, with
/// 3.15's generator creations flagged as `flow`'s probes flag them when
/// `flag_creations` (so they open no frame).
pub fn records_flagging_creations(
    markers: &BTreeSet<Marker>,
    flag_creations: bool,
) -> impl FnMut(&mut MapTable, RecordMaps, &[AttachTarget]) -> WithinRecords + '_ {
    move |table, maps, _| WithinRecords {
        maps,
        within: None,
        markers: markers.clone(),
        flag_creations,
        named: Some(NamedMaps::add_to(table)),
    }
}

/// The handler of tools that stream full records of `markers`.
pub fn full_records(
    markers: &BTreeSet<Marker>,
) -> impl FnMut(&mut MapTable, RecordMaps, &[AttachTarget]) -> FullRecords + '_ {
    |_, maps, _| FullRecords {
        maps,
        markers: markers.clone(),
        named: None,
    }
}

/// A tool's run: what it traces and how.
pub struct ToolRun<'a, H> {
    /// Target, attach and loop settings.
    pub stream: &'a StreamOptions,
    /// Markers the tool needs.
    pub markers: &'a BTreeSet<Marker>,
    /// Whether a marker a target lacks is an error (the tool or the user
    /// named it).
    pub strict: bool,
    /// Call [`Consumer::tick`] this often.
    pub tick: Option<Duration>,
    /// What the probes do.
    pub make_handler: &'a mut MakeHandler<'a, H>,
}

impl<H> std::fmt::Debug for ToolRun<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRun")
            .field("stream", &self.stream)
            .field("markers", &self.markers)
            .field("strict", &self.strict)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

/// The one path of every streaming tool: with `--dump-bpf`, print the
/// plan to `out` and stop; else make the tool's consumer over `out`, attach
/// the tool's handler, feed every event to the consumer until the target
/// exits, a stop signal arrives or the duration elapses, report on stderr,
/// and hand the consumer to `finish` (summaries, flushing).
pub fn run_tool<'o, H: Handler + 'static, C: Consumer>(
    tool: ToolRun<'_, H>,
    out: &'o mut dyn Write,
    make_consumer: impl FnOnce(&'o mut dyn Write) -> C,
    finish: impl FnOnce(C) -> Result<()>,
) -> Result<ExitCode> {
    if tool.stream.attach.dump_bpf {
        return dump_bpf(
            tool.stream,
            tool.markers,
            tool.strict,
            tool.make_handler,
            out,
        );
    }
    if let TargetSpec::Recording(path) = &tool.stream.target {
        // A bad recording is one line, before the view says anything.
        drop(crate::runner::replay::open(path)?);
    }
    let mut consumer = make_consumer(out);
    let (outcome, summary) = stream_with(tool, &mut consumer, None)?;
    if outcome.end == End::OutputClosed {
        return Ok(ExitCode::Ok);
    }
    // The run's summary comes after the tool's last output (a table
    // written when the run ends), as a reader of both expects.
    let finished = finish(consumer);
    crate::output::notice::emit_all(summary);
    finished?;
    Ok(exit_code(&outcome))
}

/// Attaches the tool's handler (and maps, which the handler adds to the
/// table; the consumer finds them in the session by name), runs until the
/// end, and returns the outcome and the summary for stderr (for the caller
/// to print after its last output). `keys`: a live view's terminal.
pub fn stream_with<H: Handler + 'static>(
    tool: ToolRun<'_, H>,
    consumer: &mut dyn Consumer,
    keys: Option<Arc<OwnedFd>>,
) -> Result<(Outcome, Vec<String>)> {
    if let TargetSpec::Recording(path) = &tool.stream.target {
        let replay = crate::runner::replay::Replay {
            markers: tool.markers,
            strict: tool.strict,
            tick: tool.tick,
            done: "replayed",
        };
        let outcome = crate::runner::replay::run(path, consumer, &replay)?;
        let summary = crate::output::notice::collect(|| report_replay(path, &outcome, consumer));
        return Ok((outcome, summary));
    }
    let signals = signals()?;
    let mut attached = attach(
        tool.stream,
        tool.markers,
        tool.strict,
        tool.make_handler,
        &signals,
    )?;
    let loop_options = run::LoopOptions {
        tick: tool.tick,
        duration: tool.stream.duration,
        output_pipe: tool.stream.output_pipe.clone(),
        keys,
        command_terminal: tool.stream.command_terminal.clone(),
    };
    let outcome = run::run(&mut attached, &signals, consumer, &loop_options)?;
    if outcome.end == End::OutputClosed {
        return Ok((outcome, Vec::new()));
    }
    let summary = crate::output::notice::collect(|| {
        report(&attached, &outcome, consumer);
        let uncounted = attached.session.counter(abi::COUNTER_UNCOUNTED);
        if uncounted > 0 {
            notice!(
                "{uncounted} calls of functions beyond --max-functions were not counted in the kernel"
            );
        }
    });
    Ok((outcome, summary))
}

/// A consumer that drops events (the empty-probe baseline).
#[derive(Debug)]
pub struct Discard;

impl Consumer for Discard {
    fn event(
        &mut self,
        _: &crate::engine::decode::Event<'_>,
        _: &dyn crate::engine::source::Source,
    ) -> Result<()> {
        Ok(())
    }
}

/// Blocks the stop signals and opens a signalfd for them.
pub fn signals() -> Result<SignalFd> {
    SignalFd::new().context("blocking SIGINT/SIGTERM for a clean detach")
}

/// The end-of-run report, on stderr: why it ended, events seen and lost.
pub fn report(attached: &Attached, outcome: &Outcome, consumer: &dyn Consumer) {
    let followed = &attached.followed;
    match &outcome.end {
        End::Exited {
            status: Some(status),
        } => {
            let program = followed
                .root()
                .map(|(p, _)| p)
                .filter(|p| !p.is_empty())
                .unwrap_or("the traced command");
            // `exited with status 3`, `was killed by SIGSEGV`.
            notice!("{program} {status}");
        }
        End::Exited { status: None } => notice!("the traced processes exited"),
        End::Signal(sig) => notice!(
            "stopped by {}, probes detached",
            pytap_sys::signal::name(*sig)
        ),
        End::Duration => notice!("duration elapsed, probes detached"),
        End::Quit => notice!("quit, probes detached"),
        End::Exit => notice!("the script called exit(), probes detached"),
        End::TerminalLost => notice!("the terminal went away, probes detached"),
        End::OutputClosed => {}
        End::Exec { pid, exe } => {
            notice!("process {pid} executed {exe}, which is not the traced Python; stopped")
        }
    }
    if followed.process_count() > 1 {
        notice!("{} processes traced", followed.process_count());
    }
    let mut line = format!(
        "{}, {} lost in {:.3} s",
        consumer.describe(outcome.events),
        outcome.lost,
        outcome.elapsed.as_secs_f64()
    );
    if outcome.malformed > 0 {
        line.push_str(&format!(", {} malformed records", outcome.malformed));
    }
    if outcome.unnamed > 0 {
        line.push_str(&format!(
            ", {} events whose names were lost",
            outcome.unnamed
        ));
    }
    let recovered = consumer.recovered();
    if recovered > 0 {
        line.push_str(&format!(", {recovered} strings read from the binary"));
    }
    if outcome.lost > 0 {
        line.push_str(" (the ring buffer was full: raise --buffer-size)");
    }
    // What pytap itself cost, apart from the traced processes (the
    // benchmark divides it by the events).
    if let Ok(cpu) = pytap_sys::clock::process_cpu_ns() {
        line.push_str(&format!("; pytap used {:.1} ms of CPU", cpu as f64 / 1e6));
    }
    notice!("{line}");
}

/// The end-of-replay report, on stderr.
pub fn report_replay(path: &std::path::Path, outcome: &Outcome, consumer: &dyn Consumer) {
    let mut line = format!(
        "{} replayed from {} in {:.3} s",
        consumer.describe(outcome.events),
        path.display(),
        outcome.elapsed.as_secs_f64()
    );
    if outcome.lost > 0 {
        line.push_str(&format!(
            " ({} events were lost when it was recorded)",
            outcome.lost
        ));
    }
    notice!("{line}");
}

/// 0 when something was traced, 1 when nothing was.
pub fn exit_code(outcome: &Outcome) -> ExitCode {
    if outcome.events == 0 && outcome.lost == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    }
}
