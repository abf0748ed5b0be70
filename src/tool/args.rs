//! Turning parsed arguments into validated requests (no I/O beyond
//! reading the environment for `PATH`): one target kind, known markers,
//! sane sizes. Errors here are usage errors, exit code 2.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{ArmArg, EngineArgs, TargetArgs};
use crate::cpython::Marker;
use crate::engine::plan::ArmMode;
use crate::engine::run::TargetSpec;
use crate::tool::common::{AttachOptions, StreamOptions};

/// Target, attach settings and duration of a streaming tool.
pub fn stream_options(target: &TargetArgs, engine: &EngineArgs) -> Result<StreamOptions> {
    Ok(StreamOptions {
        target: target_spec(target)?,
        attach: attach_options(engine)?,
        duration: duration(engine)?,
    })
}

/// The target the arguments name: exactly one of `-p`, `-c`, `--all`, `-- CMD`.
pub fn target_spec(args: &TargetArgs) -> Result<TargetSpec> {
    let kinds = [
        !args.pids.is_empty(),
        args.command.is_some(),
        args.all,
        !args.argv.is_empty(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => bail!("say what to trace: -p PID, -c 'CMD', -- CMD ARGS..., or --all"),
        1 => {}
        _ => bail!("-p, -c, --all and -- CMD are alternatives: give exactly one"),
    }
    if !args.pids.is_empty() {
        return Ok(TargetSpec::Pids(args.pids.clone()));
    }
    if let Some(command) = &args.command {
        let words =
            shell_words::split(command).map_err(|e| anyhow::anyhow!("-c '{command}': {e}"))?;
        if words.is_empty() {
            bail!("-c: the command is empty");
        }
        return Ok(TargetSpec::Command(
            words.into_iter().map(OsString::from).collect(),
        ));
    }
    if args.all {
        return Ok(TargetSpec::All {
            binaries: args.binaries.clone(),
        });
    }
    Ok(TargetSpec::Command(args.argv.clone()))
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
    let mib = args.buffer_size;
    if !mib.is_power_of_two() || mib > 2048 {
        bail!("--buffer-size must be a power of two between 1 and 2048 MiB, not {mib}");
    }
    Ok(AttachOptions {
        force_perf_event: args.force_perf_event,
        buffer_bytes: mib << 20,
        arm: match args.arm {
            ArmArg::Anchor => ArmMode::Anchor,
            ArmArg::LineSite => ArmMode::LineSite,
        },
        dump_bpf: args.dump_bpf,
    })
}

/// `--duration` as a Duration.
pub fn duration(args: &EngineArgs) -> Result<Option<Duration>> {
    match args.duration {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => bail!("--duration must be a positive number of seconds, not {s}"),
    }
}
