//! The processes a run follows, and what their forks, execs and exits do
//! to the session's probes.
//!
//! - A launched command (`-c`, `--`), and with `--children` a running
//!   process, is followed as a tree with ptrace
//!   ([`pytap_sys::ptrace`]): the kernel stops every new process before it
//!   runs (a forked child gets a link filtered on its own pid, for the
//!   modules its parent has) and every process right after an `execve` (a
//!   Python with markers, of any version, gets that binary's own plan; the
//!   probes of what it ran before go). Nothing is ever attached unfiltered:
//!   a forked child inherits its parent's breakpoints and raised
//!   semaphores, and only a link of its own makes its events count.
//! - Processes by pid (`-p` alone) are watched through pidfds; an exec is
//!   learnt from the kernel's exec event (or, without it, by looking at
//!   `/proc/PID/exe` every 100 ms), after the fact: the new program is
//!   traced from then on, and a line says so.
//! - `--all` follows nothing: links without a pid filter catch every
//!   process of the binaries.
//!
//! The run ends when every followed process has exited. Whatever ends it,
//! [`Followed::release`] detaches from the tree, so the programs run on as
//! they would have untraced (and the kernel does the same if pytap dies).

mod tree;

pub use tree::LaunchError;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::process::{ExitStatus, pidfd_open};
use pytap_sys::ptrace::Options;

use super::plan::AttachTarget;
use super::session::Session;
use crate::error::TargetError;
use crate::notice;
use crate::process::module::Module;
use crate::process::{self, Wanted, proc};

/// How processes are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As a tree, with ptrace: forks and execs seen before they run.
    Tree,
    /// By pid: exits through pidfds, execs after the fact.
    Pids,
    /// Nothing to follow (`--all`).
    All,
}

/// One followed process.
#[derive(Debug)]
struct Proc {
    /// The executable's identity when last looked at (dev, inode).
    exe: Option<(u64, u64)>,
    /// Exit status once it exited.
    exited: Option<ExitStatus>,
    /// Readable when it exits (pid mode only).
    pidfd: Option<OwnedFd>,
}

/// The followed processes.
#[derive(Debug)]
pub struct Followed {
    mode: Mode,
    options: Options,
    /// What a followed process's CPython must have to be traced.
    wanted: Wanted,
    /// The capture directory where a launched process the in-process
    /// capture serves is marked so (`capture_mode::mark_served`).
    marks: Option<PathBuf>,
    procs: BTreeMap<u32, Proc>,
    /// Tree mode: every traced task (thread) and its process.
    tasks: HashMap<u32, u32>,
    /// The launched command's process, if pytap launched one.
    root: Option<u32>,
    root_status: Option<ExitStatus>,
    /// What the root ran last (for the summary).
    root_program: String,
    next_exec_check: Instant,
}

/// How often processes followed by pid are looked at for an exec the
/// kernel's exec event did not report (when the task programs could not
/// be attached).
const EXEC_CHECK_INTERVAL: Duration = Duration::from_millis(100);

fn exe_identity(pid: u32) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn exe_path(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What a process that just executed will run: its modules with python
/// markers (`None`: not a Python; let it run on), or why a Python it runs
/// cannot be traced.
pub fn exec_modules(pid: u32, wanted: Wanted) -> Result<Option<Vec<Module>>, TargetError> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| TargetError::proc_io(pid, "exe", e))?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let ld_path = proc::environ_var(pid, "LD_LIBRARY_PATH");
    match process::resolve_path_for(&exe, &root, ld_path.as_deref(), wanted) {
        Ok(module) => Ok(Some(vec![module])),
        Err(TargetError::NotAnInterpreter { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Learns the names of a process's threads as they are now.
fn learn_names(session: &Session, pid: u32) {
    session
        .tasks
        .borrow_mut()
        .learn_process(pid, proc::thread_names(pid));
}

/// What of process `pid`, about to run `modules` with the session's
/// function or line markers armed, may give its code names that are not
/// UTF-8, which CPython's probe code fails on ([`engine::hazard`]); `None`
/// with `--force`, without those markers, or when the in-process capture
/// serves those modules instead.
fn unsafe_names(pid: u32, modules: &[Module], session: &Session) -> Option<String> {
    let plan = &session.plan;
    // Its function markers armed: it has them and the agent does not serve
    // them instead.
    let armed = modules.iter().any(|m| {
        !m.sites_of(crate::cpython::Marker::FunctionEntry).is_empty()
            && !plan.capture_mode().serves_module(m)
    });
    // The requested markers: a process that starts later (a 3.9 child of a
    // 3.11 parent the agent serves) arms some the plan did not need yet.
    if !plan.guard_names
        || !crate::engine::hazard::arms_affected(plan.requested_markers())
        || !armed
    {
        return None;
    }
    crate::engine::hazard::non_utf8_path(pid)
}

/// What the followed processes' interpreters are given: what they must
/// have to be traced, and where a launched one the in-process capture
/// serves is marked so.
#[derive(Debug, Clone, Default)]
pub struct Serve {
    /// What a followed process's CPython must have.
    pub wanted: Wanted,
    /// The capture directory, when there is a capture.
    pub marks: Option<PathBuf>,
}

impl Followed {
    /// Tells the agent of process `pid`, held at its exec into `modules`,
    /// to serve it, with the events the plan leaves to it there.
    fn mark_served(&self, pid: u32, modules: &[Module], session: &Session) -> Result<()> {
        let Some(dir) = &self.marks else {
            return Ok(());
        };
        let served: std::collections::BTreeSet<crate::cpython::Marker> = session
            .plan
            .in_process
            .iter()
            .filter(|s| {
                modules
                    .iter()
                    .any(|m| s.module.dev == m.dev && s.module.inode == m.inode)
            })
            .flat_map(|s| s.markers.iter().copied())
            .collect();
        if !served.is_empty() {
            crate::engine::capture_mode::mark_served(dir, pid, &served).with_context(|| {
                format!(
                    "marking process {pid} for pytap's agent in {}",
                    dir.display()
                )
            })?;
        }
        Ok(())
    }

    fn new(mode: Mode, options: Options, wanted: Wanted) -> Followed {
        Followed {
            mode,
            options,
            wanted,
            marks: None,
            procs: BTreeMap::new(),
            tasks: HashMap::new(),
            root: None,
            root_status: None,
            root_program: String::new(),
            next_exec_check: Instant::now() + EXEC_CHECK_INTERVAL,
        }
    }

    /// How processes are followed.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Follows running processes by pid: a thread id is taken for its
    /// process (and a line says so); with `children`, each process (every
    /// thread of it) is seized so that the processes it starts from now on
    /// are traced too.
    pub fn pids(
        pids: &[u32],
        children: bool,
        wanted: Wanted,
        start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
    ) -> Result<(Session, Followed)> {
        let mut by_inode: BTreeMap<(u64, u64), AttachTarget> = BTreeMap::new();
        let mut resolved = Vec::new();
        for &asked in pids {
            let pid = match proc::ids_of(asked) {
                Some((tgid, _)) if tgid != asked && tgid != 0 => {
                    notice!("{asked} is a thread of process {tgid}; tracing process {tgid}");
                    tgid
                }
                _ => asked,
            };
            if resolved.contains(&pid) {
                continue;
            }
            resolved.push(pid);
            for module in process::discover_process_for(pid, wanted)?.modules {
                by_inode
                    .entry((module.dev, module.inode))
                    .or_insert_with(|| AttachTarget {
                        module: Arc::new(module),
                        pids: Vec::new(),
                    })
                    .pids
                    .push(pid);
            }
        }
        let options = Options {
            forks: true,
            exit_kill: false,
        };
        let mode = if children { Mode::Tree } else { Mode::Pids };
        let mut followed = Followed::new(mode, options, wanted);
        let session = start(by_inode.into_values().collect())?;
        for &pid in &resolved {
            followed.add_process(pid, None);
            learn_names(&session, pid);
            if children {
                followed.seize_process(pid)?;
            } else if let Some(p) = followed.procs.get_mut(&pid) {
                p.pidfd = pidfd_open(pid).ok();
            }
        }
        Ok((session, followed))
    }

    /// Follows nothing (`--all`).
    pub fn all() -> Followed {
        Followed::new(
            Mode::All,
            Options {
                forks: false,
                exit_kill: false,
            },
            Wanted::Markers,
        )
    }

    fn add_process(&mut self, pid: u32, exe: Option<(u64, u64)>) {
        self.procs.insert(
            pid,
            Proc {
                exe: exe.or_else(|| exe_identity(pid)),
                exited: None,
                pidfd: None,
            },
        );
        if self.mode == Mode::Tree {
            self.tasks.insert(pid, pid);
        }
    }

    fn set_root_program(&mut self, pid: u32) {
        if self.root == Some(pid) {
            self.root_program = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
        }
    }

    /// A followed process executed a new program (`exact`: seen before it
    /// ran, through ptrace). A Python with markers gets its own probes; the
    /// previous program's go.
    fn exec_seen(
        &mut self,
        pid: u32,
        former: u32,
        session: &mut Session,
        exact: bool,
    ) -> Option<String> {
        // Names change through the ring buffer (in order with the events
        // of the program before), not here.
        self.set_root_program(pid);
        let modules = exec_modules(pid, self.wanted);
        // Links on a module the process runs again follow its exec (they
        // are filtered by the task, whose memory is now the new program's),
        // unless another thread than the leader executed: the leader task
        // they were made for is gone.
        let same = match (&modules, former == pid) {
            (Ok(Some(modules)), true) => modules.as_slice(),
            _ => &[],
        };
        session.retire_process(pid, same);
        if let Ok(Some(modules)) = &modules
            && let Some(what) = unsafe_names(pid, modules, session)
        {
            notice!("{}", crate::engine::hazard::not_traced_message(pid, &what));
            return None;
        }
        match modules {
            Ok(Some(modules)) => match session.attach_process(pid, &modules) {
                Ok(notes) => {
                    for note in notes {
                        notice!("{note}");
                    }
                    if let Err(e) = self.mark_served(pid, &modules, session) {
                        notice!("process {pid}: {e:#}");
                    }
                    if !exact {
                        notice!(
                            "process {pid} executed {}: traced from now on with its own probes (what it ran before they were in place is not shown; --children follows an exec from its first instruction)",
                            exe_path(pid)
                        );
                    }
                    None
                }
                Err(e) => {
                    notice!(
                        "process {pid} executed {}, which cannot be traced: {e}",
                        exe_path(pid)
                    );
                    None
                }
            },
            Ok(None) => Some(exe_path(pid)),
            Err(e) => {
                notice!("process {pid} executed {}: not traced: {e}", exe_path(pid));
                Some(exe_path(pid))
            }
        }
    }

    /// A kernel exec event for `pid` (pid mode: after the fact).
    pub fn exec_event(&mut self, pid: u32, session: &mut Session) -> Option<super::consumer::End> {
        if self.mode != Mode::Pids {
            return None;
        }
        let proc = self.procs.get_mut(&pid)?;
        let now = exe_identity(pid);
        if proc.exited.is_some() || now.is_none() || now == proc.exe {
            return None;
        }
        proc.exe = now;
        let not_python = self.exec_seen(pid, pid, session, false)?;
        // No longer a Python: it leaves the run.
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = Some(ExitStatus::Code(0));
            p.pidfd = None;
        }
        session.unwatch_process(pid);
        if self.all_exited() {
            return Some(super::consumer::End::Exec {
                pid,
                exe: not_python,
            });
        }
        notice!(
            "process {pid} executed {not_python}, which is not a Python with markers: no longer traced"
        );
        None
    }

    /// Pid mode without the kernel's exec events: looks at each process's
    /// executable every [`EXEC_CHECK_INTERVAL`].
    pub fn poll_execs(&mut self, session: &mut Session) -> Option<super::consumer::End> {
        if self.mode != Mode::Pids || Instant::now() < self.next_exec_check {
            return None;
        }
        self.next_exec_check = Instant::now() + EXEC_CHECK_INTERVAL;
        let pids: Vec<u32> = self.procs.keys().copied().collect();
        pids.into_iter()
            .find_map(|pid| self.exec_event(pid, session))
    }

    /// The pidfds to watch (pid mode), with their process.
    pub fn pidfds(&self) -> Vec<(u32, i32)> {
        self.procs
            .iter()
            .filter_map(|(&pid, p)| p.pidfd.as_ref().map(|fd| (pid, fd.as_raw_fd())))
            .collect()
    }

    /// A pidfd said `pid` exited (pid mode).
    pub fn pid_exited(&mut self, pid: u32, session: &mut Session) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited.get_or_insert(ExitStatus::Code(0));
            p.pidfd = None;
        }
        session.retire_process(pid, &[]);
        session.unwatch_process(pid);
    }

    /// Whether every followed process has exited (never, for `--all`).
    pub fn all_exited(&self) -> bool {
        self.mode != Mode::All && self.procs.values().all(|p| p.exited.is_some())
    }

    /// How many processes were followed.
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    /// The launched command: what it ran last and its exit status, once it
    /// exited.
    pub fn root(&self) -> Option<(&str, Option<ExitStatus>)> {
        self.root
            .map(|_| (self.root_program.as_str(), self.root_status))
    }

    /// The launched command's pid while it has not exited.
    pub fn root_running(&self) -> Option<u32> {
        self.root.filter(|_| self.root_status.is_none())
    }
}
