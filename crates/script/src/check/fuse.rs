//! Adjacent `printf`s fused into one: `printf("a%d", x); printf("b%s",
//! y)` prints what `printf("a%db%s", x, y)` prints, and a kernel probe
//! then sends one record instead of two (the HOWTO's `call_stack.d`
//! prints each call with three). Only when the second's arguments are
//! pure, so nothing they do could have come between the two outputs.

use super::dead::pure;
use crate::ast::PrintKind;
use crate::ir::*;

/// Fuses the adjacent printfs of every probe and function of `program`.
pub(super) fn fuse_printfs(program: &mut Program) {
    for probe in &mut program.probes {
        fuse_block(&mut probe.body);
    }
    for f in &mut program.functions {
        fuse_block(&mut f.body);
    }
}

fn fuse_block(body: &mut Vec<Stmt>) {
    for s in body.iter_mut() {
        fuse_stmt(s);
    }
    let mut out: Vec<Stmt> = Vec::with_capacity(body.len());
    for s in body.drain(..) {
        if let (Some(prev), Some(next)) = (out.last_mut().and_then(printf_mut), printf(&s))
            && next.args.iter().all(pure)
        {
            let next = next.clone();
            let format = prev.format.as_mut().expect("a printf has a format");
            format
                .pieces
                .extend(next.format.expect("a printf has a format").pieces);
            prev.args.extend(next.args);
            continue;
        }
        out.push(s);
    }
    *body = out;
}

fn fuse_stmt(s: &mut Stmt) {
    match &mut s.kind {
        StmtKind::Block(b) => fuse_block(b),
        StmtKind::If(_, t, e) => {
            fuse_stmt(t);
            if let Some(e) = e {
                fuse_stmt(e);
            }
        }
        StmtKind::Loop { body, .. } => fuse_stmt(body),
        StmtKind::Foreach(f) => fuse_stmt(&mut f.body),
        _ => {}
    }
}

/// The printf a statement is, if it is one (and nothing else).
fn printf(s: &Stmt) -> Option<&Print> {
    match &s.kind {
        StmtKind::Expr(Expr {
            kind: ExprKind::Print(p),
            ..
        }) if p.kind == PrintKind::Printf && p.format.is_some() && p.hist.is_none() => Some(p),
        _ => None,
    }
}

fn printf_mut(s: &mut Stmt) -> Option<&mut Print> {
    match &mut s.kind {
        StmtKind::Expr(Expr {
            kind: ExprKind::Print(p),
            ..
        }) if p.kind == PrintKind::Printf && p.format.is_some() && p.hist.is_none() => Some(p),
        _ => None,
    }
}
