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

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use pytap_script::builtins::Builtin;
use pytap_script::check::Dialect;
use pytap_script::diag::Diagnostic;
use pytap_script::interp::{self, Interp, ProbeInfo, RunError, World};
use pytap_script::ir::{GlobalId, PointKind, StmtKind};
use pytap_script::store::MemStore;
use pytap_script::value::Value;

use super::compile::Compiled;
use super::context::{Out, OwnContext, RecordContext};
use super::store::{KeyNames, ScriptStore};
use crate::engine::abi;
use crate::engine::codegen::script::placement::{KeyPart, LeafKind};
use crate::engine::codegen::script::{ctl, names};
use crate::engine::consumer::Consumer;
use crate::engine::recover::Recovery;
use crate::engine::script_record::{self, ScriptRecordView, ScriptStr};
use crate::engine::session::Session;
use crate::engine::source::Source;
use crate::tool::dtrace::probes::ProbeTable;

/// A timer probe.
#[derive(Debug)]
struct Timer {
    probe: usize,
    period: Duration,
    next: Instant,
    /// Globals it deletes whole that the kernel writes: (global, swap slot).
    swaps: Vec<(GlobalId, usize)>,
}

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
            .then_some(crate::tool::dtrace::HEADER);
        let now = Instant::now();
        let timers = program
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
            .collect();
        let probes = names_probes(&compiled.placement).then(ProbeTable::default);
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
        }
    }

    /// How often the run loop must tick for the timers (their common
    /// divisor), if there are any.
    pub fn tick(&self) -> Option<Duration> {
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

    /// Writes the control map: `target()` and the clock offset.
    pub fn init_kernel(&mut self, session: &Session) -> Result<()> {
        // The sites' functions while the targets are held at their exec
        // (a target that exits before its first record would leave only
        // `-`).
        if let Some(table) = &mut self.probes {
            table.prime(&session.plan);
        }
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
        let mut store = ScriptStore {
            mem: &mut self.mem,
            session,
            program: &program,
            placement: &placement,
            keys: &self.keys,
            epochs: &self.epochs,
            old,
            undecoded: &mut self.undecoded,
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
                crate::tool::dtrace::print_remaining(interp, program, world)
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

    /// A string the kernel sent, recovered from the binary when the probe
    /// could not read it.
    fn text(
        &mut self,
        s: &ScriptStr<'_>,
        rec: &ScriptRecordView<'_>,
        session: &Session,
    ) -> Vec<u8> {
        if s.truncated {
            self.truncated += 1;
        }
        if s.ret > 0 || s.ptr == 0 {
            return s.bytes.to_vec();
        }
        match self.recovery.string(session, rec.site, rec.pid, s.ptr) {
            Some(b) => b,
            None => {
                self.unreadable += 1;
                Vec::new()
            }
        }
    }

    fn output(&mut self, rec: &ScriptRecordView<'_>, session: &Session) {
        let placement = self.compiled.placement.clone();
        let program = self.compiled.program.clone();
        let Some(site) = placement.outputs.get(rec.id as usize) else {
            return;
        };
        self.outputs += 1;
        let mut longs = rec.longs();
        let mut strs = rec.strings();
        let mut overrides = std::mem::take(&mut self.interp.overrides);
        overrides.clear();
        for leaf in &site.leaves {
            let value = match leaf.kind {
                LeafKind::Long => Value::Long(longs.next().unwrap_or(0)),
                LeafKind::Str => match strs.next() {
                    Some(s) => Value::Str(self.text(&s, rec, session)),
                    None => Value::Str(Vec::new()),
                },
                LeafKind::Indent { thread, kernel } => {
                    let (elapsed, depth) = if kernel {
                        (longs.next().unwrap_or(0), longs.next().unwrap_or(0))
                    } else {
                        // The same step the kernel would make, at the record's time.
                        let delta = longs.next().unwrap_or(0);
                        let now = (rec.ts_ns / 1000) as i64;
                        let key = if thread { i64::from(rec.tid) } else { -1 };
                        let state = self.indents.entry(key).or_insert((0, 0));
                        let depth = interp::indent_step(state, delta, now);
                        (now - state.1, depth)
                    };
                    let mut desc = Vec::new();
                    if thread {
                        let names = session.tasks.borrow();
                        desc.extend_from_slice(names.comm(rec.pid, rec.tid).as_bytes());
                        desc.push(b'(');
                        desc.extend_from_slice(itoa::Buffer::new().format(rec.tid).as_bytes());
                        desc.push(b')');
                    }
                    Value::Str(interp::indent_text(elapsed, &desc, depth))
                }
            };
            overrides.insert(leaf.expr.id, value);
        }
        self.interp.overrides = overrides;
        let probe = &program.probes[site.probe];
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        frame.extend(probe.locals.iter().map(|l| Value::zero(l.ty)));
        let probe = match &mut self.probes {
            Some(table) => table.info(&session.plan, rec.site),
            None => ProbeInfo::default(),
        };
        let mut ctx = RecordContext {
            probe,
            marker: None,
            pid: rec.pid,
            tid: rec.tid,
            cpu: rec.cpu,
            now_ns: self.realtime_offset.saturating_add(rec.ts_ns as i64),
            monotonic_ns: rec.ts_ns as i64,
            target: self.target,
            session,
        };
        let mut store = ScriptStore {
            mem: &mut self.mem,
            session: Some(session),
            program: &program,
            placement: &placement,
            keys: &self.keys,
            epochs: &self.epochs,
            old: &[],
            undecoded: &mut self.undecoded,
            cache: HashMap::new(),
        };
        let mut out = Out {
            out: self.out,
            error: &mut self.out_error,
            header: &mut self.header,
        };
        let mut world = World {
            ctx: &mut ctx,
            store: &mut store,
            out: &mut out,
        };
        let result = self
            .interp
            .eval_with(&program, &site.expr, &mut frame, &mut world);
        self.interp.overrides.clear();
        self.frame = frame;
        if let Err(e) = result {
            self.fail(e);
        }
    }

    fn key(&mut self, rec: &ScriptRecordView<'_>, session: &Session) {
        let g = rec.id as usize;
        let Some(kg) = self.compiled.placement.globals.get(g).cloned().flatten() else {
            return;
        };
        let mut strs = rec.strings();
        let mut keys = Vec::new();
        for (i, part) in kg.key.iter().enumerate() {
            let at = kg.key_offset(i) as usize;
            let word = rec
                .key
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, i64::from_le_bytes);
            match part {
                KeyPart::Tgid => {}
                KeyPart::Long => keys.push(Value::Long(word)),
                KeyPart::Address => {
                    let text = match strs.next() {
                        Some(s) => self.text(&s, rec, session),
                        None => Vec::new(),
                    };
                    keys.push(Value::Str(text));
                }
                KeyPart::Bytes => {}
            }
        }
        self.keys.insert((g, rec.key.to_vec()), keys);
    }

    /// The script's counters, for the summary.
    pub fn report(&self, session: &Session) {
        let Some(map) = session.map_named(names::COUNTERS) else {
            return;
        };
        use crate::engine::codegen::script::counter;
        let read = |i: u32| crate::engine::session::read_counter(map, i);
        let truncated = read(counter::TRUNCATED) + self.truncated;
        if truncated > 0 {
            crate::notice!(
                "{truncated} strings were longer than {} bytes and were cut",
                abi::STR_CAP - 1
            );
        }
        let busy = read(counter::SCRATCH_BUSY);
        if busy > 0 {
            crate::notice!(
                "{busy} probe runs were skipped: a probe preempted another on the same CPU while it used its scratch area"
            );
        }
        for (g, global) in self.compiled.program.globals.iter().enumerate() {
            let dropped = read(counter::FIRST_GLOBAL + g as u32);
            if dropped > 0 {
                crate::notice!(
                    "{dropped} updates of `{}` were dropped: the array is full ({} entries); declare it bigger, `global {}[N]`",
                    global.name,
                    global
                        .size
                        .unwrap_or(pytap_script::store::DEFAULT_ARRAY_SIZE),
                    global.name
                );
            }
        }
        if self.unreadable > 0 {
            crate::notice!(
                "{} strings could not be read in the traced process and were printed empty",
                self.unreadable
            );
        }
        if self.undecoded > 0 {
            crate::notice!(
                "{} array keys were left out: their strings were lost with the ring buffer's records",
                self.undecoded
            );
        }
    }

    /// Swaps the globals of the timers due now (see the module docs).
    fn prepare(&mut self, session: Option<&Session>) -> Result<()> {
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

/// The live session a script's records come from (scripts do not replay
/// recordings).
fn live(source: &dyn Source) -> Result<&Session> {
    source
        .session()
        .ok_or_else(|| anyhow::anyhow!("internal: a script runs on a live session"))
}

impl Consumer for Runtime<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.indents.remove(&i64::from(tid));
        self.interp.forget_thread(i64::from(tid));
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        for tid in [pid, old_tid] {
            self.thread_exited(pid, tid)?;
        }
        Ok(())
    }

    fn event(
        &mut self,
        event: &crate::engine::decode::Event<'_>,
        source: &dyn Source,
    ) -> Result<()> {
        if event.header.flags & crate::engine::abi::FLAG_IN_PROCESS != 0 {
            let session = live(source)?;
            self.in_process_event(event, session);
            if let Some(e) = self.out_error.take() {
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn record(&mut self, bytes: &[u8], source: &dyn Source) -> Result<bool> {
        let Some(rec) = script_record::decode(bytes) else {
            return Ok(false);
        };
        let session = live(source)?;
        let rec = rec?;
        if self.error.is_some() || self.exited() {
            return Ok(true);
        }
        match rec.kind {
            abi::SCRIPT_OUTPUT => self.output(&rec, session),
            abi::SCRIPT_KEY => self.key(&rec, session),
            abi::SCRIPT_ERROR => {
                if let Some(site) = self.compiled.placement.errors.get(rec.id as usize) {
                    let e = RunError {
                        span: site.span,
                        message: site.message.clone(),
                    };
                    self.fail(e);
                }
            }
            _ => {}
        }
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(true)
    }

    fn before_tick(&mut self, source: &dyn Source) -> Result<()> {
        self.prepare(source.session())
    }

    fn tick(&mut self, source: &dyn Source) -> Result<()> {
        self.run_timers(source.session())?;
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(())
    }

    fn finish(&mut self, source: &dyn Source) -> Result<()> {
        self.end(source.session());
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(())
    }

    fn exit_requested(&self) -> bool {
        self.exited() || self.error.is_some()
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn describe(&self, events: u64) -> String {
        format!("{events} records")
    }
}

/// Whether some output of a kernel probe prints what only the site names
/// (D's `probefunc`, `probemod`, the firing line's ID).
fn names_probes(placement: &crate::engine::codegen::script::placement::Placement) -> bool {
    placement.outputs.iter().any(|site| {
        let mut found = false;
        pytap_script::check::walk(&site.expr, &mut |e| {
            found |= matches!(
                e.kind,
                pytap_script::ir::ExprKind::Builtin(
                    Builtin::Probefunc | Builtin::Probemod | Builtin::ProbeId,
                    _
                )
            );
        });
        found
    })
}
