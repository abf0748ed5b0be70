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

use pytap_script::ast::BinOp;
use pytap_script::builtins::{Builtin, Needs};
use pytap_script::diag::Diagnostic;
use pytap_script::ir::*;
use pytap_script::store::DEFAULT_ARRAY_SIZE;

use crate::engine::abi::STR_CAP;

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
    /// count, sum, min, max (8 bytes each), then `buckets` counts, per CPU.
    Stats {
        /// The histogram drawn of it, if any.
        shape: Option<HistShape>,
    },
}

impl ValueLayout {
    /// Bytes a value takes.
    pub fn size(self) -> u32 {
        match self {
            ValueLayout::Long => 8,
            ValueLayout::Str => STR_CAP as u32,
            ValueLayout::Stats { shape } => 32 + 8 * shape.map_or(0, |s| s.buckets() as u32),
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
            LeafKind::Long => 1,
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
    /// Epoch slots of swapped globals.
    pub swap_slots: usize,
}

/// Whether a probe runs in the kernel.
pub fn in_kernel(probe: &Probe) -> bool {
    matches!(probe.point.kind, PointKind::Marker { .. })
}

/// Places `program`.
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

/// Calls `f` on every top-level expression of a statement (recursively
/// through nested statements).
pub fn stmt_exprs(s: &Stmt, f: &mut dyn FnMut(&Expr)) {
    match &s.kind {
        StmtKind::Expr(e) => f(e),
        StmtKind::Block(b) => b.iter().for_each(|s| stmt_exprs(s, f)),
        StmtKind::If(c, t, e) => {
            f(c);
            stmt_exprs(t, f);
            if let Some(e) = e {
                stmt_exprs(e, f);
            }
        }
        StmtKind::Loop { cond, body, step } => {
            if let Some(c) = cond {
                f(c);
            }
            stmt_exprs(body, f);
            if let Some(st) = step {
                f(st);
            }
        }
        StmtKind::Foreach(fe) => {
            if let Some(l) = &fe.limit {
                f(l);
            }
            stmt_exprs(&fe.body, f);
        }
        StmtKind::Return(Some(e)) => f(e),
        StmtKind::Delete(Delete::Index(_, keys)) => keys.iter().for_each(f),
        _ => {}
    }
}

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
    fn stmt(&mut self, s: &Stmt, top: bool) {
        let _ = top;
        match &s.kind {
            StmtKind::Expr(e) => {
                if self.output(e) {
                    return;
                }
                self.expr(e);
            }
            StmtKind::Block(b) => b.iter().for_each(|s| self.stmt(s, false)),
            StmtKind::If(c, t, e) => {
                self.expr(c);
                self.stmt(t, false);
                if let Some(e) = e {
                    self.stmt(e, false);
                }
            }
            StmtKind::Loop { cond, body, step } => {
                if let Some(c) = cond {
                    self.expr(c);
                }
                self.stmt(body, false);
                if let Some(st) = step {
                    self.expr(st);
                }
            }
            StmtKind::Foreach(_) => self.diags.push(
                unsupported(s.span, "`foreach`")
                    .hint("loop over arrays in `end` or timer probes, which run in pytap"),
            ),
            StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Delete(d) => match d {
                Delete::Local(_) => {}
                Delete::Global(g) => {
                    self.touch(*g, false, false);
                    if self.program.globals[*g].is_array() {
                        self.diags.push(
                            unsupported(s.span, "deleting a whole array")
                                .hint("delete it in an `end` or timer probe, or delete one element: `delete a[k]`"),
                        );
                    }
                }
                Delete::Index(g, keys) => {
                    self.touch(*g, false, false);
                    self.keys(*g, keys);
                }
            },
            StmtKind::Break | StmtKind::Continue | StmtKind::Next | StmtKind::Return(None) => {}
        }
    }

    /// Records kernel access to `g`: a read, or an additive write.
    fn touch(&mut self, g: GlobalId, read: bool, additive: bool) {
        let a = &mut self.access[g];
        a.kernel = true;
        a.kernel_reads |= read;
        a.kernel_non_additive |= !read && !additive;
    }

    fn keys(&mut self, g: GlobalId, keys: &[Expr]) {
        let pids: Vec<bool> = keys
            .iter()
            .map(|k| matches!(k.kind, ExprKind::Builtin(Builtin::Pid, _)))
            .collect();
        let a = &mut self.access[g];
        a.pid_keys = Some(match a.pid_keys.take() {
            None => pids,
            Some(old) => old.iter().zip(&pids).map(|(x, y)| *x && *y).collect(),
        });
        for k in keys {
            if k.ty == Ty::Str && !self.is_address(k) {
                self.access[g].content_keys = true;
            }
            self.expr(k);
        }
    }

    /// Whether a string expression is a marker string's address.
    fn is_address(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Builtin(Builtin::UserString, _) => true,
            ExprKind::Local(l) => {
                self.inlining.is_empty()
                    && matches!(
                        self.out.locals[self.probe].get(*l),
                        Some(Some(StrKind::Address { max: None }))
                    )
            }
            _ => false,
        }
    }

    /// An output statement: records its site; `false` if `e` is not one.
    fn output(&mut self, e: &Expr) -> bool {
        let (kind, args): (OutputKind, Vec<&Expr>) = match &e.kind {
            ExprKind::Print(p) if !p.kind.is_sprint() => {
                if p.hist.is_some() {
                    self.diags.push(
                        unsupported(e.span, "printing a histogram")
                            .hint("print it in an `end` or timer probe, which run in pytap"),
                    );
                    return true;
                }
                (OutputKind::Print, p.args.iter().collect())
            }
            ExprKind::Builtin(Builtin::Log, a) => (OutputKind::Print, a.iter().collect()),
            ExprKind::Builtin(Builtin::Warn, a) => (OutputKind::Warn, a.iter().collect()),
            ExprKind::Builtin(Builtin::Error, a) => (OutputKind::Error, a.iter().collect()),
            ExprKind::Builtin(Builtin::Exit, _) => {
                self.out.exits = true;
                (OutputKind::Exit, Vec::new())
            }
            _ => return false,
        };
        let mut leaves = Vec::new();
        for a in args {
            self.leaves(a, &mut leaves);
        }
        for leaf in &leaves {
            match leaf.kind {
                LeafKind::Indent { .. } => {
                    if let ExprKind::Builtin(_, a) = &leaf.expr.kind {
                        a.iter().for_each(|a| self.expr(a));
                    }
                }
                _ => self.expr(&leaf.expr),
            }
        }
        if !self.out.output_of.contains_key(&e.id) {
            self.out.output_of.insert(e.id, self.out.outputs.len());
            self.out.outputs.push(OutputSite {
                kind,
                expr: e.clone(),
                probe: self.probe,
                leaves,
            });
        }
        true
    }

    /// The values of `e` the kernel must send for pytap to evaluate it.
    fn leaves(&mut self, e: &Expr, out: &mut Vec<Leaf>) {
        let children: Vec<&Expr> = match &e.kind {
            ExprKind::Long(_) | ExprKind::Str(_) => return,
            ExprKind::Builtin(Builtin::Execname | Builtin::Target | Builtin::Pp, _) => return,
            ExprKind::Builtin(Builtin::ThreadIndent | Builtin::Indent, _) => {
                out.push(Leaf {
                    expr: e.clone(),
                    kind: LeafKind::Indent {
                        thread: matches!(e.kind, ExprKind::Builtin(Builtin::ThreadIndent, _)),
                        // Decided once every probe is seen (see `place`).
                        kernel: false,
                    },
                });
                return;
            }
            ExprKind::Builtin(b, args) if b.needs() == Needs::Pure => args.iter().collect(),
            ExprKind::Unary(_, a) => vec![a],
            ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => vec![a, b],
            ExprKind::Concat(parts) => parts.iter().collect(),
            ExprKind::And(a, b) | ExprKind::Or(a, b)
                if self.pure_leaves(a) && self.pure_leaves(b) =>
            {
                vec![a, b]
            }
            ExprKind::Ternary(c, a, b) if self.pure_leaves(a) && self.pure_leaves(b) => {
                vec![c, a, b]
            }
            ExprKind::Print(p) if p.kind.is_sprint() && p.hist.is_none() => p.args.iter().collect(),
            ExprKind::Call(f, args) if self.pure_fn(*f) => args.iter().collect(),
            _ => {
                out.push(Leaf {
                    expr: e.clone(),
                    kind: if e.ty == Ty::Str {
                        LeafKind::Str
                    } else {
                        LeafKind::Long
                    },
                });
                return;
            }
        };
        for c in children {
            self.leaves(c, out);
        }
    }

    /// Whether evaluating `e`'s leaves has no effect (so evaluating them
    /// all, as the kernel does, cannot differ from short-circuiting).
    fn pure_leaves(&mut self, e: &Expr) -> bool {
        let mut leaves = Vec::new();
        self.leaves(e, &mut leaves);
        leaves.iter().all(|l| {
            pytap_script::check::pure(&l.expr) && !matches!(l.kind, LeafKind::Indent { .. })
        })
    }

    /// Whether a user function can run in pytap on values the kernel
    /// sent: it reads no globals, no context, and has no effects.
    fn pure_fn(&mut self, f: FuncId) -> bool {
        if let Some(&p) = self.pure_fns.get(&f) {
            return p;
        }
        self.pure_fns.insert(f, true);
        let mut ok = true;
        let function = &self.program.functions[f];
        let mut calls = Vec::new();
        for s in &function.body {
            stmt_exprs(s, &mut |e| {
                pytap_script::check::walk(e, &mut |e| match &e.kind {
                    ExprKind::Global(_)
                    | ExprKind::Index(..)
                    | ExprKind::In(..)
                    | ExprKind::Ctx(_)
                    | ExprKind::Stat(..)
                    | ExprKind::Aggregate(..) => ok = false,
                    ExprKind::Assign(LValue::Global(_) | LValue::Index(..), ..) => ok = false,
                    ExprKind::Crement {
                        target: LValue::Global(_) | LValue::Index(..),
                        ..
                    } => ok = false,
                    ExprKind::Print(p) if !p.kind.is_sprint() || p.hist.is_some() => ok = false,
                    ExprKind::Builtin(b, _)
                        if b.needs() != Needs::Pure
                            && !matches!(b, Builtin::Execname | Builtin::Target | Builtin::Pp) =>
                    {
                        ok = false
                    }
                    ExprKind::Call(g, _) => calls.push(*g),
                    _ => {}
                })
            });
            if matches!(
                s.kind,
                StmtKind::Delete(Delete::Global(_) | Delete::Index(..))
            ) {
                ok = false;
            }
        }
        for g in calls {
            ok &= self.pure_fn(g);
        }
        self.pure_fns.insert(f, ok);
        ok
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Long(_) | ExprKind::Str(_) | ExprKind::Local(_) | ExprKind::Ctx(_) => {}
            ExprKind::Global(g) => self.touch(*g, true, false),
            ExprKind::Index(g, keys) | ExprKind::In(g, keys) => {
                self.touch(*g, true, false);
                self.keys(*g, keys);
            }
            ExprKind::Builtin(b, args) => {
                match b {
                    Builtin::Ppid => self.diags.push(unsupported(e.span, "`ppid()`")),
                    Builtin::Substr | Builtin::Stringat | Builtin::Strpos | Builtin::StrReplace | Builtin::Strtol | Builtin::Tokenize | Builtin::TokenizeNext | Builtin::TextStr => {
                        self.diags.push(
                            unsupported(e.span, &format!("`{}`", b.name()))
                                .hint("string functions run in pytap when their value is only printed: use it in printf's arguments"),
                        );
                    }
                    Builtin::Isinstr if !matches!(args.get(1).map(|a| &a.kind), Some(ExprKind::Str(_))) => {
                        self.diags.push(unsupported(e.span, "`isinstr` with a needle that is not a string literal"));
                    }
                    Builtin::ThreadIndent | Builtin::Indent => self.diags.push(
                        unsupported(e.span, &format!("`{}` outside printf's arguments", b.name()))
                            .hint(format!("print it: `printf(\"%s …\", {}(1), …)`; or use `{}_depth`", b.name(), b.name())),
                    ),
                    Builtin::ThreadIndentDepth => self.out.thread_indent = true,
                    Builtin::IndentDepth => self.out.indent = true,
                    Builtin::Log | Builtin::Warn | Builtin::Error | Builtin::Exit => {
                        self.diags.push(unsupported(e.span, &format!("`{}` inside an expression", b.name())));
                    }
                    _ => {}
                }
                args.iter().for_each(|a| self.expr(a));
            }
            ExprKind::Call(f, args) => {
                args.iter().for_each(|a| self.expr(a));
                if self.inlining.contains(f) {
                    self.diags.push(unsupported(e.span, "a recursive function"));
                    return;
                }
                self.inlining.push(*f);
                let function = &self.program.functions[*f];
                for s in &function.body {
                    self.stmt(s, false);
                }
                self.inlining.pop();
            }
            ExprKind::Unary(_, a) => self.expr(a),
            ExprKind::Binary(op, a, b) => {
                if matches!(op, BinOp::Div | BinOp::Mod) {
                    self.error_site(e, "division by 0");
                }
                self.expr(a);
                self.expr(b);
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) | ExprKind::Compare(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Concat(_) => self.diags.push(
                unsupported(e.span, "joining strings with `.`")
                    .hint("`.` runs in pytap when the string is only printed: use it in printf's arguments"),
            ),
            ExprKind::Ternary(c, a, b) => {
                self.expr(c);
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Assign(lv, op, v) => {
                if *op == AssignOp::Concat {
                    self.diags.push(unsupported(e.span, "`.=`"));
                }
                if let AssignOp::Compound(BinOp::Div | BinOp::Mod) = op {
                    self.error_site(e, "division by 0");
                }
                let additive = matches!(op, AssignOp::Compound(BinOp::Add | BinOp::Sub));
                self.lvalue(lv, additive);
                self.expr(v);
            }
            ExprKind::Crement { target, .. } => self.lvalue(target, true),
            ExprKind::Aggregate(lv, v) => {
                self.lvalue(lv, true);
                self.expr(v);
            }
            ExprKind::Stat(..) => self.diags.push(
                unsupported(e.span, "reading statistics (`@count`, …)")
                    .hint("statistics are gathered per CPU in the kernel: read them in `end` or timer probes"),
            ),
            ExprKind::Print(p) => {
                if p.kind.is_sprint() {
                    self.diags.push(
                        unsupported(e.span, &format!("`{}` outside printf's arguments", print_name(p.kind)))
                            .hint("it runs in pytap when its value is only printed"),
                    );
                } else {
                    self.diags.push(unsupported(e.span, "a print function inside an expression"));
                }
            }
        }
    }

    fn lvalue(&mut self, lv: &LValue, additive: bool) {
        match lv {
            LValue::Local(_) => {}
            LValue::Global(g) => self.touch(*g, false, additive),
            LValue::Index(g, keys) => {
                self.touch(*g, false, additive);
                self.keys(*g, keys);
            }
        }
    }

    fn error_site(&mut self, e: &Expr, message: &str) {
        if !self.out.error_of.contains_key(&e.id) {
            self.out.error_of.insert(e.id, self.out.errors.len());
            self.out.errors.push(ErrorSite {
                span: e.span,
                message: message.into(),
            });
        }
    }

    /// Userspace code: which globals it writes by key, and which timers
    /// delete whole.
    fn user_stmt(&mut self, s: &Stmt) {
        stmt_exprs(s, &mut |e| {
            pytap_script::check::walk(e, &mut |e| match &e.kind {
                ExprKind::Assign(LValue::Index(g, _), ..)
                | ExprKind::Crement {
                    target: LValue::Index(g, _),
                    ..
                }
                | ExprKind::Aggregate(LValue::Index(g, _), _) => {
                    self.access[*g].user_keyed_writes = true
                }
                _ => {}
            })
        });
        let _ = &self.program;
    }

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
            let address_keyed = global.is_array()
                && global.keys.contains(&Ty::Str)
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
                for &k in &global.keys {
                    key.push(match (k, address_keyed) {
                        (Ty::Str, true) => KeyPart::Address,
                        (Ty::Str, false) => KeyPart::Bytes,
                        _ => KeyPart::Long,
                    });
                }
            }
            let value = match global.value {
                Ty::Long => ValueLayout::Long,
                Ty::Str => ValueLayout::Str,
                Ty::Stats => ValueLayout::Stats { shape: global.hist },
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

fn print_name(kind: pytap_script::ast::PrintKind) -> &'static str {
    use pytap_script::ast::PrintKind as P;
    match kind {
        P::Sprint => "sprint",
        P::Sprintln => "sprintln",
        P::Sprintf => "sprintf",
        P::Sprintd => "sprintd",
        P::Sprintdln => "sprintdln",
        _ => "print",
    }
}
