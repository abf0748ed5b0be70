//! The in-process capture's part of a run: which path serves each event
//! (the markers or pytap's agent inside the target, by
//! `engine::capture_mode` and what the target runs), the agents sent to
//! the targets, and the refusals when a target cannot take one.

use std::collections::BTreeSet;
use std::ffi::OsString;

use anyhow::{Context, Result};

use crate::capture::{self, Capture};
use crate::cpython::Marker;
use crate::engine::capture_mode::CaptureMode;
use crate::engine::hazard;
use crate::engine::plan::AttachTarget;
use crate::notice;
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::StreamOptions;

/// Which path serves the events of `markers` for `stream`'s target, and
/// the capture directory when it may be the agent: a launched command, or
/// a running 3.14 (PEP 768); `--all` never injects anything.
pub fn capture_for(
    stream: &StreamOptions,
    markers: &BTreeSet<Marker>,
) -> Result<(CaptureMode, Option<Capture>)> {
    let mode = match &stream.target {
        TargetSpec::Command(argv) if !markers.is_empty() => {
            let mode = stream.attach.capture.for_command(argv, markers);
            avoid_unsafe_names(stream, argv, mode)
        }
        // A running 3.14 can be given the agent (PEP 768); 3.12 and 3.13
        // are refused once the targets are known; others keep their
        // markers (a running 3.11 cannot be given a profile function).
        TargetSpec::Pids(_)
            if !markers.is_empty() && stream.attach.capture != CaptureMode::Markers =>
        {
            CaptureMode::Attached
        }
        _ => CaptureMode::Markers,
    };
    if mode == CaptureMode::Markers {
        return Ok((mode, None));
    }
    Ok((mode, Some(Capture::create()?)))
}

/// What a traced CPython must have: markers, unless the run probes none
/// (a script's functions and clocks) or the in-process capture may give
/// its function events (a build without markers is then traced too, with
/// what the agent gives).
pub fn wanted(capture: Option<&Capture>, markers: &BTreeSet<Marker>) -> crate::process::Wanted {
    if capture.is_some() || markers.is_empty() {
        crate::process::Wanted::Interpreter
    } else {
        crate::process::Wanted::Markers
    }
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
        .is_some_and(|m| CaptureMode::InProcess.serves_module(&m));
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
/// agent is loaded into each process through PEP 768, told which of
/// `markers` to give there.
pub fn attach_agents(
    capture: Option<&mut Capture>,
    stream: &StreamOptions,
    mode: CaptureMode,
    markers: &BTreeSet<Marker>,
    targets: &[AttachTarget],
) -> Result<()> {
    let Some(capture) = capture else {
        return Ok(());
    };
    if !matches!(stream.target, TargetSpec::Pids(_)) {
        return Ok(());
    }
    for t in targets {
        let served = mode.served_markers(&t.module, markers);
        if !served.is_empty() {
            for &pid in &t.pids {
                capture
                    .attach(pid, &t.module, &served)
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
    if matches!(stream.target, TargetSpec::Pids(_)) && stream.attach.capture != CaptureMode::Markers
    {
        refuse_running_in_process(targets, mode, markers)?;
    }
    if mode != CaptureMode::Markers {
        refuse_agent_blocked(targets, mode, markers)?;
    }
    Ok(())
}

/// A launched CPython the agent serves, started with an option that keeps
/// the agent from loading (`-I`, `-E`, `-S`): say so before it runs.
fn refuse_agent_blocked(
    targets: &[AttachTarget],
    mode: CaptureMode,
    markers: &BTreeSet<Marker>,
) -> Result<()> {
    for t in targets {
        let Some(version) = t.module.py_version() else {
            continue;
        };
        let (major, minor) = version.minor_version();
        if mode.served_markers(&t.module, markers).is_empty() {
            continue;
        }
        let why_only = if t.module.has_python_markers() {
            "its function events can only come from that agent (3.12 to 3.14 have no function \
             markers)"
        } else {
            "its events can only come from that agent (it was built without markers)"
        };
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
                     {why_only}; run it under pytap without -{option}{instead}"
                );
            }
        }
    }
    Ok(())
}

/// `-p` on a CPython whose function markers are gone, or a build without
/// them, that cannot be given the agent: say why nothing can be captured
/// there, and what works.
fn refuse_running_in_process(
    targets: &[AttachTarget],
    mode: CaptureMode,
    markers: &BTreeSet<Marker>,
) -> Result<()> {
    for t in targets {
        let Some(version) = t.module.py_version() else {
            continue;
        };
        let (major, minor) = version.minor_version();
        // 3.14 takes the agent through PEP 768.
        if mode.served_markers(&t.module, markers).is_empty() || (major, minor) == (3, 14) {
            continue;
        }
        let pids: Vec<String> = t.pids.iter().map(u32::to_string).collect();
        if !t.module.has_python_markers() {
            anyhow::bail!(
                "pid {} runs CPython {major}.{minor} from {}, built without markers: its events \
                 can only come from pytap's agent inside the interpreter, which pytap \
                 arranges when it launches the program (`pytap flow -- python{major}.{minor} \
                 app.py`); a running {major}.{minor} has no way to load it (PEP 768 attaching is \
                 3.14's); `pytap profile -p` and `pytap dump -p` read its stacks without markers",
                pids.join(", "),
                t.module.path.display(),
            );
        }
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
