//! The one emitter of function and import records: every such record,
//! packed or only its fixed part, goes through the same sequence, written
//! once here: reserve room, write the header, fill the body, let a filter
//! drop or edit it, publish it, and count it lost when there was no room.
//! Two things vary, and are parameters: the [`Destination`] (in place in
//! this CPU's ring region, or reserved in the shared ring buffer) and the
//! [`Body`] (a packed record, or its fixed part only).
//!
//! A record that finds no room is counted in the per-CPU `COUNTER_LOST`
//! slot, never dropped silently.

use std::fmt;

use pytap_ebpf::{AluOp, Helper, Label, ProgramBuilder, Reg, Size};

use super::strings::{StrDst, load_packed_len, read_path, read_str};
use super::{InPlace, Parts, RecordFilter, RecordMaps, Remember};
use super::{discard, ringbuf_reserve, submit_only, write_header_from};
use crate::engine::abi::{self, EventKind, off};
use crate::engine::codegen::{Env, emit_count, inplace, named};

/// Where a record is built and sent.
#[derive(Debug, Clone, Copy)]
pub enum Destination {
    /// In this CPU's ring region, held (r6: the region, its busy count
    /// taken by [`inplace::take`]); the record takes only its real size.
    InPlace(InPlace),
    /// Reserved in the shared ring buffer: the worst case of its kind, the
    /// path of a probe that preempted another on its CPU, or of a plan
    /// without the rings.
    Reserved,
}

/// What fills a record's body, from the marker's arguments (r7, r8, r9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A packed function or import record, doing these parts of the work
    /// (all of them but for the benchmark's split probe).
    Packed(Parts),
    /// A function record's fixed part only (header, line, pointers; no
    /// strings) with this flag: [`abi::FLAG_LEAN`] for the aggregating
    /// tools, [`abi::FLAG_NAMED_BEFORE`] for names sent before.
    Fixed(u16),
}

impl Body {
    /// Whether the record is sent once built (the split probe's
    /// [`Parts::NoOutput`] builds it and gives it up).
    fn outputs(self) -> bool {
        self != Body::Packed(Parts::NoOutput)
    }

    /// Whether the give-backs of the ring region say why in `--dump-bpf`:
    /// the packed paths' always did and the fixed ones' never did, and
    /// the dumps' goldens hold the generated text as it is.
    fn commented(self) -> bool {
        matches!(self, Body::Packed(_))
    }
}

/// One record to emit: everything the sequence needs but its destination.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// The module's environment.
    pub env: &'a Env,
    /// The maps written to.
    pub maps: RecordMaps,
    /// The record's kind (its header, its sizes).
    pub kind: EventKind,
    /// What fills it.
    pub body: Body,
    /// Code run on the filled record, which may drop or edit it.
    pub filter: Option<RecordFilter<'a>>,
    /// Where to remember the names a whole function record sent
    /// ([`named`]); a lost record then raises the names epoch.
    pub remember: Option<Remember>,
    /// The stack offset of the firing's `pid_tgid` when the probe read it
    /// already: a helper call saved.
    pub pid_tgid: Option<i16>,
    /// What the program does once the record is published, instead of
    /// exiting (a record dropped or lost still exits).
    pub then: Option<After>,
}

/// Where a program goes on once its record is published: the event's
/// stack is walked there ([`crate::engine::codegen::event_stack`]).
#[derive(Debug, Clone, Copy)]
pub struct After {
    /// The stack slot the record's timestamp is copied into before the
    /// record is published (the record cannot be read after).
    pub ts_slot: i16,
    /// The code to go on in.
    pub label: Label,
}

impl After {
    /// Keeps the timestamp of the record at r6 (clobbers r1).
    pub fn keep_timestamp(self, b: &mut ProgramBuilder) {
        b.ldx(Size::DW, Reg::R1, Reg::R6, off::TS as i16);
        b.stx(Size::DW, Reg::FP, self.ts_slot, Reg::R1);
    }
}

/// Exits, or goes on at `then`.
pub fn end(b: &mut ProgramBuilder, then: Option<After>) {
    match then {
        Some(after) => b.ja(after.label),
        None => b.mov64_imm(Reg::R0, 0).exit(),
    };
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("maps", &self.maps)
            .field("kind", &self.kind)
            .field("body", &self.body)
            .field("filter", &self.filter.is_some())
            .field("remember", &self.remember)
            .field("pid_tgid", &self.pid_tgid)
            .field("then", &self.then)
            .finish_non_exhaustive()
    }
}

impl<'a> Record<'a> {
    /// A whole packed record of `kind`, unfiltered, nothing remembered.
    pub fn packed(env: &'a Env, maps: RecordMaps, kind: EventKind) -> Record<'a> {
        Record {
            env,
            maps,
            kind,
            body: Body::Packed(Parts::Whole),
            filter: None,
            remember: None,
            pid_tgid: None,
            then: None,
        }
    }

    /// A function record's fixed part only, with `flag` ([`Body::Fixed`]).
    pub fn fixed(env: &'a Env, maps: RecordMaps, kind: EventKind, flag: u16) -> Record<'a> {
        Record {
            body: Body::Fixed(flag),
            ..Record::packed(env, maps, kind)
        }
    }

    /// This CPU's ring region, when the plan has the rings and the program
    /// a slot for the region's address.
    pub fn ring(&self) -> Option<InPlace> {
        let (rings, slot) = (self.maps.rings?, self.env.slots.ring?);
        Some(InPlace { rings, slot })
    }

    /// Emits the record: in place when the plan has the rings, else
    /// reserved in the ring buffer. Ends in `exit` on every path.
    pub fn emit(&self, b: &mut ProgramBuilder) {
        match self.ring() {
            Some(held) => self.emit_taken(b, held, None),
            None => self.emit_to(b, Destination::Reserved),
        }
    }

    /// Takes this CPU's ring region `held`, runs `first` (code that may
    /// end the firing first, such as a lean record), then writes the record
    /// in place; a probe that finds the region taken (it preempted another
    /// probe on this CPU) reserves it in the ring buffer instead. Ends in
    /// `exit` on every path.
    pub fn emit_taken(
        &self,
        b: &mut ProgramBuilder,
        held: InPlace,
        first: Option<&dyn Fn(&mut ProgramBuilder)>,
    ) {
        let (direct, busy) = (b.new_label(), b.new_label());
        inplace::take(b, self.env, held.rings, held.slot, direct, busy);
        if let Some(first) = first {
            first(b);
        }
        self.emit_to(b, Destination::InPlace(held));
        b.bind(busy);
        if self.body.commented() {
            b.comment("ring in use by a preempted probe: give it back");
        }
        inplace::release_at(b, Reg::R6);
        b.bind(direct);
        self.emit_to(b, Destination::Reserved);
    }

    /// The sequence, once, into `dest`: reserve, header, fill, filter,
    /// publish, and the lost path. Ends in `exit` on every path.
    pub fn emit_to(&self, b: &mut ProgramBuilder, dest: Destination) {
        let dropped = b.new_label();
        let lost = self.reserve(b, dest);
        self.fill(b, dest);
        let drops = self
            .filter
            .is_some_and(|filter| filter(b, self.env, dropped));
        if let Some(after) = self.then {
            after.keep_timestamp(b);
        }
        self.publish(b, dest);
        if drops {
            b.bind(dropped);
            match dest {
                Destination::InPlace(held) => {
                    inplace::release(b, held.slot);
                    b.mov64_imm(Reg::R0, 0).exit();
                }
                Destination::Reserved => discard(b),
            }
        }
        b.bind(lost);
        self.lost(b, dest);
    }

    /// r6 = room for the record, its header written; returns the label of
    /// the path where there was none.
    fn reserve(&self, b: &mut ProgramBuilder, dest: Destination) -> Label {
        let (env, kind) = (self.env, self.kind as u16);
        match dest {
            Destination::InPlace(held) => {
                let full = b.new_label();
                inplace::reserve(b, held.rings, held.slot, full);
                // The clock was read when the region was taken: records of
                // one region are in the order of their timestamps.
                let ts = Some(inplace::timestamp(held.slot));
                write_header_from(b, env, kind, self.pid_tgid, ts);
                full
            }
            Destination::Reserved => {
                let size = match self.body {
                    Body::Packed(_) => self.kind.record_size(),
                    Body::Fixed(_) => self.kind.fixed_size(),
                };
                let lost = ringbuf_reserve(b, self.maps, size);
                write_header_from(b, env, kind, self.pid_tgid, None);
                lost
            }
        }
    }

    /// Fills the body at r6 and leaves its size in r7 where publishing it
    /// in place needs it.
    fn fill(&self, b: &mut ProgramBuilder, dest: Destination) {
        match self.body {
            Body::Packed(parts) => fill_packed(b, self.env, self.kind, parts),
            Body::Fixed(flag) => {
                fill_fixed(b, flag);
                if let Destination::InPlace(_) = dest {
                    b.mov64_imm(Reg::R7, self.kind.fixed_size() as i32);
                }
            }
        }
    }

    /// Sends the filled record (or gives it up, [`Parts::NoOutput`]), and
    /// exits (or goes on at [`Record::then`]). In place: published, its names remembered when asked, the
    /// region given back, pytap woken if the region is filling up.
    fn publish(&self, b: &mut ProgramBuilder, dest: Destination) {
        match dest {
            Destination::InPlace(held) => {
                if self.body.outputs() {
                    inplace::publish(b, held.slot);
                    if let Some(remember) = self.remember {
                        named::emit_remember(b, self.env, remember, held.slot);
                    }
                }
                inplace::release(b, held.slot);
                inplace::wake_if_filling(b, held.rings, held.slot, self.maps.events);
                end(b, self.then);
            }
            Destination::Reserved if self.body.outputs() => {
                submit_only(b);
                end(b, self.then);
            }
            Destination::Reserved => discard(b),
        }
    }

    /// The path of a record that found no room: the region given back, a
    /// new names epoch when the names it would have sent are remembered,
    /// the count, exit.
    fn lost(&self, b: &mut ProgramBuilder, dest: Destination) {
        if let Destination::InPlace(_) = dest {
            if self.body.commented() {
                b.comment("no room in this CPU's ring: the record is lost");
            }
            inplace::release_at(b, Reg::R6);
        }
        if let Some(remember) = self.remember {
            // A record that never reached the ring buffer (an entry among
            // them): whatever the slots say was sent before proves nothing now.
            named::emit_new_epoch(b, remember.epoch, self.env.slots.key);
        }
        emit_count(b, self.env.slots.key, self.maps.counters, abi::COUNTER_LOST);
        b.mov64_imm(Reg::R0, 0).exit();
    }
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
