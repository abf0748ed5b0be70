//! Stacks in scripts. Python stacks (`jstack()`, `sprint_pybacktrace()`): where a
//! probe's value is a stack, the probe walks the firing thread's stack
//! with the sampler's walk ([`pystack::emit_walk`], inlined), which sends
//! the frames as a sample to the script's samples ring, then hashes the
//! same frames into a 64-bit id ([`stack_id`]). The id is what the kernel
//! keeps: an aggregation's key, a printed value's leaf. pytap computes the
//! id of every sample it reads the same way and names each stack once
//! (`script::stacks`), so a key or a printed value becomes its frames
//! wherever it is shown. Id 0 is no stack: the process was not known to
//! the walk (not yet running CPython, or not a traced process).
//!
//! Native stacks (`ustack()`, `sprint_ubacktrace()`) are walked by frame
//! pointers from the firing's registers
//! ([`pystack::emit_native_walk`]), sent as a sample with no Python
//! frames, and keyed by [`native_stack_id`], which no Python stack's id
//! equals.
//!
//! The maps are the sampler's kinds under names of their own (a script's
//! session already has `counters`). Nothing here writes a hash map: the
//! walk reads `procs` and `threads` (pytap fills them), and writes only
//! the per-CPU buffer, the counters and the ring, so it may run in NMI
//! context (a perf event) as the sampler's walkers do.

use pytap_abi::sample::{FLAG_NATIVE_ONLY, MAX_FRAMES, MAX_NATIVE, off};
use pytap_ebpf::{AluOp, Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};
use pytap_script::builtins::Builtin;
use pytap_script::ir::{Expr, ExprKind, PointKind};

use super::lower::{Gen, unsupported};
use crate::cpython::layout::StackLayout;
use crate::engine::codegen::pystack::{self, WalkFor, WalkMaps};
use crate::engine::codegen::{CodegenError, MapKind, MapSpec, MapTable};

/// Names of the stack maps (pytap opens them by name).
pub mod names {
    /// tgid → `ProcConfig`.
    pub const PROCS: &str = "pyprocs";
    /// `ThreadKey` → thread state.
    pub const THREADS: &str = "pythreads";
    /// The samples ring.
    pub const SAMPLES: &str = "pysamples";
    /// Per-CPU counters (`COUNTER_LOST`: samples the ring had no room for).
    pub const COUNTERS: &str = "pycounters";
}

/// Bytes of the samples ring.
pub const RING_BYTES: u32 = 4 << 20;

/// What a script's probes need to walk stacks.
#[derive(Debug, Clone)]
pub struct ScriptStacks {
    /// `task_struct.thread.fsbase`'s offset on this kernel.
    pub fsbase: u32,
    /// The walk's maps.
    pub maps: WalkMaps,
    /// The layout of each module's CPython, by (`st_dev`, inode).
    pub layouts: Vec<((u64, u64), StackLayout)>,
}

impl ScriptStacks {
    /// The layout of module `(dev, inode)`.
    pub fn layout(&self, dev: u64, inode: u64) -> Option<&StackLayout> {
        self.layouts
            .iter()
            .find(|(k, _)| *k == (dev, inode))
            .map(|(_, l)| l)
    }
}

/// The walk's maps, added to `table` under names of their own (a
/// script's session has its own `counters`).
pub fn maps(table: &mut MapTable) -> WalkMaps {
    let counters = table.add(MapSpec {
        name: names::COUNTERS.into(),
        kind: MapKind::PercpuArray,
        key_size: 4,
        value_size: 8,
        max_entries: crate::engine::abi::COUNTERS,
    });
    let names = pystack::WalkNames {
        procs: names::PROCS,
        threads: names::THREADS,
        scratch: "pybuf",
        samples: names::SAMPLES,
    };
    pystack::walk_maps(
        table,
        &names,
        RING_BYTES,
        counters,
        crate::engine::abi::COUNTER_LOST,
    )
}

/// FNV-1a's 64-bit offset basis and prime, over 64-bit words.
const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The id of a walked stack: its depth and flags, then each frame's code
/// pointer and its (offset, fingerprint) word, hashed; never 0 (no stack).
/// The kernel computes the same over the sample it sent.
pub fn stack_id(depth: u16, flags: u16, frames: &[(u64, u64)]) -> u64 {
    let mut h = BASIS;
    let mut mix = |w: u64| h = (h ^ w).wrapping_mul(PRIME);
    mix(u64::from(depth) | u64::from(flags) << 16);
    for &(code, word) in frames.iter().take(usize::from(depth).min(MAX_FRAMES)) {
        mix(code);
        mix(word);
    }
    if h == 0 { 1 } else { h }
}

/// A frame's second word as the kernel reads it: the offset (low half)
/// and the fingerprint (high half).
pub fn frame_word(offset: i32, fingerprint: u32) -> u64 {
    u64::from(offset as u32) | u64::from(fingerprint) << 32
}

/// Emits the walk of the firing thread's stack and leaves its id
/// ([`stack_id`], 0 when no stack was walked) in the stack slot `out`.
/// `ts_slot` holds the firing's timestamp. Clobbers every register.
pub fn emit_stack_id(
    b: &mut ProgramBuilder,
    stacks: &ScriptStacks,
    layout: &StackLayout,
    ts_slot: i16,
    out: i16,
) -> Result<(), CodegenError> {
    b.comment("a Python stack: the walk, then the id of what it sent");
    let maps = stacks.maps;
    emit_walk_and_id(b, maps, out, Hashed::PYTHON, |b| {
        pystack::emit_walk(b, layout, stacks.fsbase, maps, WalkFor::Event { ts_slot })
    })
}

/// What of a sample an id hashes: the count at `count` (with the header's
/// flags, or a fixed flag), then, for each of at most `max` 16-byte
/// entries after the header, the words at `words`.
struct Hashed {
    count: usize,
    flag: Option<u16>,
    max: usize,
    words: &'static [usize],
}

impl Hashed {
    /// [`stack_id`]: the depth and flags, each frame's code pointer and
    /// its (offset, fingerprint) word.
    const PYTHON: Hashed = Hashed {
        count: off::DEPTH,
        flag: None,
        max: MAX_FRAMES,
        words: &[off::FRAME_CODE, off::FRAME_OFFSET],
    };
    /// [`native_stack_id`]: the entry count with [`FLAG_NATIVE_ONLY`],
    /// each entry's address.
    const NATIVE: Hashed = Hashed {
        count: off::NATIVE,
        flag: Some(FLAG_NATIVE_ONLY),
        max: MAX_NATIVE,
        words: &[0],
    };
}

/// Emits `walk` (which sends a sample from the per-CPU buffer), then the
/// id of the sample it sent, as `hashed` says, into the stack slot `out`
/// (0 when it sent none: the sample's time is cleared before the walk).
fn emit_walk_and_id(
    b: &mut ProgramBuilder,
    maps: WalkMaps,
    out: i16,
    hashed: Hashed,
    walk: impl FnOnce(&mut ProgramBuilder) -> Result<(), pytap_ebpf::BuildError>,
) -> Result<(), CodegenError> {
    b.st_imm(Size::DW, Reg::FP, out, 0);
    // The sample's time says whether the walk wrote one: 0 before it.
    let walked = b.new_label();
    lookup_buffer(b, maps.scratch, out, walked);
    b.st_imm(Size::DW, Reg::R0, off::TS as i16, 0);
    b.bind(walked);
    walk(b)?;
    let done = b.new_label();
    b.st_imm(Size::DW, Reg::FP, out, 0);
    lookup_buffer(b, maps.scratch, out, done);
    b.mov64_reg(Reg::R6, Reg::R0);
    b.ldx(Size::DW, Reg::R1, Reg::R6, off::TS as i16);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
    // r7: the count; r8: the hash; r9: the entry; r4: the prime.
    b.ldx(Size::H, Reg::R7, Reg::R6, hashed.count as i16);
    match hashed.flag {
        None => {
            b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
            b.alu64_imm(AluOp::Lsh, Reg::R1, 16);
            b.alu64_reg(AluOp::Or, Reg::R1, Reg::R7);
        }
        Some(flag) => {
            b.mov64_reg(Reg::R1, Reg::R7);
            b.alu64_imm(AluOp::Or, Reg::R1, i32::from(flag) << 16);
        }
    }
    b.ld_imm64(Reg::R8, BASIS);
    b.ld_imm64(Reg::R4, PRIME);
    b.alu64_reg(AluOp::Xor, Reg::R8, Reg::R1);
    b.alu64_reg(AluOp::Mul, Reg::R8, Reg::R4);
    b.mov64_imm(Reg::R9, 0);
    let top = b.new_label();
    let end = b.new_label();
    b.bind(top);
    b.jmp_reg(JmpOp::Jge, Reg::R9, Reg::R7, end);
    b.jmp_imm(JmpOp::Jge, Reg::R9, hashed.max as i32, end);
    b.mov64_reg(Reg::R2, Reg::R9);
    b.alu64_imm(AluOp::And, Reg::R2, (hashed.max - 1) as i32);
    b.alu64_imm(AluOp::Lsh, Reg::R2, 4);
    b.alu64_reg(AluOp::Add, Reg::R2, Reg::R6);
    for &word in hashed.words {
        b.ldx(Size::DW, Reg::R3, Reg::R2, (off::HEADER + word) as i16);
        b.alu64_reg(AluOp::Xor, Reg::R8, Reg::R3);
        b.alu64_reg(AluOp::Mul, Reg::R8, Reg::R4);
    }
    b.add64_imm(Reg::R9, 1);
    b.ja(top);
    b.bind(end);
    let nonzero = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R8, 0, nonzero);
    b.mov64_imm(Reg::R8, 1);
    b.bind(nonzero);
    b.stx(Size::DW, Reg::FP, out, Reg::R8);
    b.bind(done);
    Ok(())
}

impl Gen<'_> {
    /// Walks the stack `e` names (`jstack()`, `ustack()`) and puts its id
    /// in a new temporary.
    pub fn stack_to_temp(&mut self, e: &Expr) -> Result<i16, CodegenError> {
        let t = self.temp()?;
        let stacks = self
            .h
            .stacks
            .as_deref()
            .ok_or_else(|| unsupported("a stack without the walk's maps"))?;
        let ts = self.args + super::FIRING_TIMESTAMP;
        if matches!(e.kind, ExprKind::Builtin(Builtin::Ustack, _)) {
            let ctx = self
                .env
                .slots
                .ctx
                .ok_or_else(|| unsupported("a native stack without the context kept"))?;
            let at_entry = matches!(
                self.h.program.probes[self.probe].point.kind,
                PointKind::Function { ret: false, .. }
            );
            emit_native_stack_id(self.b, stacks.maps, ctx.off, at_entry, ts, t)?;
            return Ok(t);
        }
        if self.env.module.is_none() {
            return self.stack_of_any_process(stacks, ts, t);
        }
        let Some(layout) = stacks.layout(self.env.module.dev, self.env.module.inode) else {
            return Err(unsupported(
                "a stack in a module whose CPython stack layout is not known",
            ));
        };
        emit_stack_id(self.b, stacks, layout, ts, t)?;
        Ok(t)
    }

    /// A profile probe's stack: it fires in any process, so the walk of
    /// each layout is there and the process's `ProcConfig::slot` (its
    /// layout's index in [`ScriptStacks::layouts`], which pytap sets when
    /// it tells the walk about the process) picks one; a process not told
    /// has no stack (id 0).
    fn stack_of_any_process(
        &mut self,
        stacks: &ScriptStacks,
        ts: i16,
        t: i16,
    ) -> Result<i16, CodegenError> {
        let b = &mut *self.b;
        let done = b.new_label();
        let slot = b.alloc_stack(8, 8)?;
        b.comment("a profile probe's stack: the layout of the process's CPython");
        b.st_imm(Size::DW, Reg::FP, t, 0);
        b.ldx(
            Size::DW,
            Reg::R1,
            Reg::FP,
            self.args + super::FIRING_PID_TGID,
        );
        b.alu64_imm(AluOp::Rsh, Reg::R1, 32);
        b.stx(Size::DW, Reg::FP, slot.off, Reg::R1);
        b.ld_map_fd(Reg::R1, stacks.maps.procs);
        b.mov64_reg(Reg::R2, Reg::FP)
            .add64_imm(Reg::R2, slot.off.into());
        b.call(Helper::MapLookupElem);
        b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
        b.ldx(Size::W, Reg::R1, Reg::R0, off::CONFIG_SLOT as i16);
        b.stx(Size::DW, Reg::FP, slot.off, Reg::R1);
        for (index, (_, layout)) in stacks.layouts.iter().enumerate() {
            let other = b.new_label();
            b.ldx(Size::DW, Reg::R1, Reg::FP, slot.off);
            b.jmp_imm(JmpOp::Jne, Reg::R1, index as i32, other);
            emit_stack_id(b, stacks, layout, ts, t)?;
            b.ja(done);
            b.bind(other);
        }
        b.bind(done);
        Ok(t)
    }
}

/// Emits the native walk (`ustack()`) and leaves the id of what it sent
/// ([`native_stack_id`], 0 when nothing was sent) in the stack slot `out`.
fn emit_native_stack_id(
    b: &mut ProgramBuilder,
    maps: WalkMaps,
    ctx_slot: i16,
    at_entry: bool,
    ts_slot: i16,
    out: i16,
) -> Result<(), CodegenError> {
    b.comment("a native stack: the walk, then the id of what it sent");
    emit_walk_and_id(b, maps, out, Hashed::NATIVE, |b| {
        pystack::emit_native_walk(b, maps, ctx_slot, ts_slot, at_entry)
    })
}

/// The id of a native-only stack (`ustack()`): its entry count with
/// [`FLAG_NATIVE_ONLY`], then each entry's address, hashed; never 0. The
/// flag keeps it apart from every Python stack's id. The kernel computes
/// the same over the sample it sent.
pub fn native_stack_id(addresses: &[u64]) -> u64 {
    let mut h = BASIS;
    let mut mix = |w: u64| h = (h ^ w).wrapping_mul(PRIME);
    mix(addresses.len() as u64 | u64::from(FLAG_NATIVE_ONLY) << 16);
    for &a in addresses.iter().take(MAX_NATIVE) {
        mix(a);
    }
    if h == 0 { 1 } else { h }
}

/// `r0 = &buffer` (the slot `key` must hold 0), to `miss` when absent.
fn lookup_buffer(b: &mut ProgramBuilder, map: MapRef, key: i16, miss: pytap_ebpf::Label) {
    b.ld_map_fd(Reg::R1, map);
    b.mov64_reg(Reg::R2, Reg::FP).add64_imm(Reg::R2, key.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, miss);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cover_depth_flags_and_every_frame_and_are_never_zero() {
        let a = [(0x1000, frame_word(10, 7)), (0x2000, frame_word(-1, 9))];
        let id = stack_id(2, 0, &a);
        assert_ne!(id, 0);
        assert_eq!(id, stack_id(2, 0, &a));
        assert_ne!(id, stack_id(2, 1, &a), "flags count");
        assert_ne!(id, stack_id(1, 0, &a), "depth counts");
        let b = [(0x1000, frame_word(12, 7)), (0x2000, frame_word(-1, 9))];
        assert_ne!(id, stack_id(2, 0, &b), "offsets count");
        // Frames past the depth are stale bytes of the buffer: not hashed.
        let c = [a[0], a[1], (0x3000, 0)];
        assert_eq!(id, stack_id(2, 0, &c));
        assert_eq!(frame_word(-1, 2), 0x0000_0002_ffff_ffff);
    }

    #[test]
    fn native_ids_cover_every_address_and_are_never_a_python_stacks() {
        let id = native_stack_id(&[0x1000, 0x2000]);
        assert_eq!(id, native_stack_id(&[0x1000, 0x2000]));
        assert_ne!(id, native_stack_id(&[0x1000, 0x2001]));
        assert_ne!(id, native_stack_id(&[0x1000]));
        assert_ne!(id, 0);
        // The same words as a Python stack of two frames: another id.
        assert_ne!(id, stack_id(2, 0, &[(0x1000, 0), (0x2000, 0)]));
    }
}
