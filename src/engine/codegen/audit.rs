//! The `audit` record's capture: the event name, the argument tuple's
//! first items as object snapshots (bytes, type name), and the elements of
//! items that are tuples, read at the version's object layout so that
//! pytap can decode them ([`crate::engine::decode`]).

use pytap_ebpf::{AluOp, Helper, JmpOp, ProgramBuilder, Reg, Size};

use super::record::{StrDst, read_str};
use super::{CodegenError, Env};
use crate::cpython::objects::ObjectLayout;
use crate::engine::abi::{self, off};

/// `audit`: r7 = event name, r8 = argument tuple. Captures the name, the
/// tuple's first items and the elements of items that are tuples.
pub fn emit_audit(b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
    let done = b.new_label();
    b.stx(Size::DW, Reg::R6, off::AU_EVENT_PTR as i16, Reg::R7);
    b.stx(Size::DW, Reg::R6, off::AU_ARGS_PTR as i16, Reg::R8);
    read_str(
        b,
        env,
        Reg::R7,
        StrDst::at(off::AU_EVENT),
        off::AU_EVENT_RET,
        abi::FLAG_TRUNCATED_0,
    );
    let Some(layout) = env.layout else {
        // Without the version the argument layout is unknown: name only.
        b.st_imm(Size::W, Reg::R6, off::AU_ROOT_RET as i16, -1);
        b.bind(done);
        return Ok(());
    };
    let items_off = i32::from(layout.tuple_items);
    b.comment("the argument tuple's header");
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::AU_ROOT as i32);
    b.mov64_imm(Reg::R2, items_off);
    b.mov64_reg(Reg::R3, Reg::R8);
    b.call(Helper::ProbeReadUser);
    b.stx(Size::W, Reg::R6, off::AU_ROOT_RET as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    b.comment("r9 = min(len(args), AUDIT_ITEMS)");
    b.ldx(
        Size::DW,
        Reg::R9,
        Reg::R6,
        (off::AU_ROOT + usize::from(layout.var_size)) as i16,
    );
    b.jmp_imm(JmpOp::Jsle, Reg::R9, 0, done);
    let clamped = b.new_label();
    b.jmp_imm(JmpOp::Jsle, Reg::R9, abi::AUDIT_ITEMS as i32, clamped);
    b.mov64_imm(Reg::R9, abi::AUDIT_ITEMS as i32);
    b.bind(clamped);
    b.comment("the item pointers");
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, off::AU_ROOT as i32 + items_off);
    b.mov64_reg(Reg::R2, Reg::R9)
        .alu64_imm(AluOp::Lsh, Reg::R2, 3);
    b.mov64_reg(Reg::R3, Reg::R8).add64_imm(Reg::R3, items_off);
    b.call(Helper::ProbeReadUser);
    b.stx(Size::W, Reg::R6, off::AU_ROOT_RET as i16, Reg::R0);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, done);
    for i in 0..abi::AUDIT_ITEMS {
        b.comment(&format!("argument {i}"));
        b.jmp_imm(JmpOp::Jle, Reg::R9, i as i32, done);
        let item_ptr = off::AU_ROOT + items_off as usize + 8 * i;
        b.ldx(Size::DW, Reg::R7, Reg::R6, item_ptr as i16);
        let snap = off::AU_ITEMS + i * off::ITEM_SIZE;
        emit_snapshot(b, env, &layout, snap, abi::OBJ_BYTES);
        emit_nested(b, env, &layout, snap, i);
    }
    b.bind(done);
    Ok(())
}

/// For an argument that is a tuple, captures its first elements.
fn emit_nested(b: &mut ProgramBuilder, env: &Env, layout: &ObjectLayout, snap: usize, i: usize) {
    let skip = b.new_label();
    b.comment("a tuple? (type name exactly \"tuple\" and the whole object read)");
    b.ldx(
        Size::W,
        Reg::R1,
        Reg::R6,
        (snap + off::SNAP_TYPE_NAME_RET) as i16,
    );
    b.jmp_imm(JmpOp::Jne, Reg::R1, 6, skip);
    b.ldx(
        Size::W,
        Reg::R1,
        Reg::R6,
        (snap + off::SNAP_DATA_RET) as i16,
    );
    b.jmp_imm(JmpOp::Jne, Reg::R1, abi::OBJ_BYTES as i32, skip);
    b.ldx(
        Size::DW,
        Reg::R1,
        Reg::R6,
        (snap + off::SNAP_TYPE_NAME) as i16,
    );
    b.ld_imm64(Reg::R2, 0x0000_ffff_ffff_ffff);
    b.alu64_reg(AluOp::And, Reg::R1, Reg::R2);
    b.ld_imm64(Reg::R2, u64::from_le_bytes(*b"tuple\0\0\0"));
    b.jmp_reg(JmpOp::Jne, Reg::R1, Reg::R2, skip);
    let data = snap + off::SNAP_DATA;
    for j in 0..abi::AUDIT_NESTED {
        b.ldx(
            Size::DW,
            Reg::R1,
            Reg::R6,
            (data + usize::from(layout.var_size)) as i16,
        );
        b.jmp_imm(JmpOp::Jsle, Reg::R1, j as i32, skip);
        let ptr_at = data + usize::from(layout.tuple_items) + 8 * j;
        b.ldx(Size::DW, Reg::R7, Reg::R6, ptr_at as i16);
        let nested = off::AU_NESTED + (i * abi::AUDIT_NESTED + j) * off::NESTED_SIZE;
        emit_snapshot(b, env, layout, nested, abi::NESTED_OBJ_BYTES);
    }
    b.bind(skip);
}

/// Captures the object at r7 into the snapshot at `snap` in the record:
/// pointer, `data_len` bytes (or its 32-byte header when the full read
/// faults, e.g. near the end of a mapping) and its type's name. Writes
/// `data_ret` (bytes captured, or a negative errno) and `type_name_ret`
/// on every path.
fn emit_snapshot(
    b: &mut ProgramBuilder,
    env: &Env,
    layout: &ObjectLayout,
    snap: usize,
    data_len: usize,
) {
    let (full, short, typename, no_name, done) = (
        b.new_label(),
        b.new_label(),
        b.new_label(),
        b.new_label(),
        b.new_label(),
    );
    let data = (snap + off::SNAP_DATA) as i32;
    let data_ret = (snap + off::SNAP_DATA_RET) as i16;
    let name_ret = (snap + off::SNAP_TYPE_NAME_RET) as i16;
    b.stx(Size::DW, Reg::R6, (snap + off::SNAP_PTR) as i16, Reg::R7);
    b.mov64_reg(Reg::R1, Reg::R6).add64_imm(Reg::R1, data);
    b.mov64_imm(Reg::R2, data_len as i32);
    b.mov64_reg(Reg::R3, Reg::R7);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, full);
    b.mov64_reg(Reg::R1, Reg::R6).add64_imm(Reg::R1, data);
    b.mov64_imm(Reg::R2, 32);
    b.mov64_reg(Reg::R3, Reg::R7);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, short);
    b.stx(Size::W, Reg::R6, data_ret, Reg::R0);
    b.ja(no_name);
    b.bind(short);
    b.st_imm(Size::W, Reg::R6, data_ret, 32);
    b.ja(typename);
    b.bind(full);
    b.st_imm(Size::W, Reg::R6, data_ret, data_len as i32);
    b.bind(typename);
    b.comment("type name: Py_TYPE(obj)->tp_name");
    b.ldx(
        Size::DW,
        Reg::R3,
        Reg::R6,
        (snap + off::SNAP_DATA + 8) as i16,
    );
    b.add64_imm(Reg::R3, i32::from(layout.tp_name));
    b.st_imm(Size::DW, Reg::FP, env.slots.scratch.off, 0);
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, env.slots.scratch.off.into());
    b.mov64_imm(Reg::R2, 8);
    b.call(Helper::ProbeReadUser);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, no_name);
    b.ldx(Size::DW, Reg::R3, Reg::FP, env.slots.scratch.off);
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, (snap + off::SNAP_TYPE_NAME) as i32);
    b.mov64_imm(Reg::R2, abi::TYPE_NAME as i32);
    b.call(Helper::ProbeReadUserStr);
    b.stx(Size::W, Reg::R6, name_ret, Reg::R0);
    b.ja(done);
    b.bind(no_name);
    b.st_imm(Size::W, Reg::R6, name_ret, -1);
    b.bind(done);
}
