//! BPF programs for CPython's markers, generated per module.
//!
//! One program serves every marker site of one module (an interpreter or a
//! libpython): it is attached to all of them through one uprobe_multi link,
//! each site with its own cookie, and dispatches on `bpf_get_attach_cookie`.
//! Sites with the same marker and argument spec share a prologue, which
//! loads the marker's arguments from `struct pt_regs` as this exact binary's
//! argument spec says (see [`usdt`]); then a [`Handler`] emits what the
//! tool wants done with them, once per marker.
//!
//! Register conventions, which every handler relies on:
//!
//! | where | r6 | r7 r8 r9 | stack |
//! |---|---|---|---|
//! | dispatch and prologue | ctx | being loaded | [`Slots::cookie`] = cookie |
//! | handler body | free (ctx is dead) | marker args 0, 1, 2 | as below |
//!
//! Helper calls clobber r1-r5 only. The stack slots in [`Slots`] are
//! allocated once for the whole program; handlers allocate more above them.
//! A handler that reads the frame at `function__entry` (3.15's generator
//! creations, [`creation`]) finds it in [`Env::frame`], saved by the
//! prologue while ctx was still in r6.

pub mod audit;
pub mod count;
pub mod creation;
mod empty;
pub mod event_stack;
pub mod function;
pub mod inplace;
pub mod named;
pub mod profile;
pub mod pystack;
pub mod record;
pub mod script;
pub mod split;
pub mod startup;
pub mod task;
pub mod usdt;
pub mod within;

use std::collections::BTreeMap;

use pytap_ebpf::{
    BuildError, Helper, JmpOp, MapRef, Program, ProgramBuilder, Reg, Size, StackSlot,
};
use pytap_elf::ArgSpec;

pub use self::empty::EmptyProbe;
pub use self::function::{FunctionHook, build_function_program};
pub use self::profile::build_profile_program;

use crate::cpython::Marker;
use crate::cpython::frames::FrameSource;
use crate::cpython::layout::StackLayout;
use crate::cpython::objects::ObjectLayout;

/// What can go wrong generating a program.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The instruction builder refused (stack, jumps, size).
    #[error("building BPF program: {0}")]
    Build(#[from] BuildError),
    /// A site's argument spec cannot be turned into loads.
    #[error("marker {marker} has an argument spec pytap cannot read: {detail}")]
    Arg {
        /// The marker.
        marker: Marker,
        /// Why.
        detail: String,
    },
    /// A site has fewer arguments than its marker declares.
    #[error("marker {marker} has {found} arguments at one site, expected {expected}")]
    ArgCount {
        /// The marker.
        marker: Marker,
        /// Found in the note.
        found: usize,
        /// Declared by CPython.
        expected: usize,
    },
    /// Audit decoding needs a known CPython version.
    #[error(
        "the audit marker needs the CPython version to decode its arguments, and it is unknown"
    )]
    NoLayout,
    /// The generator's own invariant broke (a bug in pytap).
    #[error("internal: {0}")]
    Internal(String),
}

/// Kinds of BPF maps the generated code uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray,
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
    /// `BPF_MAP_TYPE_HASH` with `BPF_F_NO_PREALLOC`: entries allocated as
    /// they are added (for maps that stay small and are updated rarely).
    HashNoPrealloc,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash,
    /// `BPF_MAP_TYPE_PERCPU_HASH` with `BPF_F_NO_PREALLOC`.
    PercpuHashNoPrealloc,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash,
    /// `BPF_MAP_TYPE_RINGBUF` (`max_entries` is the size in bytes).
    RingBuf,
    /// `BPF_MAP_TYPE_ARRAY` with `BPF_F_MMAPABLE`: values pytap maps into
    /// its memory ([`inplace`]'s rings).
    MmapArray,
    /// `BPF_MAP_TYPE_PROG_ARRAY`: the programs a program's tail calls
    /// continue in ([`Handler::parts`]).
    ProgArray,
}

/// A map the programs need; the session creates it and passes its fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// Kernel-visible name (at most 15 characters are kept).
    pub name: String,
    /// Type.
    pub kind: MapKind,
    /// Key size in bytes (0 for ring buffers).
    pub key_size: u32,
    /// Value size in bytes (0 for ring buffers).
    pub value_size: u32,
    /// Entries (bytes for ring buffers).
    pub max_entries: u32,
}

/// The maps of a session, indexed by [`MapRef`].
#[derive(Debug, Clone, Default)]
pub struct MapTable {
    specs: Vec<MapSpec>,
}

impl MapTable {
    /// Adds a map and returns its reference.
    pub fn add(&mut self, spec: MapSpec) -> MapRef {
        self.specs.push(spec);
        MapRef(self.specs.len() as u32 - 1)
    }

    /// Every map, in [`MapRef`] order.
    pub fn specs(&self) -> &[MapSpec] {
        &self.specs
    }

    /// A map's name, for the disassembler.
    pub fn name(&self, map: MapRef) -> String {
        self.specs
            .get(map.0 as usize)
            .map_or_else(|| format!("#{}", map.0), |s| s.name.clone())
    }
}

/// One marker site of a module, as the code generator sees it.
#[derive(Debug, Clone)]
pub struct SiteCode {
    /// The attach cookie, which is also the site's index in the session.
    pub cookie: u16,
    /// The marker.
    pub marker: Marker,
    /// The site's parsed argument spec.
    pub args: Vec<ArgSpec>,
}

/// Stack slots every program has, below the handler's own.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    /// The attach cookie (u64), stored by the dispatcher.
    pub cookie: StackSlot,
    /// Scratch for memory-operand arguments and one-off reads (8 bytes).
    pub scratch: StackSlot,
    /// A u32 zero, the key of slot 0 of array maps.
    pub key: StackSlot,
    /// The address of this CPU's ring region while a record is written in
    /// place ([`inplace`]), then the firing's clock reading, when the
    /// handler [uses the rings](Handler::uses_rings).
    pub ring: Option<StackSlot>,
    /// The program's context (u64), for a tail call into the next part of
    /// a split body, when the handler [splits](Handler::parts_map), or for
    /// reading its registers ([`Handler::wants_ctx`]).
    pub ctx: Option<StackSlot>,
}

/// Which module a program is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleId {
    /// Index of the target in the plan.
    pub index: usize,
    /// `st_dev` of the file.
    pub dev: u64,
    /// Its inode.
    pub inode: u64,
    /// Its CPython version, when known.
    pub version: Option<crate::cpython::PyVersion>,
}

/// What the handler may use besides the registers.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// The module the program is for.
    pub module: ModuleId,
    /// Fixed stack slots.
    pub slots: Slots,
    /// The module's CPython object layout, when its version is known.
    pub layout: Option<ObjectLayout>,
    /// At `function__entry`, the frame pointer, when the handler asked for
    /// it ([`Handler::wants_frame`]) and the module shows where it is.
    pub frame: Option<FrameAccess>,
    /// The stack layout of the processes running the module, when the
    /// handler walks their stacks ([`Handler::wants_stacks`]) and the
    /// module's file says it ([`crate::process::python::file_layout`]).
    pub stack: Option<StackLayout>,
}

/// The frame at `function__entry`, saved by the prologue.
#[derive(Debug, Clone, Copy)]
pub struct FrameAccess {
    /// Where it comes from.
    pub source: FrameSource,
    /// The stack slot holding the frame pointer (u64).
    pub slot: StackSlot,
}

/// Emits the body that runs when a marker fires, with the marker's
/// arguments in r7, r8 and r9. The body must end in `exit` on every path.
pub trait Handler {
    /// The markers this handler has code for; sites of other markers are
    /// attached only to raise their semaphore (3.11's arming) and exit at once.
    fn handles(&self, marker: Marker) -> bool;

    /// Emits the body for `marker`.
    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError>;

    /// Whether the bodies write records in place ([`inplace`]): the
    /// program then has [`Slots::ring`].
    fn uses_rings(&self) -> bool {
        false
    }

    /// Whether the body of `function__entry` reads the frame ([`Env::frame`]).
    fn wants_frame(&self) -> bool {
        false
    }

    /// Whether the bodies walk the Python stack ([`Env::stack`]).
    fn wants_stacks(&self) -> bool {
        false
    }

    /// The walk a module's processes are told to as their interpreter
    /// starts ([`startup`]): its `procs` map and the layout slot the
    /// module's processes take in it; `None` when no body walks a stack.
    fn stack_registry(&self, _module: &ModuleId) -> Option<(MapRef, u32)> {
        None
    }

    /// The body of a program that handles no marker (one instruction
    /// sequence for every site, before `r0 = 0; exit`): the benchmark's
    /// baselines.
    fn emit_without_dispatch(&self, _b: &mut ProgramBuilder) {}

    /// How many programs the body for `marker` in `module` takes: the
    /// module's own, and as many *parts* after it, each reached from the
    /// one before by a tail call through [`Handler::parts_map`]. The
    /// verifier's work grows faster than a program's length, so a very
    /// long body (a script with hundreds of probes on one marker) is
    /// split.
    fn parts(&self, _marker: Marker, _module: &ModuleId) -> usize {
        1
    }

    /// Emits part `part` (1 or more) of the body for `marker`, which the
    /// part before it reaches by [`emit_tail_call`]. Ends in `exit` on
    /// every path.
    fn emit_part(
        &self,
        marker: Marker,
        part: usize,
        _b: &mut ProgramBuilder,
        _env: &Env,
    ) -> Result<(), CodegenError> {
        Err(CodegenError::Internal(format!(
            "no part {part} of {marker}'s body"
        )))
    }

    /// The program array the parts are in, when bodies are split.
    fn parts_map(&self) -> Option<MapRef> {
        None
    }

    /// The functions (by symbol) the handler probes besides markers; the
    /// plan finds each in the files a module's processes run, and gives
    /// each its own program ([`Handler::emit_function`]).
    fn functions(&self) -> Vec<FunctionHook> {
        Vec::new()
    }

    /// Emits the body for function hook `hook` (an index into
    /// [`Handler::functions`]), with the context in r6. Ends in `exit` on
    /// every path.
    fn emit_function(
        &self,
        hook: usize,
        _b: &mut ProgramBuilder,
        _env: &Env,
    ) -> Result<(), CodegenError> {
        Err(CodegenError::Internal(format!("no function hook {hook}")))
    }

    /// Whether the body reads the context after the prologue (its
    /// registers: a native stack), so that it is kept in [`Slots::ctx`].
    fn wants_ctx(&self) -> bool {
        false
    }

    /// The rates (firings a second on each CPU) of the handler's probes
    /// that fire on a clock on every CPU, one program each
    /// ([`Handler::emit_profile`], [`profile`]).
    fn profiles(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Emits the body for profile hook `hook` (an index into
    /// [`Handler::profiles`]), with the context in r6. Ends in `exit` on
    /// every path.
    fn emit_profile(
        &self,
        hook: usize,
        _b: &mut ProgramBuilder,
        _env: &Env,
    ) -> Result<(), CodegenError> {
        Err(CodegenError::Internal(format!("no profile hook {hook}")))
    }
}

/// The slot of part `part` of `marker`'s body in module `module`'s
/// programs, in [`Handler::parts_map`].
pub fn part_slot(module: usize, marker: Marker, part: usize) -> u32 {
    let marker = Marker::ALL.iter().position(|m| *m == marker).unwrap_or(0);
    ((module * Marker::ALL.len() + marker) * MAX_PARTS + part) as u32
}

/// Parts a body may have: the kernel lets a program chain at most 33 tail
/// calls (`MAX_TAIL_CALL_CNT`), so a body is its first program and at most
/// 33 more.
pub const MAX_PARTS: usize = 34;

/// Modules whose bodies may be split (the program array's size is
/// [`part_slot`] of the last).
pub const MAX_PART_MODULES: usize = 64;

/// The program array of split bodies.
pub fn parts_map_spec() -> MapSpec {
    MapSpec {
        name: "parts".into(),
        kind: MapKind::ProgArray,
        key_size: 4,
        value_size: 4,
        max_entries: (MAX_PART_MODULES * Marker::ALL.len() * MAX_PARTS) as u32,
    }
}

/// Continues the firing in part `part` of `marker`'s body (the context was
/// kept in [`Slots::ctx`] by the dispatcher); falls through when the part
/// is missing. Clobbers r0-r5.
pub fn emit_tail_call(
    b: &mut ProgramBuilder,
    env: &Env,
    parts: MapRef,
    marker: Marker,
    part: usize,
) -> Result<(), CodegenError> {
    let ctx = env
        .slots
        .ctx
        .ok_or_else(|| CodegenError::Internal("a tail call without the context kept".into()))?;
    b.comment(&format!("on to part {part} of this marker's body"));
    b.ldx(Size::DW, Reg::R1, Reg::FP, ctx.off);
    b.ld_map_fd(Reg::R2, parts);
    b.mov64_imm(Reg::R3, part_slot(env.module.index, marker, part) as i32);
    b.call(Helper::TailCall);
    Ok(())
}

/// What a module's programs are generated from.
#[derive(Debug, Clone, Copy)]
pub struct ModuleCode<'a> {
    /// The module.
    pub module: ModuleId,
    /// Its sites.
    pub sites: &'a [SiteCode],
    /// Its CPython object layout, when its version is known.
    pub layout: Option<ObjectLayout>,
    /// Where its `function__entry` shows the frame, if it does.
    pub frame: Option<FrameSource>,
    /// Its processes' stack layout, when known and wanted.
    pub stack: Option<StackLayout>,
}

/// Builds the program for one module's sites, or with `part` (a marker
/// and a part of its body, 1 or more) that part's program, which only that
/// marker's sites reach.
pub fn build_module_program(
    name: &str,
    code: &ModuleCode<'_>,
    handler: &dyn Handler,
    part: Option<(Marker, usize)>,
) -> Result<Program, CodegenError> {
    let mut b = ProgramBuilder::new(name);
    let part_sites: Vec<SiteCode>;
    let sites = match part {
        Some((marker, _)) => {
            part_sites = code
                .sites
                .iter()
                .filter(|s| s.marker == marker)
                .cloned()
                .collect();
            &part_sites[..]
        }
        None => code.sites,
    };
    if !sites.iter().any(|s| handler.handles(s.marker)) {
        // Nothing to do at any site (the empty probe, or only arming sites).
        handler.emit_without_dispatch(&mut b);
        b.mov64_imm(Reg::R0, 0).exit();
        return Ok(b.build()?);
    }
    let env = program_env(&mut b, code, handler)?;
    // Group sites sharing a marker and argument spec: one prologue each.
    let mut groups: BTreeMap<(Marker, String), SiteGroup<'_>> = BTreeMap::new();
    for site in sites.iter().filter(|s| handler.handles(s.marker)) {
        groups
            .entry((site.marker, args_key(&site.args)))
            .or_insert_with(|| SiteGroup {
                site,
                cookies: Vec::new(),
            })
            .cookies
            .push(site.cookie);
    }
    let prologues = emit_dispatch(&mut b, &env, &groups);
    let mut bodies: BTreeMap<Marker, pytap_ebpf::Label> = BTreeMap::new();
    for (((marker, args), group), label) in groups.iter().zip(&prologues) {
        let body = *bodies.entry(*marker).or_insert_with(|| b.new_label());
        b.bind(*label);
        b.comment(&format!("{marker}: load {args}"));
        emit_prologue(&mut b, group.site, &env)?;
        b.ja(body);
    }
    for (marker, label) in bodies {
        b.bind(label);
        match part {
            Some((_, part)) => {
                b.comment(&format!("{marker}, part {part}"));
                handler.emit_part(marker, part, &mut b, &env)?;
            }
            None => {
                b.comment(&format!("{marker}"));
                handler.emit(marker, &mut b, &env)?;
            }
        }
    }
    Ok(b.build()?)
}

/// The sites of a program that share a marker and an argument spec: one
/// prologue loads their arguments.
struct SiteGroup<'a> {
    /// The first of them, whose spec the prologue follows.
    site: &'a SiteCode,
    /// Their attach cookies.
    cookies: Vec<u16>,
}

/// The stack slots and module facts every part of a program shares,
/// allocated in the order the golden programs pin.
fn program_env(
    b: &mut ProgramBuilder,
    code: &ModuleCode<'_>,
    handler: &dyn Handler,
) -> Result<Env, CodegenError> {
    let slots = Slots {
        cookie: b.alloc_stack(8, 8)?,
        scratch: b.alloc_stack(8, 8)?,
        key: b.alloc_stack(4, 4)?,
        ring: match handler.uses_rings() {
            true => Some(b.alloc_stack(16, 8)?),
            false => None,
        },
        ctx: match handler.parts_map().is_some() || handler.wants_ctx() {
            true => Some(b.alloc_stack(8, 8)?),
            false => None,
        },
    };
    let frame = match code.frame.filter(|_| handler.wants_frame()) {
        Some(source) => Some(FrameAccess {
            source,
            slot: b.alloc_stack(8, 8)?,
        }),
        None => None,
    };
    Ok(Env {
        module: code.module,
        slots,
        layout: code.layout,
        frame,
        stack: code.stack,
    })
}

/// The program's entry: the attach cookie says which site fired, and a
/// jump per cookie goes to its group's prologue (the labels returned, in
/// the groups' order). A cookie of no group is a site only attached to
/// raise its semaphore: it exits.
fn emit_dispatch(
    b: &mut ProgramBuilder,
    env: &Env,
    groups: &BTreeMap<(Marker, String), SiteGroup<'_>>,
) -> Vec<pytap_ebpf::Label> {
    let slots = env.slots;
    b.comment("dispatch on the attach cookie (one per marker site)");
    b.mov64_reg(Reg::R6, Reg::R1);
    if let Some(ctx) = slots.ctx {
        b.stx(Size::DW, Reg::FP, ctx.off, Reg::R1);
    }
    b.call(Helper::GetAttachCookie);
    b.stx(Size::DW, Reg::FP, slots.cookie.off, Reg::R0);
    b.st_imm(Size::W, Reg::FP, slots.key.off, 0);
    let prologues: Vec<_> = groups.keys().map(|_| b.new_label()).collect();
    for (group, label) in groups.values().zip(&prologues) {
        for cookie in &group.cookies {
            b.jmp_imm(JmpOp::Jeq, Reg::R0, i32::from(*cookie), *label);
        }
    }
    b.comment("a site only attached to raise its semaphore");
    b.mov64_imm(Reg::R0, 0).exit();
    prologues
}

fn args_key(args: &[ArgSpec]) -> String {
    args.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads a site's arguments into r7, r8, r9.
fn emit_prologue(b: &mut ProgramBuilder, site: &SiteCode, env: &Env) -> Result<(), CodegenError> {
    let expected = site.marker.args().len();
    if site.args.len() < expected {
        return Err(CodegenError::ArgCount {
            marker: site.marker,
            found: site.args.len(),
            expected,
        });
    }
    if let Some(frame) = env.frame.filter(|_| site.marker == Marker::FunctionEntry) {
        b.comment(&format!("the frame, in {}", frame.source.register.name(8)));
        b.ldx(
            Size::DW,
            Reg::R0,
            Reg::R6,
            frame.source.register.pt_regs_offset() as i16,
        );
        b.stx(Size::DW, Reg::FP, frame.slot.off, Reg::R0);
    }
    for (spec, dst) in site
        .args
        .iter()
        .take(expected)
        .zip([Reg::R7, Reg::R8, Reg::R9])
    {
        usdt::emit_load_arg(b, spec, dst, env.slots.scratch).map_err(|detail| {
            CodegenError::Arg {
                marker: site.marker,
                detail: detail.to_string(),
            }
        })?;
    }
    Ok(())
}

/// `r0 = &map[0]` of an array map, through the key slot (which holds 0
/// between uses; null-checked by the caller); returns r0. Clobbers r1-r5.
pub fn lookup_slot0(b: &mut ProgramBuilder, env: &Env, map: MapRef) -> Reg {
    b.ld_map_fd(Reg::R1, map);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, env.slots.key.off.into());
    b.call(Helper::MapLookupElem);
    Reg::R0
}

/// Emits `counters[index] += 1` on the per-CPU counter array, using the
/// 4-byte stack slot `key` (left at 0 afterwards, the key of slot 0 of
/// array maps; clobbers r0-r5).
pub fn emit_count(b: &mut ProgramBuilder, key: StackSlot, counters: MapRef, index: u32) {
    let done = b.new_label();
    b.st_imm(Size::W, Reg::FP, key.off, index as i32);
    b.ld_map_fd(Reg::R1, counters);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    b.bind(done);
    b.st_imm(Size::W, Reg::FP, key.off, 0);
}
