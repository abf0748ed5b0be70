//! The program that tells a stack walk about a process as its interpreter
//! starts, in the kernel, before any of its Python runs.
//!
//! pytap tells the walk each traced process's runtime from userspace
//! (`engine::session::stacks`, `script::stacks`), but a launched program
//! whose CPython is a shared libpython maps it only after its exec, and a
//! probe that fires in its first Python code would find the process
//! unknown and walk nothing. So every module whose processes a handler's
//! bodies walk gets this uprobe at `Py_InitializeFromConfig`, which every
//! interpreter calls as it starts (the `python` executable and embedding
//! programs alike, 3.8 and later): it computes where the module is loaded
//! from the probed address, and inserts the process's [`ProcConfig`]
//! (`_PyRuntime`, `PyCode_Type`, the handler's layout slot) unless pytap
//! told it already. Nothing is read from the process.

use pytap_abi::sample::{MODE_ALL, off};
use pytap_ebpf::{AluOp, Helper, MapRef, Program, ProgramBuilder, Reg, Size};

use super::CodegenError;

/// `BPF_NOEXIST`: what pytap told from userspace stays.
const BPF_NOEXIST: i32 = 1;

/// `struct pt_regs`' instruction pointer on x86-64.
const PT_REGS_IP: i16 = 128;

/// Where a module's interpreter starts and what to tell the walk, in the
/// module file's own (virtual) addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupAnchors {
    /// `Py_InitializeFromConfig`, where the uprobe is.
    pub entry: u64,
    /// `_PyRuntime`.
    pub runtime: u64,
    /// `PyCode_Type`.
    pub code_type: u64,
}

/// Builds the startup program of a module with `anchors`, telling the walk
/// whose processes map is `procs` that its processes take layout `slot`.
pub fn build_startup_program(
    name: &str,
    anchors: StartupAnchors,
    procs: MapRef,
    slot: u32,
) -> Result<Program, CodegenError> {
    let mut b = ProgramBuilder::new(name);
    let key = b.alloc_stack(8, 8)?;
    let config = b.alloc_stack(off::CONFIG_SIZE as u16, 8)?;
    b.comment("where the module is loaded: the probed address less its own, page-aligned");
    b.comment("(a load bias is a multiple of the page size, whatever the trap left in ip)");
    b.ldx(Size::DW, Reg::R6, Reg::R1, PT_REGS_IP);
    b.ld_imm64(Reg::R1, anchors.entry);
    b.alu64_reg(AluOp::Sub, Reg::R6, Reg::R1);
    b.ld_imm64(Reg::R1, !0xfff_u64);
    b.alu64_reg(AluOp::And, Reg::R6, Reg::R1);
    b.comment("the process's ProcConfig: runtime, code type, layout slot, every thread");
    for (address, field) in [
        (anchors.runtime, off::CONFIG_RUNTIME),
        (anchors.code_type, off::CONFIG_CODE_TYPE),
    ] {
        b.ld_imm64(Reg::R1, address);
        b.alu64_reg(AluOp::Add, Reg::R1, Reg::R6);
        b.stx(Size::DW, Reg::FP, config.field(field as u16), Reg::R1);
    }
    b.st_imm(
        Size::W,
        Reg::FP,
        config.field(off::CONFIG_SLOT as u16),
        slot as i32,
    );
    b.st_imm(
        Size::W,
        Reg::FP,
        config.field(off::CONFIG_MODE as u16),
        MODE_ALL as i32,
    );
    b.comment("keyed by the process (its tgid)");
    b.call(Helper::GetCurrentPidTgid);
    b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
    b.st_imm(Size::DW, Reg::FP, key.off, 0);
    b.stx(Size::W, Reg::FP, key.off, Reg::R0);
    b.ld_map_fd(Reg::R1, procs);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.mov64_reg(Reg::R3, Reg::FP)
        .add64_imm(Reg::R3, config.off.into());
    b.mov64_imm(Reg::R4, BPF_NOEXIST);
    b.call(Helper::MapUpdateElem);
    b.mov64_imm(Reg::R0, 0);
    b.exit();
    Ok(b.build()?)
}
