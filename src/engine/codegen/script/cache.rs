//! One hash lookup per firing for thread-keyed variables: D's `self->x`
//! and any `x[tid()]`.
//!
//! A probe that reads `self->indent` and then increments it, as the
//! HOWTO's `call_stack.d` does on every call, would look the same element
//! up twice. The first lookup in a firing keeps the value's address in a
//! stack slot (zeroed when the firing starts: the marker's probes run one
//! after another, so the slot is shared by all of them), and later reads,
//! `in` tests and increments of the same variable at key `tid()` use it.
//!
//! Why the address stays right for the whole firing:
//! - the key is the same: `tid()` is the firing's thread, read once;
//! - the element stays in place: a hash map's element moves only when it
//!   is replaced (`map_update_elem` on an existing key puts a new element
//!   in its bucket) or deleted. Every update and delete of the variable in
//!   this firing forgets the address, so the next access looks it up
//!   again. Another CPU cannot replace or delete this thread's element
//!   meanwhile, because only probes running on this thread write the key
//!   `tid()`, and a thread runs one probe at a time;
//! - a lookup that finds nothing keeps nothing (the slot stays 0), so an
//!   element inserted later in the firing is found by the next lookup.
//!
//! Only plain (not swapped) number and string variables are kept: a swapped
//! variable's map can change while the firing runs.

use std::collections::BTreeSet;

use pytap_script::ir::{Builtin, Delete, Expr, ExprKind, LValue, Program, Stmt, StmtKind};

use super::placement::{KeyPart, Placement, ValueLayout};
use pytap_script::ir::GlobalId;

/// The stack slots of a firing's kept addresses, by variable.
#[derive(Debug, Clone, Default)]
pub struct ThreadCache {
    slots: Vec<(GlobalId, i16)>,
}

impl ThreadCache {
    /// Gives each variable a slot from `slot` (the caller allocates them
    /// and zeroes them when the firing starts).
    pub fn new(globals: &BTreeSet<GlobalId>, mut slot: impl FnMut() -> i16) -> ThreadCache {
        ThreadCache {
            slots: globals.iter().map(|&g| (g, slot())).collect(),
        }
    }

    /// The slot keeping `g`'s element at key `tid()`, when `keys` is
    /// exactly `[tid()]` and `g` is kept.
    pub fn slot(&self, g: GlobalId, keys: &[Expr]) -> Option<i16> {
        if !is_tid_key(keys) {
            return None;
        }
        self.of(g)
    }

    /// The slot of `g`, whatever the key (updates and deletes forget it).
    pub fn of(&self, g: GlobalId) -> Option<i16> {
        self.slots.iter().find(|(k, _)| *k == g).map(|(_, s)| *s)
    }

    /// The slots, for zeroing.
    pub fn slots(&self) -> impl Iterator<Item = i16> + '_ {
        self.slots.iter().map(|(_, s)| *s)
    }
}

/// `[tid()]`.
fn is_tid_key(keys: &[Expr]) -> bool {
    matches!(keys, [Expr { kind: ExprKind::Builtin(Builtin::Tid, args), .. }] if args.is_empty())
}

/// The variables worth keeping in a firing of `probes`: those read or
/// incremented at key `tid()` there (or in the functions they call), and
/// that are plain number or string hash maps keyed by one number.
pub fn worth_keeping<'a>(
    program: &Program,
    placement: &Placement,
    probes: impl Iterator<Item = &'a [Stmt]>,
) -> BTreeSet<GlobalId> {
    let mut walk = Walk {
        program,
        found: BTreeSet::new(),
        functions: BTreeSet::new(),
    };
    for body in probes {
        body.iter().for_each(|s| walk.stmt(s));
    }
    walk.found
        .into_iter()
        .filter(|&g| {
            placement
                .globals
                .get(g)
                .and_then(|k| k.as_ref())
                .is_some_and(|k| {
                    k.key == [KeyPart::Long]
                        && k.swap_slot.is_none()
                        && matches!(k.value, ValueLayout::Long | ValueLayout::Str)
                })
        })
        .collect()
}

struct Walk<'a> {
    program: &'a Program,
    found: BTreeSet<GlobalId>,
    functions: BTreeSet<usize>,
}

impl Walk<'_> {
    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) => self.expr(e),
            StmtKind::Block(b) => b.iter().for_each(|s| self.stmt(s)),
            StmtKind::If(c, t, e) => {
                self.expr(c);
                self.stmt(t);
                if let Some(e) = e {
                    self.stmt(e);
                }
            }
            StmtKind::Loop { cond, body, step } => {
                cond.iter().chain(step).for_each(|e| self.expr(e));
                self.stmt(body);
            }
            StmtKind::Foreach(f) => {
                f.limit.iter().for_each(|e| self.expr(e));
                self.stmt(&f.body);
            }
            StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Delete(Delete::Index(_, keys)) => keys.iter().for_each(|e| self.expr(e)),
            StmtKind::Break
            | StmtKind::Continue
            | StmtKind::Next
            | StmtKind::Return(None)
            | StmtKind::Delete(_) => {}
        }
    }

    fn lvalue(&mut self, lv: &LValue) {
        if let LValue::Index(g, keys) = lv {
            self.index(*g, keys);
        }
    }

    fn index(&mut self, g: GlobalId, keys: &[Expr]) {
        if is_tid_key(keys) {
            self.found.insert(g);
        }
        keys.iter().for_each(|e| self.expr(e));
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Index(g, keys) | ExprKind::In(g, keys) => self.index(*g, keys),
            ExprKind::Builtin(_, args) | ExprKind::Concat(args) => {
                args.iter().for_each(|e| self.expr(e))
            }
            ExprKind::Call(f, args) => {
                args.iter().for_each(|e| self.expr(e));
                if self.functions.insert(*f) {
                    let program = self.program;
                    program.functions[*f].body.iter().for_each(|s| self.stmt(s));
                }
            }
            ExprKind::Unary(_, a) => self.expr(a),
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Compare(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Ternary(c, a, b) => {
                self.expr(c);
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Assign(lv, _, v) | ExprKind::Aggregate(lv, v) => {
                self.lvalue(lv);
                self.expr(v);
            }
            ExprKind::Crement { target, .. } => self.lvalue(target),
            ExprKind::Stat(_, lv) => self.lvalue(lv),
            ExprKind::Print(p) => p.args.iter().for_each(|e| self.expr(e)),
            ExprKind::AggAction { arg, .. } => arg.iter().for_each(|e| self.expr(e)),
            ExprKind::Long(_)
            | ExprKind::Str(_)
            | ExprKind::Local(_)
            | ExprKind::Global(_)
            | ExprKind::Ctx(_) => {}
        }
    }
}
