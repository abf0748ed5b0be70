//! A script's userspace half, as a run's [`Consumer`]: records from the
//! kernel probes (output sites' values, new keys, errors) evaluated and
//! printed, `begin`, timers and `end` run by the interpreter over the
//! script's globals.
//!
//! A timer that deletes a global the kernel writes swaps it first
//! ([`Consumer::before_tick`]): the probes start writing the other copy,
//! pytap waits until no probe can still be writing the old one, the ring
//! buffer is drained (the old copy's new keys are announced there), and
//! the timer then reads and clears the old copy. No increment is lost
//! between the read and the delete.

mod consumer;
mod in_process;
mod record;
mod report;
mod timer;

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use pytap_script::check::Dialect;
use pytap_script::diag::Diagnostic;
use pytap_script::interp::{self, Interp, RunError, World};
use pytap_script::ir::{GlobalId, PointKind};
use pytap_script::store::MemStore;
use pytap_script::value::Value;

use super::compile::Compiled;
use super::context::{Out, OwnContext};
use super::probes::ProbeTable;
use super::store::{KeyNames, ScriptStore};
use crate::engine::codegen::script::ctl;
use crate::engine::recover::Recovery;
use crate::engine::session::Session;
use timer::Timer;

/// The userspace half of a running script.
pub struct Runtime<'o> {
    /// The script.
    pub compiled: Compiled,
    interp: Interp,
    mem: MemStore,
    out: &'o mut dyn Write,
    out_error: Option<std::io::Error>,
    /// A header to print before the first output (D's, when not quiet).
    header: Option<&'static str>,
    keys: KeyNames,
    /// Keys the kernel sent no definition for.
    pub undecoded: u64,
    timers: Vec<Timer>,
    /// Timers prepared by `before_tick`, and the globals they swapped.
    pending: Vec<usize>,
    old: Vec<GlobalId>,
    epochs: Vec<u8>,
    /// `target()`.
    pub target: i64,
    pub(super) realtime_offset: i64,
    /// A run-time error, rendered: the run ends with it.
    pub error: Option<String>,
    recovery: Recovery,
    /// Strings the probes could not read.
    pub unreadable: u64,
    /// Strings longer than the kernel's buffer.
    pub truncated: u64,
    /// Output records handled.
    pub outputs: u64,
    /// `thread_indent`'s counters by thread (-1: `indent`'s), when pytap
    /// keeps them.
    indents: HashMap<i64, (i64, i64), foldhash::fast::FixedState>,
    /// D's sites named as `-l` names them, when the program prints
    /// `probefunc`, `probemod` or a firing line.
    probes: Option<ProbeTable>,
    /// The locals of the probe an output runs in (reused per record).
    frame: Vec<Value>,
    /// The stacks the probes walked.
    pub stacks: crate::script::stacks::Stacks,
}

impl std::fmt::Debug for Runtime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl<'o> Runtime<'o> {
    /// A runtime writing to `out`.
    pub fn new(compiled: Compiled, out: &'o mut dyn Write) -> Runtime<'o> {
        let program = &compiled.program;
        let header = matches!(compiled.dialect, Dialect::D { quiet: false, .. })
            .then_some(super::dtrace::HEADER);
        let timers = timer::timers(&compiled);
        let compiled_dialect = compiled.dialect;
        let probes = record::names_probes(&compiled.placement).then(ProbeTable::default);
        Runtime {
            mem: MemStore::new(program),
            epochs: vec![0; compiled.placement.swap_slots],
            compiled,
            interp: Interp::new(),
            out,
            out_error: None,
            header,
            keys: HashMap::new(),
            undecoded: 0,
            timers,
            pending: Vec::new(),
            old: Vec::new(),
            target: 0,
            realtime_offset: realtime_offset(),
            error: None,
            recovery: Recovery::default(),
            unreadable: 0,
            truncated: 0,
            outputs: 0,
            indents: HashMap::default(),
            frame: Vec::new(),
            probes,
            stacks: crate::script::stacks::Stacks::new(matches!(
                compiled_dialect,
                Dialect::D { .. }
            )),
        }
    }

    /// Writes the control map: `target()` and the clock offset.
    pub fn init_kernel(&mut self, session: &Session) -> Result<()> {
        // The sites' functions while the targets are held at their exec
        // (a target that exits before its first record would leave only
        // `-`).
        if let Some(table) = &mut self.probes {
            table.prime(&session.plan);
        }
        self.stacks.open(session);
        self.stacks.tell(session, self.target as u32);
        let Some(map) = session.map_named(crate::engine::codegen::script::names::CONTROL) else {
            return Ok(());
        };
        let mut value = vec![0u8; map.value_buffer_len()];
        value[8 * ctl::TARGET..8 * ctl::TARGET + 8].copy_from_slice(&self.target.to_le_bytes());
        value[8 * ctl::REALTIME_OFFSET..8 * ctl::REALTIME_OFFSET + 8]
            .copy_from_slice(&self.realtime_offset.to_le_bytes());
        map.update(&0u32.to_le_bytes(), &value, 0)?;
        // Initial values of kernel globals (`global x = 5`).
        self.with_store(Some(session), &[], |store, program| {
            for (g, global) in program.globals.iter().enumerate() {
                if let (Some(init), Some(_)) = (&global.init, &self.compiled.placement.globals[g]) {
                    let v = match init {
                        pytap_script::ir::Const::Long(n) => Value::Long(*n),
                        pytap_script::ir::Const::Str(s) => Value::Str(s.clone()),
                    };
                    use pytap_script::store::Store;
                    store
                        .set(g, &[], v)
                        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
                }
            }
            Ok(())
        })
    }

    fn with_store<T>(
        &self,
        session: Option<&Session>,
        old: &[GlobalId],
        f: impl FnOnce(&mut ScriptStore<'_>, &pytap_script::ir::Program) -> Result<T>,
    ) -> Result<T> {
        let mut mem = MemStore::new(&self.compiled.program);
        let mut undecoded = 0;
        let mut store = ScriptStore {
            mem: &mut mem,
            session,
            program: &self.compiled.program,
            placement: &self.compiled.placement,
            keys: &self.keys,
            epochs: &self.epochs,
            old,
            undecoded: &mut undecoded,
            stacks: &self.stacks,
            cache: HashMap::new(),
        };
        f(&mut store, &self.compiled.program)
    }

    /// Runs the probes of one kind (`begin`, `end`) in script order.
    pub fn run_userspace(&mut self, session: Option<&Session>, kind: &PointKind) {
        let indices: Vec<usize> = self
            .compiled
            .program
            .probes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.point.kind == *kind)
            .map(|(i, _)| i)
            .collect();
        for i in indices {
            if self.error.is_some() {
                return;
            }
            self.run_probe(session, i, &[]);
        }
    }

    fn run_probe(&mut self, session: Option<&Session>, index: usize, old: &[GlobalId]) {
        let result = self.with_world(session, old, |interp, program, world| {
            interp.overrides.clear();
            interp.run_probe(program, &program.probes[index], world)
        });
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// Runs `f` with the interpreter in pytap's own context: the globals
    /// (`old`: those a timer swapped out) and the output.
    pub fn with_world<T>(
        &mut self,
        session: Option<&Session>,
        old: &[GlobalId],
        f: impl FnOnce(&mut Interp, &pytap_script::ir::Program, &mut World<'_>) -> T,
    ) -> T {
        let mut ctx = OwnContext {
            target: self.target,
        };
        self.with_context(session, old, &mut ctx, f)
    }

    /// [`Runtime::with_world`] in the context `ctx` (a probe's firing).
    pub(super) fn with_context<T>(
        &mut self,
        session: Option<&Session>,
        old: &[GlobalId],
        ctx: &mut dyn interp::Context,
        f: impl FnOnce(&mut Interp, &pytap_script::ir::Program, &mut World<'_>) -> T,
    ) -> T {
        let program = self.compiled.program.clone();
        let placement = self.compiled.placement.clone();
        self.stacks.drain();
        let mut store = ScriptStore {
            mem: &mut self.mem,
            session,
            program: &program,
            placement: &placement,
            keys: &self.keys,
            epochs: &self.epochs,
            old,
            undecoded: &mut self.undecoded,
            stacks: &self.stacks,
            cache: HashMap::new(),
        };
        let mut out = Out {
            out: self.out,
            error: &mut self.out_error,
            header: &mut self.header,
        };
        let mut world = World {
            ctx,
            store: &mut store,
            out: &mut out,
        };
        f(&mut self.interp, &program, &mut world)
    }

    /// The `end` probes; for D, then the aggregations not printed yet.
    pub fn end(&mut self, session: Option<&Session>) {
        if self.error.is_some() {
            return;
        }
        self.run_userspace(session, &PointKind::End);
        if matches!(self.compiled.dialect, Dialect::D { .. }) && self.error.is_none() {
            let result = self.with_world(session, &[], |interp, program, world| {
                super::dtrace::print_remaining(interp, program, world)
            });
            if let Err(e) = result {
                self.fail(e);
            }
        }
    }

    /// Records a run-time error (the first one ends the run).
    pub(super) fn fail(&mut self, e: RunError) {
        if self.error.is_none() {
            let d = Diagnostic::error(e.span, e.message);
            self.error = Some(d.render(&self.compiled.sources));
        }
    }

    /// Whether `exit()` was called.
    pub fn exited(&self) -> bool {
        self.interp.exit_requested
    }

    /// A write to the output failed.
    pub fn output_error(&mut self) -> Option<std::io::Error> {
        self.out_error.take()
    }

    /// Flushes the output.
    pub fn flush_out(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Wall clock minus the monotonic clock, in ns.
fn realtime_offset() -> i64 {
    let real = pytap_sys::clock::realtime_ns().unwrap_or(0);
    let mono = pytap_sys::clock::monotonic_ns().unwrap_or(0);
    real - mono
}
