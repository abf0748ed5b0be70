//! `pytap stap`: SystemTap scripts, compiled to BPF by pytap.
//!
//! - [`bind`]: which binaries the marker probes watch;
//! - the compile step and the userspace half (records, `begin`, timers,
//!   `end`, globals in BPF maps) are [`crate::script`]'s, shared with
//!   `pytap dtrace`.
//!
//! The run itself is the runner's, as for every tool: targets, attach,
//! the ring buffer and the loop (`runner::live`); the script's handler is
//! [`crate::engine::codegen::script::ScriptHandler`].

pub mod bind;

/// The request's sources and a failed compile's errors are the compiler's.
pub use crate::script::compile;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use pytap_script::ir::PointKind;

use crate::capture::Capture;
use crate::cpython::Marker;
use crate::engine::codegen::script::stacks::{self, ScriptStacks};
use crate::engine::codegen::script::{ScriptHandler, ScriptMaps};
use crate::engine::consumer::End;
use crate::engine::hazard;
use crate::engine::plan::{AttachTarget, Plan, PlanRequest};
use crate::engine::session::Session;
use crate::error::ExitCode;
use crate::notice;
use crate::runner::live::{self as run, TargetSpec};
use crate::runner::tool_run::{self, StreamOptions};
use crate::runner::{capture_path, report};
use crate::script::compile::{Compiled, Sources};
use crate::script::{runtime, userspace};

/// A `pytap stap` run.
#[derive(Debug, Clone)]
pub struct StapRequest {
    /// The script and its arguments.
    pub sources: Sources,
    /// `-c`/`-x`, if given (the stream's target is set from it, or from
    /// the script's binaries).
    pub target: Option<TargetSpec>,
    /// Attach settings, duration, children.
    pub stream: StreamOptions,
    /// Deliver exactly what the markers fire.
    pub raw_markers: bool,
}

/// The markers the script's kernel probes use.
fn markers_of(compiled: &Compiled) -> BTreeSet<Marker> {
    compiled
        .program
        .probes
        .iter()
        .filter_map(|p| match p.point.kind {
            PointKind::Marker { marker, .. } => Marker::ALL.get(marker).copied(),
            _ => None,
        })
        .collect()
}

/// The first function probe (`pid$target::f:entry`,
/// `process.function("f")`), if the script has one.
fn function_probe(compiled: &Compiled) -> Option<pytap_script::source::Span> {
    compiled
        .program
        .probes
        .iter()
        .find(|p| matches!(p.point.kind, PointKind::Function { .. }))
        .map(|p| p.point.span)
}

/// The first profile probe (`profile-N`, `timer.profile`), if the script
/// has one.
fn profile_probe(compiled: &Compiled) -> Option<pytap_script::source::Span> {
    compiled
        .program
        .probes
        .iter()
        .find(|p| matches!(p.point.kind, PointKind::Profile { .. }))
        .map(|p| p.point.span)
}

/// What the handler of every plan of the run is made from.
struct Script<'a> {
    compiled: &'a Compiled,
    resolution: &'a bind::Resolution,
    targeted: bool,
    raw: bool,
    /// `task_struct.thread.fsbase`'s offset, when probes walk stacks.
    fsbase: Option<u32>,
}

impl Script<'_> {
    /// The handler for a plan on `targets`, and the binding notes.
    fn handler(
        &self,
        maps: &mut crate::engine::codegen::MapTable,
        record: crate::engine::codegen::record::RecordMaps,
        targets: &[AttachTarget],
    ) -> (ScriptHandler, Vec<String>) {
        let (bindings, notes) =
            self.resolution
                .bindings(targets, self.targeted, &self.compiled.sources);
        let handler = ScriptHandler {
            maps: ScriptMaps::add(
                maps,
                record,
                &self.compiled.program,
                &self.compiled.placement,
            ),
            program: self.compiled.program.clone(),
            placement: self.compiled.placement.clone(),
            bindings: Arc::new(bindings),
            markers: Marker::ALL.to_vec(),
            raw: self.raw,
            d: matches!(
                self.compiled.dialect,
                pytap_script::check::Dialect::D { .. }
            ),
            stacks: self.fsbase.map(|fsbase| {
                Arc::new(ScriptStacks {
                    fsbase,
                    maps: stacks::maps(maps),
                    layouts: targets
                        .iter()
                        .filter_map(|t| {
                            let (_, layout) =
                                crate::process::python::path_layout(&t.module.open_path).ok()?;
                            Some(((t.module.dev, t.module.inode), layout))
                        })
                        .collect(),
                })
            }),
        };
        (handler, notes)
    }
}

/// Runs `pytap stap`.
pub fn run(request: &StapRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let compiled = compile::compile(&request.sources)?;
    if !compiled.warnings.is_empty() {
        crate::output::notice::raw(&compiled.warnings);
    }
    let markers = markers_of(&compiled);
    let functions = function_probe(&compiled);
    let profiles = profile_probe(&compiled);
    if markers.is_empty() && functions.is_none() && profiles.is_none() {
        return userspace::run(compiled, request.target.as_ref(), &request.stream, out);
    }
    // A function is found in the files the target runs: there must be one.
    if let (Some(span), None) = (functions, &request.target) {
        anyhow::bail!(
            "{}: function probes are found in the target's files: run the script with -c CMD or -x PID (dtrace: -c CMD or -p PID)",
            compiled.sources.location(span)
        );
    }
    // A profile probe runs as long as what it watches: a target, or the
    // processes of the script's markers.
    if let (Some(span), None, true) = (profiles, &request.target, markers.is_empty()) {
        anyhow::bail!(
            "{}: profile probes fire on every CPU for as long as pytap traces its target: run the script with -c CMD or -x PID (dtrace: -c CMD or -p PID)",
            compiled.sources.location(span)
        );
    }
    let resolution = bind::Resolution::of(&compiled.program);
    let targeted = request.target.is_some();
    let mut stream = request.stream.clone();
    stream.target = target_of(request, &compiled, &resolution)?;
    let script = Script {
        compiled: &compiled,
        resolution: &resolution,
        targeted,
        raw: request.raw_markers,
        fsbase: if compiled.placement.stacks {
            Some(crate::engine::sampler::fsbase_offset()?)
        } else {
            None
        },
    };
    if stream.attach.dump_bpf {
        let mut make = |maps: &mut _, record, targets: &[AttachTarget]| {
            script.handler(maps, record, targets).0
        };
        return tool_run::dump_bpf(&stream, &markers, true, &mut make, out);
    }

    let signals = tool_run::signals()?;
    let mut runtime = runtime::Runtime::new(compiled.clone(), out);
    let traced = !matches!(stream.target, TargetSpec::All { .. });
    let (mode, mut capture) = capture_path::capture_for(&stream, &markers)?;
    let env = capture
        .as_ref()
        .map(Capture::launch_env)
        .unwrap_or_default();
    let marks = capture.as_ref().map(|c| c.dir().to_path_buf());
    let follow = run::Follow {
        env: &env,
        children: stream.children,
        terminal: None,
        signals: &signals,
        wanted: capture_path::wanted(capture.as_ref(), &markers),
        marks: marks.as_deref(),
    };
    let mut attached = run::attach(&stream.target, follow, &mut |targets| {
        capture_path::check_capture(&stream, &markers, mode, &targets)?;
        capture_path::attach_agents(capture.as_mut(), &stream, mode, &markers, &targets)?;
        let markers = hazard::check(&targets, &markers, true, stream.force, mode)?;
        // `target()` is the traced process's pid, 0 when all are watched.
        runtime.target = if traced { first_pid(&targets) } else { 0 };
        let (mut maps, record) = tool_run::standard_maps(stream.attach.buffer_bytes, traced, false);
        let (h, notes) = script.handler(&mut maps, record, &targets);
        if let Some(stacks) = &h.stacks {
            runtime
                .stacks
                .set_layouts(stacks.layouts.iter().map(|(k, _)| *k).collect());
        }
        let request = PlanRequest {
            markers: markers.clone(),
            strict: true,
            arm_mode: stream.attach.arm,
            capture: mode,
        };
        let mut plan = Plan::new(targets, request, maps, Box::new(h))?;
        plan.guard_names = !stream.force;
        let session = start(&compiled, plan, stream.attach.force_perf_event)?;
        for note in notes.iter().chain(&session.plan.notes) {
            notice!("{note}");
        }
        frame_warnings(&compiled, &session);
        runtime.init_kernel(&session)?;
        runtime.run_userspace(Some(&session), &PointKind::Begin);
        Ok(session)
    })?;
    attached.capture = capture;
    let loop_options = run::LoopOptions {
        tick: runtime.tick(),
        duration: stream.duration,
        output_pipe: stream.output_pipe.clone(),
        keys: None,
        command_terminal: None,
    };
    let outcome = run::run(&mut attached, &signals, &mut runtime, &loop_options)?;
    if outcome.end == End::OutputClosed {
        return Ok(ExitCode::Ok);
    }
    if let Some(error) = &runtime.error {
        crate::output::notice::raw(error);
        attached.session.detach();
        return Ok(ExitCode::Error);
    }
    report::report(&attached, &outcome, &runtime);
    runtime.report(&attached.session);
    runtime.flush_out()?;
    Ok(ExitCode::Ok)
}

/// What the run traces: `-c`/`-x` if given, else every process running
/// the script's binaries (a `process.mark(…)` probe needs a target).
fn target_of(
    request: &StapRequest,
    compiled: &Compiled,
    resolution: &bind::Resolution,
) -> Result<TargetSpec> {
    if let Some(t) = &request.target {
        return Ok(t.clone());
    }
    if let Some(span) = resolution.needs_target() {
        anyhow::bail!(
            "{}: `process.mark(…)` probes the target: run the script with -c CMD or -x PID",
            compiled.sources.location(span)
        );
    }
    Ok(TargetSpec::All {
        binaries: resolution
            .binaries(&compiled.sources)
            .map_err(anyhow::Error::msg)?,
    })
}

/// The first process of the first target that has one (0: none).
fn first_pid(targets: &[AttachTarget]) -> i64 {
    targets
        .iter()
        .flat_map(|t| t.pids.first())
        .next()
        .map_or(0, |p| i64::from(*p))
}

/// Loads and attaches the plan; a program the verifier refuses is shown
/// at the script statement it was made of.
fn start(compiled: &Compiled, plan: Plan, force_perf_event: bool) -> Result<Session> {
    let programs: Vec<_> = plan
        .programs
        .iter()
        .chain(plan.parts.iter().map(|p| &p.program))
        .cloned()
        .collect();
    Session::start(plan, force_perf_event).map_err(|e| {
        if let crate::engine::session::SessionError::Load { name, log_tail, .. } = &e
            && let Some(text) = compile::verifier_error(compiled, &programs, name, log_tail)
        {
            return anyhow::Error::new(compile::ScriptErrors(text));
        }
        anyhow::Error::new(e)
    })
}

/// `$arg4` of a function marker (the HOWTO tapset's `frameptr`) is the
/// frame only where pytap knows where it is: one warning per module where
/// it is 0.
fn frame_warnings(compiled: &Compiled, session: &Session) {
    let mut uses = false;
    for probe in &compiled.program.probes {
        for s in &probe.body {
            crate::engine::codegen::script::placement::stmt_exprs(s, &mut |e| {
                pytap_script::check::walk(e, &mut |e| {
                    if matches!(
                        e.kind,
                        pytap_script::ir::ExprKind::Ctx(pytap_script::ir::Ctx::Frame)
                    ) {
                        uses = true;
                    }
                })
            });
        }
    }
    if !uses {
        return;
    }
    for target in &session.plan.targets {
        if target.module.entry_frame().flatten().is_none() {
            notice!(
                "{}{}: function markers pass 3 arguments, and pytap does not know where this build keeps the frame: $arg4 (frameptr) is 0",
                crate::process::module::display(&target.module.path),
                target.module.version_suffix()
            );
        } else {
            notice!(
                "{}{}: function__return passes 3 arguments: $arg4 (frameptr) is the frame at function__entry only, and 0 at returns",
                crate::process::module::display(&target.module.path),
                target.module.version_suffix()
            );
        }
    }
}
