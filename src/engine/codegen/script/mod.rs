//! Scripts compiled to BPF: the [`Handler`] that runs a script's marker
//! probes at the markers.
//!
//! [`placement`] decides what runs where and how globals are laid out;
//! [`lower`] lowers probe bodies (statements, numbers, user functions
//! inlined), [`strings`] the string values the kernel must hold,
//! [`globals`] map access and statistics, and [`output`] the records that
//! carry output statements' values, new keys and errors to pytap.
//!
//! Per marker the program first drops what the repaired stream drops
//! (unless `--raw-markers`): 3.15's generator creations (recognised from
//! the frame, see [`super::creation`]) and the `__init__` shim frame's
//! returns; then it runs each probe bound to this module and marker, in
//! script order, `next` jumping to the following one.
//!
//! Register use: the marker's arguments are spilled to the stack at once,
//! so bodies use r0-r5 for expressions (helpers clobber them) and stack
//! temporaries; r6-r9 are used only within self-contained sequences
//! (record filling, string loops).

pub mod bindings;
pub mod cache;
pub mod catalog;
pub mod firing;
pub mod function;
pub mod globals;
pub mod lower;
pub mod numbers;
pub mod output;
pub mod placement;
pub mod profile;
pub mod stacks;
pub mod stats;
pub mod strings;
pub mod visit;

use std::sync::Arc;

use pytap_ebpf::{Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};
use pytap_script::ir::{self, Program};

use super::record::RecordMaps;
use super::{CodegenError, Env, Handler, MapKind, MapSpec, MapTable};
use crate::cpython::Marker;
use crate::engine::abi::{self, STR_CAP};
pub use bindings::Bindings;
pub use function::arg_offset;
use placement::{Placement, ValueLayout};

/// Slots of the control map (an array of u64s, entry 0).
pub mod ctl {
    /// `target()`.
    pub const TARGET: usize = 0;
    /// Wall clock minus the monotonic clock, in ns (for `gettimeofday_*`).
    pub const REALTIME_OFFSET: usize = 1;
    /// Set by `exit()`: probes stop running.
    pub const EXITING: usize = 2;
    /// `indent()`'s counter.
    pub const INDENT_COUNTER: usize = 3;
    /// `indent()`'s time base (µs).
    pub const INDENT_BASE: usize = 4;
    /// First epoch slot of swapped globals.
    pub const EPOCHS: usize = 5;
}

/// Slots of the script's per-CPU counter array.
pub mod counter {
    /// Strings longer than the kernel's buffer.
    pub const TRUNCATED: u32 = 0;
    /// Events skipped because the scratch area was in use (a probe
    /// preempted another on the same CPU).
    pub const SCRATCH_BUSY: u32 = 1;
    /// Updates dropped because global `g`'s map was full: `FIRST_GLOBAL + g`.
    pub const FIRST_GLOBAL: u32 = 2;
}

/// Names of the script's maps (pytap finds them in the session by these).
pub mod names {
    /// The control map.
    pub const CONTROL: &str = "sctl";
    /// The counters.
    pub const COUNTERS: &str = "scount";
    /// `thread_indent`'s per-thread state.
    pub const INDENT: &str = "sindent";
    /// A global's map (`g12`, and `g12b` for its second copy).
    pub fn global(g: usize, copy: usize) -> String {
        format!("g{g}{}", if copy == 1 { "b" } else { "" })
    }
}

/// The maps a script's programs use.
#[derive(Debug, Clone)]
pub struct ScriptMaps {
    /// Ring buffer and the standard counters.
    pub record: RecordMaps,
    /// Per-CPU staging buffer for records.
    pub stage: MapRef,
    /// Per-CPU scratch area.
    pub scratch: MapRef,
    /// Per-CPU copies of marker strings read more than once in a firing.
    pub copies: MapRef,
    /// The control map.
    pub control: MapRef,
    /// The script's counters.
    pub counters: MapRef,
    /// `thread_indent`'s map.
    pub indent: Option<MapRef>,
    /// Each kernel global's maps (the second is the swap copy, or the first again).
    pub globals: Vec<Option<[MapRef; 2]>>,
    /// Bytes of the scratch area.
    pub scratch_bytes: u32,
    /// Bytes of the staging buffer (busy word included).
    pub stage_bytes: u32,
    /// The program array of the parts of split bodies, when a marker has
    /// more probes than one program takes ([`PROBES_PER_PART`]).
    pub parts: Option<MapRef>,
}

/// Probes a part of a marker's body holds at most, unless the marker has
/// so many that [`super::MAX_PARTS`] parts of this size cannot hold them:
/// then they are spread evenly over that many. The verifier's work on a
/// program grows with the square of its length (a few hundred probes take
/// seconds); parts of this size keep a script's load time linear.
pub const PROBES_PER_PART: usize = 64;

/// How many parts `probes` probes on one marker take, and how many probes
/// each part holds.
pub fn parts_for(probes: usize) -> (usize, usize) {
    let per = PROBES_PER_PART.max(probes.div_ceil(super::MAX_PARTS));
    (probes.div_ceil(per).max(1), per)
}

/// Longest key or value a script's map has (bounds the scratch area).
fn max_sizes(placement: &Placement) -> (u32, u32) {
    let mut key = 8;
    let mut value = 8;
    for g in placement.globals.iter().flatten() {
        key = key.max(g.key_size());
        value = value.max(g.value.size());
    }
    (key, value)
}

/// What a firing keeps on the stack: the marker's three arguments, then
/// the firing's `pid_tgid` and D `timestamp` (offsets in bytes).
pub const FIRING_SIZE: u16 = 40;
/// Where the firing's `bpf_get_current_pid_tgid()` is.
pub const FIRING_PID_TGID: i16 = 24;
/// Where the firing's `timestamp` is (when the program reads it).
pub const FIRING_TIMESTAMP: i16 = 32;
/// String buffers of the scratch area (temporaries and string locals).
pub const SCRATCH_STRINGS: u32 = 12;

/// The scratch area: zeros, a key, a value, then string buffers.
#[derive(Debug, Clone, Copy)]
pub struct ScratchLayout {
    /// A region never written (a zero value to insert).
    pub zeros: u32,
    /// The key buffer.
    pub key: u32,
    /// The value buffer.
    pub value: u32,
    /// The first string buffer.
    pub strings: u32,
    /// Total bytes.
    pub total: u32,
}

impl ScratchLayout {
    /// The layout for a placement.
    pub fn of(placement: &Placement) -> ScratchLayout {
        let (key, value) = max_sizes(placement);
        let round = |n: u32| n.div_ceil(8) * 8;
        let zeros = 8;
        let key_at = zeros + round(value.max(STR_CAP as u32));
        let value_at = key_at + round(key);
        let strings = value_at + round(value);
        ScratchLayout {
            zeros,
            key: key_at,
            value: value_at,
            strings,
            total: strings + SCRATCH_STRINGS * STR_CAP as u32,
        }
    }
}

impl ScriptMaps {
    /// Adds the script's maps to `table`.
    pub fn add(
        table: &mut MapTable,
        record: RecordMaps,
        program: &Program,
        placement: &Placement,
    ) -> ScriptMaps {
        let scratch_bytes = ScratchLayout::of(placement).total;
        let stage_bytes = 8 + output::max_record(program, placement) as u32;
        let stage = table.add(MapSpec {
            name: "sstage".into(),
            kind: MapKind::PercpuArray,
            key_size: 4,
            value_size: stage_bytes,
            max_entries: 1,
        });
        let scratch = table.add(MapSpec {
            name: "sscratch".into(),
            kind: MapKind::PercpuArray,
            key_size: 4,
            value_size: scratch_bytes,
            max_entries: 1,
        });
        let copies = table.add(MapSpec {
            name: "scopies".into(),
            kind: MapKind::PercpuArray,
            key_size: 4,
            value_size: firing::BUFFER_BYTES,
            max_entries: 1,
        });
        let control = table.add(MapSpec {
            name: names::CONTROL.into(),
            kind: MapKind::Array,
            key_size: 4,
            value_size: 8 * (ctl::EPOCHS + placement.swap_slots) as u32,
            max_entries: 1,
        });
        let counters = table.add(MapSpec {
            name: names::COUNTERS.into(),
            kind: MapKind::PercpuArray,
            key_size: 4,
            value_size: 8,
            max_entries: counter::FIRST_GLOBAL + program.globals.len() as u32,
        });
        let indent = placement.thread_indent.then(|| {
            table.add(MapSpec {
                name: names::INDENT.into(),
                kind: MapKind::LruHash,
                key_size: 4,
                value_size: 16,
                max_entries: 65536,
            })
        });
        let globals = global_maps(table, placement);
        let parts = parts_map(table, program);
        ScriptMaps {
            record,
            stage,
            scratch,
            copies,
            control,
            counters,
            indent,
            globals,
            scratch_bytes,
            stage_bytes,
            parts,
        }
    }
}

/// The maps of the globals the kernel probes use, by global: the map and
/// its swap copy (the same map when the global is not swapped).
fn global_maps(table: &mut MapTable, placement: &Placement) -> Vec<Option<[MapRef; 2]>> {
    placement
        .globals
        .iter()
        .enumerate()
        .map(|(g, kg)| {
            let kg = kg.as_ref()?;
            let stats = matches!(kg.value, ValueLayout::Stats { .. });
            // Arrays grow as they are used: a preallocated 65536-entry
            // map of string keys would pin tens of MiB at start-up.
            let kind = match (kg.key.is_empty(), stats) {
                (true, false) => MapKind::Array,
                (true, true) => MapKind::PercpuArray,
                (false, false) => MapKind::HashNoPrealloc,
                (false, true) => MapKind::PercpuHashNoPrealloc,
            };
            let spec = |copy| MapSpec {
                name: names::global(g, copy),
                kind,
                key_size: kg.key_size(),
                value_size: kg.value.size(),
                max_entries: if kg.key.is_empty() { 1 } else { kg.max_entries },
            };
            let first = table.add(spec(0));
            let second = match kg.swap_slot {
                Some(_) => table.add(spec(1)),
                None => first,
            };
            Some([first, second])
        })
        .collect()
}

/// The parts map, when some marker has more probes than one part runs.
fn parts_map(table: &mut MapTable, program: &Program) -> Option<MapRef> {
    // Only a script with a marker past one part's probes has parts:
    // others' programs stay as they were.
    let mut per_marker = std::collections::HashMap::<usize, usize>::new();
    for p in &program.probes {
        if let ir::PointKind::Marker { marker, .. } = p.point.kind {
            *per_marker.entry(marker).or_default() += 1;
        }
    }
    let most = per_marker.values().copied().max().unwrap_or(0);
    (most > PROBES_PER_PART).then(|| table.add(super::parts_map_spec()))
}

/// A script's probes at the markers.
#[derive(Debug, Clone)]
pub struct ScriptHandler {
    /// The compiled script.
    pub program: Arc<Program>,
    /// What runs where.
    pub placement: Arc<Placement>,
    /// Its maps.
    pub maps: ScriptMaps,
    /// Which modules each probe runs in.
    pub bindings: Arc<Bindings>,
    /// The marker of each catalogue index.
    pub markers: Vec<Marker>,
    /// `--raw-markers`: every marker hit runs the probes.
    pub raw: bool,
    /// The stack walk's maps and layouts, when probes walk stacks.
    pub stacks: Option<Arc<stacks::ScriptStacks>>,
    /// A D program (messages name its probes as D writes them).
    pub d: bool,
}

impl ScriptHandler {
    /// The probes that run at `marker` in `module`, in script order.
    fn running(&self, marker: Marker, module: &super::ModuleId) -> Vec<usize> {
        self.program
            .probes
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                self.marker_of(p) == Some(marker)
                    && self.bindings.binds(*i, module.dev, module.inode)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The marker a probe is on, if a marker probe.
    pub fn marker_of(&self, probe: &ir::Probe) -> Option<Marker> {
        match probe.point.kind {
            ir::PointKind::Marker { marker, .. } => self.markers.get(marker).copied(),
            _ => None,
        }
    }
}

impl Handler for ScriptHandler {
    fn handles(&self, marker: Marker) -> bool {
        self.program
            .probes
            .iter()
            .any(|p| self.marker_of(p) == Some(marker))
    }

    fn wants_frame(&self) -> bool {
        self.program
            .probes
            .iter()
            .any(|p| self.marker_of(p) == Some(Marker::FunctionEntry))
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        self.emit_part(marker, 0, b, env)
    }

    fn parts(&self, marker: Marker, module: &super::ModuleId) -> usize {
        match self.maps.parts {
            Some(_) => parts_for(self.running(marker, module).len()).0,
            None => 1,
        }
    }

    fn parts_map(&self) -> Option<MapRef> {
        self.maps.parts
    }

    fn functions(&self) -> Vec<super::FunctionHook> {
        self.function_hooks()
    }

    fn emit_function(
        &self,
        hook: usize,
        b: &mut ProgramBuilder,
        env: &Env,
    ) -> Result<(), CodegenError> {
        self.emit_hook(hook, b, env)
    }

    fn profiles(&self) -> Vec<u64> {
        self.profile_rates()
    }

    fn wants_ctx(&self) -> bool {
        self.placement.native_stacks
    }

    fn stack_registry(&self, module: &super::ModuleId) -> Option<(super::MapRef, u32)> {
        // The slot is the module's layout's place among the programs'
        // (a profile probe walks a process with it; `script::stacks`
        // tells the same).
        let stacks = self.stacks.as_ref()?;
        let slot = stacks
            .layouts
            .iter()
            .position(|(k, _)| *k == (module.dev, module.inode))
            .map_or(u32::MAX, |i| i as u32);
        Some((stacks.maps.procs, slot))
    }

    fn emit_profile(
        &self,
        hook: usize,
        b: &mut ProgramBuilder,
        env: &Env,
    ) -> Result<(), CodegenError> {
        self.emit_profile_hook(hook, b, env)
    }

    /// Part 0 (the module's program): the arguments, the repairs, then the
    /// first part's probes; each part ends in a tail call to the next.
    fn emit_part(
        &self,
        marker: Marker,
        part: usize,
        b: &mut ProgramBuilder,
        env: &Env,
    ) -> Result<(), CodegenError> {
        let args = self.store_firing(marker, b)?;
        // This part's probes, in script order.
        let running = self.running(marker, &env.module);
        let (parts, per) = match self.maps.parts {
            Some(_) => parts_for(running.len()),
            None => (1, running.len()),
        };
        let mine: Vec<usize> = running.into_iter().skip(part * per).take(per).collect();
        let bodies = || mine.iter().map(|&i| self.program.probes[i].body.as_slice());
        let kept = cache::worth_keeping(&self.program, &self.placement, bodies());
        let thread_cache = cache::ThreadCache::prepare(b, &kept)?;
        // 3.15's `__init__` shim returns are recognised by their names: the
        // function name's read is the firing's first (see `emit_repairs`).
        let shim_check = !self.raw && part == 0 && marker == Marker::FunctionReturn && is_315(env);
        let repair_reads: &[usize] = if shim_check { &[1] } else { &[] };
        let mut strings = firing::FiringStrings::plan(&self.program, bodies(), repair_reads);
        let done = b.new_label();
        if strings.any() {
            strings.prepare(b)?;
            strings.take(b, env, self.maps.copies);
        }
        // (The first part decided the firing is one to run the probes for.)
        if !self.raw && part == 0 {
            self.emit_repairs(marker, b, env, args.off, done, &strings)?;
        }
        self.emit_exit_check(b, env, done);
        self.emit_probes(
            b,
            env,
            &mine,
            args.off,
            lower::Firing {
                cache: &thread_cache,
                strings: &strings,
            },
        )?;
        if let Some(map) = self.maps.parts.filter(|_| part + 1 < parts) {
            // The string copies are this part's: the next takes its own.
            if strings.any() {
                strings.release(b);
            }
            super::emit_tail_call(b, env, map, marker, part + 1)?;
            b.mov64_imm(Reg::R0, 0).exit();
            if !b.is_jumped_to(done) {
                return Ok(());
            }
        }
        b.bind(done);
        if strings.any() {
            strings.release(b);
        }
        b.mov64_imm(Reg::R0, 0).exit();
        Ok(())
    }
}

/// Whether the module is CPython 3.15 or later (its repaired stream).
fn is_315(env: &Env) -> bool {
    env.module
        .version
        .is_some_and(|v| (v.major, v.minor) >= (3, 15))
}

impl ScriptHandler {
    /// The firing's values, kept on the stack for every probe of it: the
    /// marker's arguments, its pid_tgid and (when a probe reads it) its
    /// timestamp.
    fn store_firing(
        &self,
        marker: Marker,
        b: &mut ProgramBuilder,
    ) -> Result<pytap_ebpf::StackSlot, CodegenError> {
        let args = b.alloc_stack(FIRING_SIZE, 8)?;
        b.comment("the marker's arguments, kept on the stack");
        // The prologue loads as many registers as the marker has arguments.
        for (i, r) in [Reg::R7, Reg::R8, Reg::R9].into_iter().enumerate() {
            if i < marker.args().len() {
                b.stx(Size::DW, Reg::FP, args.field(8 * i as u16), r);
            } else {
                b.st_imm(Size::DW, Reg::FP, args.field(8 * i as u16), 0);
            }
        }
        // One helper call per firing, not one per `tid()`, `pid()` and
        // thread-keyed variable; D's `timestamp` is one value per firing
        // (as dtrace caches it), read once.
        b.comment("this firing's pid_tgid and timestamp");
        b.call(Helper::GetCurrentPidTgid);
        b.stx(
            Size::DW,
            Reg::FP,
            args.field(FIRING_PID_TGID as u16),
            Reg::R0,
        );
        if self.placement.timestamp {
            b.call(Helper::KtimeGetNs);
            b.stx(
                Size::DW,
                Reg::FP,
                args.field(FIRING_TIMESTAMP as u16),
                Reg::R0,
            );
        }
        Ok(args)
    }

    /// The bodies of probes `mine` for one firing, each in its own stack
    /// frame (what one body allocates the next reuses).
    fn emit_probes(
        &self,
        b: &mut ProgramBuilder,
        env: &Env,
        mine: &[usize],
        args_off: i16,
        firing: lower::Firing<'_>,
    ) -> Result<(), CodegenError> {
        for &index in mine {
            let mark = b.stack_mark();
            lower::emit_probe(self, b, env, index, args_off, firing)?;
            b.stack_release(mark);
        }
        Ok(())
    }

    /// After `exit()`, the probes stop: the control map says so.
    fn emit_exit_check(&self, b: &mut ProgramBuilder, env: &Env, done: pytap_ebpf::Label) {
        if self.placement.exits {
            b.comment("after exit(), probes stop");
            let ptr = lower::lookup_slot0(b, env, self.maps.control);
            b.jmp_imm(JmpOp::Jeq, ptr, 0, done);
            b.ldx(Size::DW, Reg::R1, ptr, (8 * ctl::EXITING) as i16);
            b.jmp_imm(JmpOp::Jne, Reg::R1, 0, done);
        }
    }

    /// Drops 3.15's generator creations and `__init__` shim returns.
    fn emit_repairs(
        &self,
        marker: Marker,
        b: &mut ProgramBuilder,
        env: &Env,
        args: i16,
        done: pytap_ebpf::Label,
        strings: &firing::FiringStrings,
    ) -> Result<(), CodegenError> {
        let v315 = is_315(env);
        match marker {
            Marker::FunctionEntry => {
                if let Some(frame) = env.frame {
                    let scratch =
                        b.alloc_stack(super::creation::scratch_bytes(&frame.source.layout), 8)?;
                    super::creation::emit_check(
                        b,
                        frame,
                        scratch.off,
                        super::creation::Funcname::Stack(args + 8),
                        super::creation::OnCreation::Jump(done),
                    );
                }
            }
            Marker::FunctionReturn if v315 => {
                b.comment(
                    "3.15's __init__ shim frame: filename and funcname are both \"__init__\"",
                );
                let buf = b.alloc_stack(16, 8)?;
                let keep = b.new_label();
                if strings.through_copy(1, firing::REPAIR) {
                    // The function name from the firing's copy (which the
                    // probes read again): most names differ at once.
                    let direct = b.new_label();
                    let copy_read = firing::CopyRead {
                        arg: 1,
                        addr: args + 8,
                        make: true,
                    };
                    strings.copy_address(b, copy_read, Reg::R1, direct);
                    for (i, byte) in b"__init__\0".iter().enumerate() {
                        b.ldx(Size::B, Reg::R2, Reg::R1, i as i16);
                        b.jmp_imm(JmpOp::Jne, Reg::R2, i32::from(*byte), keep);
                    }
                    b.bind(direct);
                }
                for arg in [0i16, 8] {
                    b.mov64_reg(Reg::R1, Reg::FP)
                        .add64_imm(Reg::R1, buf.off.into());
                    b.mov64_imm(Reg::R2, 9);
                    b.ldx(Size::DW, Reg::R3, Reg::FP, args + arg);
                    b.call(Helper::ProbeReadUser);
                    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, keep);
                    b.ldx(Size::DW, Reg::R1, Reg::FP, buf.off);
                    b.ld_imm64(Reg::R2, u64::from_le_bytes(*b"__init__"));
                    b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R2, keep);
                    b.ldx(Size::B, Reg::R1, Reg::FP, buf.off + 8);
                    b.jmp_imm(JmpOp::Jne, Reg::R1, 0, keep);
                }
                b.ja(done);
                b.bind(keep);
            }
            _ => {}
        }
        let _ = abi::STR_CAP;
        Ok(())
    }
}
