//! Records written in place into per-CPU rings ([`abi::ring`]): the
//! transport of function and import records when a plan has the rings.
//!
//! A record sent through the shared ring buffer costs a reservation (a
//! spinlock taken with interrupts off), a copy out of the staging buffer
//! the probe built it in, and the commit. Here the probe takes its CPU's
//! region (the busy count, one atomic add, which also keeps a probe that
//! preempts it on this CPU out: that one sends through the shared ring
//! buffer as before), checks there is room for the largest record, builds
//! the record where it will be read, and publishes it by storing the new
//! head: two loads and two stores beyond the building itself.
//!
//! Why the consumer sees whole records: the head is stored after every
//! byte of the record, by the same CPU, and x86-64 (the architecture pytap
//! generates programs for) makes stores visible in program order, the
//! helpers' copies included; the consumer loads the head with acquire
//! ordering before it reads the record. Why each region's records are in
//! time order: one probe at a time writes a region (the busy count), and
//! each reads the clock after taking it. The consumer merges the regions
//! and the shared ring buffer by timestamp ([`crate::engine::streams`]).
//!
//! A full region counts the record lost, as a full ring buffer does.

use pytap_ebpf::{
    AluOp, Helper, JmpOp, Label, MapRef, ProgramBuilder, RB_FORCE_WAKEUP, Reg, Size, StackSlot,
};

use super::{Env, MapKind, MapSpec};
use crate::engine::abi::ring;

/// The rings map and the size of each region's data area.
#[derive(Debug, Clone, Copy)]
pub struct Rings {
    /// The map (element `cpu` is that CPU's region).
    pub map: MapRef,
    /// Bytes of each data area (a power of two).
    pub size: u32,
}

/// Name of the rings map (the session finds it by name).
pub const RINGS_MAP: &str = "rings";

/// The comment before a record is published in place (`--dump-bpf`).
pub const PUBLISH: &str = "publish in place: the record's length, then the head past it";

/// The smallest data area per CPU.
pub const MIN_SIZE: u32 = 64 << 10;

/// The map spec of rings sharing `total_bytes` over `cpus` CPUs (each a
/// power of two, at least [`MIN_SIZE`]), and the data size of each.
pub fn rings_spec(total_bytes: u32, cpus: u32) -> (MapSpec, u32) {
    let per_cpu = (total_bytes / cpus.max(1)).max(MIN_SIZE);
    let size = if per_cpu.is_power_of_two() {
        per_cpu
    } else {
        per_cpu.next_power_of_two() / 2
    };
    let spec = MapSpec {
        name: RINGS_MAP.into(),
        kind: MapKind::MmapArray,
        key_size: 4,
        value_size: ring::region_bytes(size as usize) as u32,
        max_entries: cpus.max(1),
    };
    (spec, size)
}

/// r6 = this CPU's region, its busy count taken, then the clock read into
/// the region's [`ring::PENDING`] and the second word of `slot` (the
/// record's timestamp, [`timestamp`]); to `missing` without one, to `busy`
/// (r6 set: give the count back with [`release_at`]) when a probe this one
/// preempted holds it. Uses the scratch slot as the key; clobbers r0-r5.
pub fn take(
    b: &mut ProgramBuilder,
    env: &Env,
    rings: Rings,
    slot: StackSlot,
    missing: Label,
    busy: Label,
) {
    b.comment("take this CPU's ring");
    b.call(Helper::GetSmpProcessorId);
    b.stx(Size::W, Reg::FP, env.slots.scratch.off, Reg::R0);
    b.ld_map_fd(Reg::R1, rings.map);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, env.slots.scratch.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, missing);
    b.mov64_reg(Reg::R6, Reg::R0);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_fetch_add(Size::DW, Reg::R6, ring::BUSY as i16, Reg::R1);
    b.jmp_imm(JmpOp::Jne, Reg::R1, 0, busy);
    b.comment("the record's time, also where pytap sees it while the ring is taken");
    b.call(Helper::KtimeGetNs);
    b.stx(Size::DW, Reg::R6, ring::PENDING as i16, Reg::R0);
    b.stx(Size::DW, Reg::FP, timestamp(slot), Reg::R0);
}

/// The stack offset of the firing's clock reading in a ring slot (taken
/// by [`take`]): records written in place carry it as their timestamp.
pub fn timestamp(slot: StackSlot) -> i16 {
    slot.off + 8
}

/// With r6 this CPU's region (busy count held): keeps it in `slot` and
/// sets r6 to room for the largest record at the head; to `full` (r6 still
/// the region) when the consumer has not left that much room. Clobbers
/// r1-r3.
pub fn reserve(b: &mut ProgramBuilder, rings: Rings, slot: StackSlot, full: Label) {
    b.stx(Size::DW, Reg::FP, slot.off, Reg::R6);
    b.ldx(Size::DW, Reg::R1, Reg::R6, ring::HEAD as i16);
    b.ldx(Size::DW, Reg::R2, Reg::R6, ring::TAIL as i16);
    b.mov64_reg(Reg::R3, Reg::R1);
    b.alu64_reg(AluOp::Sub, Reg::R3, Reg::R2);
    b.jmp_imm(
        JmpOp::Jgt,
        Reg::R3,
        (rings.size as usize - ring::MAX_RECORD) as i32,
        full,
    );
    b.alu64_imm(AluOp::And, Reg::R1, rings.size as i32 - 1);
    b.alu64_reg(AluOp::Add, Reg::R6, Reg::R1);
    b.add64_imm(Reg::R6, (ring::DATA + ring::FRAME) as i32);
}

/// Publishes the record at r6, r7 bytes long (at most the largest record):
/// its length in the frame, then the head moved past it. Clobbers r1, r2.
pub fn publish(b: &mut ProgramBuilder, slot: StackSlot) {
    b.comment(PUBLISH);
    b.stx(Size::W, Reg::R6, -(ring::FRAME as i16), Reg::R7);
    b.st_imm(Size::W, Reg::R6, -(ring::FRAME as i16) + 4, 0);
    b.ldx(Size::DW, Reg::R1, Reg::FP, slot.off);
    b.ldx(Size::DW, Reg::R2, Reg::R1, ring::HEAD as i16);
    b.alu64_reg(AluOp::Add, Reg::R2, Reg::R7);
    b.add64_imm(Reg::R2, (ring::FRAME + 7) as i32);
    b.alu64_imm(AluOp::And, Reg::R2, -8);
    b.stx(Size::DW, Reg::R1, ring::HEAD as i16, Reg::R2);
}

/// Gives back the busy count of the region kept in `slot` (clobbers r1, r2).
pub fn release(b: &mut ProgramBuilder, slot: StackSlot) {
    b.ldx(Size::DW, Reg::R1, Reg::FP, slot.off);
    b.mov64_imm(Reg::R2, -1);
    b.atomic_add(Size::DW, Reg::R1, ring::BUSY as i16, Reg::R2);
}

/// After a record was published and the region given back (nothing else
/// live): when the region kept in `slot` holds more than
/// 1/[`ring::WAKE_AT`] of its size not yet consumed and no probe has
/// woken pytap since it last gave space back, raises the region's
/// [`ring::WAKE`] word and wakes pytap through the ring buffer `events`
/// (a reservation discarded with `BPF_RB_FORCE_WAKEUP`: pytap's epoll
/// hears it; no record is made). pytap otherwise drains on a timer, and a
/// burst could fill a region between two polls. Clobbers r0-r5.
pub fn wake_if_filling(b: &mut ProgramBuilder, rings: Rings, slot: StackSlot, events: MapRef) {
    let done = b.new_label();
    b.comment("wake pytap once if the ring is filling up");
    b.ldx(Size::DW, Reg::R1, Reg::FP, slot.off);
    b.ldx(Size::DW, Reg::R2, Reg::R1, ring::HEAD as i16);
    b.ldx(Size::DW, Reg::R3, Reg::R1, ring::TAIL as i16);
    b.alu64_reg(AluOp::Sub, Reg::R2, Reg::R3);
    b.jmp_imm(
        JmpOp::Jle,
        Reg::R2,
        (rings.size / ring::WAKE_AT) as i32,
        done,
    );
    b.ldx(Size::DW, Reg::R2, Reg::R1, ring::WAKE as i16);
    b.jmp_imm(JmpOp::Jne, Reg::R2, 0, done);
    b.st_imm(Size::DW, Reg::R1, ring::WAKE as i16, 1);
    b.ld_map_fd(Reg::R1, events);
    b.mov64_imm(Reg::R2, 8);
    b.mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
    b.mov64_reg(Reg::R1, Reg::R0);
    b.mov64_imm(Reg::R2, RB_FORCE_WAKEUP as i32);
    b.call(Helper::RingbufDiscard);
    b.bind(done);
}

/// Gives back the busy count of the region at `region` (clobbers r1).
pub fn release_at(b: &mut ProgramBuilder, region: Reg) {
    b.mov64_imm(Reg::R1, -1);
    b.atomic_add(Size::DW, region, ring::BUSY as i16, Reg::R1);
}
