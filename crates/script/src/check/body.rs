//! Bodies: names bound, types inferred, statements and expressions built
//! into [`ir`] (expressions are in [`super::exprs`]).

use std::collections::{HashMap, HashSet};

use super::{Catalog, Decls, Expanded, MarkerInfo, annotated};
use crate::ast::{self, StmtKind as S};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{self, Ty};
use crate::source::Span;

/// How many times the bodies are walked to learn types, at most.
const MAX_ROUNDS: usize = 32;

/// Checks every expanded probe (and the functions they call) and builds
/// the program.
pub(super) fn check(
    decls: &Decls<'_>,
    probes: &[Expanded<'_>],
    catalog: &Catalog,
    args: &[String],
    diags: &mut Diagnostics,
) -> ir::Program {
    let mut w = Walker {
        decls,
        catalog,
        args,
        globals: Vec::new(),
        global_index: HashMap::new(),
        functions: Vec::new(),
        function_index: HashMap::new(),
        local_types: HashMap::new(),
        changed: false,
        final_pass: false,
        diags: Vec::new(),
        next_id: 0,
    };
    // The script's globals exist whether used or not, in declaration order.
    for name in &decls.global_order {
        if decls.globals[name].1 {
            w.global(name);
        }
    }
    let mut built = Vec::new();
    for round in 0..=MAX_ROUNDS {
        w.final_pass = round == MAX_ROUNDS || (round > 0 && !w.changed);
        w.changed = false;
        w.next_id = 0;
        w.diags.clear();
        built = probes
            .iter()
            .enumerate()
            .map(|(i, p)| w.probe(i, p))
            .collect::<Vec<_>>();
        let mut f = 0;
        while f < w.functions.len() {
            let function = w.function(f);
            w.functions[f].built = Some(function);
            f += 1;
        }
        if w.final_pass {
            break;
        }
    }
    // Errors first reported in source order, each once.
    let mut seen = HashSet::new();
    for d in w.diags.drain(..) {
        if seen.insert((d.span, d.message.clone())) {
            diags.push(d);
        }
    }
    let globals = w
        .globals
        .iter()
        .map(|g| ir::Global {
            name: g.name.clone(),
            span: g.span,
            value: g.value.map_or(Ty::Long, |(t, _)| t),
            keys: g
                .keys
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.unwrap_or(Ty::Long))
                .collect(),
            size: g.size,
            init: g.init.clone(),
            hist: g.hist.map(|(h, _)| h),
        })
        .collect();
    let functions = w
        .functions
        .iter_mut()
        .map(|f| f.built.take().expect("built in the last round"))
        .collect();
    let mut program = ir::Program {
        globals,
        functions,
        probes: built,
        exprs: w.next_id,
    };
    super::dead::prune(&mut program, diags);
    program
}

/// A global as learnt so far.
pub(super) struct GlobalState {
    pub name: String,
    pub span: Span,
    /// Value type, and where it was decided.
    pub value: Option<(Ty, Span)>,
    /// `None`: not known yet whether scalar or array; `Some([])`: scalar.
    pub keys: Option<Vec<Option<Ty>>>,
    pub hist: Option<(ir::HistShape, Span)>,
    pub size: Option<u32>,
    pub init: Option<ir::Const>,
}

/// A user function as learnt so far.
pub(super) struct FunctionState<'a> {
    pub decl: &'a ast::FunctionDecl,
    pub params: Vec<Option<Ty>>,
    pub ret: Option<Ty>,
    pub built: Option<ir::Function>,
}

/// Whose locals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    Probe(usize),
    Function(usize),
}

/// The body being walked.
pub(super) struct Scope<'m> {
    pub owner: Owner,
    pub locals: Vec<(String, Span)>,
    pub marker: Option<&'m MarkerInfo>,
    pub loops: usize,
    /// `pp()` of a probe.
    pub point: Option<String>,
}

/// A variable whose type can be learnt.
#[derive(Debug, Clone)]
pub(super) enum Var {
    Local(Owner, String),
    Global(usize),
    Key(usize, usize),
    Func(usize),
    Param(usize, usize),
}

pub(super) struct Walker<'a, 'd> {
    pub decls: &'d Decls<'a>,
    pub catalog: &'d Catalog,
    pub args: &'d [String],
    pub globals: Vec<GlobalState>,
    pub global_index: HashMap<String, usize>,
    pub functions: Vec<FunctionState<'a>>,
    pub function_index: HashMap<String, usize>,
    pub local_types: HashMap<(Owner, String), (Ty, Span)>,
    pub changed: bool,
    pub final_pass: bool,
    pub diags: Vec<Diagnostic>,
    pub next_id: u32,
}

impl<'a> Walker<'a, '_> {
    /// Reports an error (kept only in the last round, when types are final).
    pub fn error(&mut self, d: Diagnostic) {
        if self.final_pass {
            self.diags.push(d);
        }
    }

    pub fn id(&mut self) -> ir::ExprId {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The global `name`, added on first reference (a tapset's globals
    /// exist only if referred to).
    pub fn global(&mut self, name: &str) -> Option<usize> {
        if let Some(&i) = self.global_index.get(name) {
            return Some(i);
        }
        let (decl, _) = self.decls.globals.get(name)?;
        let init = decl.init.as_ref().map(|(lit, _)| match lit {
            ast::Literal::Num(n) => ir::Const::Long(*n),
            ast::Literal::Str(s) => ir::Const::Str(s.clone()),
        });
        let value = decl.init.as_ref().map(|(lit, span)| {
            (
                match lit {
                    ast::Literal::Num(_) => Ty::Long,
                    ast::Literal::Str(_) => Ty::Str,
                },
                *span,
            )
        });
        self.globals.push(GlobalState {
            name: name.to_string(),
            span: decl.name.span,
            value,
            keys: if decl.size.is_some() {
                None
            } else if decl.init.is_some() {
                Some(Vec::new())
            } else {
                None
            },
            hist: None,
            size: decl.size.map(|s| s.min(i64::from(u32::MAX)) as u32),
            init,
        });
        self.global_index
            .insert(name.to_string(), self.globals.len() - 1);
        Some(self.globals.len() - 1)
    }

    /// The user function `name`, added on first call.
    pub fn function_id(&mut self, name: &str) -> Option<usize> {
        if let Some(&i) = self.function_index.get(name) {
            return Some(i);
        }
        let decl = *self.decls.functions.get(name)?;
        self.functions.push(FunctionState {
            decl,
            params: decl.params.iter().map(|p| p.ty.map(annotated)).collect(),
            ret: decl.ret.map(annotated),
            built: None,
        });
        self.changed = true;
        self.function_index
            .insert(name.to_string(), self.functions.len() - 1);
        Some(self.functions.len() - 1)
    }

    /// The type of a variable, if known.
    pub fn var_type(&self, var: &Var) -> Option<Ty> {
        match var {
            Var::Local(owner, name) => self
                .local_types
                .get(&(*owner, name.clone()))
                .map(|(t, _)| *t),
            Var::Global(g) => self.globals[*g].value.map(|(t, _)| t),
            Var::Key(g, k) => self.globals[*g]
                .keys
                .as_ref()
                .and_then(|ks| ks.get(*k).copied().flatten()),
            Var::Func(f) => self.functions[*f].ret,
            Var::Param(f, p) => self.functions[*f].params.get(*p).copied().flatten(),
        }
    }

    /// Learns that `var` has type `ty` (from the expression at `span`); a
    /// different type learnt before is an error.
    pub fn learn(&mut self, var: &Var, ty: Ty, span: Span) {
        if let Some(known) = self.var_type(var) {
            if known != ty {
                let (what, decided) = self.describe(var);
                let d = Diagnostic::error(
                    span,
                    format!(
                        "{what} is {} here, but {} elsewhere",
                        ty.name(),
                        known.name()
                    ),
                );
                let d = match decided {
                    Some(at) if at != span => {
                        d.note(at, format!("{what} became {} here", known.name()))
                    }
                    _ => d,
                };
                self.error(d);
            }
            return;
        }
        self.changed = true;
        match var {
            Var::Local(owner, name) => {
                self.local_types.insert((*owner, name.clone()), (ty, span));
            }
            Var::Global(g) => self.globals[*g].value = Some((ty, span)),
            Var::Key(g, k) => {
                if let Some(slot) = self.globals[*g].keys.as_mut().and_then(|ks| ks.get_mut(*k)) {
                    *slot = Some(ty);
                }
            }
            Var::Func(f) => self.functions[*f].ret = Some(ty),
            Var::Param(f, p) => {
                if let Some(slot) = self.functions[*f].params.get_mut(*p) {
                    *slot = Some(ty);
                }
            }
        }
    }

    fn describe(&self, var: &Var) -> (String, Option<Span>) {
        match var {
            Var::Local(owner, name) => (
                format!("`{name}`"),
                self.local_types
                    .get(&(*owner, name.clone()))
                    .map(|(_, s)| *s),
            ),
            Var::Global(g) => (
                format!("`{}`", self.globals[*g].name),
                self.globals[*g].value.map(|(_, s)| s),
            ),
            Var::Key(g, k) => (
                format!("key {} of `{}`", k + 1, self.globals[*g].name),
                None,
            ),
            Var::Func(f) => (
                format!("the value of `{}`", self.functions[*f].decl.name.name),
                None,
            ),
            Var::Param(f, p) => (
                format!(
                    "parameter `{}` of `{}`",
                    self.functions[*f].decl.params[*p].name.name, self.functions[*f].decl.name.name
                ),
                None,
            ),
        }
    }

    /// The slot of local `name` in `scope`, created on first use.
    pub fn local(&mut self, scope: &mut Scope<'_>, name: &str, span: Span) -> ir::LocalId {
        if let Some(i) = scope.locals.iter().position(|(n, _)| n == name) {
            return i;
        }
        scope.locals.push((name.to_string(), span));
        scope.locals.len() - 1
    }

    fn locals_of(&self, scope: &Scope<'_>) -> Vec<ir::Local> {
        scope
            .locals
            .iter()
            .map(|(name, _)| ir::Local {
                name: name.clone(),
                ty: self
                    .local_types
                    .get(&(scope.owner, name.clone()))
                    .map_or(Ty::Long, |(t, _)| *t),
            })
            .collect()
    }

    fn probe(&mut self, index: usize, p: &Expanded<'_>) -> ir::Probe {
        let marker = match &p.point.kind {
            ir::PointKind::Marker { marker, .. } => self.catalog.markers.get(*marker),
            _ => None,
        };
        let mut scope = Scope {
            owner: Owner::Probe(index),
            locals: Vec::new(),
            marker,
            loops: 0,
            point: Some(point_text(&p.point.kind, self.catalog)),
        };
        let mut body = Vec::new();
        for block in &p.bodies {
            for s in &block.stmts {
                body.push(self.stmt(s, &mut scope));
            }
        }
        ir::Probe {
            point: p.point.clone(),
            locals: self.locals_of(&scope),
            body,
            span: p.decl.span,
            decl: p.decl_index,
        }
    }

    fn function(&mut self, f: usize) -> ir::Function {
        let decl = self.functions[f].decl;
        let mut scope = Scope {
            owner: Owner::Function(f),
            locals: Vec::new(),
            marker: None,
            loops: 0,
            point: None,
        };
        for (i, p) in decl.params.iter().enumerate() {
            self.local(&mut scope, &p.name.name, p.name.span);
            if let Some(t) = self.functions[f].params[i] {
                self.learn(
                    &Var::Local(scope.owner, p.name.name.clone()),
                    t,
                    p.name.span,
                );
            }
            if let Some(t) = self.var_type(&Var::Local(scope.owner, p.name.name.clone())) {
                self.learn(&Var::Param(f, i), t, p.name.span);
            }
        }
        let body = decl
            .body
            .stmts
            .iter()
            .map(|s| self.stmt(s, &mut scope))
            .collect();
        ir::Function {
            name: decl.name.name.clone(),
            params: decl.params.len(),
            ret: self.functions[f].ret,
            locals: self.locals_of(&scope),
            body,
            span: decl.name.span,
        }
    }

    pub fn stmt(&mut self, s: &ast::Stmt, sc: &mut Scope<'_>) -> ir::Stmt {
        let kind = match &s.kind {
            S::Block(b) => ir::StmtKind::Block(b.stmts.iter().map(|s| self.stmt(s, sc)).collect()),
            S::Expr(e) => ir::StmtKind::Expr(self.expr(e, sc).0),
            S::If { cond, then, els } => {
                let c = self.condition(cond, sc);
                let t = self.stmt(then, sc);
                let e = els.as_ref().map(|e| Box::new(self.stmt(e, sc)));
                ir::StmtKind::If(c, Box::new(t), e)
            }
            S::While { cond, body } => {
                let c = self.condition(cond, sc);
                sc.loops += 1;
                let b = self.stmt(body, sc);
                sc.loops -= 1;
                ir::StmtKind::Loop {
                    cond: Some(c),
                    body: Box::new(b),
                    step: None,
                }
            }
            S::For {
                init,
                cond,
                step,
                body,
            } => {
                let init = init.as_ref().map(|e| self.expr(e, sc).0);
                let cond = cond.as_ref().map(|c| self.condition(c, sc));
                let step = step.as_ref().map(|e| self.expr(e, sc).0);
                sc.loops += 1;
                let b = self.stmt(body, sc);
                sc.loops -= 1;
                let the_loop = ir::Stmt {
                    kind: ir::StmtKind::Loop {
                        cond,
                        body: Box::new(b),
                        step,
                    },
                    span: s.span,
                };
                let mut stmts = Vec::new();
                if let Some(init) = init {
                    stmts.push(ir::Stmt {
                        span: init.span,
                        kind: ir::StmtKind::Expr(init),
                    });
                }
                stmts.push(the_loop);
                ir::StmtKind::Block(stmts)
            }
            S::Foreach(f) => self.foreach(f, s.span, sc),
            S::Break | S::Continue => {
                if sc.loops == 0 {
                    let word = if matches!(s.kind, S::Break) {
                        "break"
                    } else {
                        "continue"
                    };
                    self.error(Diagnostic::error(
                        s.span,
                        format!("`{word}` outside a loop"),
                    ));
                }
                if matches!(s.kind, S::Break) {
                    ir::StmtKind::Break
                } else {
                    ir::StmtKind::Continue
                }
            }
            S::Next => ir::StmtKind::Next,
            S::Return(value) => {
                let Owner::Function(f) = sc.owner else {
                    self.error(
                        Diagnostic::error(s.span, "`return` outside a function")
                            .hint("`next` leaves a probe"),
                    );
                    return ir::Stmt {
                        kind: ir::StmtKind::Next,
                        span: s.span,
                    };
                };
                let value = value.as_ref().map(|e| {
                    let (ex, ty) = self.expr(e, sc);
                    match ty {
                        Some(t) => self.learn(&Var::Func(f), t, e.span),
                        None => {
                            if let Some(t) = self.var_type(&Var::Func(f)) {
                                self.learn_expr(e, t, sc);
                            }
                        }
                    }
                    ex
                });
                ir::StmtKind::Return(value)
            }
            S::Delete(e) => self.delete(e, sc),
            S::Try => ir::StmtKind::Block(Vec::new()),
            S::Empty => ir::StmtKind::Block(Vec::new()),
        };
        ir::Stmt { kind, span: s.span }
    }

    /// A condition: a number (strings are not true or false).
    pub fn condition(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> ir::Expr {
        let (ex, ty) = self.expr(e, sc);
        self.expect(e, ty, Ty::Long, "this condition", sc);
        ex
    }

    fn delete(&mut self, e: &ast::Expr, sc: &mut Scope<'_>) -> ir::StmtKind {
        match &e.kind {
            ast::ExprKind::Name(name) => {
                if let Some(g) = self.global(name) {
                    return ir::StmtKind::Delete(ir::Delete::Global(g));
                }
                let l = self.local(sc, name, e.span);
                ir::StmtKind::Delete(ir::Delete::Local(l))
            }
            ast::ExprKind::Index { array, keys } => {
                let Some((g, keys)) = self.index(array, keys, sc) else {
                    return ir::StmtKind::Block(Vec::new());
                };
                ir::StmtKind::Delete(ir::Delete::Index(g, keys))
            }
            _ => {
                self.error(Diagnostic::error(
                    e.span,
                    "`delete` takes a variable, an array or an array element",
                ));
                ir::StmtKind::Block(Vec::new())
            }
        }
    }

    fn foreach(&mut self, f: &ast::Foreach, span: Span, sc: &mut Scope<'_>) -> ir::StmtKind {
        if let Some(slice) = f.slice {
            self.error(Diagnostic::error(
                slice,
                "`foreach` over a slice of an array is not supported yet",
            ));
        }
        let Some(g) = self.array_global(&f.array) else {
            return ir::StmtKind::Block(Vec::new());
        };
        self.shape(g, f.keys.len(), f.array.span);
        let keys: Vec<_> = f
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let l = self.local(sc, &k.name, k.span);
                let var = Var::Local(sc.owner, k.name.clone());
                if let Some(t) = self.var_type(&Var::Key(g, i)) {
                    self.learn(&var, t, k.span);
                } else if let Some(t) = self.var_type(&var) {
                    self.learn(&Var::Key(g, i), t, k.span);
                }
                l
            })
            .collect();
        let value_ty = self.var_type(&Var::Global(g));
        let value = f.value.as_ref().map(|v| {
            let l = self.local(sc, &v.name, v.span);
            let var = Var::Local(sc.owner, v.name.clone());
            match value_ty {
                Some(Ty::Stats) => self.error(Diagnostic::error(
                    v.span,
                    format!(
                        "`{}` holds statistics: read them with `@count({}[…])` and the like",
                        f.array.name, f.array.name
                    ),
                )),
                Some(t) => self.learn(&var, t, v.span),
                None => {
                    if let Some(t) = self.var_type(&var) {
                        self.learn(&Var::Global(g), t, v.span);
                    }
                }
            }
            l
        });
        let sort = f.sort.map(|s| {
            if s.column > f.keys.len() {
                self.error(Diagnostic::error(
                    span,
                    "the sort column is not one of the keys",
                ));
            }
            if s.aggregate.is_some() && value_ty != Some(Ty::Stats) {
                self.error(Diagnostic::error(
                    span,
                    "sorting on a statistic (`@sum +`) needs an array of statistics",
                ));
            }
            ir::Sort {
                column: s.column,
                ascending: s.ascending,
                stat: s.aggregate.unwrap_or(ast::StatOp::Count),
            }
        });
        let limit = f.limit.as_ref().map(|l| {
            let (ex, ty) = self.expr(l, sc);
            self.expect(l, ty, Ty::Long, "`limit`", sc);
            ex
        });
        sc.loops += 1;
        let body = self.stmt(&f.body, sc);
        sc.loops -= 1;
        ir::StmtKind::Foreach(Box::new(ir::Foreach {
            array: g,
            keys,
            value,
            sort,
            limit,
            body,
        }))
    }

    /// A global array named `name`, or an error saying why not.
    pub fn array_global(&mut self, name: &ast::Ident) -> Option<usize> {
        match self.global(&name.name) {
            Some(g) => Some(g),
            None => {
                self.error(
                    Diagnostic::error(name.span, format!("`{}` is not a global array", name.name))
                        .hint(format!("declare it: `global {}`", name.name)),
                );
                None
            }
        }
    }

    /// Records that global `g` is indexed with `arity` keys (0: a scalar).
    pub fn shape(&mut self, g: usize, arity: usize, span: Span) {
        let name = self.globals[g].name.clone();
        match &self.globals[g].keys {
            None => {
                self.globals[g].keys = Some(vec![None; arity]);
                self.changed = true;
            }
            Some(keys) if keys.len() != arity => {
                let msg = match (keys.len(), arity) {
                    (0, _) => format!("`{name}` is a scalar here and an array elsewhere"),
                    (_, 0) => format!("`{name}` is an array: use it with keys, `{name}[…]`"),
                    (n, a) => format!(
                        "`{name}` has {n} key{} elsewhere, {a} here",
                        if n == 1 { "" } else { "s" }
                    ),
                };
                self.error(Diagnostic::error(span, msg));
            }
            Some(_) => {}
        }
    }
}

/// `pp()`'s text for a point.
fn point_text(kind: &ir::PointKind, catalog: &Catalog) -> String {
    match kind {
        ir::PointKind::Begin => "begin".into(),
        ir::PointKind::End => "end".into(),
        ir::PointKind::Timer { period_ns } => format!("timer.ns({period_ns})"),
        ir::PointKind::Marker {
            binary,
            library,
            marker,
        } => {
            let mut s = match binary {
                ir::Binary::Target => "process".to_string(),
                ir::Binary::Path(p) => format!("process(\"{p}\")"),
            };
            if let Some(l) = library {
                s.push_str(&format!(".library(\"{l}\")"));
            }
            let name = catalog
                .markers
                .get(*marker)
                .map_or("?", |m| m.name.as_str());
            s.push_str(&format!(".mark(\"{name}\")"));
            s
        }
    }
}
