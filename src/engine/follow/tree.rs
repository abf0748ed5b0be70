//! Following a tree with ptrace: launching a command held at its exec
//! until a Python with markers runs, the stops of every traced task (new
//! tasks, execs, signals, group-stops, exits) and what they do to the
//! session's probes, and letting the tree go at the end.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::poll::Poller;
use pytap_sys::process::ExitStatus;
use pytap_sys::ptrace::{self, ForkKind, Options, Stop, Waited};
use pytap_sys::pty::Pty;
use pytap_sys::signal::SignalFd;

use super::{Followed, Mode, exe_identity, exe_path, exec_modules, learn_names};
use crate::engine::plan::AttachTarget;
use crate::engine::session::Session;
use crate::notice;
use crate::process::proc;

/// Why a launched command could not be traced.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The command could not be started.
    #[error("cannot run {program}: {}", why.source)]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Why (the failed call's error, as a shell would say it).
        why: pytap_sys::SysError,
    },
    /// Every process of the command exited before one ran a Python with markers.
    #[error(
        "{program} {status} without running a Python that has markers (programs it ran: {ran})"
    )]
    NoPython {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        status: ExitStatus,
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
    /// A stop signal came before any process of the command ran a Python
    /// with markers: pytap let the command go and stopped.
    #[error("stopped by {signal} before {program} ran a Python with markers; it runs on, untraced")]
    Stopped {
        /// `argv[0]`.
        program: String,
        /// The signal's name.
        signal: String,
    },
}

/// What waits for the held tree's next stop: the tracees' stops, and the
/// stop signals that end the wait early (both wake the poller).
struct StopWaiter<'a> {
    signals: &'a SignalFd,
    poller: Poller,
}

impl<'a> StopWaiter<'a> {
    fn new(signals: &'a SignalFd) -> Result<StopWaiter<'a>> {
        let poller = Poller::new()?;
        poller.add(signals.raw_fd(), 0)?;
        Ok(StopWaiter { signals, poller })
    }

    /// The next stop of the tree, or the stop signal that came first (its
    /// number). `Ok(None)`: no tracee is left.
    fn next(&self) -> Result<Result<Option<Stop>, i32>> {
        loop {
            match ptrace::wait_any(false)? {
                Waited::Stop(stop) => return Ok(Ok(Some(stop))),
                Waited::NoneLeft => return Ok(Ok(None)),
                Waited::Nothing => {}
            }
            // SIGCHLD (a tracee stopped) and the stop signals both arrive here.
            self.poller.wait(Some(Duration::from_millis(100)))?;
            while let Some(sig) = self.signals.read()? {
                if !matches!(
                    sig,
                    pytap_sys::signal::SIGCHLD | pytap_sys::signal::SIGWINCH
                ) {
                    return Ok(Err(sig));
                }
            }
        }
    }
}

/// How holding a launched tree until a Python runs ended.
enum Held {
    /// A Python with markers runs in this task, still held; the session
    /// has its probes (boxed: the other variants are small).
    Python(Box<Session>, u32),
    /// A stop signal came first: the tree was let go.
    Released(anyhow::Error),
    /// The tree cannot be traced; it is still held, to be killed.
    Failed(anyhow::Error),
}

impl Followed {
    /// Launches `argv` held at its first exec and follows it (and, with
    /// `children`, every process it starts) until one of them executes a
    /// Python with markers; `start` then makes the session for that
    /// Python's modules, before it runs an instruction. A Python pytap
    /// cannot trace (no markers) is an error, and the held tree is killed.
    pub fn launch(
        argv: &[OsString],
        children: bool,
        terminal: Option<&Pty>,
        signals: &SignalFd,
        env: &[(OsString, OsString)],
        serve: super::Serve,
        start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
    ) -> Result<(Session, Followed)> {
        let waiter = StopWaiter::new(signals)?;
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
            env,
            terminal: terminal.map(|t| std::os::fd::AsFd::as_fd(&t.slave)),
        };
        let pid = ptrace::spawn(&command, options).map_err(|why| LaunchError::Spawn {
            program: program.clone(),
            why,
        })?;
        let mut followed = Followed::new(Mode::Tree, options, serve.wanted);
        followed.marks = serve.marks;
        followed.root = Some(pid);
        followed.add_process(pid, None);
        match followed.hold_until_python(pid, &program, &waiter, start) {
            Held::Python(mut session, pid) => {
                followed.let_run(&mut session, pid)?;
                Ok((*session, followed))
            }
            Held::Released(e) => Err(e),
            Held::Failed(e) => {
                followed.kill_all();
                Err(e)
            }
        }
    }

    /// Follows the launched tree (root `pid`, held at its exec) stop by
    /// stop until one of its tasks executes a Python with markers, and
    /// makes the session for it with `start`.
    fn hold_until_python(
        &mut self,
        pid: u32,
        program: &str,
        waiter: &StopWaiter<'_>,
        start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
    ) -> Held {
        let mut ran = Vec::new();
        let mut stop = Some(Stop::Exec {
            tid: pid,
            former: pid,
        });
        loop {
            let next = match stop.take() {
                Some(s) => s,
                None => match waiter.next() {
                    Ok(Ok(Some(s))) => s,
                    Ok(Err(sig)) => {
                        // Let the held tree go, as a stop signal does later on.
                        self.release();
                        return Held::Released(
                            LaunchError::Stopped {
                                program: program.to_string(),
                                signal: pytap_sys::signal::name(sig),
                            }
                            .into(),
                        );
                    }
                    Ok(Ok(None)) => {
                        return Held::Failed(
                            LaunchError::NoPython {
                                program: program.to_string(),
                                status: self.root_status.unwrap_or(ExitStatus::Code(0)),
                                ran: ran.join(", "),
                            }
                            .into(),
                        );
                    }
                    Err(e) => return Held::Failed(e.context(format!("following {program}"))),
                },
            };
            let Stop::Exec { tid, former } = next else {
                // Before any probe exists, forks and exits only need bookkeeping.
                self.handle_untraced(next);
                continue;
            };
            self.executed_task(tid, former);
            ran.push(exe_path(tid));
            match exec_modules(tid, self.wanted) {
                Ok(Some(modules)) => {
                    let targets = modules
                        .iter()
                        .map(|m| AttachTarget {
                            module: Arc::new(m.clone()),
                            pids: vec![tid],
                        })
                        .collect();
                    return match start(targets) {
                        Ok(session) => {
                            if let Err(e) = self.mark_served(tid, &modules, &session) {
                                return Held::Failed(e);
                            }
                            learn_names(&session, tid);
                            self.set_root_program(tid);
                            Held::Python(Box::new(session), tid)
                        }
                        Err(e) => Held::Failed(e),
                    };
                }
                Ok(None) => {
                    self.set_root_program(tid);
                    let _ = ptrace::resume(tid, 0);
                }
                Err(e) => return Held::Failed(e.into()),
            }
        }
    }

    /// The probes are in: the tree from now on survives pytap's death,
    /// every process is watched, and task `pid` (held at its exec into the
    /// Python) runs.
    fn let_run(&mut self, session: &mut Session, pid: u32) -> Result<()> {
        self.options.exit_kill = false;
        for &tid in self.tasks.keys() {
            let _ = ptrace::set_options(tid, self.options);
        }
        for &p in self.procs.keys() {
            session.watch_process(p);
        }
        let _ = ptrace::resume(pid, 0);
        self.service(session)
    }

    /// Seizes every thread of a running process (again until no new one
    /// appears: threads created meanwhile by a thread not yet seized).
    pub(super) fn seize_process(&mut self, pid: u32) -> Result<()> {
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
            Stop::Exited { tid, status } => {
                self.task_exited(tid, status);
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

    fn task_exited(&mut self, tid: u32, status: ExitStatus) -> Option<u32> {
        let pid = self.tasks.remove(&tid).unwrap_or(tid);
        if pid != tid {
            return None;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = Some(status);
        }
        if self.root == Some(pid) {
            self.root_status = Some(status);
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
                self.exec_seen(tid, former, session, true);
                let _ = ptrace::resume(tid, 0);
            }
            Stop::Exited { tid, status } => {
                if let Some(pid) = self.task_exited(tid, status) {
                    session.retire_process(pid, &[]);
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
                    Stop::Exited { tid, status } => {
                        self.task_exited(tid, status);
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
