//! Function probes (D's `pid` provider, SystemTap's
//! `.function("NAME")`): each distinct function point of the script is a
//! hook ([`FunctionHook`]) the plan finds in the target's files, with a
//! program of its own that runs the probes on that point, in script
//! order, as a marker's program runs a marker's.
//!
//! A function has no argument spec: its arguments are the registers
//! x86-64's calling convention passes them in, read from the context
//! once and kept in the firing's area (six of them, where a marker keeps
//! three). At a return, `arg1` (SystemTap's `$return`) is `rax` and the
//! others are 0: the return instruction's offset, D's `arg0`, is not
//! known at a uretprobe.

use pytap_ebpf::{Helper, ProgramBuilder, Reg, Size};
use pytap_script::ir::{self, Binary, PointKind};

use super::{FIRING_PID_TGID, FIRING_SIZE, FIRING_TIMESTAMP, ScriptHandler};
use super::{cache, firing, lower};
use crate::engine::codegen::{CodegenError, Env, FunctionHook};

/// What a function probe's firing keeps: [`super::FIRING_SIZE`]'s, then the
/// arguments past the third (a function has six, a marker three).
pub const FUNCTION_FIRING_SIZE: u16 = FIRING_SIZE + 8 * (ir::FUNCTION_ARGS as u16 - 3);

/// Where argument `i` is in the firing's area: the first three where a
/// marker's are, the others after the pid_tgid and the timestamp.
pub fn arg_offset(i: usize) -> i16 {
    if i < 3 {
        8 * i as i16
    } else {
        FIRING_SIZE as i16 + 8 * (i as i16 - 3)
    }
}

/// `struct pt_regs` offsets of the argument registers, in order (`rdi`,
/// `rsi`, `rdx`, `rcx`, `r8`, `r9`), and of `rax`.
const ARG_REGS: [i16; ir::FUNCTION_ARGS] = [112, 104, 96, 88, 72, 64];
const RAX: i16 = 80;

/// A function point's hook (what identifies it: two probes on the same
/// point share one program); `d`: its text is spelled as D writes it.
fn hook_of(kind: &PointKind, d: bool) -> Option<FunctionHook> {
    let PointKind::Function {
        binary,
        library,
        function,
        ret,
    } = kind
    else {
        return None;
    };
    let path = match binary {
        Binary::Target => None,
        Binary::Path(p) => Some(
            crate::process::which(std::path::Path::new(p))
                .unwrap_or_else(|| std::path::PathBuf::from(p)),
        ),
    };
    let text = if d {
        let module = library.as_deref().unwrap_or_default();
        let name = if *ret { "return" } else { "entry" };
        format!("pid$target:{module}:{function}:{name}")
    } else {
        let mut text = match binary {
            Binary::Target => "process".to_string(),
            Binary::Path(p) => format!("process(\"{p}\")"),
        };
        if let Some(l) = library {
            text.push_str(&format!(".library(\"{l}\")"));
        }
        text.push_str(&format!(".function(\"{function}\")"));
        if *ret {
            text.push_str(".return");
        }
        text
    };
    Some(FunctionHook {
        path,
        library: library.clone(),
        function: function.clone(),
        ret: *ret,
        text,
    })
}

impl ScriptHandler {
    /// The script's function hooks, each point once, in script order.
    pub fn function_hooks(&self) -> Vec<FunctionHook> {
        let mut out: Vec<FunctionHook> = Vec::new();
        for p in &self.program.probes {
            if let Some(h) = hook_of(&p.point.kind, self.d)
                && !out.contains(&h)
            {
                out.push(h);
            }
        }
        out
    }

    /// The probes on hook `hook`, in script order.
    fn on_hook(&self, hook: usize) -> Vec<usize> {
        let hooks = self.function_hooks();
        let Some(want) = hooks.get(hook) else {
            return Vec::new();
        };
        self.program
            .probes
            .iter()
            .enumerate()
            .filter(|(_, p)| hook_of(&p.point.kind, self.d).as_ref() == Some(want))
            .map(|(i, _)| i)
            .collect()
    }

    /// The body of hook `hook`'s program (ctx in r6).
    pub(super) fn emit_hook(
        &self,
        hook: usize,
        b: &mut ProgramBuilder,
        env: &Env,
    ) -> Result<(), CodegenError> {
        let ret = self.function_hooks().get(hook).is_some_and(|h| h.ret);
        let args = b.alloc_stack(FUNCTION_FIRING_SIZE, 8)?;
        b.comment(if ret {
            "the function's return value (rax), kept on the stack as arg1"
        } else {
            "the function's arguments (rdi, rsi, rdx, rcx, r8, r9), kept on the stack"
        });
        for (i, reg) in ARG_REGS.iter().enumerate() {
            let at = args.off + arg_offset(i);
            match (ret, i) {
                (false, _) => {
                    b.ldx(Size::DW, Reg::R0, Reg::R6, *reg);
                    b.stx(Size::DW, Reg::FP, at, Reg::R0);
                }
                (true, 1) => {
                    b.ldx(Size::DW, Reg::R0, Reg::R6, RAX);
                    b.stx(Size::DW, Reg::FP, at, Reg::R0);
                }
                (true, _) => {
                    b.st_imm(Size::DW, Reg::FP, at, 0);
                }
            }
        }
        b.comment("this firing's pid_tgid and timestamp");
        b.call(Helper::GetCurrentPidTgid);
        b.stx(Size::DW, Reg::FP, args.off + FIRING_PID_TGID, Reg::R0);
        if self.placement.timestamp {
            b.call(Helper::KtimeGetNs);
            b.stx(Size::DW, Reg::FP, args.off + FIRING_TIMESTAMP, Reg::R0);
        }
        let mine = self.on_hook(hook);
        self.emit_hook_probes(b, env, &mine, args.off)
    }

    /// The probes `mine` of a hook's firing (a function's or a profile
    /// probe's: no repairs, no parts), whose values are at `args_off`:
    /// the thread cache, the strings read once, the exit check, the
    /// bodies, then `r0 = 0; exit`.
    pub(super) fn emit_hook_probes(
        &self,
        b: &mut ProgramBuilder,
        env: &Env,
        mine: &[usize],
        args_off: i16,
    ) -> Result<(), CodegenError> {
        let bodies = || mine.iter().map(|&i| self.program.probes[i].body.as_slice());
        let kept = cache::worth_keeping(&self.program, &self.placement, bodies());
        let thread_cache = cache::ThreadCache::prepare(b, &kept)?;
        let mut strings = firing::FiringStrings::plan(&self.program, bodies(), &[]);
        let done = b.new_label();
        if strings.any() {
            strings.prepare(b)?;
            strings.take(b, env, self.maps.copies);
        }
        self.emit_exit_check(b, env, done);
        self.emit_probes(
            b,
            env,
            mine,
            args_off,
            lower::Firing {
                cache: &thread_cache,
                strings: &strings,
            },
        )?;
        b.bind(done);
        if strings.any() {
            strings.release(b);
        }
        b.mov64_imm(Reg::R0, 0).exit();
        Ok(())
    }
}
