//! Map relocations and the load-time byte form of a `Program`.

use pytap_ebpf::{Helper, MapRef, ProgramBuilder, Reg, RelocError, Size};

/// slot 0-1: r1 = map 1; 2-3: r2 = map 0 value + 24; 4-5: r3 = map 1 again;
/// 6: r0 = 0; 7: exit.
fn two_map_program() -> pytap_ebpf::Program {
    let mut b = ProgramBuilder::new("two_maps");
    b.ld_map_fd(Reg::R1, MapRef(1));
    b.ld_map_value(Reg::R2, MapRef(0), 24);
    b.ld_map_fd(Reg::R3, MapRef(1));
    b.mov64_imm(Reg::R0, 0).exit();
    b.build().unwrap()
}

fn slot(bytes: &[u8], i: usize) -> [u8; 8] {
    bytes[i * 8..i * 8 + 8].try_into().unwrap()
}

#[test]
fn to_bytes_patches_each_map_load() {
    let p = two_map_program();
    let bytes = p.to_bytes(&[0x0102_0304, 77]).unwrap();
    assert_eq!(bytes.len(), 8 * 8);
    // ld_imm64 with src = BPF_PSEUDO_MAP_FD (1), imm = fd of map 1.
    assert_eq!(slot(&bytes, 0), [0x18, 0x11, 0, 0, 77, 0, 0, 0]);
    assert_eq!(slot(&bytes, 1), [0; 8]);
    // src = BPF_PSEUDO_MAP_VALUE (2), imm = fd of map 0; offset in slot 2.
    assert_eq!(slot(&bytes, 2), [0x18, 0x22, 0, 0, 4, 3, 2, 1]);
    assert_eq!(slot(&bytes, 3), [0, 0, 0, 0, 24, 0, 0, 0]);
    assert_eq!(slot(&bytes, 4), [0x18, 0x13, 0, 0, 77, 0, 0, 0]);
    assert_eq!(slot(&bytes, 6), [0xb7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(slot(&bytes, 7), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    // Relocating leaves the program itself untouched: it can be loaded again.
    assert_eq!(p.insns()[0].imm, 1);
    assert_eq!(p.insns()[2].imm, 0);
}

#[test]
fn unpatched_slots_equal_plain_encoding() {
    let p = two_map_program();
    let bytes = p.to_bytes(&[5, 6]).unwrap();
    let relocated: Vec<usize> = p.relocs().iter().map(|r| r.insn).collect();
    assert_eq!(relocated, [0, 2, 4]);
    for (i, insn) in p.insns().iter().enumerate() {
        if !relocated.contains(&i) {
            assert_eq!(slot(&bytes, i), insn.to_bytes(), "slot {i}");
        }
    }
}

#[test]
fn map_refs_are_distinct_and_ordered() {
    let p = two_map_program();
    assert_eq!(p.map_refs().collect::<Vec<_>>(), [MapRef(0), MapRef(1)]);

    let mut b = ProgramBuilder::new("none");
    b.call(Helper::KtimeGetNs).exit();
    let p = b.build().unwrap();
    assert_eq!(p.map_refs().count(), 0);
    assert_eq!(p.to_bytes(&[]).unwrap().len(), 16);
}

#[test]
fn missing_fd_is_an_error() {
    let p = two_map_program();
    let err = p.to_bytes(&[3]).unwrap_err();
    assert_eq!(
        err,
        RelocError::MissingFd {
            map: MapRef(1),
            insn: 0,
            given: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "instruction 0 refers to map #1 but only 1 map fds were given"
    );
    assert!(p.to_bytes(&[]).is_err());
}

#[test]
fn relocated_matches_to_bytes() {
    let p = two_map_program();
    let insns = p.relocated(&[8, 9]).unwrap();
    let flat: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    assert_eq!(flat, p.to_bytes(&[8, 9]).unwrap());
    assert_eq!(insns[0].imm, 9);
    assert_eq!(insns[2].imm, 8);
}

#[test]
fn program_metadata() {
    let mut b = ProgramBuilder::new("py:function__entry");
    let s = b.alloc_stack(24, 8).unwrap();
    b.zero_stack(s);
    b.ldx(Size::DW, Reg::R0, Reg::R10, s.off).exit();
    let p = b.build().unwrap();
    assert_eq!(p.name, "py:function__entry");
    assert_eq!(&p.kernel_name(), b"py_function__en\0");
    assert_eq!(p.stack_depth(), 24);
    assert_eq!(p.len(), 5);
    assert!(!p.is_empty());
}
