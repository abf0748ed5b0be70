//! Errors about targets that a user can act on, and pytap's exit codes.
//!
//! Each message is one line that says what is wrong and, where there is
//! one, what to do. `main` prints the message and exits with
//! [`ExitCode::Error`]; nothing here panics or prints a backtrace.

use std::io;
use std::path::PathBuf;

use pytap_elf::ElfError;

/// Exit codes scripts can rely on (documented in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The run worked but saw nothing: no event matched (trace and tools).
    NothingTraced = 1,
    /// An error: bad arguments, an unusable target, missing privileges.
    Error = 2,
}

/// Where markers can be found, said whenever a Python has none.
pub const MARKER_HINT: &str = "CPython has markers only when built with `./configure --with-dtrace`: \
Debian, Ubuntu and Fedora ship them (python3.X, libpython3.X.so); pyenv builds do not unless \
PYTHON_CONFIGURE_OPTS=--with-dtrace";

/// A target pytap cannot use, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No such pid.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid asked for.
        pid: u32,
    },
    /// Kernel threads and zombies.
    #[error("process {pid} ({comm}) has no address space: it is a kernel thread or has exited")]
    NoAddressSpace {
        /// The pid.
        pid: u32,
        /// Its comm.
        comm: String,
    },
    /// A `/proc` file could not be read.
    #[error("cannot read /proc/{pid}/{what}: {source}{hint}")]
    ProcIo {
        /// The pid.
        pid: u32,
        /// Which file.
        what: &'static str,
        /// The error.
        source: io::Error,
        /// What to do about a permission error ([`permission_hint`]).
        hint: &'static str,
    },
    /// A process that maps no file with python markers and is not a Python.
    #[error("process {label} is not running Python: none of its mapped files has python markers")]
    NotPython {
        /// `pid (comm)`.
        label: String,
    },
    /// A Python without markers.
    #[error(
        "{what} CPython{version} built without markers (no python entries in .note.stapsdt): its events come from pytap's agent inside the interpreter instead, which pytap loads when it launches the program (`pytap flow -- python3 app.py`) or attaches to a 3.14 (`-p`), never with --capture markers or --all; and `pytap profile` and `pytap dump` read its stacks from memory (`pytap info --scan` lists the interpreters on this machine that have markers). {MARKER_HINT}"
    )]
    NoMarkers {
        /// What it is, with its verb: `/path is` or `process PID (comm)
        /// runs`.
        what: String,
        /// ` 3.12.1` or empty, and where it is for a process
        /// (` 3.12.1 from /usr/lib/libpython3.12.so.1.0,`).
        version: String,
    },
    /// A process whose Python stacks pytap will not read, and why.
    #[error("cannot read the Python stacks of process {label}: {reason}")]
    Stacks {
        /// `pid (comm)`.
        label: String,
        /// Why, in a sentence.
        reason: String,
    },
    /// A file that is neither a Python nor linked to libpython.
    #[error(
        "{path} is not a CPython interpreter or library: it has no python markers and does not link libpython"
    )]
    NotAnInterpreter {
        /// The file.
        path: PathBuf,
    },
    /// An executable that needs libpython, which cannot be found.
    #[error(
        "{path} links {needed}, which is not in its library search path (RUNPATH, LD_LIBRARY_PATH, ld.so.cache)"
    )]
    LibpythonNotFound {
        /// The executable.
        path: PathBuf,
        /// The DT_NEEDED name.
        needed: String,
    },
    /// A command that is not in `PATH`.
    #[error("{program}: command not found")]
    CommandNotFound {
        /// The program.
        program: String,
    },
    /// Not a usable ELF file.
    #[error("{path}: {source}")]
    BadElf {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ElfError,
    },
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}{hint}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
        /// What to do about a permission error ([`permission_hint`]).
        hint: &'static str,
    },
}

impl TargetError {
    pub(crate) fn proc_io(pid: u32, what: &'static str, source: io::Error) -> TargetError {
        let hint = permission_hint(&source);
        TargetError::ProcIo {
            pid,
            what,
            source,
            hint,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> TargetError {
        let hint = permission_hint(&source);
        TargetError::Io {
            path: path.into(),
            source,
            hint,
        }
    }
}

/// What a permission error asks of the user, decided when the error is
/// made (who pytap runs as is a fact of then; printing it reads nothing).
fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() != io::ErrorKind::PermissionDenied {
        ""
    } else if pytap_sys::process::effective_uid() == 0 {
        " (pytap runs as root: the process is shielded from this user namespace or by a security module)"
    } else {
        " (run pytap as root, or with CAP_SYS_PTRACE, CAP_BPF and CAP_PERFMON)"
    }
}
