//! Records a script's kernel probes send: an output site's leaf values
//! ([`emit_output`]), a new key of an address-keyed array with its
//! strings ([`emit_keydef`]), a run-time error ([`emit_error`]). Layouts
//! are [`crate::engine::abi::ScriptRecord`]'s.
//!
//! Records are packed in this CPU's staging buffer and copied out at
//! their real size, as function records are (see [`super::super::record`]):
//! a string takes its length, not `STR_CAP`. When a preempted probe holds
//! the staging buffer, the worst case is reserved in the ring instead.

use pytap_ebpf::{AluOp, Helper, JmpOp, ProgramBuilder, RB_NO_WAKEUP, Reg, Size};
use pytap_script::ir::{ExprKind, Program};

use super::firing::CopyRead;
use super::globals::KeyAt;
use super::lower::{Gen, unsupported};
use super::placement::{KeyPart, LeafKind, OutputKind, Placement};
use super::strings::StrVal;
use super::{counter, ctl};
use crate::engine::abi::{self, STR_CAP, ScriptRecord, ScriptString, off};
use crate::engine::codegen::{CodegenError, emit_count, record};

type R<T> = Result<T, CodegenError>;

/// Where a string of a record comes from.
#[derive(Debug, Clone, Copy)]
enum StrSrc {
    /// A marker string at the address in this stack slot.
    Addr {
        slot: i16,
        max: Option<u32>,
        copy: Option<(usize, bool)>,
    },
    /// A marker string whose address is at this offset of the record's key.
    KeyAddr(u32),
    /// Bytes at this offset of the scratch area.
    Bytes(u32),
}

/// What a record carries.
struct Spec {
    kind: u16,
    id: u32,
    longs: Vec<i16>,
    strs: Vec<StrSrc>,
    key: Option<(KeyAt, u32)>,
}

/// The largest record a program's kernel probes send.
pub fn max_record(program: &Program, placement: &Placement) -> usize {
    let mut max = abi::script_record_size(0, 0, 0);
    for site in &placement.outputs {
        max = max.max(abi::script_record_size(site.longs(), site.strings(), 0));
    }
    for (g, kg) in placement.globals.iter().enumerate() {
        if let Some(kg) = kg.as_ref().filter(|kg| kg.address_keyed) {
            let strs = kg.key.iter().filter(|k| **k == KeyPart::Address).count();
            max = max.max(abi::script_record_size(0, strs, kg.key_size() as usize));
        }
        let _ = (g, program);
    }
    max
}

/// An output statement: its leaves evaluated, its record sent; `exit()`
/// also stops the probes, `error()` leaves the probe.
pub fn emit_output(g: &mut Gen<'_>, index: usize) -> R<()> {
    let site = g.h.placement.outputs[index].clone();
    let mut longs = Vec::new();
    let mut strs = Vec::new();
    for leaf in &site.leaves {
        match leaf.kind {
            LeafKind::Long => longs.push(g.long_to_temp(&leaf.expr)?),
            LeafKind::Stack => longs.push(g.stack_to_temp(&leaf.expr)?),
            LeafKind::Indent { thread, kernel } => {
                let ExprKind::Builtin(_, args) = &leaf.expr.kind else {
                    return Err(unsupported("an indent leaf that is not a call"));
                };
                if kernel {
                    let (elapsed, depth) = g.indent_step(thread, &args[0])?;
                    longs.push(elapsed);
                    longs.push(depth);
                } else {
                    longs.push(g.long_to_temp(&args[0])?);
                }
            }
            LeafKind::Str => strs.push(match g.string(&leaf.expr)? {
                StrVal::Addr { slot, max, copy } => StrSrc::Addr { slot, max, copy },
                StrVal::Bytes(off) => StrSrc::Bytes(off),
                lit @ StrVal::Lit(_) => StrSrc::Bytes(g.to_bytes(&lit)?),
            }),
        }
    }
    emit_record(
        g,
        Spec {
            kind: abi::SCRIPT_OUTPUT,
            id: index as u32,
            longs,
            strs,
            key: None,
        },
    )?;
    match site.kind {
        OutputKind::Exit => {
            let skip = g.b.new_label();
            super::lower::lookup_slot0(g.b, g.env, g.h.maps.control);
            g.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, skip);
            g.b.mov64_imm(Reg::R1, 1);
            g.b.stx(Size::DW, Reg::R0, (8 * ctl::EXITING) as i16, Reg::R1);
            g.b.bind(skip);
        }
        OutputKind::Error => {
            g.b.ja(g.next);
        }
        OutputKind::Print | OutputKind::Warn => {}
    }
    Ok(())
}

/// A run-time error record (the caller leaves the probe).
pub fn emit_error(g: &mut Gen<'_>, site: usize) -> R<()> {
    emit_record(
        g,
        Spec {
            kind: abi::SCRIPT_ERROR,
            id: site as u32,
            longs: Vec::new(),
            strs: Vec::new(),
            key: None,
        },
    )
}

/// The key of a new entry of address-keyed global `global`, and the
/// strings its addresses point to.
pub fn emit_keydef(g: &mut Gen<'_>, global: usize, at: KeyAt) -> R<()> {
    let kg = g.h.placement.globals[global]
        .clone()
        .ok_or_else(|| unsupported("a key of a userspace global"))?;
    let strs = kg
        .key
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == KeyPart::Address)
        .map(|(i, _)| StrSrc::KeyAddr(kg.key_offset(i)))
        .collect();
    emit_record(
        g,
        Spec {
            kind: abi::SCRIPT_KEY,
            id: global as u32,
            longs: Vec::new(),
            strs,
            key: Some((at, kg.key_size())),
        },
    )
}

/// Sends a record: staged and copied at its real size, or reserved whole
/// when the staging buffer is busy. Lost records are counted.
fn emit_record(g: &mut Gen<'_>, spec: Spec) -> R<()> {
    let key_len = spec.key.map_or(0, |(_, n)| n as usize);
    let worst = abi::script_record_size(spec.longs.len(), spec.strs.len(), key_len);
    let (direct, busy, lost, out) = (
        g.b.new_label(),
        g.b.new_label(),
        g.b.new_label(),
        g.b.new_label(),
    );
    g.b.comment("a script record: take this CPU's staging buffer");
    record::take_staging(g.b, g.env, g.h.maps.stage, direct, busy);
    g.b.add64_imm(Reg::R6, 8);
    fill(g, &spec)?;
    g.b.ld_map_fd(Reg::R1, g.h.maps.record.events);
    g.b.mov64_reg(Reg::R2, Reg::R6);
    g.b.mov64_reg(Reg::R3, Reg::R7);
    g.b.mov64_imm(Reg::R4, RB_NO_WAKEUP as i32);
    g.b.call(Helper::RingbufOutput);
    g.b.add64_imm(Reg::R6, -8);
    record::release_staging(g.b);
    g.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, lost);
    g.b.ja(out);

    g.b.bind(busy);
    record::release_staging(g.b);
    g.b.bind(direct);
    g.b.ld_map_fd(Reg::R1, g.h.maps.record.events);
    g.b.mov64_imm(Reg::R2, worst as i32);
    g.b.mov64_imm(Reg::R3, 0);
    g.b.call(Helper::RingbufReserve);
    g.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, lost);
    g.b.mov64_reg(Reg::R6, Reg::R0);
    fill(g, &spec)?;
    g.b.mov64_reg(Reg::R1, Reg::R6);
    g.b.mov64_imm(Reg::R2, RB_NO_WAKEUP as i32);
    g.b.call(Helper::RingbufSubmit);
    g.b.ja(out);

    g.b.bind(lost);
    emit_count(
        g.b,
        g.env.slots.key,
        g.h.maps.record.counters,
        abi::COUNTER_LOST,
    );
    g.b.bind(out);
    Ok(())
}

/// Fills the record at r6 and leaves its size in r7.
fn fill(g: &mut Gen<'_>, spec: &Spec) -> R<()> {
    let key_len = spec.key.map_or(0, |(_, n)| n as usize);
    let timestamp =
        g.h.placement
            .timestamp
            .then_some(g.args + super::FIRING_TIMESTAMP);
    record::write_header_from(
        g.b,
        g.env,
        spec.kind,
        Some(g.args + super::FIRING_PID_TGID),
        timestamp,
    );
    fill_counts(g, spec, key_len);
    let base = std::mem::size_of::<ScriptRecord>();
    for (i, slot) in spec.longs.iter().enumerate() {
        g.b.ldx(Size::DW, Reg::R1, Reg::FP, *slot);
        g.b.stx(Size::DW, Reg::R6, (base + 8 * i) as i16, Reg::R1);
    }
    let metas = base + 8 * spec.longs.len();
    let key_at = metas + std::mem::size_of::<ScriptString>() * spec.strs.len();
    copy_key(g, spec, key_at)?;
    let packed = abi::script_fixed_size(spec.longs.len(), spec.strs.len(), key_len);
    g.b.mov64_imm(Reg::R7, packed as i32);
    for (i, s) in spec.strs.iter().enumerate() {
        let meta = metas + std::mem::size_of::<ScriptString>() * i;
        fill_string(g, spec, meta, s)?;
    }
    let _ = off::FLAGS;
    Ok(())
}

/// The record's counts and ids after its header: which output or global
/// it is, how many numbers and strings it carries, its key's length.
fn fill_counts(g: &mut Gen<'_>, spec: &Spec, key_len: usize) {
    g.b.st_imm(
        Size::W,
        Reg::R6,
        std::mem::offset_of!(ScriptRecord, id) as i16,
        spec.id as i32,
    );
    g.b.st_imm(
        Size::H,
        Reg::R6,
        std::mem::offset_of!(ScriptRecord, longs) as i16,
        spec.longs.len() as i32,
    );
    g.b.st_imm(
        Size::H,
        Reg::R6,
        std::mem::offset_of!(ScriptRecord, strings) as i16,
        spec.strs.len() as i32,
    );
    g.b.st_imm(
        Size::W,
        Reg::R6,
        std::mem::offset_of!(ScriptRecord, key_len) as i16,
        key_len as i32,
    );
    g.b.st_imm(
        Size::W,
        Reg::R6,
        std::mem::offset_of!(ScriptRecord, _pad) as i16,
        0,
    );
}

/// Copies the key (a new key's record) to `key_at`, from the stack or the
/// scratch area.
fn copy_key(g: &mut Gen<'_>, spec: &Spec, key_at: usize) -> R<()> {
    if let Some((at, len)) = spec.key {
        if let KeyAt::Scratch(off) = at {
            g.scratch_at(Reg::R2, off)?;
        }
        for w in 0..(len as usize).div_ceil(8) {
            match at {
                KeyAt::Stack(off) => g.b.ldx(Size::DW, Reg::R1, Reg::FP, off + 8 * w as i16),
                KeyAt::Scratch(_) => g.b.ldx(Size::DW, Reg::R1, Reg::R2, 8 * w as i16),
            };
            g.b.stx(Size::DW, Reg::R6, (key_at + 8 * w) as i16, Reg::R1);
        }
    }
    Ok(())
}

/// Fills the string whose metadata is at `meta` and reads it at r6 + r7,
/// then adds its length to r7.
fn fill_string(g: &mut Gen<'_>, spec: &Spec, meta: usize, s: &StrSrc) -> R<()> {
    let ptr = (meta + std::mem::offset_of!(ScriptString, ptr)) as i16;
    let ret = (meta + std::mem::offset_of!(ScriptString, ret)) as i16;
    let flags = (meta + std::mem::offset_of!(ScriptString, flags)) as i16;
    g.b.st_imm(Size::W, Reg::R6, flags, 0);
    let StrRead { cap, user, copy } = string_source(g, spec, s)?;
    if user {
        g.b.stx(Size::DW, Reg::R6, ptr, Reg::R3);
    } else {
        g.b.st_imm(Size::DW, Reg::R6, ptr, 0);
    }
    let read = g.b.new_label();
    if let Some(copy) = copy {
        // The firing's copy of the marker string, when there is one.
        let direct = g.b.new_label();
        g.strings.copy_address(g.b, copy, Reg::R3, direct);
        g.b.mov64_reg(Reg::R1, Reg::R6)
            .alu64_reg(AluOp::Add, Reg::R1, Reg::R7);
        g.b.mov64_imm(Reg::R2, cap as i32);
        g.b.call(Helper::ProbeReadKernelStr);
        g.b.ja(read);
        g.b.bind(direct);
        g.b.ldx(Size::DW, Reg::R3, Reg::FP, copy.addr);
    }
    g.b.mov64_reg(Reg::R1, Reg::R6)
        .alu64_reg(AluOp::Add, Reg::R1, Reg::R7);
    g.b.mov64_imm(Reg::R2, cap as i32);
    g.b.call(if user {
        Helper::ProbeReadUserStr
    } else {
        Helper::ProbeReadKernelStr
    });
    g.b.bind(read);
    g.b.stx(Size::W, Reg::R6, ret, Reg::R0);
    if user && cap == STR_CAP as u32 {
        truncation_check(g.b, g.env, ptr, flags)?;
        let _ = counter::TRUNCATED;
    }
    let ok = g.b.new_label();
    g.b.ldx(Size::W, Reg::R1, Reg::R6, ret);
    g.b.jmp_imm(JmpOp::Jle, Reg::R1, STR_CAP as i32, ok);
    g.b.mov64_imm(Reg::R1, 0);
    g.b.bind(ok);
    g.b.alu64_reg(AluOp::Add, Reg::R7, Reg::R1);
    Ok(())
}

/// How a record's string is read.
struct StrRead {
    /// The bytes it may take, with its NUL.
    cap: u32,
    /// Whether it is in the process's memory (else in the scratch area).
    user: bool,
    /// The firing's copy to read instead, when there is one.
    copy: Option<CopyRead>,
}

/// Leaves the address of string `s` in r3, and says how to read it.
fn string_source(g: &mut Gen<'_>, spec: &Spec, s: &StrSrc) -> R<StrRead> {
    let mut copy = None;
    let (cap, user) = match *s {
        StrSrc::Addr { slot, max, copy: c } => {
            copy = c.map(|(arg, make)| CopyRead {
                arg,
                addr: slot,
                make,
            });
            g.b.ldx(Size::DW, Reg::R3, Reg::FP, slot);
            (
                max.map_or(STR_CAP as u32, |m| (m + 1).min(STR_CAP as u32)),
                true,
            )
        }
        StrSrc::KeyAddr(at) => {
            let (k, _) = spec
                .key
                .ok_or_else(|| unsupported("a key string without a key"))?;
            match k {
                KeyAt::Stack(off) => {
                    g.b.ldx(Size::DW, Reg::R3, Reg::FP, off + at as i16);
                }
                KeyAt::Scratch(off) => {
                    g.scratch_at(Reg::R3, off + at)?;
                    g.b.ldx(Size::DW, Reg::R3, Reg::R3, 0);
                }
            }
            (STR_CAP as u32, true)
        }
        StrSrc::Bytes(at) => {
            g.scratch_at(Reg::R3, at)?;
            (STR_CAP as u32, false)
        }
    };
    Ok(StrRead { cap, user, copy })
}

/// After a user string filled the buffer (r0 == STR_CAP): flags it when
/// the string goes on past it.
fn truncation_check(
    b: &mut ProgramBuilder,
    env: &crate::engine::codegen::Env,
    ptr: i16,
    flags: i16,
) -> R<()> {
    let done = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R0, STR_CAP as i32, done);
    b.st_imm(Size::DW, Reg::FP, env.slots.scratch.off, 0);
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, env.slots.scratch.off.into());
    b.mov64_imm(Reg::R2, 1);
    b.ldx(Size::DW, Reg::R3, Reg::R6, ptr);
    b.add64_imm(Reg::R3, STR_CAP as i32 - 1);
    b.call(Helper::ProbeReadUser);
    b.ldx(Size::B, Reg::R1, Reg::FP, env.slots.scratch.off);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
    b.st_imm(Size::W, Reg::R6, flags, abi::SCRIPT_STR_TRUNCATED as i32);
    b.bind(done);
    Ok(())
}
