//! Programs for probes that fire on a clock on every CPU (a script's D
//! `profile-N`, SystemTap's `timer.profile`): each rate a handler asks for
//! ([`Handler::profiles`]) gets one program, attached to a `cpu-clock`
//! perf event on every CPU, as the stack sampler's is. It serves no module:
//! it fires in whatever process the CPU is running, or none, so its
//! environment names none ([`ModuleId::NONE`]) and a Python stack it walks
//! takes the layout of the process's own CPython, looked up when it fires.
//!
//! The context is a `struct bpf_perf_event_data`, whose first member is
//! the interrupted registers: a probe reads no arguments from it.

use pytap_ebpf::{Program, ProgramBuilder, Reg, Size};

use super::{CodegenError, Handler, ModuleCode, ModuleId, program_env};

impl ModuleId {
    /// The module of a program that serves none (a profile probe's).
    pub const NONE: ModuleId = ModuleId {
        index: usize::MAX,
        dev: 0,
        inode: 0,
        version: None,
    };

    /// Whether this is [`ModuleId::NONE`].
    pub fn is_none(&self) -> bool {
        self.index == usize::MAX
    }
}

/// Builds the program of profile hook `hook` (an index into
/// [`Handler::profiles`]): the context kept in r6, then the handler's body.
pub fn build_profile_program(
    name: &str,
    handler: &dyn Handler,
    hook: usize,
) -> Result<Program, CodegenError> {
    let mut b = ProgramBuilder::new(name);
    let code = ModuleCode {
        module: ModuleId::NONE,
        sites: &[],
        layout: None,
        frame: None,
        stack: None,
    };
    let env = program_env(&mut b, &code, handler)?;
    b.comment("a profile probe's perf event: keep the context");
    b.mov64_reg(Reg::R6, Reg::R1);
    if let Some(ctx) = env.slots.ctx {
        b.stx(Size::DW, Reg::FP, ctx.off, Reg::R1);
    }
    b.st_imm(Size::DW, Reg::FP, env.slots.cookie.off, 0);
    b.st_imm(Size::W, Reg::FP, env.slots.key.off, 0);
    handler.emit_profile(hook, &mut b, &env)?;
    Ok(b.build()?)
}
