//! A marker string read once per firing: `copyinstr(argN)` (or
//! `user_string($argN)`) used more than once in the firing of a marker
//! reads the process's memory once, into a per-CPU copy, and the later
//! uses (comparisons with literals, strings in records) read the copy.
//!
//! Reading user memory is what a script's probe spends most on: one
//! `bpf_probe_read_user_str` of a short name costs about 100 ns on this
//! project's machine kind, more than a hash lookup, whatever the length;
//! a comparison costs nothing more once the bytes are in kernel memory. The
//! HOWTO's `call_stack.d` reads `arg1` twice at every call (the
//! `"start"` predicate, then the name it prints).
//!
//! Exact: the string cannot change during the firing (its frame holds it),
//! so the copy is what a second read would give. A copy is made only by a
//! read that succeeded (a failed read leaves the next use to read again and
//! fail the same way); a copy of a string cut at the buffer's size is cut
//! where a direct read would be, and a record's truncation check still
//! looks at the process's byte past the cut.
//!
//! The copy lives in a per-CPU buffer taken for the firing with a busy
//! count (a probe preempted on its CPU while another holds it reads the
//! process's memory at every use instead, as without copies).

use pytap_ebpf::{AluOp, Helper, JmpOp, Label, ProgramBuilder, Reg, Size};
use pytap_script::ir::{Builtin, Ctx, Expr, ExprId, ExprKind, Program, Stmt};

use crate::engine::abi::STR_CAP;
use crate::engine::codegen::Env;
use crate::engine::codegen::record;

/// Marker arguments a firing can copy (function markers have three).
pub const ARGS: usize = 3;

/// Bytes of the per-CPU buffer: the busy count, then one string per
/// argument.
pub const BUFFER_BYTES: u32 = 8 + (ARGS * STR_CAP) as u32;

/// Offset of argument `arg`'s copy in the buffer.
fn copy_offset(arg: usize) -> i16 {
    (8 + arg * STR_CAP) as i16
}

/// The use of a marker string by the firing's repairs (3.15's `__init__`
/// shim check reads the function name before any probe runs).
pub const REPAIR: ExprId = ExprId::MAX;

/// A whole-string read of a marker argument that goes through the
/// firing's copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyRead {
    /// The argument read.
    pub arg: usize,
    /// Stack slot of the string's address in the process.
    pub addr: i16,
    /// Whether the read makes the copy when there is none yet
    /// ([`FiringStrings::makes_copy`]).
    pub make: bool,
}

/// Which uses of each argument a firing's probes make, and where the
/// firing keeps its buffer and what it has copied.
#[derive(Debug, Clone, Default)]
pub struct FiringStrings {
    /// Per argument, the whole-string reads of it, in code order.
    uses: [Vec<ExprId>; ARGS],
    /// Stack slot of the buffer's address (0: no buffer this firing).
    buffer: i16,
    /// Per argument, a stack slot: 1 once the copy holds it.
    copied: [i16; ARGS],
}

/// `copyinstr(argN)`: the argument it reads whole, if it is one.
pub fn whole_read_of(e: &Expr) -> Option<usize> {
    match &e.kind {
        ExprKind::Builtin(Builtin::UserString | Builtin::UserStringN, args) if args.len() == 1 => {
            match args[0].kind {
                ExprKind::Ctx(Ctx::Arg(i)) if i < ARGS => Some(i),
                _ => None,
            }
        }
        _ => None,
    }
}

impl FiringStrings {
    /// Counts the whole-string reads in a firing of `probes`, after those
    /// of the firing's repairs (`repair_reads`: the arguments they read,
    /// as [`REPAIR`]).
    pub fn plan<'a>(
        program: &'a Program,
        probes: impl Iterator<Item = &'a [Stmt]>,
        repair_reads: &[usize],
    ) -> Self {
        let mut uses: [Vec<ExprId>; ARGS] = Default::default();
        for &arg in repair_reads {
            uses[arg].push(REPAIR);
        }
        super::visit::each_expr(program, probes, &mut |e| {
            if let Some(arg) = whole_read_of(e) {
                uses[arg].push(e.id);
            }
        });
        FiringStrings {
            uses,
            ..Default::default()
        }
    }

    /// Whether any argument is read more than once (the firing takes a
    /// buffer).
    pub fn any(&self) -> bool {
        self.uses.iter().any(|u| u.len() > 1)
    }

    /// Whether the read `id` of `arg` goes through the copy.
    pub fn through_copy(&self, arg: usize, id: ExprId) -> bool {
        self.uses[arg].len() > 1 && self.uses[arg].contains(&id)
    }

    /// Whether the read `id` of `arg` should make the copy when there is
    /// none yet: every read but the last (the last only reads).
    pub fn makes_copy(&self, arg: usize, id: ExprId) -> bool {
        self.through_copy(arg, id) && self.uses[arg].last() != Some(&id)
    }

    /// Allocates the firing's slots, none copied and no buffer yet (at
    /// the firing's start, before anything can end it).
    pub fn prepare(&mut self, b: &mut ProgramBuilder) -> Result<(), pytap_ebpf::BuildError> {
        self.buffer = b.alloc_stack(8, 8)?.off;
        b.st_imm(Size::DW, Reg::FP, self.buffer, 0);
        for arg in 0..ARGS {
            self.copied[arg] = b.alloc_stack(8, 8)?.off;
            b.st_imm(Size::DW, Reg::FP, self.copied[arg], 0);
        }
        Ok(())
    }

    /// Takes the buffer (its busy count is its first word, as a staging
    /// buffer's). Clobbers r0-r6.
    pub fn take(&self, b: &mut ProgramBuilder, env: &Env, map: pytap_ebpf::MapRef) {
        b.comment("marker strings read once this firing: take this CPU's copy buffer");
        let (done, busy) = (b.new_label(), b.new_label());
        record::take_staging(b, env, map, done, busy);
        b.stx(Size::DW, Reg::FP, self.buffer, Reg::R6);
        b.ja(done);
        b.bind(busy);
        b.comment("held by a preempted probe: read the process's memory at each use");
        record::release_staging(b);
        b.bind(done);
    }

    /// Gives the buffer back at the end of the firing (when taken).
    pub fn release(&self, b: &mut ProgramBuilder) {
        let done = b.new_label();
        b.ldx(Size::DW, Reg::R1, Reg::FP, self.buffer);
        b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, done);
        b.mov64_imm(Reg::R2, -1);
        b.atomic_add(Size::DW, Reg::R1, 0, Reg::R2);
        b.bind(done);
    }

    /// Leaves in `dst` the address of the read argument's copy, making it
    /// first from the address in its stack slot when the read makes it;
    /// jumps to `direct` when there is no copy to use (read the process
    /// then). Clobbers r0-r5.
    pub fn copy_address(&self, b: &mut ProgramBuilder, read: CopyRead, dst: Reg, direct: Label) {
        let CopyRead { arg, addr, make } = read;
        let have = b.new_label();
        b.ldx(Size::DW, Reg::R1, Reg::FP, self.copied[arg]);
        b.jmp_imm(JmpOp::Jne, Reg::R1, 0, have);
        if !make {
            b.ja(direct);
        } else {
            b.comment("first read of this marker string in the firing: into the copy");
            b.ldx(Size::DW, Reg::R1, Reg::FP, self.buffer);
            b.jmp_imm(JmpOp::Jeq, Reg::R1, 0, direct);
            b.add64_imm(Reg::R1, copy_offset(arg).into());
            b.mov64_imm(Reg::R2, STR_CAP as i32);
            b.ldx(Size::DW, Reg::R3, Reg::FP, addr);
            b.call(Helper::ProbeReadUserStr);
            b.jmp_imm(JmpOp::Jsle, Reg::R0, 0, direct);
            b.st_imm(Size::DW, Reg::FP, self.copied[arg], 1);
        }
        b.bind(have);
        b.ldx(Size::DW, dst, Reg::FP, self.buffer);
        // Known non-null once copied; the verifier is told so.
        b.jmp_imm(JmpOp::Jeq, dst, 0, direct);
        b.alu64_imm(AluOp::Add, dst, copy_offset(arg).into());
    }
}
