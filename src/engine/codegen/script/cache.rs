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

use pytap_ebpf::{BuildError, ProgramBuilder, Reg, Size};
use pytap_script::ir::{Builtin, Expr, ExprKind, GlobalId, LValue, Program, Stmt};

use super::placement::{KeyPart, Placement, ValueLayout};

/// The stack slots of a firing's kept addresses, by variable.
#[derive(Debug, Clone, Default)]
pub struct ThreadCache {
    slots: Vec<(GlobalId, i16)>,
}

impl ThreadCache {
    /// Gives each of `globals` a stack slot, zeroed (nothing looked up
    /// yet): at the firing's start, before anything can end it.
    pub fn prepare(
        b: &mut ProgramBuilder,
        globals: &BTreeSet<GlobalId>,
    ) -> Result<ThreadCache, BuildError> {
        if !globals.is_empty() {
            b.comment("addresses of thread-keyed variables, none looked up yet");
        }
        let mut slots = Vec::new();
        for &g in globals {
            let slot = b.alloc_stack(8, 8)?.off;
            b.st_imm(Size::DW, Reg::FP, slot, 0);
            slots.push((g, slot));
        }
        Ok(ThreadCache { slots })
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
}

/// `[tid()]`.
fn is_tid_key(keys: &[Expr]) -> bool {
    matches!(keys, [Expr { kind: ExprKind::Builtin(Builtin::Tid, args), .. }] if args.is_empty())
}

/// The variables worth keeping in a firing of `probes`: those read or
/// incremented at key `tid()` there (or in the functions they call), and
/// that are plain number or string hash maps keyed by one number.
pub fn worth_keeping<'a>(
    program: &'a Program,
    placement: &Placement,
    probes: impl Iterator<Item = &'a [Stmt]>,
) -> BTreeSet<GlobalId> {
    let mut found = BTreeSet::new();
    super::visit::each_expr(program, probes, &mut |e| {
        let (g, keys) = match &e.kind {
            ExprKind::Index(g, keys) | ExprKind::In(g, keys) => (*g, keys),
            ExprKind::Assign(LValue::Index(g, keys), ..)
            | ExprKind::Aggregate(LValue::Index(g, keys), _)
            | ExprKind::Stat(_, LValue::Index(g, keys))
            | ExprKind::Crement {
                target: LValue::Index(g, keys),
                ..
            } => (*g, keys),
            _ => return,
        };
        if is_tid_key(keys) {
            found.insert(g);
        }
    });
    found
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
