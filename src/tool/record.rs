//! `pytap record`: a run's every event written to a recording as it
//! arrives (the consumer is [`crate::recording::write::Recorder`]), with
//! `--format` exported from it when the run ends; with `--profile`, the
//! stack sampler's samples instead ([`profile`]).

use std::collections::BTreeSet;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pytap_sys::process::ExitStatus;

use crate::cpython::Marker;
use crate::engine::consumer::{Consumer, End};
use crate::engine::decode::Event;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::export::ExportFormat;
use crate::output::replace::OutputFile;
use crate::output::sink::Blocks;
use crate::recording::format::Meta;
use crate::recording::write::Recorder;
use crate::runner::live::{Outcome, TargetSpec};
use crate::runner::report;
use crate::runner::sampling::{SampleTargets, SamplingOptions};
use crate::runner::tool_run::{self, StreamOptions};
use crate::tool::export::{self, Style};

mod profile;

/// A `pytap record` run.
#[derive(Debug, Clone)]
pub struct RecordRequest {
    /// Target, attach settings, duration.
    pub stream: StreamOptions,
    /// Markers asked for; `None` means every marker the target has.
    pub markers: Option<BTreeSet<Marker>>,
    /// Where the recording (or the export) goes.
    pub output: PathBuf,
    /// Write this export instead of the recording.
    pub export: Option<(ExportFormat, Style)>,
    /// Record the stack sampler's samples of these targets instead of
    /// events (`stream` then only names the target).
    pub profile: Option<(SampleTargets, SamplingOptions)>,
}

/// How the target is described in the recording.
fn describe_target(spec: &TargetSpec) -> Vec<String> {
    match spec {
        TargetSpec::Command(argv) => argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        TargetSpec::Pids(pids) => pids.iter().map(|p| format!("pid {p}")).collect(),
        TargetSpec::All { .. } => vec!["all".into()],
        TargetSpec::Recording(path) => vec![path.display().to_string()],
    }
}

fn end_reason(end: &End) -> String {
    match end {
        End::Exited { .. } => "exited".into(),
        End::Signal(sig) => format!("stopped by {}", pytap_sys::signal::name(*sig)),
        End::Duration => "duration elapsed".into(),
        End::Quit => "quit".into(),
        End::Exit => "exit()".into(),
        End::Exec { pid, exe } => format!("process {pid} executed {exe}"),
        End::OutputClosed => "output closed".into(),
        End::TerminalLost => "terminal lost".into(),
    }
}

/// For an export, where the recording goes while the run lasts: a hidden
/// file beside the export (removed once the export is written, kept when it
/// fails).
fn hidden_recording(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    output.with_file_name(format!(".{name}.{}.pytap", std::process::id()))
}

/// An export's hidden recording, removed when this goes (the run failed,
/// or the export is written) unless kept.
struct Hidden {
    path: PathBuf,
    keep: bool,
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The recorder, putting the recording at its path when the first event
/// arrives (the target is attached: a mistyped target leaves what was
/// there), so that a run killed later leaves what it recorded there.
struct Placed {
    recorder: Recorder<Blocks>,
    file: OutputFile,
}

impl Consumer for Placed {
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.file.commit()?;
        self.recorder.event(event, source)
    }

    fn thread_exited(&mut self, pid: u32, tid: u32) -> Result<()> {
        self.recorder.thread_exited(pid, tid)
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        self.recorder.process_executed(pid, old_tid)
    }

    fn flush(&mut self) -> Result<()> {
        self.recorder.flush()
    }

    fn recovered(&self) -> u64 {
        self.recorder.recovered()
    }
}

/// Runs `pytap record`.
pub fn run(request: &RecordRequest) -> Result<ExitCode> {
    if matches!(request.stream.target, TargetSpec::Recording(_)) {
        anyhow::bail!(
            "record traces a live target (-p, -c, -- CMD, --all); -i is for the views and export"
        );
    }
    if let Some((targets, options)) = &request.profile {
        let target = describe_target(&request.stream.target);
        return profile::run(&request.output, targets, options, target);
    }
    let (markers, strict) = tool_run::asked_or_all(&request.markers);
    // 3.15's generator creations flagged as `flow`'s probes flag them, so
    // every view replays them as it shows them live.
    let mut make_handler = tool_run::records_flagging_creations(&markers, true, None);

    if request.stream.attach.dump_bpf {
        let mut stdout = std::io::stdout();
        return tool_run::dump_bpf(
            &request.stream,
            &markers,
            strict,
            &mut make_handler,
            &mut stdout,
        );
    }
    let path = match request.export {
        None => request.output.clone(),
        Some(_) => hidden_recording(&request.output),
    };
    let file = OutputFile::create(&path)?;
    // An export's recording is pytap's own: it goes if the run fails
    // (it is kept, and said so, only when the export fails).
    let mut hidden = request.export.map(|_| Hidden {
        path: path.clone(),
        keep: false,
    });
    let start = start_meta(&request.stream.target, &markers);
    let recorder =
        Recorder::new(file.blocks()?, &start).with_context(|| path.display().to_string())?;
    let mut placed = Placed { recorder, file };
    let (outcome, summary) = tool_run::stream_with(
        tool_run::ToolRun {
            stream: &request.stream,
            markers: &markers,
            strict,
            tick: None,
            make_handler: &mut make_handler,
        },
        &mut placed,
        None,
    )?;
    crate::output::notice::emit_all(summary);
    let Placed { recorder, mut file } = placed;
    let events = recorder.events;
    recorder
        .end(&end_meta(&outcome, events))
        .and_then(|mut blocks| Ok(blocks.settle()?))
        .with_context(|| path.display().to_string())?;
    file.commit()?;
    match request.export {
        None => crate::notice!("recorded {events} events to {}", path.display()),
        Some((format, style)) => {
            export_recording(&path, &request.output, format, style, &mut hidden)?
        }
    }
    Ok(report::exit_code(&outcome))
}

/// The `start` metadata: what is traced, which markers, the clocks now.
fn start_meta(target: &TargetSpec, markers: &BTreeSet<Marker>) -> Meta {
    Meta::Start {
        pytap: env!("CARGO_PKG_VERSION").into(),
        realtime_ns: pytap_sys::clock::realtime_ns().unwrap_or(0).max(0) as u64,
        monotonic_ns: pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64,
        target: describe_target(target),
        markers: markers.iter().map(|m| m.name().to_string()).collect(),
        profile: None,
    }
}

/// The `end` metadata: what the run saw and how it ended.
fn end_meta(outcome: &Outcome, events: u64) -> Meta {
    Meta::End {
        events,
        lost: outcome.lost,
        malformed: outcome.malformed,
        reason: end_reason(&outcome.end),
        status: match outcome.end {
            End::Exited { status } => status.map(ExitStatus::code),
            _ => None,
        },
        signal: match outcome.end {
            End::Exited {
                status: Some(ExitStatus::Signal(s)),
            } => Some(s),
            _ => None,
        },
        monotonic_ns: pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64,
        samples: None,
        without_python: None,
        sampled_ns: None,
    }
}

/// `--export`: the finished recording at `path` exported to `output`.
/// The export reads a recording rather than the live events so that the
/// loop only writes records while the target runs (an export's timeline
/// costs more per event, and the rings must not fill); if it fails, the
/// recording is kept and said so.
fn export_recording(
    path: &Path,
    output: &Path,
    format: ExportFormat,
    style: Style,
    hidden: &mut Option<Hidden>,
) -> Result<()> {
    export::warn_unused_style(format, style);
    let mut out = OutputFile::create(output)?;
    let written = export::export(
        path,
        format,
        style,
        Box::new(BufWriter::with_capacity(1 << 20, out.writer()?)),
    )
    .and_then(|stats| out.commit().map(|()| stats));
    match written {
        Ok(stats) => {
            export::report(&stats, format, &output.display().to_string());
            Ok(())
        }
        Err(e) => {
            if let Some(hidden) = hidden {
                hidden.keep = true;
            }
            crate::notice!(
                "the recording is kept in {} (pytap export -i {} ...)",
                path.display(),
                path.display()
            );
            Err(e)
        }
    }
}
