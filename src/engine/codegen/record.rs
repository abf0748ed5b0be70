//! The handler that streams every event whole: one ring-buffer record per
//! marker hit, laid out as [`crate::engine::abi`] says.
//!
//! Records are submitted with `BPF_RB_NO_WAKEUP`: the consumer polls on a
//! timer instead of being woken per event, which is most of the cost of a
//! naive ring buffer. A record the ring buffer has no room for is counted in
//! the per-CPU `COUNTER_LOST` slot, never dropped silently.
//!
//! Packed records (function and import markers, see [`abi`]) are built
//! where pytap reads them, in this CPU's region of the per-CPU rings
//! ([`inplace`]), and take only their real size there: a 100-byte record
//! instead of a 1080-byte one is most of the streaming cost at a million
//! events a second. A probe that finds its CPU's region taken (it preempted
//! another probe on the same CPU), or a plan without the rings, reserves
//! the worst case in the ring buffer and packs there instead.
//!
//! Reserved ring-buffer memory is not zeroed, so every field a decoder may
//! read is written on every path, or its validity follows from a field
//! that is (a tuple's size says which item slots were filled).

use std::collections::BTreeSet;

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, MapRef, ProgramBuilder, RB_NO_WAKEUP, Reg, Size};

use super::inplace;
use super::named::{self, NamedMaps};
use super::{CodegenError, Env, Handler, emit_count};
use crate::cpython::Marker;
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
            match self.named.filter(|_| kind.is_function()) {
                Some(named) => {
                    let entries = self.markers.contains(&Marker::FunctionEntry);
                    named::emit_function(b, env, self.maps, named, kind, entries, None)?
                }
                None => emit_packed(b, env, self.maps, kind),
            }
            return Ok(());
        }
        let lost = reserve(b, env, self.maps, kind);
        match kind {
            EventKind::GcStart => {
                b.stx(Size::W, Reg::R6, off::GC_GENERATION as i16, Reg::R7);
            }
            EventKind::GcDone => {
                b.stx(Size::DW, Reg::R6, off::GC_COLLECTED as i16, Reg::R7);
            }
            EventKind::Audit => super::audit::emit_audit(b, env)?,
            _ => unreachable!("packed kinds are handled above"),
        }
        submit(b);
        finish_lost(b, env, self.maps, lost);
        Ok(())
    }
}

/// A packed record: written in place in this CPU's ring region, or, when
/// the region is taken, packed straight into a worst-case reservation.
pub fn emit_packed(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, kind: EventKind) {
    emit_packed_filtered(b, env, maps, kind, None);
}

/// Emits code that decides, once a packed record is filled (r6: record,
/// r7: its size, to keep; r8, r9 and r1-r5 free), whether to send it, and
/// may edit the record: it jumps to the label it is given to drop the
/// record, and says whether it emitted such a jump.
pub type RecordFilter<'a> = &'a dyn Fn(&mut ProgramBuilder, &Env, Label) -> bool;

/// [`emit_packed`] with a filter run on the filled record.
pub fn emit_packed_filtered(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    filter: Option<RecordFilter<'_>>,
) {
    emit_packed_parts(b, env, maps, kind, filter, Parts::Whole, None);
}

/// Where a probe remembers that it sent a function record's names
/// ([`super::named`]): the slot of its pointers in this CPU's ring
/// region, tagged with the names epoch.
#[derive(Debug, Clone, Copy)]
pub struct Remember {
    /// The names epoch map.
    pub epoch: MapRef,
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

/// [`emit_packed_filtered`] doing only `parts` of the work, and
/// remembering the names it sent when asked.
pub fn emit_packed_parts(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    filter: Option<RecordFilter<'_>>,
    parts: Parts,
    remember: Option<Remember>,
) {
    match (maps.rings, env.slots.ring) {
        (Some(rings), Some(slot)) => {
            let held = InPlace { rings, slot };
            emit_packed_taken(b, env, maps, held, kind, filter, parts, remember, None);
        }
        // A plan without the rings (none of the tools' plans): packed in a
        // worst-case reservation of the ring buffer, nothing remembered.
        _ => emit_direct(b, env, maps, kind, filter, parts, remember),
    }
}

/// Takes this CPU's ring region, runs `first` (code that may end the
/// firing first, such as a lean record), then writes a packed record in
/// place; a probe that finds the region taken packs into a worst-case
/// reservation of the ring buffer instead. Ends in `exit` on every path.
#[expect(
    clippy::too_many_arguments,
    reason = "the record emission's settings, passed apart until one emitter takes them (#25)"
)]
pub fn emit_packed_taken(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    held: InPlace,
    kind: EventKind,
    filter: Option<RecordFilter<'_>>,
    parts: Parts,
    remember: Option<Remember>,
    first: Option<&dyn Fn(&mut ProgramBuilder)>,
) {
    let (direct, busy) = (b.new_label(), b.new_label());
    inplace::take(b, env, held.rings, held.slot, direct, busy);
    if let Some(first) = first {
        first(b);
    }
    emit_packed_held(b, env, maps, held, kind, filter, parts, remember);
    b.bind(busy);
    b.comment("ring in use by a preempted probe: give it back");
    inplace::release_at(b, Reg::R6);
    b.bind(direct);
    emit_direct(b, env, maps, kind, filter, parts, remember);
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

/// With r6 this CPU's ring region, its busy count held: a packed record
/// written in place, published, remembered when asked, the count given
/// back. Ends in `exit` on every path.
#[expect(
    clippy::too_many_arguments,
    reason = "the record emission's settings, passed apart until one emitter takes them (#25)"
)]
fn emit_packed_held(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    held: InPlace,
    kind: EventKind,
    filter: Option<RecordFilter<'_>>,
    parts: Parts,
    remember: Option<Remember>,
) {
    let (full, drop_held) = (b.new_label(), b.new_label());
    inplace::reserve(b, held.rings, held.slot, full);
    let ts = Some(inplace::timestamp(held.slot));
    write_header_from(b, env, kind as u16, None, ts);
    fill_packed(b, env, kind, parts);
    let drops = filter.is_some_and(|filter| filter(b, env, drop_held));
    if parts != Parts::NoOutput {
        inplace::publish(b, held.slot);
        if let Some(remember) = remember {
            super::named::emit_remember(b, env, remember, held.slot);
        }
    }
    inplace::release(b, held.slot);
    inplace::wake_if_filling(b, held.rings, held.slot, maps.events);
    b.mov64_imm(Reg::R0, 0).exit();
    if drops {
        b.bind(drop_held);
        inplace::release(b, held.slot);
        b.mov64_imm(Reg::R0, 0).exit();
    }
    b.bind(full);
    b.comment("no room in this CPU's ring: the record is lost");
    inplace::release_at(b, Reg::R6);
    emit_lost(b, env, maps, remember);
}

/// The lost-record path of a packed record: a new names epoch when the
/// names it would have sent are remembered, the count, exit.
fn emit_lost(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, remember: Option<Remember>) {
    if let Some(remember) = remember {
        // A record that never reached the ring buffer (an entry among
        // them): whatever the slots say was sent before proves nothing now.
        super::named::emit_new_epoch(b, remember.epoch, env.slots.key);
    }
    emit_count(b, env.slots.key, maps.counters, abi::COUNTER_LOST);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// A packed record reserved whole in the shared ring buffer and packed
/// there: the path of a probe that preempted another on its CPU (the
/// staging buffer or the ring region is taken). Nothing is remembered (the
/// slots are the preempted probe's now). Ends in `exit` on every path.
fn emit_direct(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    filter: Option<RecordFilter<'_>>,
    parts: Parts,
    remember: Option<Remember>,
) {
    let (lost, drop_reserved) = (b.new_label(), b.new_label());
    b.ld_map_fd(Reg::R1, maps.events);
    b.mov64_imm(Reg::R2, kind.record_size() as i32);
    b.mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, lost);
    b.mov64_reg(Reg::R6, Reg::R0);
    write_header(b, env, kind);
    fill_packed(b, env, kind, parts);
    let drops = filter.is_some_and(|filter| filter(b, env, drop_reserved));
    if parts == Parts::NoOutput {
        discard(b);
    } else {
        submit(b);
    }
    if drops {
        b.bind(drop_reserved);
        discard(b);
    }
    b.bind(lost);
    emit_lost(b, env, maps, remember);
}

/// A function record's fixed part only (header, line, pointers; no
/// strings) with `flag` set: [`abi::FLAG_LEAN`] for the aggregating tools,
/// [`abi::FLAG_NAMED_BEFORE`] for names sent before. Exits.
pub fn emit_fixed_only(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    flag: u16,
) {
    if let (Some(rings), Some(slot)) = (maps.rings, env.slots.ring) {
        let (direct, busy) = (b.new_label(), b.new_label());
        inplace::take(b, env, rings, slot, direct, busy);
        emit_fixed_held(b, env, maps, InPlace { rings, slot }, kind, flag, None);
        b.bind(busy);
        inplace::release_at(b, Reg::R6);
        b.bind(direct);
    }
    let lost = reserve_sized(b, env, maps, kind, kind.fixed_size());
    fill_fixed(b, flag);
    submit(b);
    finish_lost(b, env, maps, lost);
}

/// [`emit_fixed_only`] with r6 this CPU's ring region, its busy count
/// held, and the firing's `pid_tgid` in a stack slot when the probe read
/// it already. Ends in `exit` on every path.
pub fn emit_fixed_held(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    held: InPlace,
    kind: EventKind,
    flag: u16,
    pid_tgid: Option<i16>,
) {
    let full = b.new_label();
    inplace::reserve(b, held.rings, held.slot, full);
    let ts = Some(inplace::timestamp(held.slot));
    write_header_from(b, env, kind as u16, pid_tgid, ts);
    fill_fixed(b, flag);
    b.mov64_imm(Reg::R7, kind.fixed_size() as i32);
    inplace::publish(b, held.slot);
    inplace::release(b, held.slot);
    inplace::wake_if_filling(b, held.rings, held.slot, maps.events);
    b.mov64_imm(Reg::R0, 0).exit();
    b.bind(full);
    inplace::release_at(b, Reg::R6);
    emit_count(b, env.slots.key, maps.counters, abi::COUNTER_LOST);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// The fixed part of a function record at r6 with `flag`, from the
/// marker's arguments (r7, r8, r9).
fn fill_fixed(b: &mut ProgramBuilder, flag: u16) {
    b.st_imm(Size::H, Reg::R6, off::FLAGS as i16, i32::from(flag));
    b.stx(Size::W, Reg::R6, off::FN_LINENO as i16, Reg::R9);
    b.st_imm(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, 0);
    b.st_imm(Size::W, Reg::R6, off::FN_FUNCNAME_RET as i16, 0);
    b.st_imm(Size::W, Reg::R6, (off::FN_FUNCNAME_RET + 4) as i16, 0);
    b.stx(Size::DW, Reg::R6, off::FN_FILENAME_PTR as i16, Reg::R7);
    b.stx(Size::DW, Reg::R6, off::FN_FUNCNAME_PTR as i16, Reg::R8);
}

/// Fills a packed record at r6 from the marker's arguments (r7, r8, r9) and
/// leaves its size in r7.
fn fill_packed(b: &mut ProgramBuilder, env: &Env, kind: EventKind, parts: Parts) {
    if kind == EventKind::ImportStart || kind == EventKind::ImportDone {
        if kind == EventKind::ImportDone {
            b.stx(Size::W, Reg::R6, off::IMP_FOUND as i16, Reg::R8);
        } else {
            b.st_imm(Size::W, Reg::R6, off::IMP_FOUND as i16, 0);
        }
        b.stx(Size::DW, Reg::R6, off::IMP_MODULE_PTR as i16, Reg::R7);
        read_str(
            b,
            env,
            Reg::R7,
            StrDst::at(off::IMP_MODULE),
            off::IMP_MODULE_RET,
            abi::FLAG_TRUNCATED_0,
        );
        load_packed_len(b, Reg::R7, off::IMP_MODULE_RET);
        b.add64_imm(Reg::R7, off::IMP_MODULE as i32);
        return;
    }
    b.stx(Size::W, Reg::R6, off::FN_LINENO as i16, Reg::R9);
    b.stx(Size::DW, Reg::R6, off::FN_FILENAME_PTR as i16, Reg::R7);
    b.stx(Size::DW, Reg::R6, off::FN_FUNCNAME_PTR as i16, Reg::R8);
    if matches!(parts, Parts::NoStrings | Parts::ObjectHeaders) {
        fill_without_strings(b, env, parts);
        return;
    }
    read_path(b, Reg::R7);
    b.comment("r9 = where the function name goes");
    load_packed_len(b, Reg::R9, off::FN_FILENAME_RET);
    read_str(
        b,
        env,
        Reg::R8,
        StrDst {
            off: off::FN_FILENAME,
            plus: Some(Reg::R9),
        },
        off::FN_FUNCNAME_RET,
        abi::FLAG_TRUNCATED_1,
    );
    load_packed_len(b, Reg::R7, off::FN_FUNCNAME_RET);
    b.alu64_reg(AluOp::Add, Reg::R7, Reg::R9);
    b.add64_imm(Reg::R7, off::FN_FILENAME as i32);
}

/// The benchmark's function records without their strings (see
/// [`Parts`]): both names empty, the size left in r7.
fn fill_without_strings(b: &mut ProgramBuilder, env: &Env, parts: Parts) {
    if parts == Parts::ObjectHeaders {
        // A compact ASCII str's characters follow its header, so the
        // header starts `str_ascii_data` bytes before the pointer; type,
        // length, hash and state are the 28 bytes after the refcount.
        let header = env.layout.map_or(48, |l| i32::from(l.str_ascii_data));
        for (ptr, room) in [(Reg::R7, off::FN_FILENAME), (Reg::R8, off::FN_FUNCNAME)] {
            b.mov64_reg(Reg::R1, Reg::R6)
                .add64_imm(Reg::R1, room as i32);
            b.mov64_imm(Reg::R2, 28);
            b.mov64_reg(Reg::R3, ptr).add64_imm(Reg::R3, 8 - header);
            b.call(Helper::ProbeReadUser);
        }
    }
    b.st_imm(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, 1);
    b.st_imm(Size::W, Reg::R6, off::FN_FUNCNAME_RET as i16, 1);
    b.st_imm(Size::H, Reg::R6, off::FN_FILENAME as i16, 0);
    b.mov64_imm(Reg::R7, off::FN_FILENAME as i32 + 2);
}

/// `dst = abi::packed_len(*(u32 *)(r6 + ret_off))`: a length the verifier
/// knows is at most `STR_CAP`.
fn load_packed_len(b: &mut ProgramBuilder, dst: Reg, ret_off: usize) {
    let ok = b.new_label();
    b.ldx(Size::W, dst, Reg::R6, ret_off as i16);
    b.jmp_imm(JmpOp::Jle, dst, abi::STR_CAP as i32, ok);
    b.mov64_imm(dst, 0);
    b.bind(ok);
}

/// Where [`read_str`] puts a string: `r6 + off (+ plus)`.
#[derive(Debug, Clone, Copy)]
pub struct StrDst {
    /// Fixed offset in the record.
    pub off: usize,
    /// A register added to it (a packed string's position).
    pub plus: Option<Reg>,
}

impl StrDst {
    /// At a fixed offset.
    pub fn at(off: usize) -> StrDst {
        StrDst { off, plus: None }
    }
}

/// Reserves a record of `kind` into r6 and fills its header. Returns the
/// label to bind the lost-record path at (see [`finish_lost`]).
pub fn reserve(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, kind: EventKind) -> Label {
    reserve_sized(b, env, maps, kind, kind.record_size())
}

/// [`reserve`] of `size` bytes.
fn reserve_sized(
    b: &mut ProgramBuilder,
    env: &Env,
    maps: RecordMaps,
    kind: EventKind,
    size: usize,
) -> Label {
    let lost = b.new_label();
    b.ld_map_fd(Reg::R1, maps.events);
    b.mov64_imm(Reg::R2, size as i32);
    b.mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, lost);
    b.mov64_reg(Reg::R6, Reg::R0);
    write_header(b, env, kind);
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
    b.mov64_reg(Reg::R1, Reg::R6);
    b.mov64_imm(Reg::R2, RB_NO_WAKEUP as i32);
    b.call(Helper::RingbufSubmit);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// The lost-record path: count it, exit.
pub fn finish_lost(b: &mut ProgramBuilder, env: &Env, maps: RecordMaps, lost: Label) {
    b.bind(lost);
    emit_count(b, env.slots.key, maps.counters, abi::COUNTER_LOST);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// Copies the string at `ptr` (a callee-saved register) into the record at
/// r6, stores the helper's result at `ret_off`, and sets `flag` when the
/// string did not fit.
pub fn read_str(
    b: &mut ProgramBuilder,
    env: &Env,
    ptr: Reg,
    dst: StrDst,
    ret_off: usize,
    flag: u16,
) {
    let done = b.new_label();
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, dst.off as i32);
    if let Some(plus) = dst.plus {
        b.alu64_reg(AluOp::Add, Reg::R1, plus);
    }
    b.mov64_imm(Reg::R2, abi::STR_CAP as i32);
    b.mov64_reg(Reg::R3, ptr);
    b.call(Helper::ProbeReadUserStr);
    b.stx(Size::W, Reg::R6, ret_off as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, abi::STR_CAP as i32, done);
    b.comment("buffer full: truncated unless the string is exactly STR_CAP-1 long");
    b.st_imm(Size::DW, Reg::FP, env.slots.scratch.off, 0);
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, env.slots.scratch.off.into());
    b.mov64_imm(Reg::R2, 1);
    b.mov64_reg(Reg::R3, ptr)
        .add64_imm(Reg::R3, abi::STR_CAP as i32 - 1);
    b.call(Helper::ProbeReadUser);
    b.ldx(Size::B, Reg::R1, Reg::FP, env.slots.scratch.off);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(AluOp::Or, Reg::R1, i32::from(flag));
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.bind(done);
}

/// How many [`abi::STR_CAP`]-sized windows a file name longer than the
/// buffer is scanned through for its end: paths up to about 4 KiB
/// (`PATH_MAX`) keep their end.
pub const PATH_WINDOWS: i32 = 8;

/// Copies the file name at `ptr` (a callee-saved register) into the
/// function record at r6. A name too long for [`abi::STR_CAP`] keeps its
/// *end* (the file's own name) rather than its start: its length is found
/// by reading on in windows (into the function name's room, not written
/// yet), then its last `STR_CAP - 1` bytes are read, and
/// [`abi::FLAG_KEPT_END_0`] is set with [`abi::FLAG_TRUNCATED_0`]. Only
/// when the end cannot be found (longer than [`PATH_WINDOWS`] windows, or
/// unreadable) does the name keep its start. Costs nothing on names that fit.
pub fn read_path(b: &mut ProgramBuilder, ptr: Reg) {
    let (done, keep_start, tail) = (b.new_label(), b.new_label(), b.new_label());
    let cap = abi::STR_CAP as i32;
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::FN_FILENAME as i32);
    b.mov64_imm(Reg::R2, cap);
    b.mov64_reg(Reg::R3, ptr);
    b.call(Helper::ProbeReadUserStr);
    b.stx(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, cap, done);
    b.comment("buffer full: find where the name ends, window by window");
    for k in 1..=PATH_WINDOWS {
        b.mov64_reg(Reg::R1, Reg::R6)
            .add64_imm(Reg::R1, off::FN_FUNCNAME as i32);
        b.mov64_imm(Reg::R2, cap);
        b.mov64_reg(Reg::R3, ptr).add64_imm(Reg::R3, k * (cap - 1));
        b.call(Helper::ProbeReadUserStr);
        b.jmp_imm(JmpOp::Jslt, Reg::R0, 1, keep_start);
        // r0 = total length: k windows of cap-1 bytes, plus r0 - 1.
        b.add64_imm(Reg::R0, k * (cap - 1) - 1);
        b.jmp_imm(JmpOp::Jlt, Reg::R0, k * (cap - 1) + cap - 1, tail);
    }
    b.bind(keep_start);
    b.comment("no end in reach: keep the start, truncated");
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(AluOp::Or, Reg::R1, i32::from(abi::FLAG_TRUNCATED_0));
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.ja(done);
    b.bind(tail);
    b.comment("r0 = its length; exactly STR_CAP-1 means it fit after all");
    b.jmp_imm(JmpOp::Jeq, Reg::R0, cap - 1, done);
    b.comment("the name's last STR_CAP-1 bytes, then a NUL");
    b.mov64_reg(Reg::R3, ptr);
    b.alu64_reg(AluOp::Add, Reg::R3, Reg::R0);
    b.add64_imm(Reg::R3, -(cap - 1));
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::FN_FILENAME as i32);
    b.mov64_imm(Reg::R2, cap - 1);
    b.call(Helper::ProbeReadUser);
    b.st_imm(
        Size::B,
        Reg::R6,
        (off::FN_FILENAME + abi::STR_CAP - 1) as i16,
        0,
    );
    let lost = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, lost);
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(
        AluOp::Or,
        Reg::R1,
        i32::from(abi::FLAG_TRUNCATED_0 | abi::FLAG_KEPT_END_0),
    );
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
    b.ja(done);
    b.bind(lost);
    b.comment("the end was unreadable after all: the name is lost");
    b.stx(Size::W, Reg::R6, off::FN_FILENAME_RET as i16, Reg::R0);
    b.bind(done);
}

#[cfg(test)]
mod tests;
