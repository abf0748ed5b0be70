//! The step from parsed arguments to a resolved request (ripgrep's low to
//! high arguments; no I/O beyond
//! reading the environment for `PATH`): one target kind, known markers,
//! sane sizes. Errors here are usage errors, exit code 2.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{ArmArg, CaptureArg, EngineArgs, TargetArgs};
use crate::cpython::Marker;
use crate::engine::capture_mode::CaptureMode;
use crate::engine::plan::ArmMode;
use crate::notice;
use crate::output::event::Format;
use crate::output::sink::{Sink, SinkKind};
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::{AttachOptions, StreamOptions};

/// Target, attach settings and duration of a streaming tool writing to `sink`.
pub fn stream_options(
    target: &TargetArgs,
    engine: &EngineArgs,
    sink: &Sink,
) -> Result<StreamOptions> {
    let spec = target_spec(target)?;
    let children = match (&spec, target.children, target.no_children) {
        (_, true, true) => bail!("--children and --no-children are opposites: give one"),
        (TargetSpec::Command(_), _, no) => !no,
        (TargetSpec::Pids(_), yes, _) => yes,
        (TargetSpec::All { .. }, true, _) => {
            bail!("--children goes with -p or a command; --all already traces every process")
        }
        (TargetSpec::All { .. }, false, _) => false,
        (TargetSpec::Recording(_), false, false) => false,
        (TargetSpec::Recording(_), _, _) => {
            bail!(
                "--children and --no-children go with a live target, not -i (a recording holds what was traced)"
            )
        }
    };
    if matches!(spec, TargetSpec::Recording(_)) {
        if engine.dump_bpf {
            bail!(
                "--dump-bpf shows the programs of a live run; -i replays a recording without any"
            );
        }
        if engine.duration.is_some() {
            bail!("--duration limits a live run; a recording is replayed whole");
        }
    }
    // The reader of a pipe going away ends the run (EPOLLERR on our end).
    let output_pipe = match sink.kind() {
        SinkKind::Pipe => Some(Arc::new(sink.fd().as_fd().try_clone_to_owned()?)),
        SinkKind::Terminal | SinkKind::File => None,
    };
    Ok(StreamOptions {
        target: spec,
        attach: attach_options(engine)?,
        duration: duration(engine)?,
        children,
        force: target.force,
        output_pipe,
        command_terminal: None,
        width: match sink.kind() {
            SinkKind::Terminal => crate::output::fit::terminal_width(),
            SinkKind::Pipe | SinkKind::File => None,
        },
    })
}

/// Shell syntax that `-c` cannot run without a shell: pipes, lists,
/// redirections, substitutions, globs, variables and assignments.
pub fn needs_shell(command: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word_start = true;
    for c in command.chars() {
        if escaped {
            escaped = false;
            word_start = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (Some('"'), '"') => quote = None,
            (Some('"'), '$' | '`') => return true,
            (Some('"'), '\\') => escaped = true,
            (Some(_), _) => {}
            (None, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (None, '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[') => {
                return true;
            }
            (None, '~' | '#') if word_start => return true,
            (None, '\n') => return true,
            _ => {}
        }
        word_start = quote.is_none() && c.is_whitespace();
    }
    // `NAME=value cmd`: an assignment before the command.
    command
        .split_whitespace()
        .next()
        .and_then(|w| w.split_once('='))
        .is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
                && !name.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// The target the arguments name: exactly one of `-p`, `-c`, `--all`, `-- CMD`.
pub fn target_spec(args: &TargetArgs) -> Result<TargetSpec> {
    let kinds = [
        !args.pids.is_empty(),
        args.command.is_some(),
        args.all,
        !args.argv.is_empty(),
        args.input.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => bail!(
            "say what to trace: -p PID, -c 'CMD', -- CMD ARGS..., --all, or -i FILE (a recording)"
        ),
        1 => {}
        _ => bail!("-p, -c, --all, -- CMD and -i FILE are alternatives: give exactly one"),
    }
    if let Some(path) = &args.input {
        return Ok(TargetSpec::Recording(path.clone()));
    }
    if !args.pids.is_empty() {
        return Ok(TargetSpec::Pids(args.pids.clone()));
    }
    if let Some(command) = &args.command {
        // Bytes that are not UTF-8 (a file name in another encoding): the
        // shell splits them as it would typed.
        return Ok(TargetSpec::Command(command_words(command)?));
    }
    if args.all {
        return Ok(TargetSpec::All {
            binaries: args.binaries.clone(),
        });
    }
    Ok(TargetSpec::Command(args.argv.clone()))
}

/// The words of `-c CMD`: split like a shell would, or run through
/// `/bin/sh -c` when it has shell syntax (or is not UTF-8).
pub fn command_words(command: &std::ffi::OsStr) -> Result<Vec<OsString>> {
    let Some(command) = command.to_str() else {
        return Ok(vec!["/bin/sh".into(), "-c".into(), command.to_os_string()]);
    };
    if command.trim().is_empty() {
        bail!("-c: the command is empty");
    }
    // Shell syntax runs through the shell, as a user typing it expects;
    // the shell's children are traced with the rest of the tree.
    if needs_shell(command) {
        return Ok(vec!["/bin/sh".into(), "-c".into(), command.into()]);
    }
    let words = shell_words::split(command).map_err(|e| anyhow::anyhow!("-c '{command}': {e}"))?;
    Ok(words.into_iter().map(OsString::from).collect())
}

/// When the traced command writes to the same stdout as pytap's JSON
/// Lines, its output lands between pytap's lines (never inside one): one
/// line says how to keep them apart.
pub fn warn_shared_stdout(stream: &StreamOptions, format: Format, to_file: bool) {
    if format == Format::Jsonl && !to_file && matches!(stream.target, TargetSpec::Command(_)) {
        notice!(
            "the traced command writes to the same stdout as these JSON Lines: use -o FILE to keep them apart"
        );
    }
}

/// Markers named on the command line, in either spelling.
pub fn markers(names: &[String]) -> Result<Option<BTreeSet<Marker>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for name in names {
        for part in name.split(',').filter(|p| !p.is_empty()) {
            set.insert(part.parse::<Marker>()?);
        }
    }
    Ok(Some(set))
}

/// Attach settings from the engine arguments.
pub fn attach_options(args: &EngineArgs) -> Result<AttachOptions> {
    let mib = match args.buffer_size {
        Some(mib) if !mib.is_power_of_two() || mib > 2048 => {
            bail!("--buffer-size must be a power of two between 1 and 2048 MiB, not {mib}")
        }
        Some(mib) => mib,
        None => default_buffer_mib(pytap_sys::possible_cpus().unwrap_or(1)),
    };
    Ok(AttachOptions {
        force_perf_event: args.force_perf_event,
        buffer_bytes: mib << 20,
        arm: match args.arm {
            ArmArg::Anchor => ArmMode::Anchor,
            ArmArg::LineSite => ArmMode::LineSite,
        },
        dump_bpf: args.dump_bpf,
        capture: match args.capture {
            CaptureArg::Auto => CaptureMode::Auto,
            CaptureArg::Markers => CaptureMode::Markers,
            CaptureArg::InProcess => CaptureMode::InProcess,
        },
    })
}

/// The default ring buffer size for `cpus` CPUs, in MiB: 1 MiB per CPU
/// (each CPU's probes can write about a million records a second, about
/// 100 MB/s, and the consumer drains every 10 ms), at least 16 MiB (bursts
/// while the consumer is descheduled or its output stalls: behind a reader
/// pausing 60 ms every 300 ms, 8 MiB lost 1 to 3 % of fib's events in 1 of
/// 3 runs on 2 CPUs, 16 MiB none in 18) and at most 64 MiB, a power of two.
/// Its pages count twice in pytap's resident memory (the kernel maps the
/// data area twice), so it is kept no larger than the rate needs.
pub fn default_buffer_mib(cpus: usize) -> u32 {
    let cpus = u32::try_from(cpus).unwrap_or(64);
    cpus.clamp(16, 64).next_power_of_two().min(64)
}

/// `--duration` as a Duration.
pub fn duration(args: &EngineArgs) -> Result<Option<Duration>> {
    match args.duration {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => bail!("--duration must be a positive number of seconds, not {s}"),
    }
}

/// Shortest `--interval` of `pytap top`: 100 views a second is already
/// more than anyone reads.
pub const MIN_INTERVAL: f64 = 0.01;
/// Longest `--interval`.
pub const MAX_INTERVAL: f64 = 3600.0;

/// `top --interval` as a Duration.
pub fn interval(secs: f64) -> Result<Duration> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&secs) {
        bail!("--interval must be between {MIN_INTERVAL} and {MAX_INTERVAL} seconds, not {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_syntax_is_recognised() {
        for shell in [
            "a | b",
            "a && b",
            "a; b",
            "a > out",
            "python3 *.py",
            "echo $HOME",
            "echo \"$HOME\"",
            "echo `date`",
            "X=1 python3 app.py",
            "cd ~",
            "(a)",
            "a # comment",
        ] {
            assert!(needs_shell(shell), "{shell}");
        }
        for plain in [
            "python3 app.py",
            "python3 -c 'import sys; print(sys.argv | 1)'",
            "python3 -c \"print(1)\"",
            "python3 a\\ b.py",
            "python3 --opt=1 x.py",
            "python3 -X importtime -m json.tool",
            "/usr/bin/python3.11 a#b.py",
        ] {
            assert!(!needs_shell(plain), "{plain}");
        }
    }

    #[test]
    fn the_ring_buffer_follows_the_cpus() {
        assert_eq!(default_buffer_mib(1), 16);
        assert_eq!(default_buffer_mib(2), 16);
        assert_eq!(default_buffer_mib(6), 16);
        assert_eq!(default_buffer_mib(9), 16);
        assert_eq!(default_buffer_mib(16), 16);
        assert_eq!(default_buffer_mib(48), 64);
        assert_eq!(default_buffer_mib(512), 64);
    }

    #[test]
    fn interval_bounds_agree_with_the_message() {
        assert!(interval(0.0).is_err());
        assert!(interval(0.000001).is_err());
        assert_eq!(
            interval(0.0).unwrap_err().to_string(),
            "--interval must be between 0.01 and 3600 seconds, not 0"
        );
        assert!(interval(MIN_INTERVAL).is_ok());
        assert!(interval(3600.0).is_ok());
        assert!(interval(f64::NAN).is_err());
    }
}
