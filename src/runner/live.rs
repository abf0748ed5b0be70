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
use crate::engine::decode::{self, TaskKind};
use crate::engine::follow::{Followed, Mode};
use crate::engine::names::SentNames;
use crate::engine::plan::AttachTarget;
use crate::engine::session::Session;
use crate::process;

/// How long a consumer's buffered output may wait while events keep
/// arriving (it is flushed too whenever the loop goes idle).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

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
        TargetSpec::Pids(pids) => Followed::pids(pids, follow.children, start)?,
        TargetSpec::Command(argv) => Followed::launch(
            argv,
            follow.children,
            follow.terminal,
            follow.signals,
            follow.env,
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
    let mut stats = Stats::default();
    let mut next_prune = started + PRUNE_NAMES_EVERY;
    let mut next_tick = options.tick.map(|t| started + t);
    let deadline = options.duration.map(|d| started + d);
    let mut busy = false;
    let result = (|| -> Result<End> {
        loop {
            let now = Instant::now();
            let mut timeout = if busy { Duration::ZERO } else { POLL_INTERVAL };
            for at in [next_tick, deadline].into_iter().flatten() {
                timeout = timeout.min(at.saturating_duration_since(now));
            }
            let ready = poller.wait(Some(timeout)).context("epoll_wait")?;
            if next_tick.is_some_and(|at| Instant::now() >= at) {
                consumer.before_tick(&attached.session)?;
            }
            let before = stats.events;
            let mut end = drain(attached, consumer, &mut stats, false)?;
            busy = stats.events - before >= BUSY_DRAIN;
            consumer.flush()?;
            for token in ready {
                match token {
                    TOKEN_SIGNAL => {
                        while let Some(sig) = signals.read().context("signalfd")? {
                            match sig {
                                SIGCHLD => attached.followed.service(&mut attached.session)?,
                                SIGWINCH => {
                                    if let Some(pty) = &options.command_terminal {
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
                    // (The drain above read what the wakeup was for.)
                    TOKEN_WAKEUP => {}
                    TOKEN_KEYS => {
                        let keys = options.keys.as_ref().expect("registered");
                        let mut buf = [0u8; 64];
                        match std::fs::File::from(keys.try_clone()?).read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = poller.remove(keys.as_raw_fd());
                                end.get_or_insert(End::TerminalLost);
                            }
                            Ok(n) => consumer.input(&buf[..n])?,
                        }
                    }
                    TOKEN_COMMAND => {
                        let pty = options.command_terminal.as_ref().expect("registered");
                        if !read_command_output(pty, consumer)? {
                            let _ = poller.remove(pty.master.as_raw_fd());
                        }
                    }
                    token => {
                        if let Some(pid) = token.checked_sub(TOKEN_PID) {
                            let pid = pid as u32;
                            attached.followed.pid_exited(pid, &mut attached.session);
                            for (p, fd) in attached.followed.pidfds() {
                                if p == pid {
                                    let _ = poller.remove(fd);
                                }
                            }
                        }
                    }
                }
            }
            if end.is_none() {
                end = attached.followed.poll_execs(&mut attached.session);
            }
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + PRUNE_NAMES_EVERY;
                attached.session.tasks.borrow_mut().prune(|pid, tid| {
                    std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
                });
            }
            if end.is_none() && attached.followed.all_exited() {
                end = Some(End::Exited {
                    status: attached.followed.root().and_then(|(_, s)| s),
                });
            }
            let now = Instant::now();
            if let Some(at) = next_tick.filter(|at| now >= *at) {
                next_tick = options.tick.map(|t| at + t);
                consumer.tick(&attached.session)?;
                if consumer.wants_stop() {
                    end.get_or_insert(End::Quit);
                }
            }
            if consumer.exit_requested() {
                end.get_or_insert(End::Exit);
            }
            if end.is_none() && deadline.is_some_and(|d| now >= d) {
                end = Some(End::Duration);
            }
            if let Some(end) = end {
                return Ok(end);
            }
        }
    })();
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
    let drained = drain_to_empty(attached, consumer, &mut stats);
    attached.followed.release();
    drained?;
    if let Some(pty) = &options.command_terminal {
        // What the command wrote last.
        while poller
            .wait(Some(Duration::ZERO))
            .is_ok_and(|r| r.contains(&TOKEN_COMMAND))
        {
            if !read_command_output(pty, consumer)? {
                break;
            }
        }
    }
    if end != End::OutputClosed {
        if options.tick.is_some() {
            consumer.tick(&attached.session)?;
        }
        consumer.finish(&attached.session)?;
        consumer.flush()?;
    }
    Ok(Outcome {
        events: stats.events,
        // Events the in-process agents dropped count as lost too.
        lost: attached.session.lost() + attached.capture.as_ref().map_or(0, Capture::lost),
        // (A ring region in a state no probe leaves counts as one.)
        malformed: stats.malformed + attached.session.streams().borrow().corrupt(),
        unnamed: stats.names.unnamed.get(),
        end,
        elapsed: started.elapsed(),
        still_running: attached.followed.root_running(),
    })
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

#[derive(Default)]
struct Stats {
    events: u64,
    malformed: u64,
    /// Names of the function records sent without them.
    names: SentNames,
    last_flush: Option<Instant>,
    /// Kernel records held for merging with an in-process capture's
    /// events (see [`drain`]).
    held: Held,
}

/// Records copied out for later, back to back in one buffer (one copy
/// each, no allocation per record once the buffer has grown).
#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    /// Each record's start and length; a length of 0 once delivered.
    spans: Vec<(usize, usize)>,
}

impl Held {
    fn push(&mut self, record: &[u8]) {
        self.spans.push((self.bytes.len(), record.len()));
        self.bytes.extend_from_slice(record);
    }

    /// Forgets the delivered records, keeping the others in order.
    fn compact(&mut self) {
        let mut end = 0;
        self.spans.retain(|&(_, len)| len != 0);
        for (start, len) in &mut self.spans {
            self.bytes.copy_within(*start..*start + *len, end);
            *start = end;
            end += *len;
        }
        self.bytes.truncate(end);
    }
}

/// How long after its timestamp an event is surely readable: a probe or a
/// capture callback writes its record microseconds after reading the clock.
const IN_FLIGHT: u64 = 2_000_000;

/// Hands every record now in the ring buffer to the consumer, flushing its
/// output at least every [`FLUSH_EVERY`]; task records update the names
/// and, for processes followed by pid, report execs. Returns why the run
/// must end, if an exec ended it.
fn drain(
    attached: &mut Attached,
    consumer: &mut dyn Consumer,
    stats: &mut Stats,
    last: bool,
) -> Result<Option<End>> {
    let Attached {
        session,
        followed,
        capture,
    } = attached;
    let mut failure = None;
    let mut execs = Vec::new();
    // With an in-process capture, a thread's function events come from its
    // ring and its gc, import and audit events from the kernel's: they are
    // merged by timestamp so that each thread's events reach the consumer
    // in the order they happened. Both sources are read up to `cutoff`, a
    // moment every event before which has been written (the clock before
    // the kernel ring is read, less the time a record is in flight);
    // kernel records are held until the capture's events before them have
    // been delivered, and later ones wait for the next drain.
    let merging = capture.is_some();
    let cutoff = if last {
        u64::MAX
    } else {
        (pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64).saturating_sub(IN_FLIGHT)
    };
    let mut held = std::mem::take(&mut stats.held);
    {
        // The ring buffer is borrowed mutably while the consumer reads the
        // rest of the session; consumers never touch the ring.
        let session: &Session = session;
        let mut since_check = 0u32;
        session.streams().borrow_mut().consume(last, &mut |record| {
            if let Some(task) = decode::task(record) {
                match task {
                    Ok(t) => {
                        if t.kind == TaskKind::Exec {
                            execs.push(t.pid);
                        }
                        // Merged with the capture's events, a task record
                        // waits its turn like the kernel's other records:
                        // what it ends must come after the thread's last
                        // events.
                        if merging {
                            held.push(record);
                        } else if let Err(e) = apply_task(&t, session, consumer, stats) {
                            failure = Some(e);
                            return false;
                        }
                    }
                    Err(_) => stats.malformed += 1,
                }
                return true;
            }
            match consumer.record(record, session) {
                Ok(true) => {
                    stats.events += 1;
                    return true;
                }
                Ok(false) => {}
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
            if merging {
                held.push(record);
                return true;
            }
            match decode::decode(record) {
                Ok(event) => {
                    stats.events += 1;
                    let event = stats.names.resolve(event);
                    if let Err(e) = consumer.event(&event, session) {
                        failure = Some(e);
                        return false;
                    }
                }
                Err(_) => stats.malformed += 1,
            }
            since_check += 1;
            if since_check >= 1024 {
                since_check = 0;
                let due = stats.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY);
                if due {
                    stats.last_flush = Some(Instant::now());
                    if let Err(e) = consumer.flush() {
                        failure = Some(e);
                        return false;
                    }
                }
            }
            true
        });
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // Nor past a kernel record still being written (a probe preempted
    // between its clock reading and its publish, on a busy machine, for
    // longer than IN_FLIGHT): the capture's events after it wait for it.
    let cutoff = cutoff.min(session.streams().borrow().handed_out_before());
    if let Some(capture) = capture {
        let session: &Session = session;
        // Held records in order; a delivered one becomes empty, and those
        // before `first` all are (so each capture event does not scan
        // what was delivered already).
        let mut first = 0;
        let deliver = |held: &mut Held,
                       first: &mut usize,
                       pid: Option<u32>,
                       until: u64,
                       consumer: &mut dyn Consumer,
                       stats: &mut Stats|
         -> Result<()> {
            let Held { bytes, spans } = held;
            while spans.get(*first).is_some_and(|&(_, len)| len == 0) {
                *first += 1;
            }
            let pending = spans.get_mut(*first..).unwrap_or_default();
            for span in pending.iter_mut().filter(|(_, len)| *len != 0) {
                let record = &bytes[span.0..span.0 + span.1];
                let task = decode::task(record);
                let (ts_ns, record_pid) = match (&task, decode::header(record)) {
                    (Some(Ok(t)), _) => (t.ts_ns, t.pid),
                    (None, Ok(h)) => (h.ts_ns, h.pid),
                    _ => {
                        stats.malformed += 1;
                        span.1 = 0;
                        continue;
                    }
                };
                if ts_ns > until {
                    // Later ones of this process wait with it.
                    if pid.is_none_or(|p| p == record_pid) {
                        break;
                    }
                    continue;
                }
                if pid.is_some_and(|p| p != record_pid) {
                    continue;
                }
                if let Some(Ok(t)) = task {
                    span.1 = 0;
                    apply_task(&t, session, consumer, stats)?;
                    continue;
                }
                match decode::decode(record) {
                    Ok(event) => {
                        stats.events += 1;
                        let event = stats.names.resolve(event);
                        consumer.event(&event, session)?;
                    }
                    Err(_) => stats.malformed += 1,
                }
                span.1 = 0;
            }
            Ok(())
        };
        let captured = capture.drain_until(cutoff, &mut |event| {
            // This process's kernel events from before it, first.
            deliver(
                &mut held,
                &mut first,
                Some(event.header.pid),
                event.header.ts_ns,
                consumer,
                stats,
            )?;
            consumer.event(event, session)
        })?;
        deliver(&mut held, &mut first, None, cutoff, consumer, stats)?;
        held.compact();
        stats.events += captured;
    }
    stats.held = held;
    stats.last_flush = Some(Instant::now());
    if followed.mode() == Mode::Pids {
        for pid in execs {
            if let Some(end) = followed.exec_event(pid, session) {
                return Ok(Some(end));
            }
        }
    }
    Ok(None)
}

/// What a task record tells, applied in its place among the events: a
/// name, an exec (the process's old names and pointers mean nothing now,
/// and its frames are gone), a thread's end (what was kept for it goes).
fn apply_task(
    t: &decode::TaskRecord,
    session: &Session,
    consumer: &mut dyn Consumer,
    stats: &mut Stats,
) -> Result<()> {
    let comm = t.comm.clone().unwrap_or_default();
    let mut names = session.tasks.borrow_mut();
    match t.kind {
        TaskKind::Rename => {
            names.renamed(t.pid, t.tid, comm);
            Ok(())
        }
        TaskKind::Exec => {
            names.executed(t.pid, comm);
            drop(names);
            stats.names.executed(t.pid);
            consumer.process_executed(t.pid, t.old_tid)
        }
        TaskKind::Exit => {
            names.exited(t.pid, t.tid);
            drop(names);
            consumer.thread_exited(t.pid, t.tid)
        }
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
        let before = stats.events + stats.malformed;
        drain(attached, consumer, stats, true)?;
        let pending = attached.session.streams().borrow().pending_bytes();
        if pending == 0 {
            return Ok(());
        }
        if stats.events + stats.malformed == before {
            idle_rounds += 1;
            if idle_rounds > 100 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
