//! The stack sampler's BPF programs: the Python stack of the thread a
//! perf event interrupted, read in the kernel from the interpreter's
//! memory, with one layout's offsets ([`StackLayout`]) as immediates.
//!
//! Per sample (`BPF_PROG_TYPE_PERF_EVENT`, on every CPU):
//!
//! 1. the process's [`ProcConfig`] (the `procs` map, filled by pytap):
//!    no entry, no sample; the dispatch program tail-calls the walker of
//!    the process's layout (its `slot` in the program array);
//! 2. the thread pointer, `task->thread.fsbase` (its offset from BTF),
//!    which equals `PyThreadState.thread_id` on x86-64 glibc; the thread
//!    state from the `threads` map (pytap fills it from the thread
//!    lists), checked by reading its `thread_id` back, else found by
//!    walking the interpreter's thread list (at most
//!    [`MAX_THREAD_SCAN`]);
//! 3. whether it holds the GIL (and, in `gil` mode, nothing more when not);
//! 4. the frames, innermost first: one read of the frame's header, one of
//!    the code object's (its type must be `PyCode_Type`; the name and file
//!    name pointers and first line make the [`fingerprint`], with the name's
//!    hash, a third read), the
//!    instruction's byte offset; interpreter shims skipped; at most
//!    [`MAX_FRAMES`];
//! 5. one `bpf_ringbuf_output` of the header and the frames, without a
//!    wakeup (pytap drains on a timer); a full ring is counted.
//!
//! Nothing here writes a hash map: in NMI context (where perf events run)
//! a contended bucket lock can halt a CPU. Only the per-CPU buffer, the
//! counters and the ring buffer are written.
//!
//! The module owns the maps, the dispatch program and the walk's entry
//! ([`walker`], [`emit_walk`]): the per-CPU buffer's layout, the few
//! emit helpers the parts share, the sample's header and its output. The
//! parts of the walk are its own modules: the thread state and the GIL
//! (`thread`), the frames (`frames`), the native stack (`native`).
//!
//! [`ProcConfig`]: pytap_abi::sample::ProcConfig
//! [`fingerprint`]: pytap_abi::sample::fingerprint
//! [`MAX_THREAD_SCAN`]: pytap_abi::sample::MAX_THREAD_SCAN

mod frames;
mod native;
mod thread;

use pytap_abi::sample::{
    FLAG_GIL, FLAG_NO_THREAD, MAX_FRAMES, MAX_NATIVE, MODE_ALL, MODE_GIL, PYTHON_BYTES, off,
};
use pytap_ebpf::{
    AluOp, BuildError, Helper, JmpOp, Label, MapRef, Program, ProgramBuilder, Reg, Size, StackSlot,
};

use self::frames::{code_read_span, frame_read_bytes, frames};
use self::native::{NativeSlots, native_stack};
use self::thread::{find_thread, gil};
use super::{MapKind, MapSpec, MapTable, emit_count};
use crate::cpython::layout::StackLayout;
use crate::engine::abi::COUNTER_LOST;

/// The maps a walk uses.
#[derive(Debug, Clone, Copy)]
pub struct WalkMaps {
    /// tgid → [`ProcConfig`](pytap_abi::sample::ProcConfig).
    pub procs: MapRef,
    /// [`ThreadKey`](pytap_abi::sample::ThreadKey) → thread state address.
    pub threads: MapRef,
    /// One sample being built, per CPU.
    pub scratch: MapRef,
    /// The samples.
    pub samples: MapRef,
    /// Per-CPU counters.
    pub counters: MapRef,
    /// The counter of samples the ring had no room for (`COUNTER_LOST` in
    /// the sampler's own counters, `COUNTER_STACKS_LOST` in a session's).
    pub lost: u32,
}

/// The maps of a sampler.
#[derive(Debug, Clone, Copy)]
pub struct SamplerMaps {
    /// What the walk uses.
    pub walk: WalkMaps,
    /// The walkers, by layout slot.
    pub walkers: MapRef,
}

/// Layouts a sampler holds programs for at most.
pub const MAX_LAYOUTS: u32 = 16;

/// Processes a sampler follows at most.
pub const MAX_PROCS: u32 = 4096;

/// Threads the `threads` map holds at most.
pub const MAX_THREADS: u32 = 65536;

/// The sampler's maps, added to `table`; `ring_bytes` is the samples ring's size.
pub fn maps(table: &mut MapTable, ring_bytes: u32) -> SamplerMaps {
    let counters = table.add(MapSpec {
        name: "counters".into(),
        kind: MapKind::PercpuArray,
        key_size: 4,
        value_size: 8,
        max_entries: crate::engine::abi::COUNTERS,
    });
    SamplerMaps {
        walk: walk_maps(table, &WALK_NAMES, ring_bytes, counters, COUNTER_LOST),
        walkers: table.add(MapSpec {
            name: "walkers".into(),
            kind: MapKind::ProgArray,
            key_size: 4,
            value_size: 4,
            max_entries: MAX_LAYOUTS,
        }),
    }
}

/// The names a walk's maps are made (and opened) by.
#[derive(Debug, Clone, Copy)]
pub struct WalkNames {
    /// The processes a walk reads.
    pub procs: &'static str,
    /// Their threads' states.
    pub threads: &'static str,
    /// The per-CPU buffer.
    pub scratch: &'static str,
    /// The samples' ring.
    pub samples: &'static str,
}

/// The names of the sampler's and the events' walk maps.
pub const WALK_NAMES: WalkNames = WalkNames {
    procs: "procs",
    threads: "threads",
    scratch: "sample_buf",
    samples: "samples",
};

/// The maps of a walk, added to `table` under `names`: its own `procs`,
/// `threads`, buffer and a samples ring of `ring_bytes`, counting what the
/// ring had no room for in `counters[lost]`.
pub fn walk_maps(
    table: &mut MapTable,
    names: &WalkNames,
    ring_bytes: u32,
    counters: MapRef,
    lost: u32,
) -> WalkMaps {
    let mut add = |name: &str, kind, key_size, value_size, max_entries| {
        table.add(MapSpec {
            name: name.into(),
            kind,
            key_size,
            value_size,
            max_entries,
        })
    };
    WalkMaps {
        procs: add(
            names.procs,
            MapKind::Hash,
            4,
            off::CONFIG_SIZE as u32,
            MAX_PROCS,
        ),
        threads: add(
            names.threads,
            MapKind::Hash,
            off::KEY_SIZE as u32,
            8,
            MAX_THREADS,
        ),
        scratch: add(
            names.scratch,
            MapKind::PercpuArray,
            4,
            BUFFER_BYTES as u32,
            1,
        ),
        samples: add(names.samples, MapKind::RingBuf, 0, 0, ring_bytes),
        counters,
        lost,
    }
}

/// The program every perf event runs: the process's walker, or nothing.
pub fn dispatch(maps: SamplerMaps) -> Result<Program, BuildError> {
    let mut b = ProgramBuilder::new("pytap_sample");
    let key = b.alloc_stack(4, 4)?;
    let out = b.new_label();
    b.mov64_reg(Reg::R6, Reg::R1);
    b.call(Helper::GetCurrentPidTgid);
    b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
    b.stx(Size::W, Reg::FP, key.off, Reg::R0);
    b.ld_map_fd(Reg::R1, maps.walk.procs);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, out);
    b.comment("tail-call the walker of the process's layout");
    b.ldx(Size::W, Reg::R3, Reg::R0, off::CONFIG_SLOT as i16);
    b.mov64_reg(Reg::R1, Reg::R6);
    b.ld_map_fd(Reg::R2, maps.walkers);
    b.call(Helper::TailCall);
    b.bind(out);
    b.mov64_imm(Reg::R0, 0);
    b.exit();
    b.build()
}

/// A place in the per-CPU buffer, after the sample: the walk's working
/// state lives there rather than on the BPF stack, so that the walk can
/// be emitted into a program that needs its own stack (a marker's or a
/// script's) without the two together passing the verifier's 512 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Offset from the buffer's start (r6).
    off: i16,
    /// Length in bytes.
    size: u16,
}

impl Slot {
    fn field(self, at: u16) -> i16 {
        self.off + at as i16
    }
}

/// The working state of a walk, laid out after the sample.
struct Slots {
    /// `ThreadKey`; the tgid key of `procs` is its first 4 bytes.
    key: Slot,
    /// One 8-byte read.
    word: Slot,
    /// `&_PyRuntime`.
    runtime: Slot,
    /// `&PyCode_Type`.
    code_type: Slot,
    /// The current frame's code object.
    code: Slot,
    /// The interpreter (for the thread list and the GIL).
    interp: Slot,
    /// The code of the last frame whose fingerprint was computed.
    prev_code: Slot,
    /// That fingerprint.
    prev_fp: Slot,
    /// The frame's header.
    frame: Slot,
    /// The code object's header.
    code_head: Slot,
}

/// Bytes after the sample's frames the walk's working state may use.
pub const WORK_BYTES: usize = 512;

/// The native stack's largest size.
const NATIVE_BYTES: usize = MAX_NATIVE * off::NATIVE_ENTRY;

/// The per-CPU buffer's size: the header and frames, then the walk's
/// working state, where the native stack goes once the walk is done (right
/// after the frames, wherever they end).
pub const BUFFER_BYTES: usize = PYTHON_BYTES
    + if WORK_BYTES > NATIVE_BYTES {
        WORK_BYTES
    } else {
        NATIVE_BYTES
    };

impl Slots {
    fn new(l: &StackLayout) -> Result<Slots, BuildError> {
        let mut at = PYTHON_BYTES;
        let mut next = |size: u16| {
            let slot = Slot {
                off: at as i16,
                size,
            };
            at += usize::from(size).next_multiple_of(8);
            slot
        };
        let slots = Slots {
            key: next(off::KEY_SIZE as u16),
            word: next(8),
            runtime: next(8),
            code_type: next(8),
            code: next(8),
            interp: next(8),
            prev_code: next(8),
            prev_fp: next(8),
            frame: next(frame_read_bytes(l)),
            code_head: next(code_read_span(l).1),
        };
        // The work area is the stack's stand-in, as large as a stack: a
        // layout whose reads would not fit (offsets far into a struct, as
        // only a table read from a process could claim) is refused.
        if at > PYTHON_BYTES + WORK_BYTES {
            return Err(BuildError::StackOverflow {
                requested: u16::try_from(at - PYTHON_BYTES).unwrap_or(u16::MAX),
                used: 0,
            });
        }
        Ok(slots)
    }
}

/// What a walk is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkFor {
    /// A sample of a perf event: timed now; in `gil` mode only the GIL
    /// holder's stack is sent.
    Sample,
    /// An event of the program the walk is emitted into: the sample takes
    /// the event's timestamp, the `u64` at `fp + ts_slot`, which is how
    /// pytap finds the event's stack (same thread, same time); the mode
    /// is not looked at.
    Event {
        /// The caller's stack slot holding the event's timestamp.
        ts_slot: i16,
    },
}

/// The sampler's walker for one layout; `fsbase` is the offset of
/// `task_struct.thread.fsbase` on this kernel. With `native`, each sample
/// also holds the native stack (unwound by frame pointers) and marks where
/// each call of the eval loop begins ([`EVAL_BOUNDARY`] frames).
///
/// [`EVAL_BOUNDARY`]: pytap_abi::sample::EVAL_BOUNDARY
pub fn walker(
    l: &StackLayout,
    fsbase: u32,
    maps: SamplerMaps,
    native: bool,
) -> Result<Program, BuildError> {
    let mut b = ProgramBuilder::new(&format!("pytap_walk_3_{}", l.minor));
    let ctx = b.alloc_stack(8, 8)?;
    let pair = b.alloc_stack(16, 8)?;
    b.stx(Size::DW, Reg::FP, ctx.off, Reg::R1);
    emit(
        &mut b,
        l,
        fsbase,
        maps.walk,
        WalkFor::Sample,
        native.then_some(NativeSlots {
            ctx: ctx.off,
            pair: pair.off,
            at_entry: false,
        }),
    )?;
    b.mov64_imm(Reg::R0, 0);
    b.exit();
    b.build()
}

/// Emits the walk of the current thread's Python stack into `b`: the
/// sample built in the per-CPU buffer (`maps.scratch`, [`BUFFER_BYTES`])
/// and sent to `maps.samples`, or nothing when the process is not in
/// `maps.procs`. Control falls through at the end. Every register is
/// clobbered (the caller keeps what it needs in its stack); the walk uses
/// 8 bytes of stack.
pub fn emit_walk(
    b: &mut ProgramBuilder,
    l: &StackLayout,
    fsbase: u32,
    maps: WalkMaps,
    walk_for: WalkFor,
) -> Result<(), BuildError> {
    emit(b, l, fsbase, maps, walk_for, None)
}

/// Emits the walk of the current thread's native stack alone (a script's
/// `ustack()`), by frame pointers from the registers of the context whose
/// pointer is in the stack slot `ctx_slot`: a sample with no Python frames,
/// [`FLAG_NATIVE_ONLY`], its native entries, the event's timestamp (the
/// `u64` at `fp + ts_slot`), sent to `maps.samples`. `at_entry`: the
/// context is a function's first instruction (its caller is found through
/// the return address at the stack pointer). Every register is
/// clobbered; 24 bytes of stack are used.
///
/// [`FLAG_NATIVE_ONLY`]: pytap_abi::sample::FLAG_NATIVE_ONLY
pub fn emit_native_walk(
    b: &mut ProgramBuilder,
    maps: WalkMaps,
    ctx_slot: i16,
    ts_slot: i16,
    at_entry: bool,
) -> Result<(), BuildError> {
    let zero = b.alloc_stack(8, 8)?;
    let pair = b.alloc_stack(16, 8)?;
    let exit = b.new_label();
    b.comment("the native stack alone: r6 is the per-CPU buffer throughout");
    b.st_imm(Size::DW, Reg::FP, zero.off, 0);
    lookup(b, maps.scratch, Reg::FP, zero.off, exit);
    b.mov64_reg(Reg::R6, Reg::R0);
    b.call(Helper::GetCurrentPidTgid);
    b.mov64_reg(Reg::R7, Reg::R0);
    header(b, WalkFor::Event { ts_slot });
    set_flag(b, pytap_abi::sample::FLAG_NATIVE_ONLY);
    native_stack(
        b,
        NativeSlots {
            ctx: ctx_slot,
            pair: pair.off,
            at_entry,
        },
    );
    emit_output(b, maps, zero, WalkFor::Event { ts_slot });
    b.bind(exit);
    Ok(())
}

/// [`emit_walk`], and with `native` the native stack and the eval loop's
/// boundaries.
fn emit(
    b: &mut ProgramBuilder,
    l: &StackLayout,
    fsbase: u32,
    maps: WalkMaps,
    walk_for: WalkFor,
    native: Option<NativeSlots>,
) -> Result<(), BuildError> {
    let s = Slots::new(l)?;
    let zero = b.alloc_stack(8, 8)?;
    let exit = b.new_label();
    let output = b.new_label();
    b.comment("the stack walk: r6 is the per-CPU buffer throughout");
    b.st_imm(Size::DW, Reg::FP, zero.off, 0);
    lookup(b, maps.scratch, Reg::FP, zero.off, exit);
    b.mov64_reg(Reg::R6, Reg::R0);
    b.call(Helper::GetCurrentPidTgid);
    b.mov64_reg(Reg::R7, Reg::R0);
    b.st_imm(Size::DW, Reg::R6, s.key.off, 0);
    b.mov64_reg(Reg::R1, Reg::R7);
    b.alu64_imm(AluOp::Rsh, Reg::R1, 32);
    b.stx(Size::W, Reg::R6, s.key.field(off::KEY_PID as u16), Reg::R1);
    lookup(b, maps.procs, Reg::R6, s.key.off, exit);
    b.ldx(Size::DW, Reg::R1, Reg::R0, off::CONFIG_RUNTIME as i16);
    b.stx(Size::DW, Reg::R6, s.runtime.off, Reg::R1);
    b.ldx(Size::DW, Reg::R1, Reg::R0, off::CONFIG_CODE_TYPE as i16);
    b.stx(Size::DW, Reg::R6, s.code_type.off, Reg::R1);
    // r8: the mode, until the GIL is known.
    match walk_for {
        WalkFor::Sample => b.ldx(Size::W, Reg::R8, Reg::R0, off::CONFIG_MODE as i16),
        WalkFor::Event { .. } => b.mov64_imm(Reg::R8, MODE_ALL as i32),
    };
    header(b, walk_for);
    b.comment("the thread pointer: task->thread.fsbase");
    b.call(Helper::GetCurrentTask);
    b.mov64_reg(Reg::R3, Reg::R0)
        .add64_imm(Reg::R3, fsbase as i32);
    read(b, Helper::ProbeReadKernel, s.word, 8);
    let no_thread = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, no_thread);
    b.ldx(Size::DW, Reg::R1, Reg::R6, s.word.off);
    b.stx(
        Size::DW,
        Reg::R6,
        s.key.field(off::KEY_FSBASE as u16),
        Reg::R1,
    );
    read_at(b, s.runtime, i64::from(l.interpreters_head), s.interp);
    b.jmp_imm(JmpOp::Jne, Reg::R0, 0, no_thread);
    find_thread(b, l, &s, maps, no_thread)?;
    // r9: the thread state.
    gil(b, l, &s)?;
    b.comment("gil mode: only the holder's samples");
    let walk = b.new_label();
    b.jmp_imm(JmpOp::Jne, Reg::R8, MODE_GIL as i32, walk);
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.jmp_imm(JmpOp::Jset, Reg::R1, i32::from(FLAG_GIL), walk);
    b.ja(exit);
    b.bind(walk);
    frames(b, l, &s, native.is_some())?;
    if let Some(n) = native {
        native_stack(b, n);
    }
    b.ja(output);
    b.bind(no_thread);
    set_flag(b, FLAG_NO_THREAD);
    b.bind(output);
    emit_output(b, maps, zero, walk_for);
    b.bind(exit);
    Ok(())
}

/// `r0 = map[key at base+key_off]`, to `miss` when absent.
fn lookup(b: &mut ProgramBuilder, map: MapRef, base: Reg, key_off: i16, miss: Label) {
    b.ld_map_fd(Reg::R1, map);
    b.mov64_reg(Reg::R2, base)
        .add64_imm(Reg::R2, key_off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, miss);
}

/// `helper(buffer+slot, len, r3)`: r0 is 0 when read.
fn read(b: &mut ProgramBuilder, helper: Helper, slot: Slot, len: u16) {
    b.mov64_reg(Reg::R1, Reg::R6)
        .add64_imm(Reg::R1, slot.off.into());
    b.mov64_imm(Reg::R2, i32::from(len));
    b.call(helper);
}

/// `*dst = *(u64 *)(*base + offset)` from user memory; r0 is 0 when read.
fn read_at(b: &mut ProgramBuilder, base: Slot, offset: i64, dst: Slot) {
    b.ldx(Size::DW, Reg::R3, Reg::R6, base.off);
    add_offset(b, Reg::R3, offset);
    read(b, Helper::ProbeReadUser, dst, 8);
}

/// `*dst = *(u64 *)(reg + offset)` from user memory (reg not r1-r3).
fn read_reg(b: &mut ProgramBuilder, reg: Reg, offset: i64, dst: Slot) {
    b.mov64_reg(Reg::R3, reg);
    add_offset(b, Reg::R3, offset);
    read(b, Helper::ProbeReadUser, dst, 8);
}

fn add_offset(b: &mut ProgramBuilder, reg: Reg, offset: i64) {
    if offset != 0 {
        b.add64_imm(reg, offset as i32);
    }
}

fn set_flag(b: &mut ProgramBuilder, flag: u16) {
    b.ldx(Size::H, Reg::R1, Reg::R6, off::FLAGS as i16);
    b.alu64_imm(AluOp::Or, Reg::R1, i32::from(flag));
    b.stx(Size::H, Reg::R6, off::FLAGS as i16, Reg::R1);
}

/// The header's fixed fields (r7: pid_tgid).
fn header(b: &mut ProgramBuilder, walk_for: WalkFor) {
    match walk_for {
        WalkFor::Sample => {
            b.call(Helper::KtimeGetNs);
            b.stx(Size::DW, Reg::R6, off::TS as i16, Reg::R0);
        }
        WalkFor::Event { ts_slot } => {
            b.ldx(Size::DW, Reg::R1, Reg::FP, ts_slot);
            b.stx(Size::DW, Reg::R6, off::TS as i16, Reg::R1);
        }
    }
    b.stx(Size::W, Reg::R6, off::TID as i16, Reg::R7);
    b.mov64_reg(Reg::R1, Reg::R7);
    b.alu64_imm(AluOp::Rsh, Reg::R1, 32);
    b.stx(Size::W, Reg::R6, off::PID as i16, Reg::R1);
    b.call(Helper::GetSmpProcessorId);
    b.stx(Size::W, Reg::R6, off::CPU as i16, Reg::R0);
    b.st_imm(Size::DW, Reg::R6, off::TSTATE as i16, 0);
    b.st_imm(Size::H, Reg::R6, off::DEPTH as i16, 0);
    b.st_imm(Size::H, Reg::R6, off::FLAGS as i16, 0);
    // `native` and the padding after it.
    b.st_imm(Size::DW, Reg::R6, off::NATIVE as i16, 0);
}

/// Sends the sample in r6.
fn emit_output(b: &mut ProgramBuilder, maps: WalkMaps, key: StackSlot, walk_for: WalkFor) {
    let sent = b.new_label();
    b.ldx(Size::H, Reg::R3, Reg::R6, off::DEPTH as i16);
    b.alu64_imm(AluOp::And, Reg::R3, (MAX_FRAMES * 2 - 1) as i32);
    b.jmp_imm(JmpOp::Jgt, Reg::R3, MAX_FRAMES as i32, sent);
    b.alu64_imm(AluOp::Lsh, Reg::R3, 4);
    b.ldx(Size::H, Reg::R5, Reg::R6, off::NATIVE as i16);
    b.alu64_imm(AluOp::And, Reg::R5, (MAX_NATIVE * 2 - 1) as i32);
    b.jmp_imm(JmpOp::Jgt, Reg::R5, MAX_NATIVE as i32, sent);
    b.alu64_imm(AluOp::Lsh, Reg::R5, 4);
    b.alu64_reg(AluOp::Add, Reg::R3, Reg::R5);
    b.add64_imm(Reg::R3, off::HEADER as i32);
    b.ld_map_fd(Reg::R1, maps.samples);
    b.mov64_reg(Reg::R2, Reg::R6);
    let flags = match walk_for {
        // No wakeup per sample: pytap drains the ring on a timer
        // (`runner::sampling::DRAIN_EVERY`), so a sample costs the
        // profiled program no wakeup of pytap on its CPU.
        WalkFor::Sample => pytap_ebpf::helper::RB_NO_WAKEUP as i32,
        // An event's stack wakes pytap: its frames are named from the
        // process's memory, which must still hold them (a short program
        // exits within milliseconds of its last event). Such events are
        // rare beside function events.
        WalkFor::Event { .. } => 0,
    };
    b.mov64_imm(Reg::R4, flags);
    b.call(Helper::RingbufOutput);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, sent);
    emit_count(b, key, maps.counters, maps.lost);
    b.bind(sent);
}
