//! Golden disassembly of every record path, one construct at a time (as
//! bpftrace keeps its codegen goldens): packed records in place and
//! reserved, fixed-only ones, the names-sent-before path, filters, the
//! benchmark's parts, a non-packed record. `--dump-bpf`'s goldens hold
//! whole tools' programs on real fixtures; these hold each path alone,
//! with no fixture and no root, so a refactor of the emitter shows the
//! path it changed. `PYTAP_BLESS=1 cargo test --lib codegen::record`
//! writes them again (only on code whose output is trusted).

use std::collections::BTreeSet;
use std::path::PathBuf;

use pytap_ebpf::{JmpOp, Label, ProgramBuilder, Reg, Size, disassemble_with};

use super::{Body, FullRecords, Parts, Record, RecordFilter, RecordMaps};
use crate::cpython::Marker;
use crate::engine::abi::{self, EventKind, off};
use crate::engine::codegen::named::{self, NamedMaps};
use crate::engine::codegen::{Env, Handler, MapKind, MapSpec, MapTable, ModuleId, Slots, inplace};

/// The maps of a record-streaming plan, with or without the per-CPU rings.
struct Plan {
    table: MapTable,
    maps: RecordMaps,
    named: NamedMaps,
}

fn plan(rings: bool) -> Plan {
    let mut table = MapTable::default();
    let map = |name: &str, kind, value_size, max_entries| MapSpec {
        name: name.into(),
        kind,
        key_size: if kind == MapKind::RingBuf { 0 } else { 4 },
        value_size,
        max_entries,
    };
    let events = table.add(map("events", MapKind::RingBuf, 0, 1 << 20));
    let counters = table.add(map("counters", MapKind::PercpuArray, 8, 8));
    let staging = table.add(map("staging", MapKind::PercpuArray, 4096, 1));
    let rings = rings.then(|| {
        let (spec, size) = inplace::rings_spec(1 << 20, 2);
        inplace::Rings {
            map: table.add(spec),
            size,
        }
    });
    let named = NamedMaps::add_to(&mut table);
    let maps = RecordMaps {
        events,
        counters,
        staging,
        rings,
    };
    Plan { table, maps, named }
}

/// The disassembly of a body `emit` writes, with the stack slots a module
/// program gives its handler (the ring slot only with the rings).
fn program(plan: &Plan, emit: impl FnOnce(&mut ProgramBuilder, &Env)) -> String {
    let mut b = ProgramBuilder::new("golden");
    let slot = |b: &mut ProgramBuilder, size| b.alloc_stack(size, size.min(8)).expect("stack");
    let slots = Slots {
        cookie: slot(&mut b, 8),
        scratch: slot(&mut b, 8),
        key: slot(&mut b, 4),
        ring: plan.maps.rings.map(|_| slot(&mut b, 16)),
        ctx: None,
    };
    let env = Env {
        module: ModuleId {
            index: 0,
            dev: 0,
            inode: 0,
            version: None,
        },
        slots,
        layout: None,
        frame: None,
        stack: None,
    };
    emit(&mut b, &env);
    let program = b.build().expect("the body builds");
    disassemble_with(&program, &|map| plan.table.name(map))
}

/// Compares `text` with `golden/{name}.txt`, or writes it with `PYTAP_BLESS`.
fn check(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/engine/codegen/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("PYTAP_BLESS").is_some() {
        std::fs::write(&path, text).expect("golden written");
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (make it with PYTAP_BLESS=1)", path.display()));
    if golden != text {
        let line = golden
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| golden.lines().count().min(text.lines().count()));
        panic!(
            "{name}: the generated code differs from {} from line {} on:\n{}",
            path.display(),
            line + 1,
            text.lines()
                .skip(line)
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A filter that drops records of line 0: the path of a dropped record.
fn drop_line_0(b: &mut ProgramBuilder, _: &Env, drop: Label) -> bool {
    b.comment("golden filter: drop line 0");
    b.ldx(Size::W, Reg::R1, Reg::R6, off::FN_LINENO as i16);
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, drop);
    true
}

/// A filter that only edits the record: no drop path.
fn flag_only(b: &mut ProgramBuilder, _: &Env, _: Label) -> bool {
    b.comment("golden filter: flag the record, drop nothing");
    b.st_imm(
        Size::H,
        Reg::R6,
        off::FLAGS as i16,
        i32::from(abi::FLAG_LEAN),
    );
    false
}

fn packed(rings: bool, kind: EventKind) -> String {
    let plan = plan(rings);
    program(&plan, |b, env| Record::packed(env, plan.maps, kind).emit(b))
}

fn filtered(rings: bool, filter: RecordFilter<'_>) -> String {
    let plan = plan(rings);
    let kind = EventKind::FunctionReturn;
    program(&plan, |b, env| {
        let record = Record::packed(env, plan.maps, kind);
        Record {
            filter: Some(filter),
            ..record
        }
        .emit(b);
    })
}

fn parts(rings: bool, parts: Parts) -> String {
    let plan = plan(rings);
    let kind = EventKind::FunctionEntry;
    program(&plan, |b, env| {
        let body = Body::Packed(parts);
        Record {
            body,
            ..Record::packed(env, plan.maps, kind)
        }
        .emit(b);
    })
}

fn fixed_only(rings: bool) -> String {
    let plan = plan(rings);
    let kind = EventKind::FunctionReturn;
    program(&plan, |b, env| {
        Record::fixed(env, plan.maps, kind, abi::FLAG_LEAN).emit(b);
    })
}

fn named(rings: bool, kind: EventKind, filter: Option<RecordFilter<'_>>) -> String {
    let plan = plan(rings);
    program(&plan, |b, env| {
        let record = Record {
            filter,
            ..Record::packed(env, plan.maps, kind)
        };
        named::emit_function(b, record, plan.named, true).expect("named function record");
    })
}

#[test]
fn packed_in_place() {
    check("packed-in-place", &packed(true, EventKind::FunctionEntry));
}

#[test]
fn packed_reserved() {
    check("packed-reserved", &packed(false, EventKind::FunctionEntry));
}

#[test]
fn import_in_place() {
    check("import-in-place", &packed(true, EventKind::ImportDone));
}

#[test]
fn import_reserved() {
    check("import-reserved", &packed(false, EventKind::ImportStart));
}

#[test]
fn filtered_in_place() {
    check("filtered-in-place", &filtered(true, &drop_line_0));
}

#[test]
fn filtered_reserved() {
    check("filtered-reserved", &filtered(false, &drop_line_0));
}

#[test]
fn edited_in_place() {
    check("edited-in-place", &filtered(true, &flag_only));
}

#[test]
fn fixed_only_in_place() {
    check("fixed-only-in-place", &fixed_only(true));
}

#[test]
fn fixed_only_reserved() {
    check("fixed-only-reserved", &fixed_only(false));
}

#[test]
fn named_return_in_place() {
    // The lean record (fixed, held, the firing's pid_tgid reused), else
    // whole and remembered; a lost one raises the names epoch.
    let text = named(true, EventKind::FunctionReturn, None);
    check("named-return-in-place", &text);
}

#[test]
fn named_entry_in_place() {
    let text = named(true, EventKind::FunctionEntry, Some(&flag_only));
    check("named-entry-in-place", &text);
}

#[test]
fn named_reserved() {
    check("named-reserved", &named(false, EventKind::Line, None));
}

#[test]
fn parts_in_place() {
    check("no-strings-in-place", &parts(true, Parts::NoStrings));
    check(
        "object-headers-in-place",
        &parts(true, Parts::ObjectHeaders),
    );
    check("no-output-in-place", &parts(true, Parts::NoOutput));
}

#[test]
fn parts_reserved() {
    check("no-strings-reserved", &parts(false, Parts::NoStrings));
    check(
        "object-headers-reserved",
        &parts(false, Parts::ObjectHeaders),
    );
    check("no-output-reserved", &parts(false, Parts::NoOutput));
}

#[test]
fn gc_reserved() {
    // A record that is not packed: reserved whole, filled, submitted.
    let plan = plan(true);
    let handler = FullRecords {
        maps: plan.maps,
        markers: BTreeSet::from([Marker::GcStart, Marker::GcDone]),
        named: None,
    };
    for (name, marker) in [("gc-start", Marker::GcStart), ("gc-done", Marker::GcDone)] {
        let text = program(&plan, |b, env| {
            handler.emit(marker, b, env).expect("gc record");
        });
        check(name, &text);
    }
}
