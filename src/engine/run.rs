//! One path for every tracing tool: find the targets, attach, stream events
//! to a [`Consumer`] until the targets exit or the user stops, drain, report.
//!
//! Targets come in three kinds ([`TargetSpec`]): processes by pid, a
//! command pytap launches (held at `execve` until the probes are in place,
//! see [`crate::target::launch`]), or every process running a binary with
//! markers. Filtering by pid happens in the kernel (the uprobe_multi or
//! perf pid filter).
//!
//! The loop does not ask to be woken per event: records are submitted with
//! `BPF_RB_NO_WAKEUP` and the loop polls the ring buffer every
//! [`POLL_INTERVAL`], which is what keeps the per-event cost close to the
//! kernel's own uprobe trap.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::poll::Poller;
use pytap_sys::process::{ChildProcess, pidfd_open};
use pytap_sys::signal::SignalFd;

use super::decode::{self, Event};
use super::plan::AttachTarget;
use super::session::Session;
use crate::module::Module;
use crate::target::launch::{self, Launched};
use crate::target::{self, PythonProcess};

/// How often the ring buffer is drained when no wakeup comes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How often followed processes are checked for an `execve`.
const EXEC_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Running processes.
    Pids(Vec<u32>),
    /// A command to launch (argv).
    Command(Vec<OsString>),
    /// Every process running one of `binaries`, or, when it is empty, any
    /// binary with python markers that a running process maps now.
    All {
        /// Interpreters or libpythons to attach to system-wide.
        binaries: Vec<PathBuf>,
    },
}

/// What is being followed while the session runs.
#[derive(Debug)]
pub enum Followed {
    /// A child pytap launched, and the program it runs.
    Child(ChildProcess, String),
    /// Processes attached by pid.
    Pids(Vec<u32>),
    /// Everything; runs until interrupted.
    All,
}

/// A session attached to its targets.
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub session: Session,
    /// Who to follow.
    pub followed: Followed,
}

/// Finds the targets and attaches: `start` turns the attach targets into a
/// live session (the tool plans its handler and maps there).
pub fn attach(
    spec: &TargetSpec,
    start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
) -> Result<Attached> {
    match spec {
        TargetSpec::Pids(pids) => {
            let mut by_inode: BTreeMap<(u64, u64), AttachTarget> = BTreeMap::new();
            for &pid in pids {
                let PythonProcess { modules, .. } = target::discover_process(pid)?;
                for module in modules {
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
            let session = start(by_inode.into_values().collect())?;
            Ok(Attached {
                session,
                followed: Followed::Pids(pids.clone()),
            })
        }
        TargetSpec::Command(argv) => {
            let mut session = None;
            let launched = launch::launch(argv, &mut |pid, modules: &[Module]| -> Result<()> {
                let targets = modules
                    .iter()
                    .map(|m| AttachTarget {
                        module: Arc::new(m.clone()),
                        pids: vec![pid],
                    })
                    .collect();
                session = Some(start(targets)?);
                Ok(())
            })?;
            let Launched { child, modules } = launched?;
            let program = modules
                .first()
                .filter(|m| m.is_executable)
                .map_or_else(|| argv[0].to_string_lossy().into_owned(), Module::file_name);
            Ok(Attached {
                session: session.expect("attach callback ran"),
                followed: Followed::Child(child, program),
            })
        }
        TargetSpec::All { binaries } => {
            let mut by_inode: BTreeMap<(u64, u64), Module> = BTreeMap::new();
            let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
            for path in binaries {
                let module = target::resolve_path(path, "/".as_ref(), ld_path.as_deref())?;
                by_inode.insert((module.dev, module.inode), module);
            }
            if binaries.is_empty() {
                for p in target::discover_all()? {
                    for m in p.modules {
                        by_inode.entry((m.dev, m.inode)).or_insert(m);
                    }
                }
                anyhow::ensure!(
                    !by_inode.is_empty(),
                    "no running process has python markers; name the interpreter with --binary PATH \
                     to trace the processes that start it later"
                );
            }
            let targets = by_inode
                .into_values()
                .map(|m| AttachTarget {
                    module: Arc::new(m),
                    pids: Vec::new(),
                })
                .collect();
            Ok(Attached {
                session: start(targets)?,
                followed: Followed::All,
            })
        }
    }
}

/// Receives the events of a run.
pub trait Consumer {
    /// One event, in ring-buffer order (per thread, the order they happened).
    fn event(&mut self, event: &Event<'_>, session: &Session) -> Result<()>;

    /// Called every [`LoopOptions::tick`], and once more at the end.
    fn tick(&mut self, _session: &Session) -> Result<()> {
        Ok(())
    }

    /// Strings the consumer had to read from the binary (for the summary).
    fn recovered(&self) -> u64 {
        0
    }

    /// Called once when the run ends, after the last events and tick.
    fn finish(&mut self, _session: &Session) -> Result<()> {
        Ok(())
    }

    /// Whether the consumer wants the run to end (a live view's `q`).
    fn wants_stop(&self) -> bool {
        false
    }
}

/// Loop settings.
#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Call [`Consumer::tick`] this often.
    pub tick: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every followed process exited; the launched child's status if any.
    Exited {
        /// Exit status of the launched child (128+signal for a signal).
        status: Option<i32>,
    },
    /// A signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) asked pytap to stop.
    Signal(i32),
    /// `--duration` elapsed.
    Duration,
    /// The user quit a live view.
    Quit,
    /// A followed process executed a program that is not the traced Python.
    Exec {
        /// The process.
        pid: u32,
        /// What it executed.
        exe: String,
    },
}

/// What a run saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events delivered to the consumer.
    pub events: u64,
    /// Events the ring buffer had no room for.
    pub lost: u64,
    /// Records that did not decode (none expected; counted, never hidden).
    pub malformed: u64,
    /// Why it ended.
    pub end: End,
    /// Wall time from attach to the end.
    pub elapsed: Duration,
}

const TOKEN_SIGNAL: u64 = 1;
const TOKEN_PID: u64 = 1 << 32;

/// A followed process: its pid, an fd readable when it exits, its executable.
struct Watched {
    pid: u32,
    pidfd: OwnedFd,
    exe: Option<(u64, u64)>,
    exited: bool,
}

fn exe_identity(pid: u32) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Runs until the targets exit, a signal arrives or the duration elapses.
pub fn run(
    attached: &mut Attached,
    signals: &SignalFd,
    consumer: &mut dyn Consumer,
    options: &LoopOptions,
) -> Result<Outcome> {
    let started = Instant::now();
    let poller = Poller::new().context("epoll")?;
    poller
        .add(signals.raw_fd(), TOKEN_SIGNAL)
        .context("epoll")?;
    let pids = match &attached.followed {
        Followed::Child(child, _) => vec![child.pid()],
        Followed::Pids(pids) => pids.clone(),
        Followed::All => Vec::new(),
    };
    let mut watched = Vec::new();
    for (i, pid) in pids.into_iter().enumerate() {
        let exe = exe_identity(pid);
        match pidfd_open(pid) {
            Ok(pidfd) => {
                poller
                    .add(pidfd.as_raw_fd(), TOKEN_PID + i as u64)
                    .context("epoll")?;
                watched.push(Watched {
                    pid,
                    pidfd,
                    exe,
                    exited: false,
                });
            }
            // Gone already (ESRCH): whatever it produced is in the ring.
            Err(_) => {
                let dead = pidfd_open(std::process::id()).context("pidfd_open")?;
                watched.push(Watched {
                    pid,
                    pidfd: dead,
                    exe,
                    exited: true,
                });
            }
        }
    }
    let mut stats = Stats::default();
    let mut next_tick = options.tick.map(|t| started + t);
    let mut next_exec_check = started + EXEC_CHECK_INTERVAL;
    let deadline = options.duration.map(|d| started + d);
    let end = loop {
        let now = Instant::now();
        let mut timeout = POLL_INTERVAL;
        for at in [next_tick, deadline].into_iter().flatten() {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        let ready = poller.wait(Some(timeout)).context("epoll_wait")?;
        drain(attached, consumer, &mut stats)?;
        let mut end = None;
        for token in ready {
            if token == TOKEN_SIGNAL {
                while let Some(sig) = signals.read().context("signalfd")? {
                    end.get_or_insert(End::Signal(sig));
                }
            } else if let Some(w) = token
                .checked_sub(TOKEN_PID)
                .and_then(|i| watched.get_mut(i as usize))
            {
                w.exited = true;
                let _ = poller.remove(w.pidfd.as_raw_fd());
            }
        }
        if end.is_none() && !watched.is_empty() && watched.iter().all(|w| w.exited) {
            end = Some(End::Exited { status: None });
        }
        let now = Instant::now();
        if end.is_none() && now >= next_exec_check {
            next_exec_check = now + EXEC_CHECK_INTERVAL;
            end = check_execs(&mut watched, &attached.session);
        }
        if let Some(at) = next_tick.filter(|at| now >= *at) {
            next_tick = options.tick.map(|t| at + t);
            consumer.tick(&attached.session)?;
            if consumer.wants_stop() {
                end.get_or_insert(End::Quit);
            }
        }
        if end.is_none() && deadline.is_some_and(|d| now >= d) {
            end = Some(End::Duration);
        }
        if let Some(end) = end {
            break end;
        }
    };
    // Detach before the final drain: a target that is still running would
    // otherwise keep the ring buffer from ever emptying.
    attached.session.detach();
    drain_to_empty(attached, consumer, &mut stats)?;
    let end = match (end, &mut attached.followed) {
        (End::Exited { .. }, Followed::Child(child, _)) => End::Exited {
            status: child.wait().ok(),
        },
        (end, _) => end,
    };
    if options.tick.is_some() {
        consumer.tick(&attached.session)?;
    }
    consumer.finish(&attached.session)?;
    Ok(Outcome {
        events: stats.events,
        lost: attached.session.lost(),
        malformed: stats.malformed,
        end,
        elapsed: started.elapsed(),
    })
}

#[derive(Default)]
struct Stats {
    events: u64,
    malformed: u64,
}

/// Hands every record now in the ring buffer to the consumer.
fn drain(attached: &mut Attached, consumer: &mut dyn Consumer, stats: &mut Stats) -> Result<usize> {
    let Attached { session, .. } = attached;
    let mut failure = None;
    let mut handled = 0;
    // The ring buffer is borrowed mutably while the consumer reads the rest
    // of the session; consumers never touch the ring.
    let session: &Session = session;
    session.ring().borrow_mut().consume(&mut |record| {
        match decode::decode(record) {
            Ok(event) => {
                stats.events += 1;
                handled += 1;
                if let Err(e) = consumer.event(&event, session) {
                    failure = Some(e);
                    return false;
                }
            }
            Err(_) => stats.malformed += 1,
        }
        true
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(handled),
    }
}

/// Drains until the ring buffer is empty. A record reserved by a probe that
/// is still running blocks the ones after it; wait for it briefly.
fn drain_to_empty(
    attached: &mut Attached,
    consumer: &mut dyn Consumer,
    stats: &mut Stats,
) -> Result<()> {
    let mut idle_rounds = 0;
    loop {
        let handled = drain(attached, consumer, stats)?;
        let pending = attached.session.ring().borrow().pending_bytes();
        if pending == 0 {
            return Ok(());
        }
        if handled == 0 {
            idle_rounds += 1;
            if idle_rounds > 100 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Whether a followed process executed something else; `Some` ends the run.
fn check_execs(watched: &mut [Watched], session: &Session) -> Option<End> {
    for w in watched.iter_mut().filter(|w| !w.exited) {
        let now = exe_identity(w.pid);
        if now.is_none() || now == w.exe {
            continue;
        }
        w.exe = now;
        // Uprobes follow an exec into the same binary (a Python re-executing
        // itself): keep going if the new program maps a traced module.
        let still_traced = target::discover_process(w.pid).is_ok_and(|p| {
            p.modules.iter().any(|m| {
                session
                    .plan
                    .targets
                    .iter()
                    .any(|t| t.module.inode == m.inode && t.module.dev == m.dev)
            })
        });
        if !still_traced {
            let exe = std::fs::read_link(format!("/proc/{}/exe", w.pid))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Some(End::Exec { pid: w.pid, exe });
        }
    }
    None
}
