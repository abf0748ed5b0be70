//! Programs for functions probed by their symbol's name (a script's
//! `pid$target::f:entry`, `process.function("f")`): what a handler asks
//! for ([`FunctionHook`]) and the program one hook gets in a module, with
//! no marker dispatch (each is attached to its own function's sites, its
//! attach cookie still saying which one fired).

use pytap_ebpf::{Helper, Program, ProgramBuilder, Reg, Size};

use super::{CodegenError, Handler, ModuleCode, program_env};

/// A function a handler probes by its symbol's name: a uprobe at its
/// first instruction, or a uretprobe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionHook {
    /// A file named by path (SystemTap's `process("PATH")`): the function
    /// is in it.
    pub path: Option<std::path::PathBuf>,
    /// A file named by base name or path (D's module field,
    /// `.library("NAME")`).
    pub library: Option<String>,
    /// The symbol's name (`*` matches any run of characters).
    pub function: String,
    /// At its return.
    pub ret: bool,
    /// How the script wrote it, for messages.
    pub text: String,
}

/// Builds the program of function hook `hook` in `code`'s module: the
/// attach cookie (which site fired) kept, the context in r6, then the
/// handler's body.
pub fn build_function_program(
    name: &str,
    code: &ModuleCode<'_>,
    handler: &dyn Handler,
    hook: usize,
) -> Result<Program, CodegenError> {
    let mut b = ProgramBuilder::new(name);
    let env = program_env(&mut b, code, handler)?;
    b.comment("a function's uprobe: keep the context and the attach cookie (the site)");
    b.mov64_reg(Reg::R6, Reg::R1);
    if let Some(ctx) = env.slots.ctx {
        b.stx(Size::DW, Reg::FP, ctx.off, Reg::R1);
    }
    b.call(Helper::GetAttachCookie);
    b.stx(Size::DW, Reg::FP, env.slots.cookie.off, Reg::R0);
    b.st_imm(Size::W, Reg::FP, env.slots.key.off, 0);
    handler.emit_function(hook, &mut b, &env)?;
    Ok(b.build()?)
}
