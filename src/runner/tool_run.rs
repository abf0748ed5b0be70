//! What every tracing tool shares: attach options, the standard maps, the
//! attach step (with `--dump-bpf`), the end-of-run report and exit codes.
//! A tool brings only its handler (what the probes do) and its consumer
//! (what userspace does with the events).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use pytap_sys::pty::Pty;
use pytap_sys::signal::SignalFd;

use crate::capture::Capture;
use crate::cpython::Marker;
use crate::engine::abi;
use crate::engine::capture_mode::CaptureMode;
use crate::engine::codegen::event_stack::EventStacks;
use crate::engine::codegen::inplace;
use crate::engine::codegen::named::NamedMaps;
use crate::engine::codegen::record::{FullRecords, RecordMaps};
use crate::engine::codegen::task::traced_map_spec;
use crate::engine::codegen::within::WithinRecords;
use crate::engine::codegen::{Handler, MapKind, MapSpec, MapTable};
use crate::engine::consumer::{Consumer, End};
use crate::engine::hazard;
use crate::engine::plan::{ArmMode, AttachTarget, Plan, PlanRequest};
use crate::engine::session::{COUNTERS_MAP, Session};
use crate::error::ExitCode;
use crate::notice;
use crate::process;
use crate::runner::capture_path::{self, attach_agents, capture_for, check_capture};
use crate::runner::live::{self as run, Attached, Outcome, TargetSpec};
use crate::runner::report::{exit_code, report, report_replay};

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

/// The plan of `request` against `targets`, with the standard maps (a
/// ring buffer of `buffer_bytes`; the map of traced processes unless
/// every process is, `traced` false) and the tool's handler.
fn plan<H: Handler + 'static>(
    targets: Vec<AttachTarget>,
    request: PlanRequest,
    buffer_bytes: u32,
    traced: bool,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<Plan> {
    let (mut maps, record_maps) = standard_maps(buffer_bytes, traced, true);
    let handler = make_handler(&mut maps, record_maps, &targets);
    Ok(Plan::new(targets, request, maps, Box::new(handler))?)
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
    let marks = capture.as_ref().map(|c| c.dir().to_path_buf());
    let follow = run::Follow {
        children: stream.children,
        terminal: stream.command_terminal.as_deref(),
        signals,
        env: &env,
        wanted: capture_path::wanted(capture.as_ref(), markers),
        marks: marks.as_deref(),
    };
    let mut capture = capture;
    let mut attached = run::attach(&stream.target, follow, &mut |targets| {
        check_capture(stream, markers, mode, &targets)?;
        attach_agents(capture.as_mut(), stream, mode, markers, &targets)?;
        let markers = hazard::check(&targets, markers, strict, stream.force, mode)?;
        let request = PlanRequest {
            markers,
            strict,
            arm_mode: stream.attach.arm,
            capture: mode,
        };
        let plan = plan(
            targets,
            request,
            stream.attach.buffer_bytes,
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
    let request = PlanRequest {
        markers: markers.clone(),
        strict,
        arm_mode: stream.attach.arm,
        capture: CaptureMode::Markers,
    };
    let plan = plan(
        targets,
        request,
        stream.attach.buffer_bytes,
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
/// `flag_creations` (so they open no frame); with `stacks` (the kernel's
/// `task_struct.thread.fsbase` offset), gc, import and audit events are
/// followed by their Python stack ([`EventStacks`]).
pub fn records_flagging_creations(
    markers: &BTreeSet<Marker>,
    flag_creations: bool,
    stacks: Option<u32>,
) -> impl FnMut(&mut MapTable, RecordMaps, &[AttachTarget]) -> WithinRecords + '_ {
    move |table, maps, _| WithinRecords {
        maps,
        within: None,
        markers: markers.clone(),
        flag_creations,
        named: Some(NamedMaps::add_to(table)),
        stacks: stacks.map(|fsbase| EventStacks::add_to(table, maps.counters, fsbase)),
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
