//! Program loading against the real verifier, and the feature probe.

mod common;

use std::io::ErrorKind;

use pytap_ebpf::{ProgramBuilder, Reg, Size};
use pytap_sys::bpf::{BPF_TRACE_UPROBE_MULTI, ProgType, Program};

fn load(b: ProgramBuilder, attach: Option<u32>) -> Result<Program, pytap_sys::LoadError> {
    let p = b.build().unwrap();
    Program::load(
        ProgType::Kprobe,
        attach,
        &p.to_bytes(&[]).unwrap(),
        "GPL",
        p.kernel_name(),
    )
}

#[test]
fn a_valid_program_loads() {
    let counts = common::counters();
    let p = common::counting_program(&counts, None);
    assert!(p.raw_fd() >= 0);
    assert!(common::is_cloexec(p.raw_fd()));
    let p = common::counting_program(&counts, Some(BPF_TRACE_UPROBE_MULTI));
    assert!(common::is_cloexec(p.raw_fd()));
}

#[test]
fn uninitialised_register_read_returns_the_verifier_log() {
    let mut b = ProgramBuilder::new("bad_r2");
    b.mov64_reg(Reg::R0, Reg::R2).exit();
    let e = load(b, None).unwrap_err();
    assert_eq!(e.source.raw_os_error(), Some(13), "EACCES expected: {e}");
    assert!(e.log.contains("R2 !read_ok"), "log: {}", e.log);
    assert_eq!(e.to_string(), format!("BPF_PROG_LOAD: {}", e.source));
}

#[test]
fn stack_overflow_returns_the_verifier_log() {
    let mut b = ProgramBuilder::new("bad_stack");
    b.st_imm(Size::DW, Reg::FP, -520, 0);
    b.mov64_imm(Reg::R0, 0).exit();
    let e = load(b, None).unwrap_err();
    assert!(e.log.contains("invalid write to stack"), "log: {}", e.log);
    assert!(e.log.contains("off=-520"), "log: {}", e.log);
}

#[test]
fn malformed_input_is_refused_before_the_kernel() {
    let name = pytap_ebpf::kernel_name("x");
    for (insns, license) in [
        (&[0u8; 7][..], "GPL"),
        (&[][..], "GPL"),
        (&[0u8; 16][..], "G\0PL"),
    ] {
        let e = Program::load(ProgType::Kprobe, None, insns, license, name).unwrap_err();
        assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
        assert!(e.log.is_empty());
    }
}

#[test]
fn a_gpl_only_helper_needs_a_gpl_license() {
    let mut b = ProgramBuilder::new("lic");
    let slot = b.alloc_stack(8, 8).unwrap();
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, slot.off.into());
    b.mov64_imm(Reg::R2, 8).mov64_imm(Reg::R3, 0);
    b.call(pytap_ebpf::Helper::ProbeReadUser);
    b.mov64_imm(Reg::R0, 0).exit();
    let p = b.build().unwrap();
    let bytes = p.to_bytes(&[]).unwrap();
    let e = Program::load(
        ProgType::Kprobe,
        None,
        &bytes,
        "Proprietary",
        p.kernel_name(),
    )
    .unwrap_err();
    assert!(e.log.contains("GPL"), "log: {}", e.log);
    Program::load(ProgType::Kprobe, None, &bytes, "GPL", p.kernel_name()).unwrap();
}

#[test]
fn uprobe_multi_is_supported_here() {
    // Linux 6.18: both probe steps answer as a fixed 6.6+ kernel does.
    assert!(pytap_sys::bpf::uprobe_multi_supported());
    assert!(pytap_sys::bpf::uprobe_multi_supported()); // cached
}
