//! Jump resolution and the structural checks of `ProgramBuilder::build`.

use pytap_ebpf::{BuildError, JmpOp, MAX_INSNS, ProgramBuilder, Reg, Size};

fn offs(b: ProgramBuilder) -> Vec<i16> {
    b.build()
        .expect("builds")
        .insns()
        .iter()
        .map(|i| i.off)
        .collect()
}

#[test]
fn forward_jump() {
    let mut b = ProgramBuilder::new("t");
    let out = b.new_label();
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, out); // 0
    b.mov64_imm(Reg::R0, 1); // 1
    b.mov64_imm(Reg::R0, 2); // 2
    b.bind(out);
    b.exit(); // 3
    assert_eq!(offs(b), [2, 0, 0, 0]);
}

#[test]
fn backward_jump() {
    let mut b = ProgramBuilder::new("t");
    let top = b.new_label();
    b.mov64_imm(Reg::R1, 10); // 0
    b.bind(top);
    b.add64_imm(Reg::R1, -1); // 1
    b.jmp_imm(JmpOp::Jne, Reg::R1, 0, top); // 2: back to 1
    b.mov64_imm(Reg::R0, 0).exit();
    assert_eq!(offs(b), [0, 0, -2, 0, 0]);
}

#[test]
fn jump_to_itself_is_minus_one() {
    let mut b = ProgramBuilder::new("t");
    let here = b.new_label();
    b.bind(here).ja(here);
    assert_eq!(offs(b), [-1]);
}

#[test]
fn many_jumps_to_one_label() {
    let mut b = ProgramBuilder::new("t");
    let done = b.new_label();
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done); // 0
    b.jmp_reg(JmpOp::Jgt, Reg::R1, Reg::R2, done); // 1
    b.jmp32_imm(JmpOp::Jset, Reg::R1, 4, done); // 2
    b.mov64_imm(Reg::R0, 1); // 3
    b.bind(done);
    b.exit(); // 4
    b.comment("unreachable, but jumps back");
    b.ja(done); // 5
    assert_eq!(offs(b), [3, 2, 1, 0, 0, -2]);
}

#[test]
fn ld_imm64_counts_as_two_slots() {
    let mut b = ProgramBuilder::new("t");
    let skip = b.new_label();
    b.ja(skip); // 0
    b.ld_imm64(Reg::R1, 5); // 1, 2
    b.bind(skip);
    b.exit(); // 3
    let p = b.build().unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p.insns()[0].off, 2);

    let mut b = ProgramBuilder::new("t");
    let top = b.new_label();
    b.bind(top);
    b.ld_imm64(Reg::R1, 5); // 0, 1
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, top); // 2
    b.exit();
    assert_eq!(b.build().unwrap().insns()[2].off, -3);
}

#[test]
fn unbound_label_is_an_error() {
    let mut b = ProgramBuilder::new("t");
    let nowhere = b.new_label();
    b.mov64_imm(Reg::R0, 0);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, nowhere);
    b.exit();
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::UnboundLabel {
            label: nowhere,
            at: 1
        }
    );
}

#[test]
fn unused_unbound_label_is_fine() {
    let mut b = ProgramBuilder::new("t");
    let _unused = b.new_label();
    b.exit();
    assert!(b.build().is_ok());
}

#[test]
fn label_from_another_builder_is_rejected() {
    let mut other = ProgramBuilder::new("other");
    for _ in 0..3 {
        other.new_label();
    }
    let foreign = other.new_label();
    let mut b = ProgramBuilder::new("t");
    b.ja(foreign);
    assert!(matches!(b.build(), Err(BuildError::UnboundLabel { .. })));
    let mut b = ProgramBuilder::new("t");
    b.bind(foreign).exit();
    assert!(matches!(b.build(), Err(BuildError::UnboundLabel { .. })));
}

#[test]
fn binding_twice_is_an_error() {
    let mut b = ProgramBuilder::new("t");
    let l = b.new_label();
    b.bind(l).mov64_imm(Reg::R0, 0).bind(l).exit();
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::LabelBoundTwice {
            label: l,
            first: 0,
            second: 1
        }
    );
}

#[test]
fn label_past_the_end_is_an_error() {
    let mut b = ProgramBuilder::new("t");
    let end = b.new_label();
    b.ja(end).exit().bind(end);
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::JumpPastEnd { at: 0, label: end }
    );
}

/// A jump, `gap` movs, then the label and exit.
fn forward_over(gap: usize) -> Result<i16, BuildError> {
    let mut b = ProgramBuilder::new("t");
    let l = b.new_label();
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, l);
    for _ in 0..gap {
        b.mov64_imm(Reg::R0, 0);
    }
    b.bind(l).exit();
    Ok(b.build()?.insns()[0].off)
}

#[test]
fn forward_jump_range() {
    assert_eq!(forward_over(32767), Ok(32767));
    assert_eq!(
        forward_over(32768),
        Err(BuildError::JumpOutOfRange {
            at: 0,
            offset: 32768
        })
    );
}

/// The label, `gap` movs, then a backward jump and exit.
fn backward_over(gap: usize) -> Result<i16, BuildError> {
    let mut b = ProgramBuilder::new("t");
    let l = b.new_label();
    b.bind(l);
    for _ in 0..gap {
        b.mov64_imm(Reg::R0, 0);
    }
    b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, l).exit();
    Ok(b.build()?.insns()[gap].off)
}

#[test]
fn backward_jump_range() {
    // Offset is -(gap + 1).
    assert_eq!(backward_over(32767), Ok(-32768));
    assert_eq!(
        backward_over(32768),
        Err(BuildError::JumpOutOfRange {
            at: 32768,
            offset: -32769
        })
    );
}

#[test]
fn falling_off_the_end_is_an_error() {
    let mut b = ProgramBuilder::new("t");
    b.mov64_imm(Reg::R0, 0);
    assert_eq!(b.build().unwrap_err(), BuildError::FallsOffEnd);

    let mut b = ProgramBuilder::new("t");
    let l = b.new_label();
    b.bind(l)
        .mov64_imm(Reg::R0, 0)
        .jmp_imm(JmpOp::Jeq, Reg::R0, 0, l);
    assert_eq!(b.build().unwrap_err(), BuildError::FallsOffEnd);

    // The second half of ld_imm64 must not pass for an instruction.
    let mut b = ProgramBuilder::new("t");
    b.ld_imm64(Reg::R0, 0x95);
    assert_eq!(b.build().unwrap_err(), BuildError::FallsOffEnd);
    let mut b = ProgramBuilder::new("t");
    b.emit(pytap_ebpf::Insn::new(0x18, 0, 0, 0, 0));
    b.emit(pytap_ebpf::Insn::new(0x95, 0, 0, 0, 0));
    assert_eq!(b.build().unwrap_err(), BuildError::FallsOffEnd);

    // Ending in goto is fine: control cannot run past it.
    let mut b = ProgramBuilder::new("t");
    let l = b.new_label();
    b.bind(l).mov64_imm(Reg::R0, 0).ja(l);
    assert!(b.build().is_ok());
}

#[test]
fn empty_program_is_an_error() {
    assert_eq!(
        ProgramBuilder::new("t").build().unwrap_err(),
        BuildError::Empty
    );
}

#[test]
fn too_many_instructions() {
    let mut b = ProgramBuilder::new("t");
    for _ in 0..MAX_INSNS {
        b.exit();
    }
    let b2 = b.clone();
    assert_eq!(b2.build().map(|p| p.len()), Ok(MAX_INSNS));
    b.exit();
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::TooManyInsns {
            count: MAX_INSNS + 1
        }
    );
}

#[test]
fn atomic_with_a_byte_size_is_an_error() {
    for size in [Size::B, Size::H] {
        let mut b = ProgramBuilder::new("t");
        b.mov64_imm(Reg::R0, 0);
        b.atomic_add(size, Reg::R10, -8, Reg::R1).exit();
        assert_eq!(
            b.build().unwrap_err(),
            BuildError::BadAtomicSize { at: 1, size }
        );
    }
}

#[test]
fn errors_have_messages() {
    let e = BuildError::JumpOutOfRange {
        at: 3,
        offset: 40000,
    };
    assert_eq!(
        e.to_string(),
        "jump at 3 needs offset 40000, outside the 16-bit range"
    );
    assert_eq!(
        BuildError::FallsOffEnd.to_string(),
        "last instruction is neither exit nor an unconditional jump"
    );
}

#[test]
fn comments_attach_to_the_next_instruction() {
    let mut b = ProgramBuilder::new("t");
    b.mov64_imm(Reg::R0, 0);
    b.comment("first").comment("second");
    b.ld_imm64(Reg::R1, 1);
    b.exit();
    b.comment("dropped: nothing follows");
    let p = b.build().unwrap();
    assert_eq!(p.comment_at(0), None);
    assert_eq!(p.comment_at(1), Some("first\nsecond"));
    assert_eq!(p.comment_at(2), None);
    assert_eq!(p.comment_at(3), None);
}

#[test]
fn len_counts_slots() {
    let mut b = ProgramBuilder::new("t");
    assert!(b.is_empty());
    b.ld_imm64(Reg::R1, 0).mov64_imm(Reg::R0, 0);
    assert_eq!(b.len(), 3);
}
