//! Disassembler output, byte decoding, and robustness on arbitrary input.

use pytap_ebpf::{
    AluOp, DecodeError, Helper, Insn, JmpOp, MapRef, Program, ProgramBuilder, Reg, Size, decode,
    disassemble, disassemble_with,
};

fn names(m: MapRef) -> String {
    ["events", "strings"]
        .get(m.0 as usize)
        .map_or_else(|| format!("#{}", m.0), |s| (*s).to_string())
}

#[test]
fn example_from_the_design() {
    let mut b = ProgramBuilder::new("t");
    let bad = b.new_label();
    b.mov64_reg(Reg::R6, Reg::R1);
    b.ldx(Size::DW, Reg::R1, Reg::R6, 80);
    b.st_imm(Size::W, Reg::FP, -4, 0);
    b.ld_map_fd(Reg::R1, MapRef(0));
    b.call(Helper::ProbeReadUserStr);
    b.jmp_imm(JmpOp::Jslt, Reg::R0, 0, bad);
    b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    b.mov64_imm(Reg::R0, 0);
    b.exit();
    b.bind(bad).exit();
    let p = b.build().unwrap();
    assert_eq!(
        disassemble_with(&p, &names),
        "   0: r6 = r1
   1: r1 = *(u64 *)(r6 +80)
   2: *(u32 *)(r10 -4) = 0
   3: r1 = map[events] ll
   5: call probe_read_user_str#114
   6: if r0 s< 0x0 goto +3 <10>
   7: lock *(u64 *)(r0 +0) += r1
   8: r0 = 0
   9: exit
  10: exit
"
    );
}

/// One of every instruction form the builder emits.
fn every_form() -> Program {
    let mut b = ProgramBuilder::new("forms");
    let top = b.new_label();
    let end = b.new_label();
    b.comment("entry");
    b.bind(top);
    b.mov32_reg(Reg::R1, Reg::R2);
    b.alu32_imm(AluOp::Lsh, Reg::R1, 3);
    b.mov32_imm(Reg::R3, -1);
    b.alu64_reg(AluOp::Sub, Reg::R2, Reg::R3);
    b.alu64_imm(AluOp::Arsh, Reg::R4, 7);
    b.neg64(Reg::R5);
    b.alu32_imm(AluOp::Neg, Reg::R5, 0);
    b.alu32_reg(AluOp::Mod, Reg::R6, Reg::R7);
    b.alu64_imm(AluOp::Xor, Reg::R8, -1);
    b.ld_imm64(Reg::R1, 0x1122_3344_5566_7788);
    b.ld_map_value(Reg::R2, MapRef(1), 16);
    b.comment("two").comment("lines");
    b.ld_map_fd(Reg::R1, MapRef(0));
    b.ldx(Size::B, Reg::R0, Reg::R1, 0);
    b.ldx(Size::H, Reg::R0, Reg::R1, -2);
    b.stx(Size::DW, Reg::FP, -8, Reg::R0);
    b.st_imm(Size::H, Reg::FP, -10, -5);
    b.atomic_add(Size::W, Reg::R0, 4, Reg::R1);
    b.atomic_fetch_add(Size::DW, Reg::R0, 8, Reg::R1);
    b.atomic_fetch_add(Size::W, Reg::R0, 8, Reg::R1);
    b.jmp_reg(JmpOp::Jgt, Reg::R1, Reg::R2, end);
    b.jmp32_imm(JmpOp::Jne, Reg::R1, -1, end);
    b.jmp32_reg(JmpOp::Jsge, Reg::R1, Reg::R2, end);
    b.jmp_imm(JmpOp::Jset, Reg::R3, 8, end);
    b.ja(top);
    b.call(Helper::GetCurrentPidTgid);
    b.bind(end);
    b.mov64_imm(Reg::R0, 0);
    b.exit();
    b.build().unwrap()
}

const EVERY_FORM: &str = "   0: w1 = w2
   1: w1 <<= 3
   2: w3 = -1
   3: r2 -= r3
   4: r4 s>>= 7
   5: r5 = -r5
   6: w5 = -w5
   7: w6 %= w7
   8: r8 ^= -1
   9: r1 = 0x1122334455667788 ll
  11: r2 = map[strings]+16 ll
  13: r1 = map[events] ll
  15: r0 = *(u8 *)(r1 +0)
  16: r0 = *(u16 *)(r1 -2)
  17: *(u64 *)(r10 -8) = r0
  18: *(u16 *)(r10 -10) = -5
  19: lock *(u32 *)(r0 +4) += r1
  20: r1 = atomic64_fetch_add((u64 *)(r0 +8), r1)
  21: r1 = atomic_fetch_add((u32 *)(r0 +8), r1)
  22: if r1 > r2 goto +5 <28>
  23: if w1 != 0xffffffff goto +4 <28>
  24: if w1 s>= w2 goto +3 <28>
  25: if r3 & 0x8 goto +2 <28>
  26: goto -27 <0>
  27: call get_current_pid_tgid#14
  28: r0 = 0
  29: exit
";

#[test]
fn every_emitted_form_plain() {
    let text = disassemble(every_form().insns());
    // Without a program, map loads show the raw imm (the map index here).
    let want = EVERY_FORM
        .replace("map[strings]", "map[#1]")
        .replace("map[events]", "map[#0]");
    assert_eq!(text, want);
}

#[test]
fn every_emitted_form_with_names_and_comments() {
    let text = disassemble_with(&every_form(), &names);
    let want = format!(
        "; entry\n{}",
        EVERY_FORM.replace("  13:", "; two\n; lines\n  13:")
    );
    assert_eq!(text, want);
}

#[test]
fn display_uses_index_names() {
    let text = every_form().to_string();
    assert!(text.starts_with("; entry\n   0: w1 = w2\n"));
    assert!(text.contains("  11: r2 = map[#1]+16 ll\n"));
}

#[test]
fn forms_only_seen_when_decoding() {
    let i = Insn::new;
    let cases: &[(Insn, &str)] = &[
        (i(0xdc, 1, 0, 0, 16), "r1 = be16 r1"),
        (i(0xd4, 1, 0, 0, 32), "r1 = le32 r1"),
        (i(0xd7, 1, 0, 0, 64), "r1 = bswap64 r1"),
        (i(0xbf, 1, 2, 8, 0), "r1 = (s8)r2"),
        (i(0xbc, 1, 2, 16, 0), "w1 = (s16)w2"),
        (i(0x3f, 1, 2, 1, 0), "r1 s/= r2"),
        (i(0x97, 1, 0, 1, 3), "r1 s%= 3"),
        (i(0x89, 0, 1, 4, 0), "r0 = *(s16 *)(r1 +4)"),
        (
            i(0xdb, 0, 1, 0, 0xe1),
            "r1 = atomic64_xchg((u64 *)(r0 +0), r1)",
        ),
        (
            i(0xc3, 2, 3, 0, 0xf1),
            "r0 = atomic_cmpxchg((u32 *)(r2 +0), r0, r3)",
        ),
        (i(0xdb, 0, 1, 0, 0x40), "lock *(u64 *)(r0 +0) |= r1"),
        (i(0xc3, 0, 1, 0, 0x50), "lock *(u32 *)(r0 +0) &= r1"),
        (
            i(0xdb, 0, 1, 0, 0xa1),
            "r1 = atomic64_fetch_xor((u64 *)(r0 +0), r1)",
        ),
        (i(0x06, 0, 0, 0, 100_000), "gotol +100000 <100001>"),
        (i(0x85, 0, 1, 0, -3), "call pc-3 <-2>"),
        (i(0x85, 0, 2, 0, 1234), "call kernel-function#1234"),
        (i(0x85, 0, 0, 0, 9999), "call unknown#9999"),
        (i(0x15, 11, 15, 0, 0), "if r11 == 0x0 goto +0 <1>"),
        (i(0xd4, 1, 0, 0, 8), ".insn 0xd4 (d4 01 00 00 08 00 00 00)"),
        (i(0x85, 0, 7, 0, 0), ".insn 0x85 (85 70 00 00 00 00 00 00)"),
        (i(0x86, 0, 0, 0, 1), ".insn 0x86 (86 00 00 00 01 00 00 00)"),
        (i(0x96, 0, 0, 0, 0), ".insn 0x96 (96 00 00 00 00 00 00 00)"),
        (i(0xe5, 1, 0, 0, 0), ".insn 0xe5 (e5 01 00 00 00 00 00 00)"),
        (i(0xe7, 1, 0, 0, 0), ".insn 0xe7 (e7 01 00 00 00 00 00 00)"),
        (i(0xc2, 1, 0, 0, 0), ".insn 0xc2 (c2 01 00 00 00 00 00 00)"),
        (i(0x20, 0, 0, 0, 4), ".insn 0x20 (20 00 00 00 04 00 00 00)"),
        (i(0x99, 0, 1, 0, 0), ".insn 0x99 (99 10 00 00 00 00 00 00)"),
        (
            i(0xdb, 0, 1, 0, 0x100),
            ".insn 0xdb (db 10 00 00 00 01 00 00)",
        ),
        (i(0xd3, 0, 1, 0, 0), ".insn 0xd3 (d3 10 00 00 00 00 00 00)"),
    ];
    for (insn, want) in cases {
        assert_eq!(disassemble(&[*insn]), format!("   0: {want}\n"), "{insn:?}");
    }
}

#[test]
fn ld_imm64_edge_cases() {
    // Other pseudo sources (BTF ids, subprogram addresses) show their kind.
    let func = [Insn::new(0x18, 1, 4, 0, 5), Insn::new(0, 0, 0, 0, 0)];
    assert_eq!(disassemble(&func), "   0: r1 = pseudo4(0x5) ll\n");
    // A first half with no second half cannot be decoded as ld_imm64.
    let cut = [Insn::new(0x95, 0, 0, 0, 0), Insn::new(0x18, 1, 0, 0, 5)];
    assert_eq!(
        disassemble(&cut),
        "   0: exit\n   1: .insn 0x18 (18 01 00 00 05 00 00 00)\n"
    );
}

#[test]
fn round_trip_through_bytes() {
    let p = every_form();
    // With fds equal to the indices, relocation changes nothing visible.
    let bytes = p.to_bytes(&[0, 1]).unwrap();
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded, p.insns());
    assert_eq!(disassemble(&decoded), disassemble(p.insns()));

    // Real fds show up where the indices were, and nowhere else.
    let decoded = decode(&p.to_bytes(&[40, 41]).unwrap()).unwrap();
    let want = disassemble(p.insns())
        .replace("map[#1]", "map[#41]")
        .replace("map[#0]", "map[#40]");
    assert_eq!(disassemble(&decoded), want);
}

#[test]
fn decode_rejects_partial_slots() {
    assert_eq!(decode(&[]), Ok(vec![]));
    for len in [1, 7, 9, 15, 17] {
        assert_eq!(decode(&vec![0u8; len]), Err(DecodeError::BadLength { len }));
    }
    assert_eq!(decode(&[0x95, 0, 0, 0, 0, 0, 0, 0]).unwrap().len(), 1);
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let slots = (rng.next() % 16) as usize;
        let mut bytes: Vec<u8> = (0..slots * 8).map(|_| rng.next() as u8).collect();
        // Bias half the opcodes toward real classes with extreme fields, where
        // the interesting arithmetic (offsets, targets) happens.
        if round % 2 == 0 {
            for s in 0..slots {
                let code = [0x18, 0x85, 0x05, 0x06, 0xdb, 0xc3, 0xd4, 0xbf, 0x89][s % 9];
                bytes[s * 8] = code;
                if rng.next().is_multiple_of(2) {
                    bytes[s * 8 + 2..s * 8 + 8].copy_from_slice(&[0x00, 0x80, 0, 0, 0, 0x80]);
                }
            }
        }
        let insns = decode(&bytes).unwrap();
        let text = disassemble(&insns);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= slots);
        assert!(slots == 0 || !lines.is_empty());
        for line in lines {
            let (idx, rest) = line.split_once(": ").expect("index prefix");
            assert!(idx.trim().parse::<usize>().unwrap() < slots.max(1));
            assert!(!rest.is_empty());
        }
    }
}

#[test]
fn extreme_jump_targets_do_not_overflow() {
    let insns = [
        Insn::new(0x05, 0, 0, i16::MIN, 0),
        Insn::new(0x06, 0, 0, 0, i32::MIN),
        Insn::new(0x06, 0, 0, 0, i32::MAX),
        Insn::new(0x85, 0, 1, 0, i32::MIN),
    ];
    assert_eq!(
        disassemble(&insns),
        "   0: goto -32768 <-32767>
   1: gotol -2147483648 <-2147483646>
   2: gotol +2147483647 <2147483650>
   3: call pc-2147483648 <-2147483644>
"
    );
}
