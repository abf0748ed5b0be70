//! What can go wrong loading or attaching a plan, said so that the user
//! knows what to do: a missing privilege is told apart from the kernel
//! refusing a program or a probe.

use std::io;

use pytap_sys::{LoadError, SysError};

/// Errors loading or attaching, with what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Missing privileges.
    #[error("{what} needs root, or the CAP_BPF and CAP_PERFMON capabilities: {source}")]
    Privilege {
        /// What was being done.
        what: &'static str,
        /// The syscall error.
        source: SysError,
    },
    /// A map could not be created.
    #[error("creating BPF map {name}: {source}")]
    Map {
        /// Map name.
        name: String,
        /// Why.
        source: SysError,
    },
    /// The verifier rejected a program.
    #[error(
        "the kernel rejected BPF program {name}: {source}; verifier log (last lines):\n{log_tail}\nrun with --dump-bpf to see the program"
    )]
    Load {
        /// Program name.
        name: String,
        /// errno.
        source: io::Error,
        /// The end of the verifier log.
        log_tail: String,
    },
    /// A uprobe could not be attached.
    #[error("attaching to {path}: {source}")]
    Attach {
        /// The file.
        path: String,
        /// Why.
        source: SysError,
    },
    /// A relocation referred to a missing map (a bug).
    #[error("internal error relocating program {0}")]
    Reloc(String),
    /// The task programs that keep names exact could not be attached.
    #[error(
        "cannot attach to the kernel's {tracepoint} tracepoint ({reason}); pytap needs it to send function names once and keep them exact"
    )]
    TaskPrograms {
        /// The tracepoint.
        tracepoint: &'static str,
        /// Why.
        reason: String,
    },
    /// No target could be attached (each one's reason is in the notes).
    #[error("no traced module could be attached")]
    NothingAttached,
    /// The stack sampler could not be set up.
    #[error("{0}")]
    Sampler(String),
    /// A module added while running could not be planned.
    #[error(transparent)]
    Plan(#[from] crate::engine::plan::PlanError),
}

/// `source` as a [`SessionError::Privilege`] when the kernel refused the
/// caller (EPERM, EACCES), else as `other` makes it.
pub(crate) fn privilege_or(
    what: &'static str,
    source: SysError,
    other: impl FnOnce(SysError) -> SessionError,
) -> SessionError {
    match source.errno() {
        // EPERM and EACCES.
        Some(1 | 13) => SessionError::Privilege { what, source },
        _ => other(source),
    }
}

/// A failed program load: a privilege error when the kernel refused the
/// caller, else the verifier's refusal with the end of its log.
pub(crate) fn load_error(name: &str, e: LoadError) -> SessionError {
    // EACCES with a verifier log is the verifier refusing the program;
    // without one, the kernel refused the caller.
    if matches!(e.source.raw_os_error(), Some(1) | Some(13)) && e.log.trim().is_empty() {
        return SessionError::Privilege {
            what: "loading BPF programs",
            source: SysError::new("BPF_PROG_LOAD", e.source),
        };
    }
    let lines: Vec<&str> = e.log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    SessionError::Load {
        name: name.to_string(),
        source: e.source,
        log_tail: tail,
    }
}
