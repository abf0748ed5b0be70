//! The benchmark's split of the `trace` program (`pytap trace
//! --split-probe`): the function-record program reading both names on
//! every event (what `trace` did before names were sent once,
//! [`super::named`]), and the same with one part left out, so that
//! `scripts/bench.py` can say, in one interleaved run, what the string
//! reads, the output and the rest each add to the traced program, and
//! what sending names once saves. Nothing else uses these programs, and their records carry no
//! names. [`KernelTimingProbe`] is the floor of another design, calls
//! timed in the kernel, measured the same way.

use pytap_ebpf::{AluOp, Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};

use super::record::{Body, Parts, Record, RecordMaps};
use super::{CodegenError, Env, Handler, MapKind, MapSpec, MapTable};
use crate::cpython::Marker;
use crate::engine::abi::KindMarker;
use crate::engine::abi::{CallKey, EventKind};

/// What `--split-probe` attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Function records built whole on every event ([`Parts::Whole`]:
    /// both names read every time, `trace` before names were sent once),
    /// or without one of their parts.
    Parts(Parts),
    /// [`KernelTimingProbe`].
    KernelTiming,
}

/// The handler of a [`Split`].
#[derive(Debug, Clone, Copy)]
pub enum SplitProbe {
    /// Partial records.
    Parts {
        /// Ring buffer, counters and staging buffer.
        maps: RecordMaps,
        /// What the program does.
        parts: Parts,
    },
    /// The kernel-timing floor.
    KernelTiming(KernelTimingProbe),
}

impl SplitProbe {
    /// The handler of `split`, adding the maps it needs.
    pub fn new(split: Split, maps: RecordMaps, table: &mut MapTable) -> SplitProbe {
        match split {
            Split::Parts(parts) => SplitProbe::Parts { maps, parts },
            Split::KernelTiming => {
                let [stacks, timed] = kernel_timing_maps();
                SplitProbe::KernelTiming(KernelTimingProbe {
                    stacks: table.add(stacks),
                    timed: table.add(timed),
                    staging: maps.staging,
                })
            }
        }
    }
}

impl Handler for SplitProbe {
    fn handles(&self, marker: Marker) -> bool {
        match self {
            SplitProbe::Parts { .. } => matches!(
                marker,
                Marker::FunctionEntry | Marker::FunctionReturn | Marker::Line
            ),
            SplitProbe::KernelTiming(probe) => probe.handles(marker),
        }
    }

    fn uses_rings(&self) -> bool {
        matches!(self, SplitProbe::Parts { maps, .. } if maps.rings.is_some())
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        match self {
            SplitProbe::Parts { maps, parts } => {
                let record = Record::packed(env, *maps, EventKind::of(marker));
                let body = Body::Packed(*parts);
                Record { body, ..record }.emit(b);
                Ok(())
            }
            SplitProbe::KernelTiming(probe) => probe.emit(marker, b, env),
        }
    }
}

/// Slots of a thread's clock stack in [`KernelTimingProbe`].
pub const STACK_SLOTS: u32 = 32;

/// The maps [`KernelTimingProbe`] needs: per thread, a depth and the entry
/// times of its innermost frames; per function, total time and calls.
pub fn kernel_timing_maps() -> [MapSpec; 2] {
    [
        MapSpec {
            name: "stacks".into(),
            kind: MapKind::LruHash,
            key_size: 4,
            value_size: 8 + 8 * STACK_SLOTS,
            max_entries: 65536,
        },
        MapSpec {
            name: "timed".into(),
            kind: MapKind::Hash,
            key_size: CallKey::SIZE as u32,
            value_size: 16,
            max_entries: 65536,
        },
    ]
}

/// The least a `calls` that times calls in the kernel does per event (the
/// benchmark's floor for that design; it sends nothing): a clock read, the
/// thread's stack of entry times (an LRU hash keyed by thread id), and at
/// each return one per-function hash update (time and count). No
/// recursion rule, no percentiles: whatever a real one adds comes on top.
#[derive(Debug, Clone, Copy)]
pub struct KernelTimingProbe {
    /// [`kernel_timing_maps`]'s stacks.
    pub stacks: MapRef,
    /// [`kernel_timing_maps`]'s per-function totals.
    pub timed: MapRef,
    /// The staging buffer (a thread's first stack is copied from it).
    pub staging: MapRef,
}

impl Handler for KernelTimingProbe {
    fn handles(&self, marker: Marker) -> bool {
        matches!(marker, Marker::FunctionEntry | Marker::FunctionReturn)
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        let entry = marker == Marker::FunctionEntry;
        let zero = b.alloc_stack(16, 8)?;
        let tid = b.alloc_stack(4, 4)?;
        let key = b.alloc_stack(CallKey::SIZE as u16, 8)?;
        let (found, done, counted) = (b.new_label(), b.new_label(), b.new_label());
        b.call(Helper::GetCurrentPidTgid);
        b.stx(Size::W, Reg::FP, tid.off, Reg::R0);
        b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
        b.stx(Size::W, Reg::FP, key.off, Reg::R0);
        b.ld_map_fd(Reg::R1, self.stacks);
        b.mov64_reg(Reg::R2, Reg::FP)
            .add64_imm(Reg::R2, tid.off.into());
        b.call(Helper::MapLookupElem);
        b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
        if !entry {
            b.ja(done);
        } else {
            b.comment(
                "the thread's first entry: a stack (from the staging buffer's bytes), depth 0",
            );
            let ptr = super::lookup_slot0(b, env, self.staging);
            b.jmp_imm(JmpOp::Jeq, ptr, 0, done);
            b.mov64_reg(Reg::R3, Reg::R0);
            b.ld_map_fd(Reg::R1, self.stacks);
            b.mov64_reg(Reg::R2, Reg::FP)
                .add64_imm(Reg::R2, tid.off.into());
            b.mov64_imm(Reg::R4, 0);
            b.call(Helper::MapUpdateElem);
            b.ld_map_fd(Reg::R1, self.stacks);
            b.mov64_reg(Reg::R2, Reg::FP)
                .add64_imm(Reg::R2, tid.off.into());
            b.call(Helper::MapLookupElem);
            b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
            b.st_imm(Size::DW, Reg::R0, 0, 0);
        }
        b.bind(found);
        b.mov64_reg(Reg::R6, Reg::R0);
        b.ldx(Size::DW, Reg::R1, Reg::R6, 0);
        if entry {
            b.mov64_reg(Reg::R2, Reg::R1).add64_imm(Reg::R2, 1);
            b.stx(Size::DW, Reg::R6, 0, Reg::R2);
            b.jmp_imm(JmpOp::Jge, Reg::R1, STACK_SLOTS as i32, done);
            b.alu64_imm(AluOp::Lsh, Reg::R1, 3);
            b.alu64_reg(AluOp::Add, Reg::R6, Reg::R1);
            b.call(Helper::KtimeGetNs);
            b.stx(Size::DW, Reg::R6, 8, Reg::R0);
        } else {
            b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
            b.add64_imm(Reg::R1, -1);
            b.stx(Size::DW, Reg::R6, 0, Reg::R1);
            b.jmp_imm(JmpOp::Jge, Reg::R1, STACK_SLOTS as i32, done);
            b.alu64_imm(AluOp::Lsh, Reg::R1, 3);
            b.alu64_reg(AluOp::Add, Reg::R6, Reg::R1);
            b.call(Helper::KtimeGetNs);
            b.ldx(Size::DW, Reg::R1, Reg::R6, 8);
            b.alu64_reg(AluOp::Sub, Reg::R0, Reg::R1);
            b.mov64_reg(Reg::R6, Reg::R0);
            b.stx(Size::W, Reg::FP, key.off + 4, Reg::R9);
            b.stx(Size::DW, Reg::FP, key.off + 8, Reg::R7);
            b.stx(Size::DW, Reg::FP, key.off + 16, Reg::R8);
            b.ld_map_fd(Reg::R1, self.timed);
            b.mov64_reg(Reg::R2, Reg::FP)
                .add64_imm(Reg::R2, key.off.into());
            b.call(Helper::MapLookupElem);
            b.jmp_imm(JmpOp::Jne, Reg::R0, 0, counted);
            b.stx(Size::DW, Reg::FP, zero.off, Reg::R6);
            b.st_imm(Size::DW, Reg::FP, zero.off + 8, 1);
            b.ld_map_fd(Reg::R1, self.timed);
            b.mov64_reg(Reg::R2, Reg::FP)
                .add64_imm(Reg::R2, key.off.into());
            b.mov64_reg(Reg::R3, Reg::FP)
                .add64_imm(Reg::R3, zero.off.into());
            b.mov64_imm(Reg::R4, 1);
            b.call(Helper::MapUpdateElem);
            b.ja(done);
            b.bind(counted);
            b.atomic_add(Size::DW, Reg::R0, 0, Reg::R6);
            b.mov64_imm(Reg::R1, 1);
            b.atomic_add(Size::DW, Reg::R0, 8, Reg::R1);
        }
        b.bind(done);
        b.mov64_imm(Reg::R0, 0).exit();
        Ok(())
    }
}
