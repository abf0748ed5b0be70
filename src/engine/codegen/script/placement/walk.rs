//! The walk over kernel code (marker probes and the functions they
//! call, inlined): what each global undergoes there, which constructs the
//! kernel cannot run, output sites and their leaves, error sites.

use pytap_script::ast::BinOp;
use pytap_script::builtins::{Builtin, Needs};
use pytap_script::ir::*;

use super::*;

impl Placer<'_> {
    pub(super) fn stmt(&mut self, s: &Stmt, top: bool) {
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
        for (i, k) in keys.iter().enumerate() {
            if is_stack(k) {
                mark(&mut self.access[g].stack_keys, i);
                self.stack(k);
                continue;
            }
            if k.ty == Ty::Str {
                mark(&mut self.access[g].string_keys, i);
                if !self.is_address(k) {
                    self.access[g].content_keys = true;
                }
            }
            self.expr(k);
        }
        let a = &self.access[g];
        if a.stack_keys
            .iter()
            .zip(&a.string_keys)
            .any(|(stack, string)| *stack && *string)
            && let Some(k) = keys.first()
        {
            self.diags.push(unsupported(
                k.span,
                "an array keyed by stacks at one place and by other strings at another",
            ));
        }
    }

    /// A stack the probe walks (a key or a printed value).
    fn stack(&mut self, e: &Expr) {
        self.out.stacks = true;
        if matches!(e.kind, ExprKind::Builtin(Builtin::Ustack, _)) {
            self.out.native_stacks = true;
        }
        // The walk's sample carries the firing's time.
        self.out.timestamp = true;
        if let ExprKind::Builtin(_, args) = &e.kind
            && !matches!(args.first().map(|a| &a.kind), Some(ExprKind::Long(n)) if *n >= 0)
        {
            self.diags.push(unsupported(
                e.span,
                "a stack's frame count that is not a non-negative constant",
            ));
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
                LeafKind::Stack => self.stack(&leaf.expr),
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
            // pytap knows these from the record (the thread's name then, the
            // process's parent now).
            ExprKind::Builtin(
                Builtin::Execname
                | Builtin::Target
                | Builtin::Pp
                | Builtin::Ppid
                | Builtin::Probefunc
                | Builtin::Probemod
                | Builtin::ProbeId,
                _,
            ) => {
                return;
            }
            ExprKind::Builtin(Builtin::Pystack | Builtin::Ustack, _) => {
                out.push(Leaf {
                    expr: e.clone(),
                    kind: LeafKind::Stack,
                });
                return;
            }
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
                            && !matches!(
                                b,
                                Builtin::Execname
                                    | Builtin::Target
                                    | Builtin::Pp
                                    | Builtin::Probefunc
                                    | Builtin::Probemod
                                    | Builtin::ProbeId
                            ) =>
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
            ExprKind::Builtin(b, args) => self.builtin(e, *b, args),
            ExprKind::AggAction { .. } => self.diags.push(
                unsupported(e.span, "`printa`, `clear`, `trunc` and `normalize` in a marker clause")
                    .hint("they run in pytap: use them in BEGIN, END or tick-N clauses"),
            ),
            ExprKind::Call(f, args) => self.call(e, *f, args),
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
            ExprKind::Print(p) => self.print(e, p),
        }
    }

    /// A built-in in a marker probe: those the kernel cannot run, and the
    /// firing values the probe needs kept.
    fn builtin(&mut self, e: &Expr, b: Builtin, args: &[Expr]) {
        match b {
            Builtin::Ppid => self.diags.push(
                unsupported(e.span, "`ppid()` outside printf's arguments")
                    .hint("printed, it is read by pytap"),
            ),
            Builtin::Probefunc | Builtin::Probemod | Builtin::ProbeId => self.diags.push(
                unsupported(e.span, &format!("`{}` outside what is printed", b.shown()))
                    .hint("printed (printf, trace), it is known by pytap from the site that fired"),
            ),
            Builtin::Substr
            | Builtin::Stringat
            | Builtin::Strpos
            | Builtin::StrReplace
            | Builtin::Strtol
            | Builtin::Tokenize
            | Builtin::TokenizeNext
            | Builtin::TextStr
            | Builtin::Basename
            | Builtin::Dirname
            | Builtin::Strstr
            | Builtin::DSubstr => {
                self.diags.push(
                    unsupported(e.span, &format!("`{}`", b.shown()))
                        .hint("string functions run in pytap when their value is only printed: use it in printf's arguments"),
                );
            }
            Builtin::Isinstr if !matches!(args.get(1).map(|a| &a.kind), Some(ExprKind::Str(_))) => {
                self.diags.push(unsupported(
                    e.span,
                    "`isinstr` with a needle that is not a string literal",
                ));
            }
            Builtin::ThreadIndent | Builtin::Indent => self.diags.push(
                unsupported(
                    e.span,
                    &format!("`{}` outside printf's arguments", b.name()),
                )
                .hint(format!(
                    "print it: `printf(\"%s …\", {}(1), …)`; or use `{}_depth`",
                    b.name(),
                    b.name()
                )),
            ),
            Builtin::Pystack | Builtin::Ustack => self.diags.push(
                unsupported(e.span, "a stack that is not a key or printed")
                    .hint("use it as an aggregation's key (`@[jstack()] = count()`) or print it (`trace(jstack())`, `printf(\"%s\", …)`)"),
            ),
            Builtin::Timestamp => self.out.timestamp = true,
            Builtin::ThreadIndentDepth => self.out.thread_indent = true,
            Builtin::IndentDepth => self.out.indent = true,
            Builtin::Log | Builtin::Warn | Builtin::Error | Builtin::Exit => {
                self.diags.push(unsupported(
                    e.span,
                    &format!("`{}` inside an expression", b.name()),
                ));
            }
            _ => {}
        }
        args.iter().for_each(|a| self.expr(a));
    }

    /// A user function's call: its body is walked where it is inlined.
    fn call(&mut self, e: &Expr, f: FuncId, args: &[Expr]) {
        args.iter().for_each(|a| self.expr(a));
        if self.inlining.contains(&f) {
            self.diags.push(unsupported(e.span, "a recursive function"));
            return;
        }
        self.inlining.push(f);
        let function = &self.program.functions[f];
        for s in &function.body {
            self.stmt(s, false);
        }
        self.inlining.pop();
    }

    /// A print function inside an expression.
    fn print(&mut self, e: &Expr, p: &Print) {
        if p.kind.is_sprint() {
            self.diags.push(
                unsupported(
                    e.span,
                    &format!("`{}` outside printf's arguments", print_name(p.kind)),
                )
                .hint("it runs in pytap when its value is only printed"),
            );
        } else {
            self.diags
                .push(unsupported(e.span, "a print function inside an expression"));
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
    pub(super) fn user_stmt(&mut self, s: &Stmt) {
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

/// `jstack()` / `sprint_pybacktrace()`, `ustack()` / `sprint_ubacktrace()`.
fn is_stack(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Builtin(Builtin::Pystack | Builtin::Ustack, _)
    )
}

/// Sets position `i` of `marks`.
fn mark(marks: &mut Vec<bool>, i: usize) {
    if marks.len() <= i {
        marks.resize(i + 1, false);
    }
    marks[i] = true;
}
