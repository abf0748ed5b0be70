//! Profile probes (D's `profile-N`, SystemTap's `timer.profile` and a
//! `timer.hz(N)` that reads the thread it interrupts): the probes of each
//! distinct rate are one hook ([`Handler::profiles`]) with a program of
//! its own, attached to a perf event on every CPU, that runs them in
//! script order.
//!
//! A firing has no arguments (its area holds zeros where a marker's are),
//! only its pid_tgid and timestamp. It fires in any process, Python or
//! not: a Python stack is walked with the layout of the process's own
//! CPython ([`super::stacks`]), and is no stack (id 0) in a process pytap
//! has not told the walk about.
//!
//! What the probes write is what marker probes write: per-CPU buffers, the
//! ring buffer, and the script's maps, whose bucket locks the kernel takes
//! with interrupts off and never waits on from the same CPU (a program
//! that finds its CPU already in one fails the update, which is counted as
//! an error of the script, never a hang). The clock is a software event,
//! run from a timer interrupt, not an NMI; and the kernel runs no perf
//! event program on a CPU that is inside another tracing program.
//!
//! [`Handler::profiles`]: crate::engine::codegen::Handler::profiles

use pytap_ebpf::{Helper, ProgramBuilder, Reg, Size};
use pytap_script::ir::PointKind;

use super::{FIRING_PID_TGID, FIRING_SIZE, FIRING_TIMESTAMP, ScriptHandler};
use crate::engine::codegen::{CodegenError, Env};

impl ScriptHandler {
    /// The rates of the script's profile probes, each once, in script order.
    pub fn profile_rates(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in &self.program.probes {
            if let PointKind::Profile { hz } = p.point.kind
                && !out.contains(&hz)
            {
                out.push(hz);
            }
        }
        out
    }

    /// The body of profile hook `hook`'s program (ctx in r6).
    pub(super) fn emit_profile_hook(
        &self,
        hook: usize,
        b: &mut ProgramBuilder,
        env: &Env,
    ) -> Result<(), CodegenError> {
        let rate = self.profile_rates().get(hook).copied();
        let mine: Vec<usize> = self
            .program
            .probes
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.point.kind, PointKind::Profile { hz } if Some(hz) == rate))
            .map(|(i, _)| i)
            .collect();
        let args = b.alloc_stack(FIRING_SIZE, 8)?;
        b.comment("a profile probe has no arguments");
        for i in 0..3 {
            b.st_imm(Size::DW, Reg::FP, args.off + 8 * i, 0);
        }
        b.comment("this firing's pid_tgid and timestamp");
        b.call(Helper::GetCurrentPidTgid);
        b.stx(Size::DW, Reg::FP, args.off + FIRING_PID_TGID, Reg::R0);
        if self.placement.timestamp {
            b.call(Helper::KtimeGetNs);
            b.stx(Size::DW, Reg::FP, args.off + FIRING_TIMESTAMP, Reg::R0);
        }
        self.emit_hook_probes(b, env, &mine, args.off)
    }
}
