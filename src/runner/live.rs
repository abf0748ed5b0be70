//! The live run: find the targets, attach, stream events
//! to a [`Consumer`] until the targets exit or the user stops, drain, report.
//!
//! Targets come in three kinds ([`TargetSpec`]): processes by pid, a
//! command pytap launches (held at `execve` until the probes are in place,
//! and followed with its children, see [`crate::engine::follow`]), or every
//! process running a binary with markers. Filtering by pid happens in the
//! kernel (the uprobe_multi or perf pid filter).
//!
//! The loop does not ask to be woken per event: records are submitted with
//! `BPF_RB_NO_WAKEUP` and the loop polls the ring buffer every
//! [`POLL_INTERVAL`], which is what keeps the per-event cost close to the
//! kernel's own uprobe trap. Two things keep a fast producer from filling
//! the rings between polls (events would be lost): a drain that found
//! [`BUSY_DRAIN`] records or more is followed by another at once, without
//! waiting, and a probe that finds its CPU's ring half full wakes the loop
//! (once, until the loop gives that ring space back; see
//! `codegen::inplace::wake_if_filling`). Besides the rings it watches: the stop signals
//! and `SIGCHLD` (a traced process forked, executed or exited), pidfds,
//! the output's reader going away (the run ends quietly), and for a live
//! view the terminal's keys and the traced command's own output.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::poll::Poller;
use pytap_sys::pty::Pty;
use pytap_sys::signal::{SIGCHLD, SIGWINCH, SignalFd};

use crate::capture::Capture;
use crate::engine::consumer::{Consumer, End};
use crate::engine::follow::{Followed, Mode};
use crate::engine::plan::AttachTarget;
use crate::engine::session::Session;
use crate::process;
use crate::runner::captured::Captured;
use crate::runner::kernel::KernelRings;
use crate::runner::pump::{Pump, Ticks};
use crate::runner::source::EventSource;
use crate::runner::stacks::StackRing;

/// How often the ring buffer is drained when no wakeup comes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A drain that handed out at least this many records is followed by the
/// next without waiting: the producer is running faster than one drain per
/// poll can take, and sleeping would let the rings fill.
pub const BUSY_DRAIN: u64 = 256;

/// How often the names of threads that are gone are let go.
const PRUNE_NAMES_EVERY: Duration = Duration::from_secs(5);

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
    /// A recording (`pytap record`), replayed instead of a live target.
    Recording(PathBuf),
}

/// A session attached to its targets.
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub session: Session,
    /// Who is followed.
    pub followed: Followed,
    /// The in-process capture's rings, when function events come from
    /// inside the targets (CPython 3.12–3.14).
    pub capture: Option<Capture>,
}

/// How targets are launched and followed.
#[derive(Debug, Clone, Copy)]
pub struct Follow<'a> {
    /// Trace the processes the targets start (a command's whole tree, or
    /// `-p --children`).
    pub children: bool,
    /// A terminal for a launched command (a live view captures its output).
    pub terminal: Option<&'a Pty>,
    /// The stop signals, heard while a launched command has not run a
    /// Python yet.
    pub signals: &'a SignalFd,
    /// Variables a launched command gets on top of pytap's environment
    /// (the in-process capture's).
    pub env: &'a [(OsString, OsString)],
    /// What a process's CPython must have to be traced: markers, unless
    /// the run probes none.
    pub wanted: crate::process::Wanted,
    /// The in-process capture's directory, where each launched process it
    /// serves is marked before it runs.
    pub marks: Option<&'a std::path::Path>,
}

/// Finds the targets and attaches: `start` turns the attach targets into a
/// live session (the tool plans its handler and maps there).
pub fn attach(
    spec: &TargetSpec,
    follow: Follow<'_>,
    start: &mut dyn FnMut(Vec<AttachTarget>) -> Result<Session>,
) -> Result<Attached> {
    let (session, followed) = match spec {
        TargetSpec::Recording(path) => anyhow::bail!(
            "internal: {} is a recording: it is replayed, not attached to",
            path.display()
        ),
        TargetSpec::Pids(pids) => Followed::pids(pids, follow.children, follow.wanted, start)?,
        TargetSpec::Command(argv) => Followed::launch(
            argv,
            follow.children,
            follow.terminal,
            follow.signals,
            follow.env,
            crate::engine::follow::Serve {
                wanted: follow.wanted,
                marks: follow.marks.map(std::path::Path::to_path_buf),
            },
            start,
        )?,
        TargetSpec::All { binaries } => {
            let found = process::all_modules(binaries)?;
            anyhow::ensure!(
                !found.is_empty(),
                "no running process has python markers; name the interpreter with --binary PATH \
                 to trace the processes that start it later"
            );
            let running: Vec<u32> = found.iter().flat_map(|(_, pids)| pids.clone()).collect();
            let targets = found
                .into_iter()
                .map(|(m, _)| AttachTarget {
                    module: Arc::new(m),
                    pids: Vec::new(),
                })
                .collect();
            let session = start(targets)?;
            // Processes already running: their names now (later ones are
            // learnt from their exec).
            for pid in running {
                session
                    .tasks
                    .borrow_mut()
                    .learn_process(pid, crate::process::proc::thread_names(pid));
            }
            (session, Followed::all())
        }
    };
    Ok(Attached {
        session,
        followed,
        capture: None,
    })
}

/// Loop settings.
#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Call [`Consumer::tick`] this often.
    pub tick: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// stdout, when it is a pipe: the run ends quietly when its reader goes away.
    pub output_pipe: Option<Arc<OwnedFd>>,
    /// The terminal a live view reads its keys from ([`Consumer::input`]);
    /// end of file or an error on it ends the run ([`End::TerminalLost`]).
    pub keys: Option<Arc<OwnedFd>>,
    /// The launched command's terminal: what it writes goes to
    /// [`Consumer::command_output`].
    pub command_terminal: Option<Arc<Pty>>,
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
    /// Function records sent without names that nothing had named (none
    /// expected, see [`SentNames`]; delivered with unreadable names).
    pub unnamed: u64,
    /// Why it ended.
    pub end: End,
    /// Wall time from attach to the end.
    pub elapsed: Duration,
    /// The launched command's pid, when it was still running at the end.
    pub still_running: Option<u32>,
}

const TOKEN_SIGNAL: u64 = 1;
const TOKEN_OUTPUT: u64 = 2;
const TOKEN_KEYS: u64 = 3;
const TOKEN_COMMAND: u64 = 4;
const TOKEN_WAKEUP: u64 = 5;
const TOKEN_PID: u64 = 1 << 32;

/// How long after its timestamp an event is surely readable: a probe or a
/// capture callback writes its record microseconds after reading the clock.
const IN_FLIGHT: u64 = 2_000_000;

/// Runs until the targets exit, a signal arrives or the duration elapses.
pub fn run(
    attached: &mut Attached,
    signals: &SignalFd,
    consumer: &mut dyn Consumer,
    options: &LoopOptions,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut live = Live {
        poller: register(attached, signals, options)?,
        signals,
        options,
        pump: Pump::new(Ticks::wall(options.tick)),
        next_prune: started + PRUNE_NAMES_EVERY,
        deadline: options.duration.map(|d| started + d),
        busy: false,
    };
    let result = live.until_end(attached, consumer);
    // Detach before the final drain: a target that is still running would
    // otherwise keep the ring buffer from ever emptying. Then let the
    // traced tree go, whatever ended the run.
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            attached.session.detach();
            attached.followed.release();
            return Err(e);
        }
    };
    match end {
        End::Exited { .. } => attached.session.detach_exited(),
        _ => attached.session.detach(),
    }
    let drained = live.drain_to_empty(attached, consumer);
    attached.followed.release();
    drained?;
    live.last_command_output(consumer)?;
    if end != End::OutputClosed {
        live.pump.finish(consumer, &attached.session)?;
    }
    Ok(Outcome {
        events: live.pump.events(),
        // Events the in-process agents dropped count as lost too.
        lost: attached.session.lost() + attached.capture.as_ref().map_or(0, Capture::lost),
        // (A ring region in a state no probe leaves counts as one.)
        malformed: live.pump.malformed() + attached.session.streams().borrow().corrupt(),
        unnamed: live.pump.unnamed(),
        end,
        elapsed: started.elapsed(),
        still_running: attached.followed.root_running(),
    })
}

/// Watches what the loop waits on: the stop signals and `SIGCHLD`, the
/// output's reader, the keys, the command's terminal, the followed
/// processes' pidfds, and the ring buffer's forced wakeup.
fn register(attached: &Attached, signals: &SignalFd, options: &LoopOptions) -> Result<Poller> {
    let poller = Poller::new().context("epoll")?;
    poller
        .add(signals.raw_fd(), TOKEN_SIGNAL)
        .context("epoll")?;
    if let Some(pipe) = &options.output_pipe {
        poller
            .add_for_errors(pipe.as_raw_fd(), TOKEN_OUTPUT)
            .context("epoll")?;
    }
    if let Some(keys) = &options.keys {
        poller.add(keys.as_raw_fd(), TOKEN_KEYS).context("epoll")?;
    }
    if let Some(pty) = &options.command_terminal {
        poller
            .add(pty.master.as_raw_fd(), TOKEN_COMMAND)
            .context("epoll")?;
    }
    for (pid, fd) in attached.followed.pidfds() {
        poller
            .add(fd, TOKEN_PID + u64::from(pid))
            .context("epoll")?;
    }
    // A probe whose CPU's ring fills up wakes the loop before its poll.
    let wakeup_fd = attached.session.streams().borrow().wakeup_fd();
    poller.add_edge(wakeup_fd, TOKEN_WAKEUP).context("epoll")?;
    // So does each stack an event's program walked (`trace --stacks`).
    if let Some(stacks) = &attached.session.stacks {
        let fd = stacks.borrow().wakeup_fd();
        poller.add_edge(fd, TOKEN_WAKEUP).context("epoll")?;
    }
    Ok(poller)
}

/// The live driver of the [`Pump`]: when to run a pass, and what else the
/// loop hears.
struct Live<'a> {
    poller: Poller,
    signals: &'a SignalFd,
    options: &'a LoopOptions,
    pump: Pump,
    next_prune: Instant,
    deadline: Option<Instant>,
    /// The last pass handed out [`BUSY_DRAIN`] events or more.
    busy: bool,
}

impl Live<'_> {
    /// Passes until something ends the run.
    fn until_end(&mut self, attached: &mut Attached, consumer: &mut dyn Consumer) -> Result<End> {
        loop {
            let ready = self.wait()?;
            self.pump.before_wall_tick(consumer, &attached.session)?;
            let before = self.pump.events();
            let mut end = pass(attached, &mut self.pump, consumer, false)?;
            self.busy = self.pump.events() - before >= BUSY_DRAIN;
            consumer.flush()?;
            for token in ready {
                self.heard(token, attached, consumer, &mut end)?;
            }
            if end.is_none() {
                end = attached.followed.poll_execs(&mut attached.session);
            }
            self.prune_names(attached);
            if end.is_none() && attached.followed.all_exited() {
                end = Some(End::Exited {
                    status: attached.followed.root().and_then(|(_, s)| s),
                });
            }
            if self.pump.wall_tick(consumer, &attached.session)? && consumer.wants_stop() {
                end.get_or_insert(End::Quit);
            }
            if consumer.exit_requested() {
                end.get_or_insert(End::Exit);
            }
            if end.is_none() && self.deadline.is_some_and(|d| Instant::now() >= d) {
                end = Some(End::Duration);
            }
            if let Some(end) = end {
                return Ok(end);
            }
        }
    }

    /// Waits for something to read, the next poll, tick or the deadline.
    fn wait(&self) -> Result<Vec<u64>> {
        let now = Instant::now();
        let mut timeout = if self.busy {
            Duration::ZERO
        } else {
            POLL_INTERVAL
        };
        for at in [self.pump.next_wall_tick(), self.deadline]
            .into_iter()
            .flatten()
        {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        self.poller.wait(Some(timeout)).context("epoll_wait")
    }

    /// What one ready token says.
    fn heard(
        &self,
        token: u64,
        attached: &mut Attached,
        consumer: &mut dyn Consumer,
        end: &mut Option<End>,
    ) -> Result<()> {
        match token {
            TOKEN_SIGNAL => {
                while let Some(sig) = self.signals.read().context("signalfd")? {
                    match sig {
                        SIGCHLD => attached.followed.service(&mut attached.session)?,
                        SIGWINCH => {
                            if let Some(pty) = &self.options.command_terminal {
                                pty.copy_size(std::io::stdout().as_fd());
                            }
                        }
                        sig => {
                            end.get_or_insert(End::Signal(sig));
                        }
                    }
                }
            }
            TOKEN_OUTPUT => {
                end.get_or_insert(End::OutputClosed);
            }
            // (The pass before read what the wakeup was for.)
            TOKEN_WAKEUP => {}
            TOKEN_KEYS => {
                let keys = self.options.keys.as_ref().expect("registered");
                let mut buf = [0u8; 64];
                match std::fs::File::from(keys.try_clone()?).read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = self.poller.remove(keys.as_raw_fd());
                        end.get_or_insert(End::TerminalLost);
                    }
                    Ok(n) => consumer.input(&buf[..n])?,
                }
            }
            TOKEN_COMMAND => {
                let pty = self.options.command_terminal.as_ref().expect("registered");
                if !read_command_output(pty, consumer)? {
                    let _ = self.poller.remove(pty.master.as_raw_fd());
                }
            }
            token => {
                if let Some(pid) = token.checked_sub(TOKEN_PID) {
                    let pid = pid as u32;
                    attached.followed.pid_exited(pid, &mut attached.session);
                    for (p, fd) in attached.followed.pidfds() {
                        if p == pid {
                            let _ = self.poller.remove(fd);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Lets go of the names of threads that are gone, now and then.
    fn prune_names(&mut self, attached: &Attached) {
        if Instant::now() < self.next_prune {
            return;
        }
        self.next_prune = Instant::now() + PRUNE_NAMES_EVERY;
        attached
            .session
            .tasks
            .borrow_mut()
            .prune(|pid, tid| std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists());
    }

    /// Passes until the ring buffer is empty. A record reserved by a probe
    /// that is still running blocks the ones after it; wait for it briefly.
    fn drain_to_empty(
        &mut self,
        attached: &mut Attached,
        consumer: &mut dyn Consumer,
    ) -> Result<()> {
        let mut idle_rounds = 0;
        loop {
            let before = self.pump.events() + self.pump.malformed();
            pass(attached, &mut self.pump, consumer, true)?;
            let pending = attached.session.streams().borrow().pending_bytes();
            if pending == 0 {
                return Ok(());
            }
            if self.pump.events() + self.pump.malformed() == before {
                idle_rounds += 1;
                if idle_rounds > 100 {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// What the command wrote last, once the run has ended.
    fn last_command_output(&self, consumer: &mut dyn Consumer) -> Result<()> {
        let Some(pty) = &self.options.command_terminal else {
            return Ok(());
        };
        while self
            .poller
            .wait(Some(Duration::ZERO))
            .is_ok_and(|r| r.contains(&TOKEN_COMMAND))
        {
            if !read_command_output(pty, consumer)? {
                break;
            }
        }
        Ok(())
    }
}

/// One pass over the session's rings and, with an in-process capture, its
/// rings, merged by time ([`Pump::pass`]); for processes followed by pid,
/// an exec that ends the run.
fn pass(
    attached: &mut Attached,
    pump: &mut Pump,
    consumer: &mut dyn Consumer,
    last: bool,
) -> Result<Option<End>> {
    // Both sources are read up to a moment every event before which has
    // been written: the clock now, less the time a record is in flight
    // (and, for the capture, not past a kernel record still being
    // written, see `EventSource::settled_before`).
    let until = if last {
        u64::MAX
    } else {
        (pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64).saturating_sub(IN_FLIGHT)
    };
    let Attached {
        session,
        followed,
        capture,
    } = attached;
    let pass = {
        let mut kernel = KernelRings::new(session);
        // The stacks after the kernel's rings (see `runner::stacks`).
        let mut stacks = StackRing::of(session);
        let mut captured = capture.as_mut().map(|c| Captured::new(c, session));
        let mut sources: Vec<&mut dyn EventSource> = vec![&mut kernel];
        if let Some(stacks) = &mut stacks {
            sources.push(stacks);
        }
        if let Some(captured) = &mut captured {
            sources.push(captured);
        }
        pump.pass(&mut sources, consumer, until, last)?
    };
    if followed.mode() == Mode::Pids {
        for pid in pass.execs {
            if let Some(end) = followed.exec_event(pid, session) {
                return Ok(Some(end));
            }
        }
    }
    Ok(None)
}

/// Reads what the command wrote to its terminal; `false` once it is closed.
fn read_command_output(pty: &Pty, consumer: &mut dyn Consumer) -> Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    match std::fs::File::from(pty.master.try_clone()?).read(&mut buf) {
        Ok(0) | Err(_) => Ok(false),
        Ok(n) => {
            consumer.command_output(&buf[..n])?;
            Ok(true)
        }
    }
}
