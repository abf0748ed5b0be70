//! Timer probes: when they are due, the run loop's tick, and the swap of
//! the globals they delete whole (see the runtime's module docs: the
//! probes write the other copy while the timer reads the old one).

use std::time::{Duration, Instant};

use anyhow::Result;
use pytap_script::ir::{GlobalId, PointKind, StmtKind};

use super::Runtime;
use crate::engine::codegen::script::{ctl, names};
use crate::engine::session::Session;
use crate::script::compile::Compiled;

/// A timer probe.
#[derive(Debug)]
pub(super) struct Timer {
    probe: usize,
    period: Duration,
    next: Instant,
    /// Globals it deletes whole that the kernel writes: (global, swap slot).
    swaps: Vec<(GlobalId, usize)>,
}

/// The script's timer probes, first due one period from now.
pub(super) fn timers(compiled: &Compiled) -> Vec<Timer> {
    let program = &compiled.program;
    let now = Instant::now();
    program
        .probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p.point.kind {
            PointKind::Timer { period_ns } => Some(Timer {
                probe: i,
                period: Duration::from_nanos(period_ns),
                next: now + Duration::from_nanos(period_ns),
                swaps: p
                    .body
                    .iter()
                    .filter_map(|s| match s.kind {
                        StmtKind::Delete(pytap_script::ir::Delete::Global(g)) => {
                            let slot = compiled.placement.globals[g].as_ref()?.swap_slot?;
                            Some((g, slot))
                        }
                        _ => None,
                    })
                    .collect(),
            }),
            _ => None,
        })
        .collect()
}

/// The longest a run whose probes walk stacks goes between ticks.
pub const STACKS_TICK: Duration = Duration::from_millis(50);

impl Runtime<'_> {
    /// How often the run loop must tick for the timers (their common
    /// divisor), if there are any; at least every [`STACKS_TICK`] when the
    /// probes walk stacks (the target is told to the walk on a tick, once
    /// its CPython is mapped, and the samples are named).
    pub fn tick(&self) -> Option<Duration> {
        let timers = self.timer_tick();
        if !self.compiled.placement.stacks {
            return timers;
        }
        Some(timers.map_or(STACKS_TICK, |t| t.min(STACKS_TICK)))
    }

    /// The timers' common divisor.
    fn timer_tick(&self) -> Option<Duration> {
        let gcd = |mut a: u128, mut b: u128| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let ns = self
            .timers
            .iter()
            .map(|t| t.period.as_nanos())
            .reduce(gcd)?;
        Some(Duration::from_nanos(ns.max(1_000_000) as u64))
    }

    /// Swaps the globals of the timers due now (see the module docs).
    pub(super) fn prepare(&mut self, session: Option<&Session>) -> Result<()> {
        if !self.pending.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let mut flipped = false;
        for (i, t) in self.timers.iter().enumerate() {
            if t.next > now {
                continue;
            }
            self.pending.push(i);
            for &(g, slot) in &t.swaps {
                self.epochs[slot] ^= 1;
                self.old.push(g);
                flipped = true;
            }
        }
        if let (true, Some(session)) = (flipped, session)
            && let Some(map) = session.map_named(names::CONTROL)
        {
            let mut value = vec![0u8; map.value_buffer_len()];
            let key = 0u32.to_le_bytes();
            map.lookup(&key, &mut value)?;
            for (slot, e) in self.epochs.iter().enumerate() {
                let at = 8 * (ctl::EPOCHS + slot);
                value[at..at + 8].copy_from_slice(&u64::from(*e).to_le_bytes());
            }
            map.update(&key, &value, 0)?;
            pytap_sys::clock::wait_for_running_probes()?;
        }
        Ok(())
    }

    /// Runs the prepared timers.
    pub fn run_timers(&mut self, session: Option<&Session>) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let old = std::mem::take(&mut self.old);
        let now = Instant::now();
        for i in pending {
            if self.error.is_some() || self.exited() {
                break;
            }
            let probe = self.timers[i].probe;
            self.run_probe(session, probe, &old);
            let t = &mut self.timers[i];
            while t.next <= now {
                t.next += t.period;
            }
        }
        Ok(())
    }

    /// The time until the next timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.next).min()
    }

    /// Prepares and runs the due timers (a run without kernel probes).
    pub fn timers_now(&mut self) -> Result<()> {
        self.prepare(None)?;
        self.run_timers(None)
    }
}
