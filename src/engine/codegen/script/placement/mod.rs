//! Where each part of a script runs, decided before any code is made
//! (pure, so it is unit-tested without a kernel).
//!
//! - Marker probes run in the kernel; `begin`, `end` and timers in pytap.
//! - A global the kernel probes touch lives in a BPF map, laid out here
//!   ([`KernelGlobal`]); one only userspace touches stays in memory.
//! - An array the kernel only adds to (`+=`, `++`, `<<<`) and never reads,
//!   whose string keys are marker strings, is keyed by the strings'
//!   addresses ([`KernelGlobal::address_keyed`]): the kernel hashes a few
//!   pointers instead of whole strings, and sends each new key's strings
//!   once (a key definition record). Keys whose strings are equal are
//!   added up when userspace reads the array. This is how `top.stp`'s
//!   counts cost no more than `pytap top`'s.
//! - A global that a timer deletes whole is kept twice and the probes
//!   write one copy while the timer reads and clears the other
//!   ([`KernelGlobal::swap_slot`]), so no increment lands between the read
//!   and the delete.
//! - Output statements in kernel probes become output sites: the kernel
//!   sends the values only it can compute (the leaves: `$arg`s, locals,
//!   `user_string`, `thread_indent`'s counters, global reads) and pytap
//!   evaluates the rest of each argument (formatting, string functions,
//!   `sprintf`) in the interpreter.
//!
//! What the kernel cannot do yet is an error here, with its span.

use std::collections::HashMap;

use pytap_script::builtins::Builtin;
use pytap_script::diag::Diagnostic;
use pytap_script::ir::*;
use pytap_script::store::DEFAULT_ARRAY_SIZE;

use crate::engine::abi::STR_CAP;

mod walk;

/// How a key part is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// The process id (first part of an address-keyed array's key).
    Tgid,
    /// A number, 8 bytes.
    Long,
    /// A string's bytes, `STR_CAP` bytes, NUL-padded.
    Bytes,
    /// A string's address in the traced process, 8 bytes.
    Address,
    /// A stack (`jstack()`, `sprint_pybacktrace()`, `ustack()`): the id of the
    /// stack the probe walked, 8 bytes; pytap names it from the walk's
    /// sample (`script::stacks`). Stacks that print alike are added up
    /// when the array is read.
    Stack,
}

impl KeyPart {
    /// Bytes it takes.
    pub fn size(self) -> u32 {
        match self {
            KeyPart::Bytes => STR_CAP as u32,
            _ => 8,
        }
    }
}

/// How a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueLayout {
    /// 8 bytes.
    Long,
    /// `STR_CAP` bytes, NUL-terminated.
    Str,
    /// count, sum, min, max (8 bytes each), then `buckets` counts, then
    /// for a D `stddev()` the 128-bit sum of squares (low, high), per CPU.
    Stats {
        /// The histogram drawn of it, if any.
        shape: Option<HistShape>,
        /// Whether it keeps the sum of squares.
        squares: bool,
    },
}

impl ValueLayout {
    /// Where a statistic's sum of squares starts: after its buckets.
    pub fn squares_offset(shape: Option<HistShape>) -> u32 {
        32 + 8 * shape.map_or(0, |s| s.buckets() as u32)
    }

    /// Bytes a value takes.
    pub fn size(self) -> u32 {
        match self {
            ValueLayout::Long => 8,
            ValueLayout::Str => STR_CAP as u32,
            ValueLayout::Stats { shape, squares } => {
                Self::squares_offset(shape) + if squares { 16 } else { 0 }
            }
        }
    }
}

/// A global in BPF maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelGlobal {
    /// Key parts in order (empty for a scalar, which is slot 0 of an array map).
    pub key: Vec<KeyPart>,
    /// Its values.
    pub value: ValueLayout,
    /// Keyed by the addresses of its string keys (see the module docs).
    pub address_keyed: bool,
    /// Which epoch slot of the control map picks its copy, when swapped.
    pub swap_slot: Option<usize>,
    /// Most entries.
    pub max_entries: u32,
}

impl KernelGlobal {
    /// Bytes of a key (4 for a scalar's array slot).
    pub fn key_size(&self) -> u32 {
        if self.key.is_empty() {
            4
        } else {
            self.key.iter().map(|k| k.size()).sum()
        }
    }

    /// Offset of key part `i`.
    pub fn key_offset(&self, i: usize) -> u32 {
        self.key[..i].iter().map(|k| k.size()).sum()
    }
}

/// How a string local is held in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrKind {
    /// The address of a marker string, read when used (`user_string`).
    Address {
        /// `user_string_n`'s limit.
        max: Option<u32>,
    },
    /// Bytes in the scratch area.
    Bytes,
}

/// A value an output site's record carries.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The expression the kernel evaluates.
    pub expr: Expr,
    /// What it sends.
    pub kind: LeafKind,
}

/// What a leaf sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    /// A number.
    Long,
    /// A string.
    Str,
    /// A Python stack: the id of the stack the probe walked, which pytap
    /// names from the walk's sample.
    Stack,
    /// `thread_indent(n)` or `indent(n)`. When no kernel code reads the
    /// counters (`thread_indent_depth`), they are kept in pytap, which
    /// steps them with each record in order (records of a thread arrive
    /// in order, and none is lost without being counted): the probe sends
    /// `n` only. Otherwise the probe steps them and sends the microseconds
    /// since the outermost entry and the depth.
    Indent {
        /// `thread_indent` (per thread) rather than `indent`.
        thread: bool,
        /// The counters are in the kernel.
        kernel: bool,
    },
}

impl LeafKind {
    /// Numbers it puts in the record.
    pub fn longs(self) -> usize {
        match self {
            LeafKind::Long | LeafKind::Stack => 1,
            LeafKind::Str => 0,
            LeafKind::Indent { kernel: true, .. } => 2,
            LeafKind::Indent { kernel: false, .. } => 1,
        }
    }
}

/// What an output site does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// `printf` and the other print functions, `log`.
    Print,
    /// `warn(msg)`.
    Warn,
    /// `error(msg)`: the run ends with it.
    Error,
    /// `exit()`.
    Exit,
}

/// An output statement in a kernel probe.
#[derive(Debug, Clone)]
pub struct OutputSite {
    /// What it does.
    pub kind: OutputKind,
    /// The call (a `Print`, or the `log`/`warn`/`error`/`exit` builtin).
    pub expr: Expr,
    /// The probe whose locals it reads (for the interpreter's frame).
    pub probe: usize,
    /// Values the kernel sends, in record order.
    pub leaves: Vec<Leaf>,
}

impl OutputSite {
    /// Numbers in the record.
    pub fn longs(&self) -> usize {
        self.leaves.iter().map(|l| l.kind.longs()).sum()
    }

    /// Strings in the record.
    pub fn strings(&self) -> usize {
        self.leaves
            .iter()
            .filter(|l| l.kind == LeafKind::Str)
            .count()
    }
}

/// A run-time error the kernel can hit (division by zero).
#[derive(Debug, Clone)]
pub struct ErrorSite {
    /// Where.
    pub span: pytap_script::source::Span,
    /// What.
    pub message: String,
}

/// The placement of a whole program.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Per global: its maps, or `None` when only userspace touches it.
    pub globals: Vec<Option<KernelGlobal>>,
    /// Per probe: how its string locals are held (marker probes only).
    pub locals: Vec<Vec<Option<StrKind>>>,
    /// Output sites, by index.
    pub outputs: Vec<OutputSite>,
    /// The site of each output expression.
    pub output_of: HashMap<ExprId, usize>,
    /// Run-time error sites, by index.
    pub errors: Vec<ErrorSite>,
    /// The site of each expression that can fail.
    pub error_of: HashMap<ExprId, usize>,
    /// Kernel probes use `thread_indent`.
    pub thread_indent: bool,
    /// Kernel probes use `indent`.
    pub indent: bool,
    /// Kernel probes call `exit()`.
    pub exits: bool,
    /// Kernel probes read D's `timestamp` (once per firing).
    pub timestamp: bool,
    /// Kernel probes walk the Python stack (`jstack()`) or the native one
    /// (`ustack()`).
    pub stacks: bool,
    /// Kernel probes walk the native stack (`ustack()`), from the
    /// context's registers.
    pub native_stacks: bool,
    /// Epoch slots of swapped globals.
    pub swap_slots: usize,
}

/// Whether a probe runs in the kernel.
pub fn in_kernel(probe: &Probe) -> bool {
    matches!(
        probe.point.kind,
        PointKind::Marker { .. } | PointKind::Function { .. } | PointKind::Profile { .. }
    )
}

/// Places `program`. Marker probes may also run in pytap (on the
/// in-process capture's events, CPython 3.12–3.14): the layout does not
/// change for them, since what they write by key goes to the same maps,
/// and what they add to an address-keyed array (whose keys are string
/// addresses only the kernel knows) is kept beside it in pytap and added
/// when the array is read (`script::store`).
pub fn place(program: &Program) -> Result<Placement, Vec<Diagnostic>> {
    let mut p = Placer {
        program,
        out: Placement {
            globals: vec![None; program.globals.len()],
            locals: vec![Vec::new(); program.probes.len()],
            ..Placement::default()
        },
        access: vec![Access::default(); program.globals.len()],
        diags: Vec::new(),
        pure_fns: HashMap::new(),
        inlining: Vec::new(),
        probe: 0,
    };
    for (i, probe) in program.probes.iter().enumerate() {
        if in_kernel(probe) {
            p.probe = i;
            p.out.locals[i] = string_kinds(probe);
            for s in &probe.body {
                p.stmt(s, true);
            }
        } else {
            for s in &probe.body {
                p.user_stmt(s);
            }
        }
    }
    p.layout();
    // `thread_indent`'s counters stay in pytap unless kernel code reads
    // them (`thread_indent_depth`): then every step happens in the kernel.
    let (thread, global) = (p.out.thread_indent, p.out.indent);
    for site in &mut p.out.outputs {
        for leaf in &mut site.leaves {
            if let LeafKind::Indent { thread: t, kernel } = &mut leaf.kind {
                *kernel = if *t { thread } else { global };
            }
        }
    }
    if p.diags.is_empty() {
        Ok(p.out)
    } else {
        Err(p.diags)
    }
}

/// What kernel (and userspace) code does to a global.
#[derive(Debug, Clone, Default)]
struct Access {
    kernel: bool,
    kernel_reads: bool,
    kernel_non_additive: bool,
    /// Some kernel key of a string part is not a marker string's address.
    content_keys: bool,
    /// Key positions that every kernel access fills with `pid()` (an
    /// address-keyed array whose key has the pid needs no hidden one).
    pid_keys: Option<Vec<bool>>,
    /// Key positions some kernel access fills with a stack.
    stack_keys: Vec<bool>,
    /// Key positions some kernel access fills with a string that is not a stack.
    string_keys: Vec<bool>,
    user_keyed_writes: bool,
    deleted_by_timer: bool,
}

struct Placer<'a> {
    program: &'a Program,
    out: Placement,
    access: Vec<Access>,
    diags: Vec<Diagnostic>,
    pure_fns: HashMap<FuncId, bool>,
    /// Functions being inlined (to catch recursion).
    inlining: Vec<FuncId>,
    probe: usize,
}

/// Kinds of the string locals of a kernel probe: an address when every
/// assignment is `user_string` (with the same limit), else bytes.
fn string_kinds(probe: &Probe) -> Vec<Option<StrKind>> {
    let mut kinds: Vec<Option<Option<StrKind>>> = probe
        .locals
        .iter()
        .map(|l| (l.ty == Ty::Str).then_some(None))
        .collect();
    let mut visit = |e: &Expr| {
        let (l, kind) = match &e.kind {
            ExprKind::Assign(LValue::Local(l), op, v) => {
                let kind = match (&v.kind, op) {
                    (ExprKind::Builtin(Builtin::UserString, _), AssignOp::Set) => {
                        StrKind::Address { max: None }
                    }
                    (ExprKind::Builtin(Builtin::UserStringN, a), AssignOp::Set) => {
                        match a.get(1).map(|e| &e.kind) {
                            Some(ExprKind::Long(n)) if *n >= 0 => StrKind::Address {
                                max: Some((*n).min(u32::MAX as i64) as u32),
                            },
                            _ => StrKind::Bytes,
                        }
                    }
                    _ => StrKind::Bytes,
                };
                (*l, kind)
            }
            _ => return,
        };
        if let Some(slot) = kinds.get_mut(l).and_then(|k| k.as_mut()) {
            *slot = Some(match *slot {
                None => kind,
                Some(old) if old == kind => kind,
                Some(_) => StrKind::Bytes,
            });
        }
    };
    for s in &probe.body {
        stmt_exprs(s, &mut |e| pytap_script::check::walk(e, &mut visit));
    }
    for s in &probe.body {
        // `delete s` makes it "": bytes.
        stmt_deletes(s, &mut |l| {
            if let Some(Some(k)) = kinds.get_mut(l) {
                *k = Some(StrKind::Bytes);
            }
        });
    }
    // A string local never assigned holds "": an address of nothing,
    // which costs no buffer (and is never read from).
    kinds
        .into_iter()
        .map(|k| k.map(|k| k.unwrap_or(StrKind::Address { max: None })))
        .collect()
}

pub use pytap_script::check::stmt_exprs;

fn stmt_deletes(s: &Stmt, f: &mut dyn FnMut(LocalId)) {
    match &s.kind {
        StmtKind::Delete(Delete::Local(l)) => f(*l),
        StmtKind::Block(b) => b.iter().for_each(|s| stmt_deletes(s, f)),
        StmtKind::If(_, t, e) => {
            stmt_deletes(t, f);
            if let Some(e) = e {
                stmt_deletes(e, f);
            }
        }
        StmtKind::Loop { body, .. } => stmt_deletes(body, f),
        StmtKind::Foreach(fe) => stmt_deletes(&fe.body, f),
        _ => {}
    }
}

fn unsupported(span: pytap_script::source::Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("{what} is not supported in probes that run in the kernel (marker probes) yet"),
    )
}

impl Placer<'_> {
    /// Lays out the kernel globals.
    fn layout(&mut self) {
        // Timers that delete a global whole, at their top level.
        for probe in &self.program.probes {
            if matches!(probe.point.kind, PointKind::Timer { .. }) {
                for s in &probe.body {
                    if let StmtKind::Delete(Delete::Global(g)) = s.kind {
                        self.access[g].deleted_by_timer = true;
                    }
                }
            }
        }
        for (g, global) in self.program.globals.iter().enumerate() {
            let a = &self.access[g];
            if !a.kernel {
                continue;
            }
            let stack = |i: usize| a.stack_keys.get(i).copied().unwrap_or(false);
            let address_keyed = global.is_array()
                && (0..global.keys.len()).any(|i| global.keys[i] == Ty::Str && !stack(i))
                && !a.kernel_reads
                && !a.kernel_non_additive
                && !a.content_keys
                && !a.user_keyed_writes;
            let mut key = Vec::new();
            let has_pid = a.pid_keys.as_ref().is_some_and(|p| p.contains(&true));
            if global.is_array() {
                // String addresses are per process: the key needs the pid,
                // which it may already have.
                if address_keyed && !has_pid {
                    key.push(KeyPart::Tgid);
                }
                for (i, &k) in global.keys.iter().enumerate() {
                    key.push(match (k, address_keyed) {
                        (Ty::Str, _) if stack(i) => KeyPart::Stack,
                        (Ty::Str, true) => KeyPart::Address,
                        (Ty::Str, false) => KeyPart::Bytes,
                        _ => KeyPart::Long,
                    });
                }
            }
            let value = match global.value {
                Ty::Long => ValueLayout::Long,
                Ty::Str => ValueLayout::Str,
                Ty::Stats => ValueLayout::Stats {
                    shape: global.hist,
                    squares: global.agg == Some(pytap_script::ast::AggFunc::Stddev),
                },
            };
            let swap_slot = a.deleted_by_timer.then(|| {
                self.out.swap_slots += 1;
                self.out.swap_slots - 1
            });
            self.out.globals[g] = Some(KernelGlobal {
                key,
                value,
                address_keyed,
                swap_slot,
                max_entries: global.size.unwrap_or(DEFAULT_ARRAY_SIZE),
            });
        }
    }
}

#[cfg(test)]
mod tests;
