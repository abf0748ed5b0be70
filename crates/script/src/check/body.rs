//! Bodies: names bound, types inferred, statements and expressions built
//! into [`ir`] (expressions are in [`super::exprs`]).

use std::collections::{HashMap, HashSet};

use super::{Catalog, Decls, Expanded, MarkerInfo, annotated};
use crate::ast;
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
            agg: g.agg.map(|(a, _)| a),
            stack_keys: g.stack_keys.clone(),
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
    /// D: the aggregating function, and where it was first used.
    pub agg: Option<(ast::AggFunc, Span)>,
    pub size: Option<u32>,
    pub init: Option<ir::Const>,
    /// Key positions some update keys with a stack (`@[jstack()]`).
    pub stack_keys: Vec<bool>,
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
        let declared = decl.ty.map(|t| (super::annotated(t), decl.name.span));
        let value = decl.init.as_ref().map(|(lit, span)| {
            (
                match lit {
                    ast::Literal::Num(_) => Ty::Long,
                    ast::Literal::Str(_) => Ty::Str,
                },
                *span,
            )
        });
        let value = value.or(declared);
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
            agg: None,
            stack_keys: Vec::new(),
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
        let function;
        let marker = match &p.point.kind {
            ir::PointKind::Marker { marker, .. } => self.catalog.markers.get(*marker),
            ir::PointKind::Function { ret, .. } => {
                function = MarkerInfo::of_function(*ret);
                Some(&function)
            }
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
        let mut point = p.point.clone();
        if let ir::PointKind::Timer { period_ns } = point.kind
            && p.sampled_with_context
            && reads_context(&body)
        {
            point.kind = ir::PointKind::Profile {
                hz: (1_000_000_000 / period_ns.max(1)).max(1),
            };
        }
        ir::Probe {
            point,
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

/// Whether `body` reads the thread a probe fires in (`pid()`,
/// `execname()`, a backtrace, a context variable): what makes a
/// `timer.hz(N)` probe sample every CPU, as SystemTap's fires in whatever
/// it interrupts, rather than run as one timer in pytap.
fn reads_context(body: &[ir::Stmt]) -> bool {
    let mut reads = false;
    for s in body {
        super::stmt_exprs(s, &mut |e| {
            super::walk(e, &mut |e| match &e.kind {
                ir::ExprKind::Builtin(b, _) if b.reads_thread() => reads = true,
                ir::ExprKind::Ctx(_) => reads = true,
                _ => {}
            })
        });
    }
    reads
}

/// `process("PATH").library("LIB")`, as much of it as was written.
fn process_text(binary: &ir::Binary, library: Option<&str>) -> String {
    let mut s = match binary {
        ir::Binary::Target => "process".to_string(),
        ir::Binary::Path(p) => format!("process(\"{p}\")"),
    };
    if let Some(l) = library {
        s.push_str(&format!(".library(\"{l}\")"));
    }
    s
}

/// `pp()`'s text for a point.
fn point_text(kind: &ir::PointKind, catalog: &Catalog) -> String {
    match kind {
        ir::PointKind::Begin => "begin".into(),
        ir::PointKind::End => "end".into(),
        ir::PointKind::Timer { period_ns } => format!("timer.ns({period_ns})"),
        ir::PointKind::Profile { hz } => format!("timer.profile.hz({hz})"),
        ir::PointKind::Marker {
            binary,
            library,
            marker,
        } => {
            let mut s = process_text(binary, library.as_deref());
            let name = catalog
                .markers
                .get(*marker)
                .map_or("?", |m| m.name.as_str());
            s.push_str(&format!(".mark(\"{name}\")"));
            s
        }
        ir::PointKind::Function {
            binary,
            library,
            function,
            ret,
        } => {
            let mut s = process_text(binary, library.as_deref());
            s.push_str(&format!(".function(\"{function}\")"));
            if *ret {
                s.push_str(".return");
            }
            s
        }
    }
}
