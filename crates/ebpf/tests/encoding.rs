//! Byte-for-byte encoding checks. Every expected opcode is spelled out from
//! the kernel's uapi values (`include/uapi/linux/bpf_common.h` and
//! `bpf.h`), never from this crate's `op` constants, so a wrong constant in
//! the crate cannot make its own test pass.

use pytap_ebpf::{AluOp, Helper, Insn, JmpOp, MapRef, ProgramBuilder, Reg, Size};

// Kernel uapi values, copied from the headers.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_H: u8 = 0x08;
const BPF_B: u8 = 0x10;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_ATOMIC: u8 = 0xc0;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;

/// Emit with a fresh builder and return the raw slots (not built, so no
/// terminator is needed).
fn emit(f: impl FnOnce(&mut ProgramBuilder)) -> Vec<[u8; 8]> {
    let mut b = ProgramBuilder::new("t");
    f(&mut b);
    b.exit();
    let p = b.build().expect("builds");
    let insns = p.insns();
    insns[..insns.len() - 1]
        .iter()
        .map(Insn::to_bytes)
        .collect()
}

fn one(f: impl FnOnce(&mut ProgramBuilder)) -> [u8; 8] {
    let v = emit(f);
    assert_eq!(v.len(), 1, "expected exactly one slot");
    v[0]
}

#[test]
fn documented_examples() {
    assert_eq!(
        one(|b| {
            b.mov64_imm(Reg::R1, 1);
        }),
        [0xb7, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]
    );
    assert_eq!(
        one(|b| {
            b.ldx(Size::DW, Reg::R0, Reg::R1, 8);
        }),
        [0x79, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00]
    );
    assert_eq!(
        one(|b| {
            b.call(Helper::GetCurrentPidTgid);
        }),
        [0x85, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00]
    );
    assert_eq!(
        one(|b| {
            b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
        }),
        [0xdb, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    );
    let mut b = ProgramBuilder::new("t");
    b.exit();
    assert_eq!(
        b.build().unwrap().insns()[0].to_bytes(),
        [0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    );
}

#[test]
fn alu_every_op_both_widths_both_sources() {
    // BPF_ADD .. BPF_ARSH from bpf_common.h / bpf.h.
    let ops = [
        (AluOp::Add, 0x00),
        (AluOp::Sub, 0x10),
        (AluOp::Mul, 0x20),
        (AluOp::Div, 0x30),
        (AluOp::Or, 0x40),
        (AluOp::And, 0x50),
        (AluOp::Lsh, 0x60),
        (AluOp::Rsh, 0x70),
        (AluOp::Mod, 0x90),
        (AluOp::Xor, 0xa0),
        (AluOp::Mov, 0xb0),
        (AluOp::Arsh, 0xc0),
    ];
    for (op, bits) in ops {
        let k64 = one(|b| {
            b.alu64_imm(op, Reg::R3, -2);
        });
        assert_eq!(
            k64,
            [BPF_ALU64 | bits | BPF_K, 0x03, 0, 0, 0xfe, 0xff, 0xff, 0xff]
        );
        let x64 = one(|b| {
            b.alu64_reg(op, Reg::R3, Reg::R9);
        });
        assert_eq!(x64, [BPF_ALU64 | bits | BPF_X, 0x93, 0, 0, 0, 0, 0, 0]);
        let k32 = one(|b| {
            b.alu32_imm(op, Reg::R4, 0x1234_5678);
        });
        assert_eq!(
            k32,
            [BPF_ALU | bits | BPF_K, 0x04, 0, 0, 0x78, 0x56, 0x34, 0x12]
        );
        let x32 = one(|b| {
            b.alu32_reg(op, Reg::R0, Reg::R10);
        });
        assert_eq!(x32, [BPF_ALU | bits | BPF_X, 0xa0, 0, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn neg_uses_only_the_fields_the_verifier_allows() {
    // BPF_NEG = 0x80; the verifier rejects NEG with BPF_X, src or imm set.
    let want64 = [0x87, 0x05, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        one(|b| {
            b.neg64(Reg::R5);
        }),
        want64
    );
    assert_eq!(
        one(|b| {
            b.alu64_reg(AluOp::Neg, Reg::R5, Reg::R7);
        }),
        want64
    );
    assert_eq!(
        one(|b| {
            b.alu64_imm(AluOp::Neg, Reg::R5, 99);
        }),
        want64
    );
    assert_eq!(
        one(|b| {
            b.alu32_imm(AluOp::Neg, Reg::R5, 1);
        }),
        [0x84, 0x05, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn alu_shortcuts() {
    assert_eq!(
        one(|b| {
            b.mov64_reg(Reg::R6, Reg::R1);
        }),
        [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        one(|b| {
            b.mov32_reg(Reg::R1, Reg::R2);
        }),
        [0xbc, 0x21, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        one(|b| {
            b.mov32_imm(Reg::R1, -1);
        }),
        [0xb4, 0x01, 0, 0, 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(
        one(|b| {
            b.add64_imm(Reg::R2, -4);
        }),
        [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]
    );
}

#[test]
fn ld_imm64_is_two_slots() {
    let v = emit(|b| {
        b.ld_imm64(Reg::R1, 0x1122_3344_5566_7788);
    });
    assert_eq!(
        v,
        [
            [
                BPF_LD | BPF_DW | BPF_IMM,
                0x01,
                0,
                0,
                0x88,
                0x77,
                0x66,
                0x55
            ],
            [0x00, 0x00, 0, 0, 0x44, 0x33, 0x22, 0x11],
        ]
    );
    let v = emit(|b| {
        b.ld_imm64(Reg::R9, u64::MAX);
    });
    assert_eq!(
        v,
        [
            [0x18, 0x09, 0, 0, 0xff, 0xff, 0xff, 0xff],
            [0x00, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ]
    );
}

#[test]
fn map_loads_use_pseudo_sources() {
    // BPF_PSEUDO_MAP_FD = 1 and BPF_PSEUDO_MAP_VALUE = 2 go in the src nibble.
    let v = emit(|b| {
        b.ld_map_fd(Reg::R1, MapRef(3));
    });
    assert_eq!(v, [[0x18, 0x11, 0, 0, 3, 0, 0, 0], [0; 8]]);
    let v = emit(|b| {
        b.ld_map_value(Reg::R2, MapRef(1), 16);
    });
    assert_eq!(
        v,
        [[0x18, 0x22, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 16, 0, 0, 0]]
    );
}

#[test]
fn loads_and_stores_every_size() {
    let sizes = [
        (Size::B, BPF_B),
        (Size::H, BPF_H),
        (Size::W, BPF_W),
        (Size::DW, BPF_DW),
    ];
    for (size, bits) in sizes {
        assert_eq!(
            one(|b| {
                b.ldx(size, Reg::R2, Reg::R6, 80);
            }),
            [BPF_LDX | bits | BPF_MEM, 0x62, 80, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.stx(size, Reg::R10, -4, Reg::R1);
            }),
            [BPF_STX | bits | BPF_MEM, 0x1a, 0xfc, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.st_imm(size, Reg::R10, -300, 7);
            }),
            [BPF_ST | bits | BPF_MEM, 0x0a, 0xd4, 0xfe, 7, 0, 0, 0]
        );
    }
    // Spot checks of the combined opcodes as they appear in objdump output.
    assert_eq!(
        one(|b| {
            b.ldx(Size::W, Reg::R0, Reg::R1, 0);
        })[0],
        0x61
    );
    assert_eq!(
        one(|b| {
            b.stx(Size::DW, Reg::R10, -8, Reg::R0);
        })[0],
        0x7b
    );
    assert_eq!(
        one(|b| {
            b.st_imm(Size::W, Reg::R10, -4, 0);
        })[0],
        0x62
    );
}

#[test]
fn atomics() {
    // BPF_ADD = 0x00, BPF_FETCH = 0x01 in imm.
    assert_eq!(
        one(|b| {
            b.atomic_add(Size::W, Reg::R0, 4, Reg::R1);
        }),
        [BPF_STX | BPF_W | BPF_ATOMIC, 0x10, 4, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        one(|b| {
            b.atomic_fetch_add(Size::DW, Reg::R0, 0, Reg::R1);
        }),
        [0xdb, 0x10, 0, 0, 0x01, 0, 0, 0]
    );
    assert_eq!(
        one(|b| {
            b.atomic_fetch_add(Size::W, Reg::R2, -8, Reg::R3);
        }),
        [0xc3, 0x32, 0xf8, 0xff, 0x01, 0, 0, 0]
    );
}

#[test]
fn jumps_every_op_both_widths_both_sources() {
    // BPF_JEQ .. BPF_JSLE from bpf_common.h / bpf.h.
    let ops = [
        (JmpOp::Jeq, 0x10),
        (JmpOp::Jgt, 0x20),
        (JmpOp::Jge, 0x30),
        (JmpOp::Jset, 0x40),
        (JmpOp::Jne, 0x50),
        (JmpOp::Jsgt, 0x60),
        (JmpOp::Jsge, 0x70),
        (JmpOp::Jlt, 0xa0),
        (JmpOp::Jle, 0xb0),
        (JmpOp::Jslt, 0xc0),
        (JmpOp::Jsle, 0xd0),
    ];
    for (op, bits) in ops {
        // Each jump skips the one mov after it: offset +1.
        let v = emit(|b| {
            let l = b.new_label();
            b.jmp_imm(op, Reg::R1, -1, l).mov64_imm(Reg::R0, 0).bind(l);
        });
        assert_eq!(
            v[0],
            [BPF_JMP | bits | BPF_K, 0x01, 1, 0, 0xff, 0xff, 0xff, 0xff]
        );
        let v = emit(|b| {
            let l = b.new_label();
            b.jmp_reg(op, Reg::R1, Reg::R2, l)
                .mov64_imm(Reg::R0, 0)
                .bind(l);
        });
        assert_eq!(v[0], [BPF_JMP | bits | BPF_X, 0x21, 1, 0, 0, 0, 0, 0]);
        let v = emit(|b| {
            let l = b.new_label();
            b.jmp32_imm(op, Reg::R3, 5, l).mov64_imm(Reg::R0, 0).bind(l);
        });
        assert_eq!(v[0], [BPF_JMP32 | bits | BPF_K, 0x03, 1, 0, 5, 0, 0, 0]);
        let v = emit(|b| {
            let l = b.new_label();
            b.jmp32_reg(op, Reg::R3, Reg::R4, l)
                .mov64_imm(Reg::R0, 0)
                .bind(l);
        });
        assert_eq!(v[0], [BPF_JMP32 | bits | BPF_X, 0x43, 1, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn goto_call_exit() {
    // BPF_JA = 0x00, BPF_CALL = 0x80, BPF_EXIT = 0x90.
    let v = emit(|b| {
        let l = b.new_label();
        b.ja(l).mov64_imm(Reg::R0, 0).bind(l);
    });
    assert_eq!(v[0], [0x05, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        one(|b| {
            b.call(Helper::ProbeReadUserStr);
        }),
        [0x85, 0, 0, 0, 114, 0, 0, 0]
    );
    assert_eq!(
        one(|b| {
            b.call(Helper::Strncmp);
        }),
        [0x85, 0, 0, 0, 182, 0, 0, 0]
    );
}

#[test]
fn insn_bytes_layout() {
    // Byte 1 is (src << 4) | dst; off and imm are little-endian.
    let i = Insn::new(0x79, 1, 10, -8, 0x0102_0304);
    assert_eq!(
        i.to_bytes(),
        [0x79, 0xa1, 0xf8, 0xff, 0x04, 0x03, 0x02, 0x01]
    );
    assert_eq!(Insn::from_bytes(i.to_bytes()), i);
}
