//! What every tracing tool shares: attach options, the standard maps, the
//! attach step (with `--dump-bpf`), the end-of-run report and exit codes.
//! A tool brings only its handler (what the probes do) and its consumer
//! (what userspace does with the events).

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use pytap_sys::signal::SignalFd;

use crate::cpython::Marker;
use crate::engine::abi;
use crate::engine::codegen::record::{FullRecords, RecordMaps};
use crate::engine::codegen::{Handler, MapKind, MapSpec, MapTable};
use crate::engine::plan::{ArmMode, AttachTarget, Plan};
use crate::engine::run::{self, Attached, End, Followed, Outcome, TargetSpec};
use crate::engine::session::{COUNTERS_MAP, Session};
use crate::error::ExitCode;
use crate::target;

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
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            force_perf_event: false,
            buffer_bytes: 64 << 20,
            arm: ArmMode::Anchor,
            dump_bpf: false,
        }
    }
}

/// The maps every plan has: the event ring buffer and the per-CPU counters.
pub fn standard_maps(buffer_bytes: u32) -> (MapTable, RecordMaps) {
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
    (
        maps,
        RecordMaps {
            events,
            counters,
            staging,
        },
    )
}

/// Builds a tool's handler, given the standard maps and a table to add its own to.
pub type MakeHandler<'a, H> = dyn FnMut(&mut MapTable, RecordMaps) -> H + 'a;

fn plan<H: Handler>(
    targets: Vec<AttachTarget>,
    markers: &BTreeSet<Marker>,
    strict: bool,
    options: &AttachOptions,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<Plan> {
    let (mut maps, record_maps) = standard_maps(options.buffer_bytes);
    let handler = make_handler(&mut maps, record_maps);
    Ok(Plan::new(
        targets,
        markers,
        strict,
        maps,
        &handler,
        options.arm,
    )?)
}

/// Finds the targets, plans, loads and attaches. `strict` makes a marker
/// the target lacks an error (the user named it) rather than skipped.
pub fn attach<H: Handler>(
    target: &TargetSpec,
    markers: &BTreeSet<Marker>,
    strict: bool,
    options: &AttachOptions,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<Attached> {
    run::attach(target, &mut |targets| {
        let plan = plan(targets, markers, strict, options, make_handler)?;
        for note in &plan.notes {
            eprintln!("pytap: {note}");
        }
        Ok(Session::start(plan, options.force_perf_event)?)
    })
}

/// `--dump-bpf`: plans against the targets (a command is resolved without
/// being run) and prints sites, programs and maps.
pub fn dump_bpf<H: Handler>(
    target: &TargetSpec,
    markers: &BTreeSet<Marker>,
    strict: bool,
    options: &AttachOptions,
    make_handler: &mut MakeHandler<'_, H>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let targets = match target {
        TargetSpec::Command(argv) => {
            let module = target::resolve_command(argv)?;
            vec![AttachTarget {
                module: Arc::new(module),
                pids: Vec::new(),
            }]
        }
        TargetSpec::Pids(pids) => {
            let mut targets = Vec::new();
            for &pid in pids {
                for module in target::discover_process(pid)?.modules {
                    targets.push(AttachTarget {
                        module: Arc::new(module),
                        pids: vec![pid],
                    });
                }
            }
            targets
        }
        TargetSpec::All { binaries } => {
            let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
            let mut targets = Vec::new();
            for path in binaries {
                targets.push(AttachTarget {
                    module: Arc::new(target::resolve_path(
                        path,
                        "/".as_ref(),
                        ld_path.as_deref(),
                    )?),
                    pids: Vec::new(),
                });
            }
            if binaries.is_empty() {
                for p in target::discover_all()? {
                    for m in p.modules {
                        if !targets
                            .iter()
                            .any(|t: &AttachTarget| t.module.inode == m.inode)
                        {
                            targets.push(AttachTarget {
                                module: Arc::new(m),
                                pids: Vec::new(),
                            });
                        }
                    }
                }
            }
            targets
        }
    };
    let plan = plan(targets, markers, strict, options, make_handler)?;
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
}

/// The handler of tools that stream full records of `markers`.
pub fn full_records(
    markers: &BTreeSet<Marker>,
) -> impl FnMut(&mut MapTable, RecordMaps) -> FullRecords + '_ {
    |_, maps| FullRecords {
        maps,
        markers: markers.clone(),
    }
}

/// The one path of every streaming tool: with `--dump-bpf`, print the
/// plan to `out` and stop; else make the tool's consumer over `out`, attach
/// the tool's handler, feed every event to the consumer until the target
/// exits, a stop signal arrives or the duration elapses, report on stderr,
/// and hand the consumer to `finish` (summaries, flushing).
#[allow(clippy::too_many_arguments)]
pub fn run_tool<'o, H: Handler, C: run::Consumer>(
    options: &StreamOptions,
    markers: &BTreeSet<Marker>,
    strict: bool,
    tick: Option<Duration>,
    make_handler: &mut MakeHandler<'_, H>,
    out: &'o mut dyn Write,
    make_consumer: impl FnOnce(&'o mut dyn Write) -> C,
    finish: impl FnOnce(C) -> Result<()>,
) -> Result<ExitCode> {
    if options.attach.dump_bpf {
        return dump_bpf(
            &options.target,
            markers,
            strict,
            &options.attach,
            make_handler,
            out,
        );
    }
    let mut consumer = make_consumer(out);
    let outcome = stream_with(options, markers, strict, tick, make_handler, &mut consumer)?;
    finish(consumer)?;
    Ok(exit_code(&outcome))
}

/// Attaches the tool's handler (and maps, which the handler adds to the
/// table; the consumer finds them in the session by name), runs until the
/// end, and reports on stderr.
pub fn stream_with<H: Handler>(
    options: &StreamOptions,
    markers: &BTreeSet<Marker>,
    strict: bool,
    tick: Option<Duration>,
    make_handler: &mut MakeHandler<'_, H>,
    consumer: &mut dyn run::Consumer,
) -> Result<Outcome> {
    let signals = signals()?;
    let mut attached = attach(
        &options.target,
        markers,
        strict,
        &options.attach,
        make_handler,
    )?;
    let loop_options = run::LoopOptions {
        tick,
        duration: options.duration,
    };
    let outcome = run::run(&mut attached, &signals, consumer, &loop_options)?;
    report(&attached, &outcome, consumer.recovered());
    let uncounted = attached.session.counter(abi::COUNTER_UNCOUNTED);
    if uncounted > 0 {
        eprintln!(
            "pytap: {uncounted} calls of functions beyond --max-functions were not counted in the kernel"
        );
    }
    Ok(outcome)
}

/// A consumer that drops events (the empty-probe baseline).
#[derive(Debug)]
pub struct Discard;

impl run::Consumer for Discard {
    fn event(&mut self, _: &crate::engine::decode::Event<'_>, _: &Session) -> Result<()> {
        Ok(())
    }
}

/// Blocks the stop signals and opens a signalfd for them.
pub fn signals() -> Result<SignalFd> {
    SignalFd::new().context("blocking SIGINT/SIGTERM for a clean detach")
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        pytap_sys::signal::SIGINT => "SIGINT",
        pytap_sys::signal::SIGTERM => "SIGTERM",
        pytap_sys::signal::SIGHUP => "SIGHUP",
        pytap_sys::signal::SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

/// The end-of-run report, on stderr: why it ended, events seen and lost.
pub fn report(attached: &Attached, outcome: &Outcome, recovered: u64) {
    match &outcome.end {
        End::Exited {
            status: Some(status),
        } => {
            let program = match &attached.followed {
                Followed::Child(_, program) => program.as_str(),
                _ => "the traced process",
            };
            eprintln!("pytap: {program} exited with status {status}");
        }
        End::Exited { status: None } => eprintln!("pytap: the traced processes exited"),
        End::Signal(sig) => eprintln!("pytap: stopped by {}, probes detached", signal_name(*sig)),
        End::Duration => eprintln!("pytap: duration elapsed, probes detached"),
        End::Quit => eprintln!("pytap: quit, probes detached"),
        End::Exec { pid, exe } => {
            eprintln!(
                "pytap: process {pid} executed {exe}, which is not the traced Python; stopped"
            )
        }
    }
    let mut line = format!(
        "pytap: {} events, {} lost in {:.3} s",
        outcome.events,
        outcome.lost,
        outcome.elapsed.as_secs_f64()
    );
    if outcome.malformed > 0 {
        line.push_str(&format!(", {} malformed records", outcome.malformed));
    }
    if recovered > 0 {
        line.push_str(&format!(", {recovered} strings read from the binary"));
    }
    if outcome.lost > 0 {
        line.push_str(" (the ring buffer was full: raise --buffer-size)");
    }
    eprintln!("{line}");
}

/// 0 when something was traced, 1 when nothing was.
pub fn exit_code(outcome: &Outcome) -> ExitCode {
    if outcome.events == 0 && outcome.lost == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    }
}
