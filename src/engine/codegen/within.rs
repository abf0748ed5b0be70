//! `pytap flow --within FUNC` in the kernel: function records are sent only
//! while the thread is inside a call of FUNC (FUNC's own entry and return
//! included), so what runs outside costs no ring-buffer traffic and no
//! userspace work.
//!
//! The probe compares the function name it just read with FUNC's bytes and
//! keeps, per thread, how many FUNC frames are open (an LRU hash keyed by
//! tid): an entry of FUNC adds one, a return of FUNC takes one away, never
//! below zero (a return without entry, such as 3.15's shim frames). Only
//! exact names are filtered here; userspace applies `--within` again with
//! its full glob and stack rules, and the kernel only ever sends more.
//!
//! The same handler flags 3.15's generator creations when asked
//! ([`super::creation`]); under `--within` they are dropped in the kernel.

use std::collections::BTreeSet;

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, MapRef, ProgramBuilder, Reg, Size};

use super::creation;
use super::event_stack::EventStacks;
use super::named::{self, NamedMaps};
use super::record::{self, Record, RecordMaps};
use super::{CodegenError, Env, Handler, MapKind, MapSpec};
use crate::cpython::Marker;
use crate::engine::abi::KindMarker;
use crate::engine::abi::{EventKind, off};

/// Longest function name filtered in the kernel (longer ones are filtered
/// in userspace only).
pub const MAX_NAME: usize = 128;

/// `BPF_ANY`.
const BPF_ANY: i32 = 0;

/// The per-thread map of open FUNC frames.
pub fn inside_map_spec() -> MapSpec {
    MapSpec {
        name: "within".into(),
        kind: MapKind::LruHash,
        key_size: 4,
        value_size: 8,
        max_entries: 65536,
    }
}

/// FUNC, as the kernel filters it.
#[derive(Debug, Clone)]
pub struct Within {
    /// [`inside_map_spec`].
    pub inside: MapRef,
    /// FUNC's name (at most [`MAX_NAME`] bytes, no NUL).
    pub name: Vec<u8>,
}

/// Streams full records; with a [`Within`], function entries and returns
/// only inside FUNC.
#[derive(Debug, Clone)]
pub struct WithinRecords {
    /// Ring buffer, counters, staging.
    pub maps: RecordMaps,
    /// The filter, if any.
    pub within: Option<Within>,
    /// Markers streamed.
    pub markers: BTreeSet<Marker>,
    /// Flag generator creations ([`crate::engine::abi::FLAG_GENERATOR_CREATION`]) where
    /// the module shows the frame.
    pub flag_creations: bool,
    /// Send function returns and lines lean when their names were sent
    /// before ([`super::named`]); not with a [`Within`], whose check
    /// compares the name it reads.
    pub named: Option<NamedMaps>,
    /// Walk the Python stack of each gc, import and audit event after its
    /// record ([`super::event_stack`]).
    pub stacks: Option<EventStacks>,
}

impl Handler for WithinRecords {
    fn handles(&self, marker: Marker) -> bool {
        self.markers.contains(&marker)
    }

    fn uses_rings(&self) -> bool {
        self.maps.rings.is_some()
    }

    fn wants_frame(&self) -> bool {
        self.flag_creations
    }

    fn wants_stacks(&self) -> bool {
        self.stacks.is_some()
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        let kind = EventKind::of(marker);
        if let Some(stacks) = &self.stacks
            && let Some(after) = stacks.after(b, env, kind)?
        {
            // gc, import and audit records are neither filtered nor
            // flagged; their stack follows them.
            match kind.is_packed() {
                true => Record {
                    then: Some(after),
                    ..Record::packed(env, self.maps, kind)
                }
                .emit(b),
                false => record::emit_unpacked(b, env, self.maps, kind, Some(after))?,
            }
            return stacks.emit(b, env, after);
        }
        if !kind.is_packed() {
            // gc and audit records (`pytap record` streams them too) are
            // neither filtered nor flagged.
            return record::emit_unpacked(b, env, self.maps, kind, None);
        }
        let entry = match kind {
            EventKind::FunctionEntry => Some(true),
            EventKind::FunctionReturn => Some(false),
            _ => None,
        };
        let creation = match (env.frame, kind) {
            (Some(frame), EventKind::FunctionEntry) => {
                let bytes = creation::scratch_bytes(&frame.source.layout);
                Some((frame, b.alloc_stack(bytes, 8)?))
            }
            _ => None,
        };
        let within = self.within.as_ref().zip(entry);
        let named = self
            .named
            .filter(|_| self.within.is_none() && kind.is_function());
        let entries = self.markers.contains(&Marker::FunctionEntry);
        let record = Record::packed(env, self.maps, kind);
        if creation.is_none() && within.is_none() {
            match named {
                Some(named) => named::emit_function(b, record, named, entries)?,
                None => record.emit(b),
            }
            return Ok(());
        }
        let tid = match within {
            Some(_) => Some(b.alloc_stack(4, 4)?),
            None => None,
        };
        let filter = |b: &mut ProgramBuilder, env: &Env, drop: Label| {
            if let Some((frame, scratch)) = creation {
                // Under --within a creation is dropped: it opens no FUNC
                // frame, and flow shows no creation anyway.
                creation::emit_flag(b, frame, scratch.off, within.map(|_| drop));
            }
            if let (Some((within, entry)), Some(tid)) = (within, tid) {
                emit_inside_check(b, env, within, entry, tid.off, drop);
            }
            within.is_some()
        };
        let record = Record {
            filter: Some(&filter),
            ..record
        };
        match named {
            Some(named) => named::emit_function(b, record, named, entries)?,
            None => record.emit(b),
        }
        Ok(())
    }
}

/// The decision, after the record is filled: r6 record, r7 its size (kept),
/// r9 the packed length of the file name (so the function name is at
/// `r6 + FN_FILENAME + r9`).
fn emit_inside_check(
    b: &mut ProgramBuilder,
    env: &Env,
    within: &Within,
    entry: bool,
    tid: i16,
    drop: Label,
) {
    let (nomatch, have, found, keep) = (b.new_label(), b.new_label(), b.new_label(), b.new_label());
    let (inside, name) = (within.inside, &within.name);
    b.comment("r8 = (funcname == FUNC)");
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::FN_FILENAME as i32)
        .alu64_reg(AluOp::Add, Reg::R1, Reg::R9);
    for (i, byte) in name.iter().chain([&0u8]).enumerate() {
        b.ldx(Size::B, Reg::R2, Reg::R1, i as i16);
        b.jmp_imm(JmpOp::Jne, Reg::R2, i32::from(*byte), nomatch);
    }
    b.mov64_imm(Reg::R8, 1).ja(have);
    b.bind(nomatch);
    b.mov64_imm(Reg::R8, 0);
    b.bind(have);
    b.comment("this thread's count of open FUNC frames");
    b.call(Helper::GetCurrentPidTgid);
    b.stx(Size::W, Reg::FP, tid, Reg::R0);
    b.ld_map_fd(Reg::R1, inside);
    b.mov64_reg(Reg::R2, Reg::FP).add64_imm(Reg::R2, tid.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
    if !entry {
        b.ja(drop);
    } else {
        b.jmp_imm(JmpOp::Jeq, Reg::R8, 0, drop);
        b.comment("first FUNC frame of this thread");
        b.st_imm(Size::DW, Reg::FP, env.slots.scratch.off, 1);
        b.ld_map_fd(Reg::R1, inside);
        b.mov64_reg(Reg::R2, Reg::FP).add64_imm(Reg::R2, tid.into());
        b.mov64_reg(Reg::R3, Reg::FP)
            .add64_imm(Reg::R3, env.slots.scratch.off.into());
        b.mov64_imm(Reg::R4, BPF_ANY);
        b.call(Helper::MapUpdateElem);
        b.ja(keep);
    }
    b.bind(found);
    if entry {
        b.atomic_add(Size::DW, Reg::R0, 0, Reg::R8);
        b.ldx(Size::DW, Reg::R1, Reg::R0, 0);
        b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, drop);
    } else {
        b.ldx(Size::DW, Reg::R1, Reg::R0, 0);
        b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, drop);
        b.jmp_imm(JmpOp::Jeq, Reg::R8, 0, keep);
        b.mov64_imm(Reg::R1, -1);
        b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    }
    b.bind(keep);
}
