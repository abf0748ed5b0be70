//! The handler that streams every event whole: one record per marker hit,
//! laid out as [`crate::engine::abi`] says, and the pieces records of every
//! handler are made of (the header, reservation, submission, the staging
//! buffer's busy count).
//!
//! Packed records (function and import markers, see [`abi`]) are built
//! where pytap reads them, in this CPU's region of the per-CPU rings
//! ([`inplace`]), and take only their real size there: a 100-byte record
//! instead of a 1080-byte one is most of the streaming cost at a million
//! events a second. A probe that finds its CPU's region taken (it preempted
//! another probe on the same CPU), or a plan without the rings, reserves
//! the worst case in the ring buffer and packs there instead. Both go
//! through one emitter ([`emit`]); the strings they read are [`strings`]'.
//!
//! Records are submitted with `BPF_RB_NO_WAKEUP` ([`submit`]): the consumer
//! polls on a timer instead of being woken per event, which is most of the
//! cost of a naive ring buffer.
//!
//! Reserved ring-buffer memory is not zeroed, so every field a decoder may
//! read is written on every path, or its validity follows from a field
//! that is (a tuple's size says which item slots were filled).

pub mod emit;
pub mod strings;

use std::collections::BTreeSet;

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, MapRef, ProgramBuilder, RB_NO_WAKEUP, Reg, Size};

pub use self::emit::{After, Body, Destination, Record, end};
pub use self::strings::{PATH_WINDOWS, StrDst, read_path, read_str};
use super::inplace;
use super::named::{self, NamedMaps};
use super::{CodegenError, Env, Handler, emit_count};
use crate::cpython::Marker;
use crate::engine::abi::KindMarker;
use crate::engine::abi::{self, EventKind, off};

/// The maps a record-streaming program writes to.
#[derive(Debug, Clone, Copy)]
pub struct RecordMaps {
    /// The ring buffer.
    pub events: MapRef,
    /// Per-CPU counters (`abi::COUNTER_*`).
    pub counters: MapRef,
    /// Per-CPU staging buffer (`abi::STAGING_BYTES`).
    pub staging: MapRef,
    /// Per-CPU rings packed records are written into in place, when the
    /// plan has them ([`inplace`]); else they go through the ring buffer.
    pub rings: Option<inplace::Rings>,
}

/// Streams a full record for each of `markers`.
#[derive(Debug, Clone)]
pub struct FullRecords {
    /// Maps to write to.
    pub maps: RecordMaps,
    /// Markers to stream.
    pub markers: BTreeSet<Marker>,
    /// Send function returns and lines lean when their names were sent
    /// before ([`super::named`]).
    pub named: Option<NamedMaps>,
}

impl Handler for FullRecords {
    fn handles(&self, marker: Marker) -> bool {
        self.markers.contains(&marker)
    }

    fn uses_rings(&self) -> bool {
        self.maps.rings.is_some()
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        let kind = EventKind::of(marker);
        if kind.is_packed() {
            let record = Record::packed(env, self.maps, kind);
            match self.named.filter(|_| kind.is_function()) {
                Some(named) => {
                    let entries = self.markers.contains(&Marker::FunctionEntry);
                    named::emit_function(b, record, named, entries)?
                }
                None => record.emit(b),
            }
            return Ok(());
        }
        emit_unpacked(b, env, self.maps, kind, None)
    }
}

/// A gc or audit record, reserved in the ring buffer and filled from the
/// marker's arguments; once submitted the program exits, or goes on at
/// `then`.
pub fn emit_unpacked(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    then: Option<After>,
) -> Result<(), CodegenError> {
    let lost = reserve(b, env, maps, kind);
    match kind {
        EventKind::GcStart => {
            b.stx(Size::W, Reg::R6, off::GC_GENERATION as i16, Reg::R7);
        }
        EventKind::GcDone => {
            b.stx(Size::DW, Reg::R6, off::GC_COLLECTED as i16, Reg::R7);
        }
        EventKind::Audit => super::audit::emit_audit(b, env)?,
        _ => {
            return Err(CodegenError::Internal(format!(
                "{kind:?} records are packed"
            )));
        }
    }
    if let Some(after) = then {
        after.keep_timestamp(b);
    }
    submit_only(b);
    end(b, then);
    finish_lost(b, env, maps, lost);
    Ok(())
}

/// Emits code that decides, once a packed record is filled (r6: record,
/// r7: its size, to keep; r8, r9 and r1-r5 free), whether to send it, and
/// may edit the record: it jumps to the label it is given to drop the
/// record, and says whether it emitted such a jump.
pub type RecordFilter<'a> = &'a dyn Fn(&mut ProgramBuilder, &Env, Label) -> bool;

/// Where a probe remembers that it sent a function record's names
/// ([`super::named`]): the slot of its pointers in this CPU's ring
/// region, tagged with the names epoch.
#[derive(Debug, Clone, Copy)]
pub struct Remember {
    /// The names epoch map.
    pub epoch: MapRef,
}

/// A region of this CPU's ring held (its busy count taken): the rings and
/// the stack slot the region's address is kept in.
#[derive(Debug, Clone, Copy)]
pub struct InPlace {
    /// The rings.
    pub rings: inplace::Rings,
    /// Where the region's address is kept.
    pub slot: pytap_ebpf::StackSlot,
}

/// What a packed function record's program does: every tool's does it
/// all; the others leave one part out, so that the benchmark can tell
/// what each part costs (`pytap trace --split-probe`, see
/// [`super::split`]). Their records are not the tools' records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Header, fields, both strings, output.
    Whole,
    /// No string read: the names are sent empty.
    NoStrings,
    /// Instead of each string, its `str` object's header (type, length,
    /// hash, state: what would identify a string already sent) is read
    /// into the record's string room, and the names are sent empty: the
    /// least a probe costs that sends each name once and checks it is
    /// still the same object on every later event.
    ObjectHeaders,
    /// Everything but the output: the record is built and not sent.
    NoOutput,
}

/// r6 = this CPU's staging buffer (`staging`: a per-CPU array whose first
/// word is the busy count), its busy count taken; to `missing` without
/// one, to `busy` (r6 set, the count to give back with [`release_staging`])
/// when a probe this one preempted holds it. Clobbers r0-r5.
pub fn take_staging(
    b: &mut ProgramBuilder,
    env: &Env,
    staging: MapRef,
    missing: Label,
    busy: Label,
) {
    let ptr = super::lookup_slot0(b, env, staging);
    b.jmp_imm(JmpOp::Jeq, ptr, 0, missing);
    b.mov64_reg(Reg::R6, ptr);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_fetch_add(Size::DW, Reg::R6, 0, Reg::R1);
    b.jmp_imm(JmpOp::Jne, Reg::R1, 0, busy);
}

/// Gives back the staging buffer's busy count at r6 (clobbers r1).
pub fn release_staging(b: &mut ProgramBuilder) {
    b.mov64_imm(Reg::R1, -1);
    b.atomic_add(Size::DW, Reg::R6, 0, Reg::R1);
}

/// Reserves a record of `kind` into r6 and fills its header. Returns the
/// label to bind the lost-record path at (see [`finish_lost`]).
pub fn reserve(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, kind: EventKind) -> Label {
    let lost = ringbuf_reserve(b, maps, kind.record_size());
    write_header(b, env, kind);
    lost
}

/// r6 = `size` bytes reserved in the ring buffer; returns the label the
/// probe goes to when there is no room.
fn ringbuf_reserve(b: &mut ProgramBuilder, maps: RecordMaps, size: usize) -> Label {
    let lost = b.new_label();
    b.ld_map_fd(Reg::R1, maps.events);
    b.mov64_imm(Reg::R2, size as i32);
    b.mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, lost);
    b.mov64_reg(Reg::R6, Reg::R0);
    lost
}

/// Fills the header of the record at r6 (clobbers r0-r5).
pub fn write_header(b: &mut ProgramBuilder, env: &Env, kind: EventKind) {
    write_header_kind(b, env, kind as u16);
}

/// [`write_header`] for a record kind outside [`EventKind`] (script records).
pub fn write_header_kind(b: &mut ProgramBuilder, env: &Env, kind: u16) {
    write_header_from(b, env, kind, None, None);
}

/// [`write_header_kind`] with the firing's own `pid_tgid` and timestamp
/// where the probe already read them (stack offsets): a helper call each
/// saved on every record.
pub fn write_header_from(
    b: &mut ProgramBuilder,
    env: &Env,
    kind: u16,
    pid_tgid: Option<i16>,
    timestamp: Option<i16>,
) {
    match timestamp {
        Some(slot) => b.ldx(Size::DW, Reg::R0, Reg::FP, slot),
        None => b.call(Helper::KtimeGetNs),
    };
    b.stx(Size::DW, Reg::R6, off::TS as i16, Reg::R0);
    match pid_tgid {
        Some(slot) => b.ldx(Size::DW, Reg::R0, Reg::FP, slot),
        None => b.call(Helper::GetCurrentPidTgid),
    };
    b.stx(Size::W, Reg::R6, off::TID as i16, Reg::R0);
    b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
    b.stx(Size::W, Reg::R6, off::PID as i16, Reg::R0);
    b.call(Helper::GetSmpProcessorId);
    b.stx(Size::H, Reg::R6, off::CPU as i16, Reg::R0);
    b.st_imm(Size::H, Reg::R6, off::KIND as i16, i32::from(kind));
    b.ldx(Size::DW, Reg::R1, Reg::FP, env.slots.cookie.off);
    b.stx(Size::H, Reg::R6, off::SITE as i16, Reg::R1);
    b.st_imm(Size::H, Reg::R6, off::FLAGS as i16, 0);
}

/// Discards the reserved record at r6, and exits.
fn discard(b: &mut ProgramBuilder) {
    b.mov64_reg(Reg::R1, Reg::R6);
    b.mov64_imm(Reg::R2, 0);
    b.call(Helper::RingbufDiscard);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// Submits the record at r6 without waking the consumer, and exits.
pub fn submit(b: &mut ProgramBuilder) {
    submit_only(b);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// Submits the record at r6 without waking the consumer.
pub fn submit_only(b: &mut ProgramBuilder) {
    b.mov64_reg(Reg::R1, Reg::R6);
    b.mov64_imm(Reg::R2, RB_NO_WAKEUP as i32);
    b.call(Helper::RingbufSubmit);
}

/// The lost-record path: count it, exit.
pub fn finish_lost(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, lost: Label) {
    b.bind(lost);
    emit_count(b, env.slots.key, maps.counters, abi::COUNTER_LOST);
    b.mov64_imm(Reg::R0, 0).exit();
}

#[cfg(test)]
mod tests;
