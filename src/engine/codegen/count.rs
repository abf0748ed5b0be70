//! Handlers for the aggregating tools: functions are counted in a kernel
//! hash map keyed by [`CallKey`], and their names cross the ring buffer only
//! once, in a full record at the first call of each key.
//!
//! - [`CountCalls`] (`pytap top`): a call is one atomic add in the map;
//!   nothing else leaves the kernel.
//! - [`LeanCalls`] (`pytap calls`): entries and returns are streamed as
//!   lean records (the fixed part: header, line, pointers; no strings),
//!   which the consumer names from what the full records taught it; the
//!   map only tells known keys from new ones.
//!
//! A key the full map cannot take is counted in `COUNTER_UNCOUNTED` and its
//! call still streamed whole (`LeanCalls`) or reported (`CountCalls`).

use std::collections::BTreeSet;

use pytap_ebpf::{AluOp, Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};

use super::record::{Record, RecordMaps};
use super::{CodegenError, Env, Handler, emit_count};
use crate::cpython::Marker;
use crate::engine::abi::KindMarker;
use crate::engine::abi::{self, CallKey, EventKind};

/// `BPF_NOEXIST`: insert only.
const BPF_NOEXIST: i32 = 1;

/// Name of the count map (consumers find it in the session by this name).
pub const COUNT_MAP: &str = "calls";

/// The count map a plan needs for these handlers.
pub fn count_map_spec(max_functions: u32) -> super::MapSpec {
    super::MapSpec {
        name: COUNT_MAP.into(),
        kind: super::MapKind::Hash,
        key_size: CallKey::SIZE as u32,
        value_size: 8,
        max_entries: max_functions,
    }
}

/// `pytap top`: counts calls of `marker` per function.
#[derive(Debug, Clone)]
pub struct CountCalls {
    /// Ring buffer and counters.
    pub maps: RecordMaps,
    /// The count map ([`count_map_spec`]).
    pub counts: MapRef,
    /// The marker counted (function__entry, or function__return where
    /// entries do not fire).
    pub marker: Marker,
}

impl Handler for CountCalls {
    fn handles(&self, marker: Marker) -> bool {
        marker == self.marker
    }

    fn uses_rings(&self) -> bool {
        self.maps.rings.is_some()
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        emit_counted(b, env, self.maps, self.counts, EventKind::of(marker), false)
    }
}

/// `pytap calls`: counts and streams lean entries and returns.
#[derive(Debug, Clone)]
pub struct LeanCalls {
    /// Ring buffer and counters.
    pub maps: RecordMaps,
    /// The count map ([`count_map_spec`]).
    pub counts: MapRef,
    /// Markers streamed (function__entry, function__return).
    pub markers: BTreeSet<Marker>,
}

impl Handler for LeanCalls {
    fn handles(&self, marker: Marker) -> bool {
        self.markers.contains(&marker)
    }

    fn uses_rings(&self) -> bool {
        self.maps.rings.is_some()
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        emit_counted(b, env, self.maps, self.counts, EventKind::of(marker), true)
    }
}

/// The key in a stack slot, the count, and on a new key a full record; on
/// a known key a lean record when `lean`, else nothing.
fn emit_counted(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    counts: MapRef,
    kind: EventKind,
    lean: bool,
) -> Result<(), CodegenError> {
    let key = b.alloc_stack(CallKey::SIZE as u16, 8)?;
    let one = b.alloc_stack(8, 8)?;
    let (new, known, full, stream) = (b.new_label(), b.new_label(), b.new_label(), b.new_label());
    b.comment("key = {pid, lineno, filename, funcname}");
    b.call(Helper::GetCurrentPidTgid);
    b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
    b.stx(Size::W, Reg::FP, key.off, Reg::R0);
    b.stx(Size::W, Reg::FP, key.off + 4, Reg::R9);
    b.stx(Size::DW, Reg::FP, key.off + 8, Reg::R7);
    b.stx(Size::DW, Reg::FP, key.off + 16, Reg::R8);
    b.ld_map_fd(Reg::R1, counts);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, new);
    b.bind(known);
    if lean {
        // `calls` counts from the records; the map only tells known keys.
        Record::fixed(env, maps, kind, abi::FLAG_LEAN).emit(b);
    } else {
        b.mov64_imm(Reg::R1, 1);
        b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
        b.mov64_imm(Reg::R0, 0).exit();
    }

    b.bind(new);
    b.comment("first call of this key: insert it, and send the names once");
    b.st_imm(Size::DW, Reg::FP, one.off, 1);
    b.ld_map_fd(Reg::R1, counts);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.mov64_reg(Reg::R3, Reg::FP)
        .add64_imm(Reg::R3, one.off.into());
    b.mov64_imm(Reg::R4, BPF_NOEXIST);
    b.call(Helper::MapUpdateElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, stream);
    b.comment("another CPU inserted it first, or the map is full");
    b.ld_map_fd(Reg::R1, counts);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, known);
    b.bind(full);
    emit_count(b, env.slots.key, maps.counters, abi::COUNTER_UNCOUNTED);
    if !lean {
        b.mov64_imm(Reg::R0, 0).exit();
    }
    b.bind(stream);
    Record::packed(env, maps, kind).emit(b);
    Ok(())
}
