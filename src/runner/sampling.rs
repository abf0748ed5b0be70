//! The stack sampler's driver: start the targets' sampling, hand every
//! sample to a [`SampleConsumer`] as the kernel writes it, keep the
//! sampler told about the targets' threads and children, and end when the
//! targets are gone, a stop signal arrives or the duration is over.
//!
//! Samples come from the sampler's own ring buffer, not from the markers'
//! streams, and are never merged with marker events: a profile is
//! samples only. (Stacks at marker events, when they come, will ride in
//! those events' records through [`super::pump`].)
//!
//! A command is started as it is (not held at its exec, as the marker
//! tools hold theirs: a sampler misses nothing of the first milliseconds
//! that it could show, since it only looks at stacks once the interpreter
//! is up). Its processes, and with `--children` those of `-p` targets, are
//! looked for every [`REFRESH`]; each one that runs CPython is sampled
//! from then on.

use std::ffi::OsString;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pytap_sys::poll::Poller;
use pytap_sys::signal::SignalFd;

use crate::cpython::stack::walk;
use crate::engine::consumer::SampleConsumer;
use crate::engine::sampler::Sampler;
use crate::engine::samples;
use crate::model::profile::Mode;
use crate::process::proc;
use crate::process::python::{self, Interpreter};

/// How often the sampler is told about new threads and processes.
pub const REFRESH: Duration = Duration::from_millis(250);

/// How often the samples' ring is drained (the program never wakes pytap:
/// a wakeup per sample would cost the profiled program a context switch on
/// its CPU). At 999 Hz on 64 CPUs with 128-frame stacks this is 1.3 MiB,
/// a third of the ring.
pub const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// How long a launched command may take to start its interpreter.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleTargets {
    /// Running processes.
    Pids(Vec<u32>),
    /// A command to start.
    Command(Vec<OsString>),
    /// Every process that runs CPython now, and those started later.
    All,
}

/// How to sample.
#[derive(Debug, Clone)]
pub struct SamplingOptions {
    /// Samples a second.
    pub rate_hz: u32,
    /// What samples mean.
    pub mode: Mode,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Sample the processes the targets start.
    pub children: bool,
    /// Call [`SampleConsumer::tick`] this often.
    pub tick: Option<Duration>,
    /// Bytes of the samples ring.
    pub ring_bytes: u32,
    /// Native frames too (unwound by frame pointers).
    pub native: bool,
}

/// How a sampling run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEnd {
    /// Every target exited (a command's own status).
    Exited(Option<i32>),
    /// A signal (SIGINT, SIGTERM, SIGHUP).
    Signal(i32),
    /// The duration elapsed.
    Duration,
}

/// What a sampling run saw.
#[derive(Debug, Clone)]
pub struct SampleOutcome {
    /// Samples handed to the consumer.
    pub samples: u64,
    /// Samples the ring had no room for.
    pub lost: u64,
    /// Records that did not decode (none expected; counted, never hidden).
    pub malformed: u64,
    /// Why it ended.
    pub end: SampleEnd,
    /// Wall time sampled.
    pub elapsed: Duration,
}

const TOKEN_RING: u64 = 1;
const TOKEN_SIGNAL: u64 = 2;

/// Samples `targets` until they end.
pub fn run(
    targets: &SampleTargets,
    options: &SamplingOptions,
    signals: &SignalFd,
    consumer: &mut dyn SampleConsumer,
) -> Result<SampleOutcome> {
    let mut sampler = Sampler::start(
        u64::from(options.rate_hz),
        options.ring_bytes,
        options.mode == Mode::Gil,
        options.native,
    )?;
    let mut run = Run {
        child: None,
        roots: Vec::new(),
        all: matches!(targets, SampleTargets::All),
        children: options.children,
        gone: Vec::new(),
    };
    match targets {
        SampleTargets::Pids(pids) => {
            for &pid in pids {
                sampler.add(python::find(pid)?)?;
                run.roots.push(pid);
            }
        }
        SampleTargets::Command(argv) => {
            let mut command = Command::new(&argv[0]);
            command.args(&argv[1..]);
            // Not pytap's blocked signals: the command's own.
            pytap_sys::process::default_signals(&mut command)?;
            let child = command
                .spawn()
                .with_context(|| format!("{}: cannot start it", argv[0].to_string_lossy()))?;
            let pid = child.id();
            run.roots.push(pid);
            run.child = Some(child);
            run.children = true;
            wait_for_python(&mut run, &mut sampler, pid, signals)?;
        }
        SampleTargets::All => run.look_for_new(&mut sampler),
    }
    let poller = Poller::new()?;
    poller.add(sampler.ring().raw_fd(), TOKEN_RING)?;
    poller.add(signals.raw_fd(), TOKEN_SIGNAL)?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let wall_every = Duration::from_nanos(1_000_000_000 / u64::from(options.rate_hz.max(1)));
    let mut next_refresh = started + REFRESH;
    let mut next_tick = options.tick.map(|t| started + t);
    let mut next_wall = started;
    let mut counts = (0u64, 0u64);
    let end = loop {
        let now = Instant::now();
        let mut wake = [
            Some(now + DRAIN_EVERY),
            Some(next_refresh),
            next_tick,
            deadline,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_refresh);
        if options.mode == Mode::Wall {
            wake = wake.min(next_wall);
        }
        let tokens = poller.wait(Some(wake.saturating_duration_since(now)))?;
        if tokens.contains(&TOKEN_SIGNAL)
            && let Some(sig) = stop_signal(signals)?
        {
            break SampleEnd::Signal(sig);
        }
        drain(&mut sampler, consumer, &mut counts)?;
        let now = Instant::now();
        if options.mode == Mode::Wall && now >= next_wall {
            wall_samples(&sampler, consumer, wall_every)?;
            next_wall += wall_every;
            if next_wall < now {
                next_wall = now + wall_every;
            }
        }
        if now >= next_refresh {
            next_refresh = now + REFRESH;
            for pid in sampler.pids() {
                if proc::is_alive(pid) {
                    sampler.refresh_threads(pid);
                } else {
                    sampler.remove(pid);
                    run.gone.push(pid);
                }
            }
            run.look_for_new(&mut sampler);
        }
        if let (Some(t), Some(every)) = (next_tick, options.tick)
            && now >= t
        {
            consumer.tick()?;
            next_tick = Some(now + every);
        }
        if deadline.is_some_and(|d| now >= d) {
            break SampleEnd::Duration;
        }
        if let Some(status) = run.ended(&sampler) {
            break SampleEnd::Exited(status);
        }
    };
    drain(&mut sampler, consumer, &mut counts)?;
    let lost = sampler.lost();
    drop(sampler);
    if let Some(mut child) = run.child.take()
        && !matches!(end, SampleEnd::Exited(_))
    {
        // The command keeps running, as a traced command does when pytap
        // is stopped; it is no longer pytap's to wait for.
        let _ = child.try_wait();
    }
    consumer.finish()?;
    Ok(SampleOutcome {
        samples: counts.0,
        lost,
        malformed: counts.1,
        end,
        elapsed: started.elapsed(),
    })
}

/// The processes a run follows.
struct Run {
    child: Option<Child>,
    roots: Vec<u32>,
    all: bool,
    children: bool,
    gone: Vec<u32>,
}

impl Run {
    /// Samples the processes started since (descendants of the roots, or
    /// any CPython with `--all`) once their interpreter is up.
    fn look_for_new(&mut self, sampler: &mut Sampler) {
        let candidates: Vec<u32> = if self.all {
            let me = std::process::id();
            proc::all_pids()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| *p != me)
                .collect()
        } else if self.children {
            let mut all = self.roots.clone();
            for &root in &self.roots {
                all.extend(proc::descendants(root));
            }
            all
        } else {
            Vec::new()
        };
        for pid in candidates {
            if sampler.has(pid) || self.gone.contains(&pid) {
                continue;
            }
            if let Ok(interpreter) = python::find(pid)
                && interpreter_is_up(&interpreter)
                && sampler.add(interpreter).is_err()
            {
                self.gone.push(pid);
            }
        }
    }

    /// The end, when every target is gone: the command's exit status.
    fn ended(&mut self, sampler: &Sampler) -> Option<Option<i32>> {
        if self.all {
            return None;
        }
        if let Some(child) = self.child.as_mut() {
            return match child.try_wait() {
                Ok(Some(status)) => Some(status.code()),
                Ok(None) => None,
                Err(_) => Some(None),
            };
        }
        let alive = self.roots.iter().any(|p| proc::is_alive(*p));
        (!alive && sampler.pids().is_empty()).then_some(None)
    }
}

/// Whether the interpreter has a thread state yet (a process that maps
/// libpython but has not initialised it is not sampled yet).
fn interpreter_is_up(interpreter: &Interpreter) -> bool {
    walk::threads(&interpreter.memory(), &interpreter.runtime, 0)
        .is_ok_and(|(threads, _)| !threads.is_empty())
}

/// Waits until the launched command (or a process it started) runs
/// CPython, and samples it.
fn wait_for_python(
    run: &mut Run,
    sampler: &mut Sampler,
    pid: u32,
    signals: &SignalFd,
) -> Result<()> {
    let started = Instant::now();
    loop {
        run.look_for_new(sampler);
        if !sampler.pids().is_empty() {
            return Ok(());
        }
        if let Some(child) = run.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            anyhow::bail!(
                "the command (pid {pid}) exited ({status}) before a CPython pytap could sample \
                 ran in it"
            );
        }
        if stop_signal(signals)?.is_some() {
            anyhow::bail!("stopped before the command ran CPython");
        }
        anyhow::ensure!(
            started.elapsed() < START_TIMEOUT,
            "the command (pid {pid}) ran no CPython within {} s",
            START_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first stop signal pending (SIGINT, SIGTERM, SIGHUP); `SIGCHLD`,
/// which the signalfd also takes, only says a child changed state, which
/// the run sees from its processes.
fn stop_signal(signals: &SignalFd) -> Result<Option<i32>> {
    while let Some(sig) = signals.read()? {
        if sig != pytap_sys::signal::SIGCHLD {
            return Ok(Some(sig));
        }
    }
    Ok(None)
}

/// Hands the consumer every sample in the ring.
fn drain(
    sampler: &mut Sampler,
    consumer: &mut dyn SampleConsumer,
    counts: &mut (u64, u64),
) -> Result<()> {
    let mut records = Vec::new();
    sampler.ring().consume(&mut |bytes| {
        records.push(samples::decode(bytes));
        true
    });
    for record in records {
        match record {
            Ok(sample) => {
                if let Some(interpreter) = sampler.interpreter(sample.header.pid) {
                    consumer.sample(&sample, interpreter)?;
                    counts.0 += 1;
                }
            }
            Err(_) => counts.1 += 1,
        }
    }
    Ok(())
}

/// Wall mode: every thread of every sampled process, read from outside
/// now, weighted by the period.
fn wall_samples(
    sampler: &Sampler,
    consumer: &mut dyn SampleConsumer,
    period: Duration,
) -> Result<()> {
    for pid in sampler.pids() {
        let Some(interpreter) = sampler.interpreter(pid) else {
            continue;
        };
        let Ok((threads, _)) = walk::threads(
            &interpreter.memory(),
            &interpreter.runtime,
            pytap_abi::sample::MAX_FRAMES,
        ) else {
            continue;
        };
        let tasks = proc::tasks(pid);
        let tids = interpreter.thread_tids(&threads, &tasks);
        for (thread, tid) in threads.iter().zip(tids) {
            consumer.wall_sample(thread, tid, interpreter, period)?;
        }
    }
    Ok(())
}
