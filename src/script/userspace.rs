//! A script without marker probes (`begin`, `end`, timers only): nothing
//! is attached; pytap runs the bodies, waiting for the timers, the `-c`
//! command or `-x` process, `--duration`, `exit()` or a stop signal.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Instant;

use anyhow::{Context, Result};
use pytap_script::ir::PointKind;
use pytap_sys::poll::Poller;
use pytap_sys::signal::SIGCHLD;

use super::compile::Compiled;
use super::runtime::Runtime;
use crate::error::ExitCode;
use crate::runner::live::TargetSpec;
use crate::runner::tool_run::{self, StreamOptions};

const TOKEN_SIGNAL: u64 = 1;
const TOKEN_PID: u64 = 2;

/// Runs a script that attaches nothing.
pub fn run(
    compiled: Compiled,
    target: Option<&TargetSpec>,
    stream: &StreamOptions,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    if stream.attach.dump_bpf {
        writeln!(
            out,
            "# the script has no marker probes: nothing runs in the kernel"
        )?;
        return Ok(ExitCode::Ok);
    }
    let signals = tool_run::signals()?;
    let mut rt = Runtime::new(compiled, out);
    let mut child = None;
    let pidfd = match target {
        Some(TargetSpec::Command(argv)) => {
            let (program, args) = argv.split_first().context("-c: the command is empty")?;
            let mut command = std::process::Command::new(program);
            command.args(args);
            // Not pytap's blocked signals: the command's own.
            pytap_sys::process::default_signals(&mut command)?;
            let c = command
                .spawn()
                .with_context(|| format!("running {}", program.to_string_lossy()))?;
            rt.target = i64::from(c.id());
            let fd = pytap_sys::process::pidfd_open(c.id())?;
            child = Some(c);
            Some(fd)
        }
        Some(TargetSpec::Pids(pids)) => {
            let pid = pids[0];
            rt.target = i64::from(pid);
            Some(pytap_sys::process::pidfd_open(pid).with_context(|| format!("process {pid}"))?)
        }
        _ => None,
    };
    rt.run_userspace(None, &PointKind::Begin);
    let poller = Poller::new()?;
    poller.add(signals.raw_fd(), TOKEN_SIGNAL)?;
    if let Some(fd) = &pidfd {
        poller.add(fd.as_raw_fd(), TOKEN_PID)?;
    }
    let deadline = stream.duration.map(|d| Instant::now() + d);
    while !rt.exited() && rt.error.is_none() {
        rt.flush_out()?;
        let now = Instant::now();
        let wake = [rt.next_timer(), deadline].into_iter().flatten().min();
        let timeout = wake.map(|w| w.saturating_duration_since(now));
        let ready = poller.wait(timeout)?;
        let mut stop = false;
        for token in ready {
            match token {
                TOKEN_SIGNAL => {
                    while let Some(sig) = signals.read()? {
                        if sig != SIGCHLD {
                            stop = true;
                        }
                    }
                }
                _ => stop = true,
            }
        }
        rt.timers_now()?;
        if stop || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    rt.end(None);
    if let Some(mut c) = child {
        let _ = c.wait();
    }
    rt.flush_out()?;
    if let Some(e) = rt.output_error() {
        return Err(e.into());
    }
    if let Some(error) = &rt.error {
        crate::output::notice::raw(error);
        return Ok(ExitCode::Error);
    }
    Ok(ExitCode::Ok)
}
