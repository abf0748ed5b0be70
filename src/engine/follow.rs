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

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::process::pidfd_open;
use pytap_sys::ptrace::{self, ForkKind, Options, Stop};
use pytap_sys::pty::Pty;

use super::plan::AttachTarget;
use super::session::Session;
use crate::error::TargetError;
use crate::module::Module;
use crate::notice;
use crate::target::{self, proc};

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
    exited: Option<i32>,
    /// Readable when it exits (pid mode only).
    pidfd: Option<OwnedFd>,
}

/// Why a launched command could not be traced.
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
    /// Every process of the command exited before one ran a Python with markers.
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
    /// ptrace failed while following the tree.
    #[error("following {program}: {source}")]
    Follow {
        /// `argv[0]`.
        program: String,
        /// Why.
        source: pytap_sys::SysError,
    },
}

/// The followed processes.
#[derive(Debug)]
pub struct Followed {
    mode: Mode,
    options: Options,
    procs: BTreeMap<u32, Proc>,
    /// Tree mode: every traced task (thread) and its process.
    tasks: HashMap<u32, u32>,
    /// The launched command's process, if pytap launched one.
    root: Option<u32>,
    root_status: Option<i32>,
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
pub fn exec_modules(pid: u32) -> Result<Option<Vec<Module>>, TargetError> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| TargetError::proc_io(pid, "exe", e))?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let ld_path = proc::environ_var(pid, "LD_LIBRARY_PATH");
    match target::resolve_path(&exe, &root, ld_path.as_deref()) {
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

impl Followed {
    fn new(mode: Mode, options: Options) -> Followed {
        Followed {
            mode,
            options,
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

    /// Launches `argv` held at its first exec and follows it (and, with
    /// `children`, every process it starts) until one of them executes a
    /// Python with markers; `start` then makes the session for that
    /// Python's modules, before it runs an instruction. A Python pytap
    /// cannot trace (no markers) is an error, and the held tree is killed.
    pub fn launch(
        argv: &[OsString],
        children: bool,
        terminal: Option<&Pty>,
        start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
    ) -> Result<(Session, Followed)> {
        let program = argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Held tracees die with pytap until the probes are in place.
        let options = Options {
            forks: children,
            exit_kill: true,
        };
        let command = ptrace::Command {
            program: &argv[0],
            args: &argv[1..],
            env: &[],
            terminal: terminal.map(|t| std::os::fd::AsFd::as_fd(&t.slave)),
        };
        let pid = ptrace::spawn(&command, options).map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
        let mut followed = Followed::new(Mode::Tree, options);
        followed.root = Some(pid);
        followed.add_process(pid, None);
        let mut ran = Vec::new();
        let mut stop = Some(Stop::Exec {
            tid: pid,
            former: pid,
        });
        let result = loop {
            let next = match stop.take() {
                Some(s) => s,
                None => match ptrace::wait(true) {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        break Err(LaunchError::NoPython {
                            program: program.clone(),
                            status: followed.root_status.unwrap_or(0),
                            ran: ran.join(", "),
                        }
                        .into());
                    }
                    Err(source) => {
                        break Err(LaunchError::Follow {
                            program: program.clone(),
                            source,
                        }
                        .into());
                    }
                },
            };
            if let Stop::Exec { tid, former } = next {
                followed.executed_task(tid, former);
                ran.push(exe_path(tid));
                match exec_modules(tid) {
                    Ok(Some(modules)) => {
                        let targets = modules
                            .iter()
                            .map(|m| AttachTarget {
                                module: Arc::new(m.clone()),
                                pids: vec![tid],
                            })
                            .collect();
                        match start(targets) {
                            Ok(session) => {
                                learn_names(&session, tid);
                                followed.set_root_program(tid);
                                break Ok((session, tid));
                            }
                            Err(e) => break Err(e),
                        }
                    }
                    Ok(None) => {
                        followed.set_root_program(tid);
                        let _ = ptrace::resume(tid, 0);
                    }
                    Err(e) => break Err(e.into()),
                }
                continue;
            }
            // Before any probe exists, forks and exits only need bookkeeping.
            followed.handle_untraced(next);
        };
        match result {
            Ok((mut session, pid)) => {
                // From now on the tree survives pytap's death.
                followed.options.exit_kill = false;
                for &tid in followed.tasks.keys() {
                    let _ = ptrace::set_options(tid, followed.options);
                }
                for &p in followed.procs.keys() {
                    session.watch_process(p);
                }
                let _ = ptrace::resume(pid, 0);
                followed.service(&mut session)?;
                Ok((session, followed))
            }
            Err(e) => {
                followed.kill_all();
                Err(e)
            }
        }
    }

    /// Follows running processes by pid: a thread id is taken for its
    /// process (and a line says so); with `children`, each process (every
    /// thread of it) is seized so that the processes it starts from now on
    /// are traced too.
    pub fn pids(
        pids: &[u32],
        children: bool,
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
            for module in target::discover_process(pid)?.modules {
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
        let mut followed = Followed::new(mode, options);
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
        )
    }

    /// Seizes every thread of a running process (again until no new one
    /// appears: threads created meanwhile by a thread not yet seized).
    fn seize_process(&mut self, pid: u32) -> Result<()> {
        let mut seized = std::collections::HashSet::new();
        loop {
            let new: Vec<u32> = proc::thread_ids(pid)
                .into_iter()
                .filter(|t| !seized.contains(t))
                .collect();
            if new.is_empty() {
                return Ok(());
            }
            for tid in new {
                seized.insert(tid);
                match ptrace::seize(tid, self.options) {
                    Ok(()) => {
                        self.tasks.insert(tid, pid);
                    }
                    // A thread that ended meanwhile.
                    Err(e) if e.errno() == Some(3) => {}
                    Err(e) if e.errno() == Some(1) => {
                        return Err(anyhow::anyhow!(
                            "--children: cannot trace process {pid}'s children: another program (a debugger, strace) is already tracing it"
                        ));
                    }
                    Err(e) => return Err(e).context("--children"),
                }
            }
        }
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

    /// A thread other than the leader that executes takes over the pid.
    fn executed_task(&mut self, pid: u32, former: u32) {
        if former != pid {
            self.tasks.remove(&former);
        }
        self.tasks.retain(|&t, p| *p != pid || t == pid);
        self.tasks.insert(pid, pid);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exe = exe_identity(pid);
        }
    }

    /// The stops that need no probe decision, also used before the session
    /// exists: new tasks, signals, group-stops and exits.
    fn handle_untraced(&mut self, stop: Stop) {
        match stop {
            Stop::Forked { tid, child, kind } => {
                let parent = self.tasks.get(&tid).copied().unwrap_or(tid);
                self.new_task(child, parent, kind != ForkKind::Clone);
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Started { tid } => {
                if !self.tasks.contains_key(&tid) {
                    self.adopt(tid);
                }
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Signal { tid, signal } => {
                let _ = ptrace::resume(tid, signal);
            }
            Stop::GroupStop { tid, .. } => {
                let _ = ptrace::listen(tid);
            }
            Stop::Exec { tid, former } => {
                self.executed_task(tid, former);
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Exited { tid, code } => {
                self.task_exited(tid, code);
            }
        }
    }

    /// Registers a task created by `parent`'s `fork`/`clone`: a process of
    /// its own, or a thread of `parent`'s process.
    fn new_task(&mut self, child: u32, parent: u32, process: bool) {
        let process = process || proc::ids_of(child).is_some_and(|(tgid, _)| tgid == child);
        if process {
            if !self.procs.contains_key(&child) {
                self.add_process(child, None);
            }
        } else {
            self.tasks.insert(child, parent);
        }
    }

    /// A task whose first stop came before its creator's fork event.
    fn adopt(&mut self, tid: u32) {
        match proc::ids_of(tid) {
            Some((tgid, _)) if tgid != tid => {
                self.tasks.insert(tid, tgid);
            }
            _ => self.add_process(tid, None),
        }
    }

    fn task_exited(&mut self, tid: u32, code: i32) -> Option<u32> {
        let pid = self.tasks.remove(&tid).unwrap_or(tid);
        if pid != tid {
            return None;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = Some(code);
        }
        if self.root == Some(pid) {
            self.root_status = Some(code);
        }
        Some(pid)
    }

    /// Handles every pending ptrace stop (after a `SIGCHLD`).
    pub fn service(&mut self, session: &mut Session) -> Result<()> {
        if self.mode != Mode::Tree {
            return Ok(());
        }
        while let Some(stop) = ptrace::wait(false).context("following the traced processes")? {
            self.handle(stop, session)?;
        }
        Ok(())
    }

    fn handle(&mut self, stop: Stop, session: &mut Session) -> Result<()> {
        match stop {
            Stop::Forked { tid, child, kind } => {
                let parent = self.tasks.get(&tid).copied().unwrap_or(tid);
                let known = self.tasks.contains_key(&child);
                self.new_task(child, parent, kind != ForkKind::Clone);
                if !known && self.procs.contains_key(&child) {
                    self.forked(child, parent, kind, session)?;
                }
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Started { tid } if !self.tasks.contains_key(&tid) => {
                // The first stop of a task whose creator's fork event has
                // not been seen yet (the order is not fixed): its process
                // and parent come from /proc, and a process gets its
                // probes now, before it runs.
                match proc::ids_of(tid) {
                    Some((tgid, _)) if tgid != tid => {
                        self.tasks.insert(tid, tgid);
                    }
                    Some((_, parent)) => {
                        self.add_process(tid, None);
                        self.forked(tid, parent, ForkKind::Fork, session)?;
                    }
                    None => {}
                }
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Exec { tid, former } => {
                self.executed_task(tid, former);
                self.exec_seen(tid, session, true);
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Exited { tid, code } => {
                if let Some(pid) = self.task_exited(tid, code) {
                    session.detach_process(pid);
                    session.unwatch_process(pid);
                }
            }
            other => self.handle_untraced(other),
        }
        Ok(())
    }

    /// A forked child: probes of its own on its parent's modules, before it
    /// runs. A vfork child shares its parent's memory until it executes or
    /// exits, so it gets probes only from its exec on.
    fn forked(
        &mut self,
        child: u32,
        parent: u32,
        kind: ForkKind,
        session: &mut Session,
    ) -> Result<()> {
        session.watch_process(child);
        learn_names(session, child);
        let modules = session.modules_of(parent);
        if kind != ForkKind::Vfork && !modules.is_empty() {
            for note in session.attach_process(child, &modules)? {
                notice!("{note}");
            }
        }
        Ok(())
    }

    /// A followed process executed a new program (`exact`: seen before it
    /// ran, through ptrace). A Python with markers gets its own probes; the
    /// previous program's go.
    fn exec_seen(&mut self, pid: u32, session: &mut Session, exact: bool) -> Option<String> {
        // Names change through the ring buffer (in order with the events
        // of the program before), not here.
        session.detach_process(pid);
        self.set_root_program(pid);
        match exec_modules(pid) {
            Ok(Some(modules)) => match session.attach_process(pid, &modules) {
                Ok(notes) => {
                    for note in notes {
                        notice!("{note}");
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
    pub fn exec_event(&mut self, pid: u32, session: &mut Session) -> Option<super::run::End> {
        if self.mode != Mode::Pids {
            return None;
        }
        let proc = self.procs.get_mut(&pid)?;
        let now = exe_identity(pid);
        if proc.exited.is_some() || now.is_none() || now == proc.exe {
            return None;
        }
        proc.exe = now;
        let not_python = self.exec_seen(pid, session, false)?;
        // No longer a Python: it leaves the run.
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = Some(0);
            p.pidfd = None;
        }
        session.unwatch_process(pid);
        if self.all_exited() {
            return Some(super::run::End::Exec {
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
    pub fn poll_execs(&mut self, session: &mut Session) -> Option<super::run::End> {
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
            p.exited.get_or_insert(0);
            p.pidfd = None;
        }
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
    pub fn root(&self) -> Option<(&str, Option<i32>)> {
        self.root
            .map(|_| (self.root_program.as_str(), self.root_status))
    }

    /// The launched command's pid while it has not exited.
    pub fn root_running(&self) -> Option<u32> {
        self.root.filter(|_| self.root_status.is_none())
    }

    /// Detaches from every traced task, delivering the signals they were
    /// stopped for, so they run on untraced (the kernel would do it when
    /// pytap exits; doing it now keeps a still-running pytap from holding
    /// them). Gives up after a second.
    pub fn release(&mut self) {
        if self.mode != Mode::Tree || self.tasks.is_empty() {
            return;
        }
        for &tid in self.tasks.keys() {
            let _ = ptrace::interrupt(tid);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.tasks.is_empty() && Instant::now() < deadline {
            match ptrace::wait(false) {
                Ok(Some(stop)) => match stop {
                    Stop::Exited { tid, code } => {
                        self.task_exited(tid, code);
                    }
                    Stop::Signal { tid, signal } => {
                        let _ = ptrace::detach(tid, signal);
                        self.tasks.remove(&tid);
                    }
                    Stop::Forked { tid, child, .. } => {
                        // The child stops on its own; detach it when it does.
                        self.tasks.entry(child).or_insert(child);
                        let _ = ptrace::detach(tid, 0);
                        self.tasks.remove(&tid);
                    }
                    Stop::Exec { tid, .. }
                    | Stop::Started { tid }
                    | Stop::GroupStop { tid, .. } => {
                        let _ = ptrace::detach(tid, 0);
                        self.tasks.remove(&tid);
                    }
                },
                Ok(None) => {
                    // Tasks that are gone will never report again.
                    self.tasks
                        .retain(|t, _| std::path::Path::new(&format!("/proc/{t}")).exists());
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => break,
            }
        }
        self.tasks.clear();
    }

    /// Kills every process of a tree that never got its probes.
    fn kill_all(&mut self) {
        for &pid in self.procs.keys() {
            let _ = pytap_sys::process::kill(pid, pytap_sys::signal::SIGKILL);
        }
        while let Ok(Some(_)) = ptrace::wait(true) {}
    }
}
