//! Loading one USDT argument into a register, specialised to its spec.
//!
//! libbpf keeps argument specs in a map and interprets them at run time;
//! pytap generates the program per binary, so each argument becomes the
//! few instructions its spec needs: a register is one load from the
//! `pt_regs` context, a memory operand a `bpf_probe_read_user` of the
//! computed address, a constant a move. Then the value is cut to its size
//! and sign- or zero-extended to 64 bits.

use pytap_ebpf::{AluOp, Helper, ProgramBuilder, Reg, Size, StackSlot};
use pytap_elf::{ArgLocation, ArgSpec, X86Reg};

/// An argument spec pytap cannot turn into loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// `disp(%rip)`: the probe sees the address of the int3, not of the
    /// next instruction that RIP-relative operands are computed from.
    #[error("RIP-relative operands are not supported")]
    RipRelative,
}

/// Emits code leaving argument `spec` in `dst` (r6 must hold the context).
/// Clobbers r0-r5 and `scratch` when the argument is in memory.
pub fn emit_load_arg(
    b: &mut ProgramBuilder,
    spec: &ArgSpec,
    dst: Reg,
    scratch: StackSlot,
) -> Result<(), ArgError> {
    match &spec.location {
        ArgLocation::Register { reg, .. } => {
            b.ldx(Size::DW, dst, Reg::R6, ctx_offset(*reg)?);
        }
        ArgLocation::Constant(value) => load_constant(b, dst, *value),
        ArgLocation::Memory {
            base,
            index,
            scale,
            disp,
        } => {
            match base {
                Some(reg) => {
                    b.ldx(Size::DW, Reg::R3, Reg::R6, ctx_offset(*reg)?);
                }
                None => {
                    b.mov64_imm(Reg::R3, 0);
                }
            }
            if let Some(index) = index {
                b.ldx(Size::DW, Reg::R2, Reg::R6, ctx_offset(*index)?);
                let shift = scale.trailing_zeros() as i32;
                if shift > 0 {
                    b.alu64_imm(AluOp::Lsh, Reg::R2, shift);
                }
                b.alu64_reg(AluOp::Add, Reg::R3, Reg::R2);
            }
            if *disp != 0 {
                match i32::try_from(*disp) {
                    Ok(d) => {
                        b.add64_imm(Reg::R3, d);
                    }
                    Err(_) => {
                        b.ld_imm64(Reg::R2, *disp as u64);
                        b.alu64_reg(AluOp::Add, Reg::R3, Reg::R2);
                    }
                }
            }
            // The helper writes only `size` bytes: zero the slot first so the
            // upper bytes are defined (and a failed read gives 0).
            b.st_imm(Size::DW, Reg::FP, scratch.off, 0);
            b.mov64_reg(Reg::R1, Reg::FP)
                .add64_imm(Reg::R1, scratch.off.into());
            b.mov64_imm(Reg::R2, i32::from(spec.size));
            b.call(Helper::ProbeReadUser);
            b.ldx(Size::DW, dst, Reg::FP, scratch.off);
        }
    }
    extend(b, dst, spec.size, spec.signed);
    Ok(())
}

fn ctx_offset(reg: X86Reg) -> Result<i16, ArgError> {
    if reg == X86Reg::Rip {
        return Err(ArgError::RipRelative);
    }
    Ok(reg.pt_regs_offset() as i16)
}

fn load_constant(b: &mut ProgramBuilder, dst: Reg, value: i64) {
    match i32::try_from(value) {
        Ok(v) => {
            b.mov64_imm(dst, v);
        }
        Err(_) => {
            b.ld_imm64(dst, value as u64);
        }
    }
}

/// Cuts `dst` to `size` bytes and extends it back to 64 bits.
fn extend(b: &mut ProgramBuilder, dst: Reg, size: u8, signed: bool) {
    if size >= 8 {
        return;
    }
    if size == 4 && !signed {
        // A 32-bit move zero-extends.
        b.mov32_reg(dst, dst);
        return;
    }
    let shift = 64 - 8 * i32::from(size);
    b.alu64_imm(AluOp::Lsh, dst, shift);
    b.alu64_imm(if signed { AluOp::Arsh } else { AluOp::Rsh }, dst, shift);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disasm(spec: &str) -> String {
        let mut b = ProgramBuilder::new("t");
        let slot = b.alloc_stack(8, 8).unwrap();
        emit_load_arg(&mut b, &ArgSpec::parse(spec).unwrap(), Reg::R7, slot).unwrap();
        b.mov64_imm(Reg::R0, 0).exit();
        let prog = b.build().unwrap();
        let text = pytap_ebpf::disassemble(prog.insns());
        // Drop the trailing `r0 = 0; exit`.
        let lines: Vec<&str> = text.lines().collect();
        lines[..lines.len() - 2]
            .iter()
            .map(|l| l.split_once(": ").map_or(*l, |(_, i)| i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn register_arguments() {
        assert_eq!(disasm("8@%rbp"), "r7 = *(u64 *)(r6 +32)");
        assert_eq!(
            disasm("-4@%eax"),
            "r7 = *(u64 *)(r6 +80)\nr7 <<= 32\nr7 s>>= 32"
        );
        assert_eq!(disasm("4@%r14d"), "r7 = *(u64 *)(r6 +8)\nw7 = w7");
        assert_eq!(disasm("-8@%r12"), "r7 = *(u64 *)(r6 +24)");
        assert_eq!(
            disasm("1@%sil"),
            "r7 = *(u64 *)(r6 +104)\nr7 <<= 56\nr7 >>= 56"
        );
    }

    #[test]
    fn memory_arguments() {
        assert_eq!(
            disasm("-4@112(%rsp)"),
            "r3 = *(u64 *)(r6 +152)\nr3 += 112\n*(u64 *)(r10 -8) = 0\nr1 = r10\nr1 += -8\nr2 = 4\n\
             call probe_read_user#112\nr7 = *(u64 *)(r10 -8)\nr7 <<= 32\nr7 s>>= 32"
        );
        let sib = disasm("-1@-96(%rbp,%rax,8)");
        assert!(
            sib.starts_with(
                "r3 = *(u64 *)(r6 +32)\nr2 = *(u64 *)(r6 +80)\nr2 <<= 3\nr3 += r2\nr3 += -96\n"
            ),
            "{sib}"
        );
    }

    #[test]
    fn constants_and_refusals() {
        assert_eq!(disasm("4@$5"), "r7 = 5\nw7 = w7");
        assert_eq!(disasm("-8@$-5"), "r7 = -5");
        assert!(disasm("8@$0x100000000").starts_with("r7 = 0x100000000 ll"));
        let mut b = ProgramBuilder::new("t");
        let slot = b.alloc_stack(8, 8).unwrap();
        let rip = ArgSpec::parse("8@8(%rip)").unwrap();
        assert!(
            emit_load_arg(&mut b, &rip, Reg::R7, slot)
                .unwrap_err()
                .to_string()
                .contains("RIP")
        );
    }
}
