//! Following a process tree with ptrace, from its first instruction on.
//!
//! pytap traces a command's whole tree (forked workers, interpreters run
//! with `subprocess`), and a running process's later children, by being
//! their tracer: the kernel stops each new process before it runs and each
//! process right after an `execve`, which is where probes are attached for
//! it. Nothing else is asked of ptrace: no syscall stops, no register or
//! memory access.
//!
//! Tracees are taken with `PTRACE_SEIZE`, so job control keeps working: a
//! group-stop (Ctrl-Z, `SIGSTOP`) is reported as [`Stop::GroupStop`] and the
//! caller keeps the tracee stopped with [`listen`] until it is continued.
//! Every other stop is the caller's to resume with [`resume`], passing on
//! the signal of a [`Stop::Signal`], so the traced programs see exactly the
//! signals they would see untraced.
//!
//! When the tracer dies the kernel detaches every tracee and they run on
//! (unless [`Options::exit_kill`], used while a launched command is still
//! held before its probes are in place).
//!
//! ptrace requests must come from the thread that seized the tracee; the
//! functions here are meant for a single-threaded tracer.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::SysError;
use crate::sys;

/// Signals whose disposition a spawned child gets back to default before
/// exec: the tracer may ignore or block them, and exec keeps "ignored".
pub(crate) const CHILD_DEFAULT_SIGNALS: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGCHLD,
];

/// What the tracer wants to be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Stop new processes (`fork`, `vfork`, `clone`) and trace them too.
    /// Threads are always followed, so that an exec or a fork from any
    /// thread is seen.
    pub forks: bool,
    /// Kill the tracees if the tracer dies (`PTRACE_O_EXITKILL`).
    pub exit_kill: bool,
}

impl Options {
    fn bits(self) -> libc::c_int {
        let mut bits = libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_TRACECLONE;
        if self.forks {
            bits |= libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK;
        }
        if self.exit_kill {
            bits |= libc::PTRACE_O_EXITKILL;
        }
        bits
    }
}

/// How a new task was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkKind {
    /// `fork()` (or a `clone` that makes a process).
    Fork,
    /// `vfork()` or `posix_spawn`: the child shares the parent's memory
    /// until it executes or exits.
    Vfork,
    /// `clone()` without an exit signal: normally a thread.
    Clone,
}

/// Why a tracee stopped (or that it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `tid` created `child` (which starts stopped, see [`Stop::Started`]).
    Forked {
        /// The creating thread.
        tid: u32,
        /// The new task.
        child: u32,
        /// How.
        kind: ForkKind,
    },
    /// `tid` executed a new program and has not run it yet. A thread other
    /// than the leader that executes takes over the process id: `tid` is
    /// then the process id and `former` the thread id it had.
    Exec {
        /// The process (its pid after the exec).
        tid: u32,
        /// The thread id that called execve.
        former: u32,
    },
    /// A new tracee's first stop, or a stop asked for with [`interrupt`].
    Started {
        /// The tracee.
        tid: u32,
    },
    /// Job control stopped the tracee (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`,
    /// `SIGTTOU`): keep it stopped with [`listen`].
    GroupStop {
        /// The tracee.
        tid: u32,
        /// The stopping signal.
        signal: i32,
    },
    /// A signal is about to be delivered: [`resume`] with it to deliver it.
    Signal {
        /// The tracee.
        tid: u32,
        /// The signal.
        signal: i32,
    },
    /// The task is gone.
    Exited {
        /// The task.
        tid: u32,
        /// How it ended.
        status: crate::process::ExitStatus,
    },
}

/// What a child is started with.
#[derive(Debug)]
pub struct Command<'a> {
    /// The program: a path (`/usr/bin/python3`) or a name looked up in
    /// `PATH` as `execvp` would.
    pub program: &'a OsStr,
    /// `argv[1..]`.
    pub args: &'a [OsString],
    /// Environment variables set on top of the inherited environment.
    pub env: &'a [(OsString, OsString)],
    /// A terminal to give the child as its controlling terminal and its
    /// stdin, stdout and stderr (in a new session); `None` inherits pytap's.
    pub terminal: Option<BorrowedFd<'a>>,
}

/// `program` as `execvp` finds it: a name with a slash is a path, else the
/// first executable file of that name in `PATH`.
pub fn find_program(program: &OsStr) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return executable(path).then(|| path.to_path_buf());
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .find(|p| executable(p))
}

/// Why `program` cannot be run, as a shell would say it: not found, a
/// directory, or a file without permission to execute it.
fn not_runnable(program: &OsStr) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    let found: Option<std::path::PathBuf> = if program.as_bytes().contains(&b'/') {
        Some(Path::new(program).to_path_buf()).filter(|p| p.exists())
    } else {
        let search =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&search)
            .map(|dir| dir.join(program))
            .find(|p| p.exists())
    };
    match found.and_then(|p| std::fs::metadata(p).ok()) {
        None if program.as_bytes().contains(&b'/') => {
            Error::new(ErrorKind::NotFound, "No such file or directory".to_string())
        }
        None => Error::new(ErrorKind::NotFound, "command not found".to_string()),
        Some(m) if m.is_dir() => {
            Error::new(ErrorKind::PermissionDenied, "it is a directory".to_string())
        }
        Some(m) if m.permissions().mode() & 0o111 == 0 => Error::new(
            ErrorKind::PermissionDenied,
            "Permission denied (it is not executable)".to_string(),
        ),
        Some(_) => Error::new(ErrorKind::PermissionDenied, "Permission denied".to_string()),
    }
}

fn cstring(call: &'static str, s: &[u8]) -> Result<CString, SysError> {
    CString::new(s).map_err(|_| SysError::invalid_input(call, "argument contains a NUL byte"))
}

/// Starts `command` as a tracee: forked, held with `SIGSTOP`, seized with
/// `options`, then let run up to the stop right after its `execve` (or its
/// death, when the exec fails). Returns its pid; it sits in that exec stop
/// and runs nothing of the new program until [`resume`]d.
///
/// Between `fork` and `execve` the child makes only async-signal-safe
/// system calls on memory prepared before the fork: it empties its signal
/// mask, resets the dispositions pytap changes, takes the terminal if one
/// is given, stops itself and executes.
pub fn spawn(command: &Command<'_>, options: Options) -> Result<u32, SysError> {
    const CALL: &str = "execve";
    let path = find_program(command.program)
        .ok_or_else(|| SysError::new(CALL, not_runnable(command.program)))?;
    let path_c = cstring(CALL, path.as_os_str().as_bytes())?;
    let mut argv = vec![cstring(CALL, command.program.as_bytes())?];
    for a in command.args {
        argv.push(cstring(CALL, a.as_bytes())?);
    }
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !command.env.iter().any(|(o, _)| o == k))
        .collect();
    env.extend(command.env.iter().cloned());
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in &env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(cstring(CALL, &kv)?);
    }
    let default_signals = sys::sigset_of(&[]).map_err(|e| SysError::new("sigemptyset", e))?;
    let (err_read, err_write) = sys::pipe_cloexec().map_err(|e| SysError::new("pipe2", e))?;
    let child = sys::ChildExec {
        path: &path_c,
        argv: &argv,
        envp: &envp,
        empty_mask: &default_signals,
        default_signals: &CHILD_DEFAULT_SIGNALS,
        terminal: command.terminal.map(|t| t.as_raw_fd()),
        error_pipe: err_write.as_raw_fd(),
    };
    let pid = sys::fork_exec_stopped(&child).map_err(|e| SysError::new("fork", e))?;
    drop(err_write);
    match hold_until_exec(pid, options) {
        Ok(()) => Ok(pid as u32),
        Err(e) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            while let Ok(Some(status)) = sys::waitpid(pid, libc::__WALL) {
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    break;
                }
            }
            // The child's own report of why execve failed is the better error.
            let mut errno = [0u8; 4];
            match sys::read(std::os::fd::AsFd::as_fd(&err_read), &mut errno) {
                Ok(4) => Err(SysError::new(
                    CALL,
                    std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
                )),
                _ => Err(e),
            }
        }
    }
}

/// Seizes the freshly forked, self-stopped child and runs it to its exec stop.
fn hold_until_exec(pid: libc::pid_t, options: Options) -> Result<(), SysError> {
    match sys::waitpid(pid, libc::WUNTRACED) {
        Ok(Some(status)) if libc::WIFSTOPPED(status) => {}
        Ok(_) => {
            return Err(SysError::new(
                "waitpid",
                std::io::Error::other("the child exited before it could be traced"),
            ));
        }
        Err(e) => return Err(SysError::new("waitpid", e)),
    }
    sys::ptrace_seize(pid, options.bits()).map_err(|e| SysError::new("PTRACE_SEIZE", e))?;
    // Clear the job-control stop; the tracee stays in its ptrace stop until
    // resumed, and the SIGCONT is not passed on (nothing of the program
    // has run: no handler could want it).
    sys::kill(pid, libc::SIGCONT).map_err(|e| SysError::new("kill(SIGCONT)", e))?;
    let mut swallow_sigcont = true;
    loop {
        let status = match sys::waitpid(pid, libc::__WALL) {
            Ok(Some(status)) => status,
            Ok(None) => continue,
            Err(e) => return Err(SysError::new("waitpid", e)),
        };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Err(SysError::new(
                "execve",
                std::io::Error::other("the child exited before executing"),
            ));
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let event = (status >> 16) & 0xff;
        let sig = libc::WSTOPSIG(status);
        if event == libc::PTRACE_EVENT_EXEC {
            return Ok(());
        }
        let inject = match event {
            0 if sig == libc::SIGCONT && swallow_sigcont => {
                swallow_sigcont = false;
                0
            }
            0 if sig == libc::SIGSTOP => 0,
            0 => sig,
            _ => 0,
        };
        resume_raw(pid, inject)?;
    }
}

/// Seizes a running task (one thread: seize every thread of a process to
/// see what any of them does). It is not stopped.
pub fn seize(tid: u32, options: Options) -> Result<(), SysError> {
    let tid = to_pid("PTRACE_SEIZE", tid)?;
    sys::ptrace_seize(tid, options.bits()).map_err(|e| SysError::new("PTRACE_SEIZE", e))
}

/// Changes a stopped tracee's options (new tracees inherit them).
pub fn set_options(tid: u32, options: Options) -> Result<(), SysError> {
    let tid = to_pid("PTRACE_SETOPTIONS", tid)?;
    sys::ptrace(sys::Ptrace::SetOptions, tid, options.bits())
        .map_err(|e| SysError::new("PTRACE_SETOPTIONS", e))
}

/// Resumes a stopped tracee, delivering `signal` (0: none). A tracee that
/// died meanwhile (`ESRCH`) is not an error: its exit is reported next.
pub fn resume(tid: u32, signal: i32) -> Result<(), SysError> {
    resume_raw(to_pid("PTRACE_CONT", tid)?, signal)
}

fn resume_raw(tid: libc::pid_t, signal: i32) -> Result<(), SysError> {
    match sys::ptrace(sys::Ptrace::Cont, tid, signal) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(SysError::new("PTRACE_CONT", e)),
        _ => Ok(()),
    }
}

/// Leaves a tracee in its group-stop, still reporting when it is continued.
pub fn listen(tid: u32) -> Result<(), SysError> {
    let tid = to_pid("PTRACE_LISTEN", tid)?;
    match sys::ptrace(sys::Ptrace::Listen, tid, 0) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(SysError::new("PTRACE_LISTEN", e)),
        _ => Ok(()),
    }
}

/// Stops a running tracee (it reports [`Stop::Started`]), for detaching.
pub fn interrupt(tid: u32) -> Result<(), SysError> {
    let tid = to_pid("PTRACE_INTERRUPT", tid)?;
    match sys::ptrace(sys::Ptrace::Interrupt, tid, 0) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
            Err(SysError::new("PTRACE_INTERRUPT", e))
        }
        _ => Ok(()),
    }
}

/// Detaches a stopped tracee, delivering `signal` (0: none); it runs on
/// untraced.
pub fn detach(tid: u32, signal: i32) -> Result<(), SysError> {
    let tid = to_pid("PTRACE_DETACH", tid)?;
    match sys::ptrace(sys::Ptrace::Detach, tid, signal) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(SysError::new("PTRACE_DETACH", e)),
        _ => Ok(()),
    }
}

/// What [`wait_any`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// A tracee stopped, or a child died.
    Stop(Stop),
    /// Nothing now (without blocking).
    Nothing,
    /// No tracee and no child is left.
    NoneLeft,
}

/// The next stop of any tracee (or the death of any child): `None` when
/// there is none now (`block` false) or no tracee or child is left.
pub fn wait(block: bool) -> Result<Option<Stop>, SysError> {
    Ok(match wait_any(block)? {
        Waited::Stop(stop) => Some(stop),
        Waited::Nothing | Waited::NoneLeft => None,
    })
}

/// [`wait`], telling "nothing now" from "nothing left".
pub fn wait_any(block: bool) -> Result<Waited, SysError> {
    let flags = libc::__WALL | if block { 0 } else { libc::WNOHANG };
    loop {
        let (tid, status) = match sys::waitpid_any(flags) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Waited::Nothing),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(Waited::NoneLeft),
            Err(e) => return Err(SysError::new("waitpid", e)),
        };
        let tid_u = tid as u32;
        if let Some(status) = crate::process::ExitStatus::from_wait(status) {
            return Ok(Waited::Stop(Stop::Exited { tid: tid_u, status }));
        }
        if !libc::WIFSTOPPED(status) {
            // WIFCONTINUED: nothing to do.
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        let message = || {
            sys::ptrace_event_message(tid)
                .map(|m| m as u32)
                .map_err(|e| SysError::new("PTRACE_GETEVENTMSG", e))
        };
        return Ok(Waited::Stop(match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                Stop::Forked {
                    tid: tid_u,
                    child: message()?,
                    kind: match event {
                        libc::PTRACE_EVENT_FORK => ForkKind::Fork,
                        libc::PTRACE_EVENT_VFORK => ForkKind::Vfork,
                        _ => ForkKind::Clone,
                    },
                }
            }
            libc::PTRACE_EVENT_EXEC => Stop::Exec {
                tid: tid_u,
                former: message()?,
            },
            libc::PTRACE_EVENT_STOP
                if matches!(
                    signal,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) =>
            {
                Stop::GroupStop { tid: tid_u, signal }
            }
            0 => Stop::Signal { tid: tid_u, signal },
            _ => Stop::Started { tid: tid_u },
        }));
    }
}

fn to_pid(call: &'static str, pid: u32) -> Result<libc::pid_t, SysError> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(SysError::invalid_input(call, format!("bad pid {pid}"))),
    }
}
