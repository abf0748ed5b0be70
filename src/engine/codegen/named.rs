//! Names that cross once: a function return or line record is sent
//! without its strings when the process has already sent a full function
//! record with the same two string pointers, and the engine names it from
//! the latest such record ([`crate::engine::names`]).
//!
//! Reading the two names is most of what streaming a function event costs
//! in the probe (`scripts/bench.py`'s split: about 400 of 600–850 ns per
//! event beyond the uprobe trap on this project's machine), and checking
//! that a pointer still holds the string sent before costs as much as
//! reading it again (one `bpf_probe_read_user` of the `str` object's header
//! costs what one of the string does), and a hash-map lookup costs about
//! as much again on this machine kind. So nothing is checked, and the
//! evidence lives in per-CPU memory the probe already has: a return or
//! line is lean exactly when its names are *known* to be those of the
//! latest full record with the same pointers, by this argument:
//!
//! Let R be a return (or line) of frame F, its strings S at pointers P, and
//! E the latest full function record of the process with pointers P before
//! R in the ring buffer. S was allocated at some time T, before F started,
//! and lives at least until R (F's code object holds it).
//! - If F's entry fired while pytap traced the process, it was a full
//!   record (entries are always read whole) made after T with pointers P,
//!   so E is that record or a later one; every full record with pointers P
//!   made after T read S itself (S was alive at P the whole time), so E
//!   carries S's text.
//! - If F's entry did not fire (F started before pytap attached, or it is a
//!   frame CPython runs without an entry, such as 3.15's shim frames), S
//!   existed before pytap attached (or is static), so every full record
//!   with pointers P read S itself.
//! - Evidence that pointers were sent is kept per CPU, in slots in the
//!   CPU's ring region (one per pointer pair, chosen by their bits; a
//!   collision only costs a read), written and read under the region's
//!   busy count (so never torn), and tagged with the process and
//!   the session's names *epoch*: a count the task programs
//!   ([`super::task`]) raise whenever a traced process executes a program
//!   or any of its threads exits. Without it a process executing a new
//!   program before pytap attaches to it, or a new process reusing the
//!   id, could find the old program's pointers.
//! - A frame's start that does not reach the ring buffer (a full ring: the
//!   record is counted lost) raises the epoch too, so R's own entry is
//!   always either in the ring or behind an epoch its evidence must follow.
//!   And without `function__entry` in the program nothing goes lean.
//! - Order: a probe remembers pointers only after its full record is in
//!   the ring buffer, and a probe can only find them after that, so E
//!   precedes R. Two probes reading the same pointers cannot overtake each
//!   other with different strings: a string is alive for the whole probe
//!   that read it (its frame holds it), so a different string at the same
//!   address can only be read by a probe that starts after the first one
//!   ended, and reserves its record later.
//! - With per-CPU rings ([`super::inplace`]) the engine orders records by
//!   their timestamps, read inside the probe while its strings are alive:
//!   the slots are per CPU, so R and E are in the same region, E first;
//!   and a record with a different string at P was made by a probe whose
//!   clock reading came after S was freed, so after R's.
//!
//! Entries are always read whole: a new function may hold strings at
//! addresses an old one used, and nothing short of reading tells them
//! apart. Lean records carry the pointers, the line number and the usual
//! header; the engine fills in the names before any tool sees them.

use pytap_ebpf::{AluOp, Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size, StackSlot};

use super::record::{Destination, InPlace, Record, Remember};
use super::{CodegenError, Env, MapKind, MapSpec, MapTable, emit_count};
use crate::engine::abi::{self, EventKind, SENT_SLOTS, SentSlot, off, ring};

/// Name of the names epoch map (the task programs find it by name).
pub const EPOCH_MAP: &str = "names_epoch";

/// The map of the names epoch (one u64, raised by the task programs).
#[derive(Debug, Clone, Copy)]
pub struct NamedMaps {
    /// The epoch.
    pub epoch: MapRef,
}

impl NamedMaps {
    /// Adds the map to a plan's table.
    pub fn add_to(table: &mut MapTable) -> NamedMaps {
        let epoch = table.add(MapSpec {
            name: EPOCH_MAP.into(),
            kind: MapKind::Array,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
        });
        NamedMaps { epoch }
    }
}

/// A function record (`record`, whole; r7, r8, r9: the marker's
/// arguments) through the names already sent: an entry whole, its pointers
/// remembered in this CPU's slot; a return or line lean when the slot of
/// its pointers says this process sent them in this epoch, else whole and
/// remembered. The record's filter is applied to whole records, and must
/// not drop any (a frame's start must reach the ring buffer, or raise the
/// epoch as a lost one does). `entries` says whether the program streams
/// `function__entry` too: without entries nothing is sent lean (the
/// argument above needs every frame's start read whole).
pub fn emit_function(
    b: &mut ProgramBuilder,
    record: Record<'_>,
    named: NamedMaps,
    entries: bool,
) -> Result<(), CodegenError> {
    let record = Record {
        remember: Some(Remember { epoch: named.epoch }),
        ..record
    };
    match record.ring() {
        Some(held) => emit_function_in_place(b, record, named, held, entries),
        None => {
            // Without the rings (none of the tools' plans) nothing goes lean.
            record.emit_to(b, Destination::Reserved);
            Ok(())
        }
    }
}

/// [`emit_function`] with this CPU's ring written in place: the check, the
/// lean record and the whole one all under the ring's busy count, taken
/// once.
fn emit_function_in_place(
    b: &mut ProgramBuilder,
    record: Record<'_>,
    named: NamedMaps,
    held: InPlace,
    entries: bool,
) -> Result<(), CodegenError> {
    let env = record.env;
    let firing = match record.kind != EventKind::FunctionEntry && entries {
        true => Some(b.alloc_stack(16, 8)?),
        false => None,
    };
    let lean_if_sent = |b: &mut ProgramBuilder| {
        let Some(firing) = firing else { return };
        let whole = b.new_label();
        b.comment("sent before? this CPU's slot, under its ring's busy count");
        emit_sent_before(b, env, named.epoch, firing, whole);
        b.comment("named by the latest full record with these pointers");
        let lean = Record {
            pid_tgid: Some(firing.off),
            ..Record::fixed(env, record.maps, record.kind, abi::FLAG_NAMED_BEFORE)
        };
        lean.emit_to(b, Destination::InPlace(held));
        b.bind(whole);
    };
    record.emit_taken(b, held, Some(&lean_if_sent));
    Ok(())
}

/// With this CPU's ring region held (r6) and the marker's pointers in r7,
/// r8: the firing's `pid_tgid` into `firing` and
/// the names epoch after it, then to `differ` unless the slot of the
/// pointers says this process sent them in this epoch. Clobbers r0-r5.
fn emit_sent_before(
    b: &mut ProgramBuilder,
    env: &Env,
    epoch: MapRef,
    firing: StackSlot,
    differ: pytap_ebpf::Label,
) {
    b.call(Helper::GetCurrentPidTgid);
    b.stx(Size::DW, Reg::FP, firing.off, Reg::R0);
    load_epoch(b, env, epoch, firing.off + 8, differ);
    slot_of(b, Reg::R6, ring::SENT as i32, Reg::R7, Reg::R8);
    let field = |at: usize| at as i16;
    b.ldx(Size::DW, Reg::R2, Reg::R1, field(off::SLOT_FILENAME_PTR));
    b.jmp_reg(JmpOp::Jne, Reg::R2, Reg::R7, differ);
    b.ldx(Size::DW, Reg::R2, Reg::R1, field(off::SLOT_FUNCNAME_PTR));
    b.jmp_reg(JmpOp::Jne, Reg::R2, Reg::R8, differ);
    b.ldx(Size::W, Reg::R2, Reg::R1, field(off::SLOT_PID));
    b.ldx(Size::DW, Reg::R3, Reg::FP, firing.off);
    b.alu64_imm(AluOp::Rsh, Reg::R3, 32);
    b.jmp_reg(JmpOp::Jne, Reg::R2, Reg::R3, differ);
    b.ldx(Size::DW, Reg::R2, Reg::R1, field(off::SLOT_EPOCH));
    b.ldx(Size::DW, Reg::R3, Reg::FP, firing.off + 8);
    b.jmp_reg(JmpOp::Jne, Reg::R2, Reg::R3, differ);
}

/// `*(u64 *)(fp + dst) = epoch`, or to `missing` when the map has no slot
/// (it always has one). Clobbers r0-r5.
fn load_epoch(
    b: &mut ProgramBuilder,
    env: &Env,
    epoch: MapRef,
    dst: i16,
    missing: pytap_ebpf::Label,
) {
    let ptr = super::lookup_slot0(b, env, epoch);
    b.jmp_imm(JmpOp::Jeq, ptr, 0, missing);
    b.ldx(Size::DW, Reg::R1, ptr, 0);
    b.stx(Size::DW, Reg::FP, dst, Reg::R1);
}

/// r1 = the slot of the pointers in `filename`, `funcname`: `base + at +
/// index * size_of::<SentSlot>()`, the index from the pointers' bits.
/// Clobbers r2.
fn slot_of(b: &mut ProgramBuilder, base: Reg, at: i32, filename: Reg, funcname: Reg) {
    b.mov64_reg(Reg::R2, filename);
    b.alu64_imm(AluOp::Rsh, Reg::R2, 3);
    b.mov64_reg(Reg::R1, funcname);
    b.alu64_imm(AluOp::Rsh, Reg::R1, 3);
    b.alu64_reg(AluOp::Xor, Reg::R2, Reg::R1);
    b.mov64_reg(Reg::R1, Reg::R2);
    b.alu64_imm(AluOp::Rsh, Reg::R1, 9);
    b.alu64_reg(AluOp::Xor, Reg::R2, Reg::R1);
    b.alu64_imm(AluOp::And, Reg::R2, SENT_SLOTS as i32 - 1);
    b.alu64_imm(
        AluOp::Lsh,
        Reg::R2,
        size_of::<SentSlot>().trailing_zeros() as i32,
    );
    b.mov64_reg(Reg::R1, base);
    b.add64_imm(Reg::R1, at);
    b.alu64_reg(AluOp::Add, Reg::R1, Reg::R2);
}

/// Emits, after the full record at r6 was published in place (this CPU's
/// ring region held, its address in the stack slot `region`): write this CPU's slot for its
/// pointers, unless a name was unreadable (a later return would inherit
/// the failure instead of reading the name itself). Clobbers r0-r5, keeps
/// r6-r9.
pub fn emit_remember(b: &mut ProgramBuilder, env: &Env, remember: Remember, region: StackSlot) {
    let skip = b.new_label();
    for ret in [off::FN_FILENAME_RET, off::FN_FUNCNAME_RET] {
        b.ldx(Size::W, Reg::R1, Reg::R6, ret as i16);
        b.add64_imm(Reg::R1, -1);
        b.jmp_imm(JmpOp::Jge, Reg::R1, abi::STR_CAP as i32, skip);
    }
    b.comment("remember the pointers in this CPU's slot: later returns and lines go lean");
    load_epoch(b, env, remember.epoch, env.slots.scratch.off, skip);
    b.ldx(Size::DW, Reg::R3, Reg::R6, off::FN_FILENAME_PTR as i16);
    b.ldx(Size::DW, Reg::R4, Reg::R6, off::FN_FUNCNAME_PTR as i16);
    b.ldx(Size::DW, Reg::R5, Reg::FP, region.off);
    slot_of(b, Reg::R5, ring::SENT as i32, Reg::R3, Reg::R4);
    b.stx(Size::DW, Reg::R1, off::SLOT_FILENAME_PTR as i16, Reg::R3);
    b.stx(Size::DW, Reg::R1, off::SLOT_FUNCNAME_PTR as i16, Reg::R4);
    b.ldx(Size::W, Reg::R2, Reg::R6, off::PID as i16);
    b.stx(Size::W, Reg::R1, off::SLOT_PID as i16, Reg::R2);
    b.ldx(Size::DW, Reg::R2, Reg::FP, env.slots.scratch.off);
    b.stx(Size::DW, Reg::R1, off::SLOT_EPOCH as i16, Reg::R2);
    b.bind(skip);
}

/// Emits `names_epoch += 1` (in a task program: an exec or an exit makes
/// every slot's evidence stale): the epoch is slot 0 of its array, counted
/// like the counters. `key` is a u32 stack slot; clobbers r0-r5.
pub fn emit_new_epoch(b: &mut ProgramBuilder, epoch: MapRef, key: StackSlot) {
    emit_count(b, key, epoch, 0);
}
