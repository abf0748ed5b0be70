//! Launching a command so that probes are in place before it runs.
//!
//! The child starts under ptrace and stops right after each `execve`,
//! before a single instruction of the new program runs. At each stop pytap
//! looks at what was executed: a Python with markers (in the executable,
//! or in a libpython the loader has not mapped yet) gets its probes,
//! filtered to the child's pid, and the child is released untraced; any
//! other program (`env`, a shell wrapper that `exec`s Python, pyenv's
//! shims) is let run to its next `execve`. Uprobes attached by inode with a
//! pid filter are installed when the library is mapped later, semaphores
//! included, so interpreter start-up is traced from its first event.

use std::ffi::OsString;
use std::path::PathBuf;

use pytap_sys::process::{ChildProcess, Stop, TracedChild};

use crate::error::TargetError;
use crate::module::Module;
use crate::target::{self, proc};

/// What went wrong launching.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Why.
        source: pytap_sys::SysError,
    },
    /// The command exited before executing a Python with markers.
    #[error(
        "{program} exited with status {status} without running a Python that has markers (programs it ran: {ran})"
    )]
    NoPython {
        /// `argv[0]`.
        program: String,
        /// Exit status.
        status: i32,
        /// The executables it went through.
        ran: String,
    },
    /// The command runs a Python pytap cannot use.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// ptrace failed while following the child.
    #[error("following {program}: {source}")]
    Follow {
        /// `argv[0]`.
        program: String,
        /// Why.
        source: pytap_sys::SysError,
    },
}

/// A launched child that now runs with probes attached.
#[derive(Debug)]
pub struct Launched {
    /// The child, to wait for.
    pub child: ChildProcess,
    /// The modules that were found (and attached by the callback).
    pub modules: Vec<Module>,
}

/// Puts the probes in place for a held child: its pid and the modules found.
pub type AttachFn<'a, E> = dyn FnMut(u32, &[Module]) -> Result<(), E> + 'a;

/// Starts `argv` held at its first `execve`, finds the Python it becomes,
/// lets `attach` put the probes in place (given the pid and the modules),
/// then releases it. If `attach` fails the child is killed before it runs.
pub fn launch<E>(
    argv: &[OsString],
    attach: &mut AttachFn<'_, E>,
) -> Result<Result<Launched, E>, LaunchError> {
    let program = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child =
        TracedChild::spawn(&argv[0], &argv[1..], &[]).map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.pid();
    let mut ran = Vec::new();
    loop {
        let exe =
            std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_else(|_| PathBuf::from("?"));
        ran.push(exe.display().to_string());
        match modules_of_exec(pid, &exe) {
            Ok(Some(modules)) => {
                if let Err(e) = attach(pid, &modules) {
                    kill_held(child);
                    return Ok(Err(e));
                }
                let child = child.detach().map_err(|source| LaunchError::Follow {
                    program: program.clone(),
                    source,
                })?;
                return Ok(Ok(Launched { child, modules }));
            }
            Ok(None) => {}
            Err(e) => {
                kill_held(child);
                return Err(e.into());
            }
        }
        match child.continue_to_next_exec() {
            Ok(Stop::Exec) => continue,
            Ok(Stop::Exited(status)) => {
                return Err(LaunchError::NoPython {
                    program,
                    status,
                    ran: ran.join(", "),
                });
            }
            Err(source) => return Err(LaunchError::Follow { program, source }),
        }
    }
}

/// Kills a child still held at an exec stop, before it ran anything.
fn kill_held(child: TracedChild) {
    let pid = child.pid();
    let _ = pytap_sys::process::kill(pid, pytap_sys::signal::SIGKILL);
    if let Ok(mut c) = child.detach() {
        let _ = c.wait();
    }
}

/// The modules with python markers the freshly executed `exe` of `pid`
/// will run: `None` when it is not a Python (let it exec on); an error
/// when it is a Python pytap cannot trace.
fn modules_of_exec(pid: u32, exe: &std::path::Path) -> Result<Option<Vec<Module>>, TargetError> {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let ld_path = proc::environ_var(pid, "LD_LIBRARY_PATH");
    match target::resolve_path(exe, &root, ld_path.as_deref()) {
        Ok(module) => Ok(Some(vec![module])),
        Err(TargetError::NotAnInterpreter { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
