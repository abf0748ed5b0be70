//! A walk over every expression a firing can run: the bodies of a
//! marker's probes and, once each, the functions they call. The per-firing
//! analyses ([`super::cache`], [`super::firing`]) look at what it visits.

use std::collections::BTreeSet;

use pytap_script::check::walk;
use pytap_script::ir::{Expr, ExprKind, FuncId, Program, Stmt};

use super::placement::stmt_exprs;

/// Calls `f` on every expression of `bodies` and of the functions they
/// call (each function once, after the expression that first calls it),
/// outer expressions before their parts, in source order.
pub fn each_expr<'a>(
    program: &Program,
    bodies: impl Iterator<Item = &'a [Stmt]>,
    f: &mut dyn FnMut(&Expr),
) {
    let mut seen = BTreeSet::new();
    for body in bodies {
        statements(program, body, &mut seen, f);
    }
}

fn statements(
    program: &Program,
    body: &[Stmt],
    seen: &mut BTreeSet<FuncId>,
    f: &mut dyn FnMut(&Expr),
) {
    for s in body {
        stmt_exprs(s, &mut |top| {
            let mut called = Vec::new();
            walk(top, &mut |e| {
                f(e);
                if let ExprKind::Call(id, _) = e.kind {
                    called.push(id);
                }
            });
            for id in called {
                if seen.insert(id) {
                    statements(program, &program.functions[id].body, seen, f);
                }
            }
        });
    }
}
