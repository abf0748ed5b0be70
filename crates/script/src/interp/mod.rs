//! The interpreter: runs compiled bodies in userspace.
//!
//! `begin`, `end` and timer bodies always run here (SystemTap's BPF
//! backend runs them in a userspace interpreter too), and so can any
//! probe body whose events do not come from BPF. pytap's engine also
//! evaluates a kernel probe's `printf` arguments here, from the values the
//! probe sent ([`Interp::overrides`]), so string work that only formats
//! output never runs in the kernel.
//!
//! What the body reads of the world comes through [`Context`] (the firing
//! thread, its memory, the clock) and [`Store`] (globals); what it prints
//! goes to [`Output`].

use std::collections::HashMap;

use crate::ast::UnOp;

pub mod aggs;
mod builtins;
mod ops;
mod print;
mod world;
use crate::ir::*;
use crate::source::Span;
use crate::store::StoreError;
use crate::value::{Stats, Value};
pub use builtins::{indent_step, indent_text, text_str};
pub use ops::{arith, compare, sort_entries};
pub use world::{Context, Output, ProbeInfo, World};

/// Statements a body may run before it is stopped (a loop that never
/// ends must not hang pytap).
pub const MAX_STEPS: u64 = 10_000_000;

/// How deep user functions may call each other.
pub const MAX_NESTING: usize = 64;

/// A run-time error: the run ends, as in SystemTap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// Where.
    pub span: Span,
    /// What.
    pub message: String,
}

/// What a statement did to the flow of control.
enum Flow {
    Normal,
    Break,
    Continue,
    Next,
    Return(Value),
}

/// Interpreter state that lives across probe runs.
#[derive(Debug, Default)]
pub struct Interp {
    /// `thread_indent` counters and time bases, by thread.
    indent: HashMap<i64, (i64, i64)>,
    /// `indent()`'s.
    global_indent: (i64, i64),
    /// `tokenize`'s input and position.
    tokens: Vec<u8>,
    token_at: usize,
    /// Set by `exit()`.
    pub exit_requested: bool,
    /// Values given for expressions instead of evaluating them (what a
    /// kernel probe computed at the marker).
    pub overrides: Overrides,
    /// The output a print builds (reused: prints run for every record a
    /// kernel probe sends).
    print_buf: Vec<u8>,
    steps: u64,
    depth: usize,
    /// D: aggregations `printa` printed (not printed again at the end).
    pub printed: std::collections::HashSet<GlobalId>,
    /// D: `normalize`'s divisors.
    pub normal: HashMap<GlobalId, i64>,
    /// D: keyless aggregations `clear()` zeroed (still printed, as 0).
    pub cleared: std::collections::HashSet<GlobalId>,
}

/// Values given for expressions, by expression: a handful per output
/// (the values one record carries), looked up at every expression
/// evaluated, so a short list searched in order rather than a hash map.
#[derive(Debug, Default)]
pub struct Overrides(Vec<(ExprId, Value)>);

impl Overrides {
    /// The value given for `id`, if any.
    pub fn get(&self, id: ExprId) -> Option<&Value> {
        self.0.iter().find(|(e, _)| *e == id).map(|(_, v)| v)
    }

    /// Gives `id` the value `v`.
    pub fn insert(&mut self, id: ExprId, v: Value) {
        match self.0.iter_mut().find(|(e, _)| *e == id) {
            Some(slot) => slot.1 = v,
            None => self.0.push((id, v)),
        }
    }

    /// Forgets every value (keeping the room).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

fn err(span: Span, message: impl Into<String>) -> RunError {
    RunError {
        span,
        message: message.into(),
    }
}

fn store_err(span: Span) -> impl Fn(StoreError) -> RunError {
    move |e| err(span, e.0)
}

impl Interp {
    /// A fresh interpreter.
    pub fn new() -> Interp {
        Interp::default()
    }

    /// Forgets what `thread_indent` kept for thread `tid`, which ended:
    /// a thread that reuses its id starts at depth 0, as a new thread.
    pub fn forget_thread(&mut self, tid: i64) {
        self.indent.remove(&tid);
    }

    /// Runs a probe's body.
    pub fn run_probe(
        &mut self,
        program: &Program,
        probe: &Probe,
        world: &mut World<'_>,
    ) -> Result<(), RunError> {
        self.steps = 0;
        let mut frame: Vec<Value> = probe.locals.iter().map(|l| Value::zero(l.ty)).collect();
        for s in &probe.body {
            match self.stmt(program, s, &mut frame, world)? {
                Flow::Next => break,
                Flow::Normal => {}
                Flow::Break | Flow::Continue | Flow::Return(_) => break,
            }
        }
        Ok(())
    }

    /// Evaluates one expression with the given locals (`overrides` apply).
    pub fn eval_with(
        &mut self,
        program: &Program,
        e: &Expr,
        frame: &mut Vec<Value>,
        world: &mut World<'_>,
    ) -> Result<Value, RunError> {
        self.steps = 0;
        self.eval(program, e, frame, world)
    }

    fn stmt(
        &mut self,
        p: &Program,
        s: &Stmt,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Flow, RunError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(err(
                s.span,
                format!(
                    "this probe ran more than {MAX_STEPS} statements (a loop that does not end?)"
                ),
            ));
        }
        Ok(match &s.kind {
            StmtKind::Expr(e) => {
                self.eval(p, e, frame, w)?;
                Flow::Normal
            }
            StmtKind::Block(b) => {
                for s in b {
                    match self.stmt(p, s, frame, w)? {
                        Flow::Normal => {}
                        other => return Ok(other),
                    }
                }
                Flow::Normal
            }
            StmtKind::If(c, t, e) => {
                if self.eval(p, c, frame, w)?.long() != 0 {
                    self.stmt(p, t, frame, w)?
                } else if let Some(e) = e {
                    self.stmt(p, e, frame, w)?
                } else {
                    Flow::Normal
                }
            }
            StmtKind::Loop { cond, body, step } => {
                loop {
                    if let Some(c) = cond
                        && self.eval(p, c, frame, w)?.long() == 0
                    {
                        break;
                    }
                    match self.stmt(p, body, frame, w)? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                        other => return Ok(other),
                    }
                    if let Some(st) = step {
                        self.eval(p, st, frame, w)?;
                    }
                    self.steps += 1;
                    if self.steps > MAX_STEPS {
                        return Err(err(
                            s.span,
                            format!("this loop ran more than {MAX_STEPS} rounds"),
                        ));
                    }
                }
                Flow::Normal
            }
            StmtKind::Foreach(f) => self.foreach(p, f, s.span, frame, w)?,
            StmtKind::Break => Flow::Break,
            StmtKind::Continue => Flow::Continue,
            StmtKind::Next => Flow::Next,
            StmtKind::Return(v) => Flow::Return(match v {
                Some(e) => self.eval(p, e, frame, w)?,
                None => Value::Long(0),
            }),
            StmtKind::Delete(d) => {
                match d {
                    Delete::Local(l) => frame[*l] = Value::zero(value_ty(&frame[*l])),
                    Delete::Global(g) => w.store.delete(*g, None).map_err(store_err(s.span))?,
                    Delete::Index(g, keys) => {
                        let keys = self.keys(p, keys, frame, w)?;
                        w.store.delete(*g, Some(&keys)).map_err(store_err(s.span))?;
                    }
                }
                Flow::Normal
            }
        })
    }

    fn foreach(
        &mut self,
        p: &Program,
        f: &Foreach,
        span: Span,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Flow, RunError> {
        let mut entries = w.store.entries(f.array).map_err(store_err(span))?;
        sort_entries(&mut entries, f.sort);
        if let Some(limit) = &f.limit {
            let n = self.eval(p, limit, frame, w)?.long().max(0) as usize;
            entries.truncate(n);
        }
        for (keys, value) in entries {
            for (&l, k) in f.keys.iter().zip(keys) {
                frame[l] = k;
            }
            if let Some(l) = f.value {
                frame[l] = value;
            }
            match self.stmt(p, &f.body, frame, w)? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn keys(
        &mut self,
        p: &Program,
        keys: &[Expr],
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Vec<Value>, RunError> {
        keys.iter().map(|k| self.eval(p, k, frame, w)).collect()
    }

    fn read(
        &mut self,
        p: &Program,
        lv: &LValue,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
        span: Span,
    ) -> Result<(Value, Vec<Value>), RunError> {
        Ok(match lv {
            LValue::Local(l) => (frame[*l].clone(), Vec::new()),
            LValue::Global(g) => (w.store.get(*g, &[]).map_err(store_err(span))?, Vec::new()),
            LValue::Index(g, keys) => {
                let keys = self.keys(p, keys, frame, w)?;
                (w.store.get(*g, &keys).map_err(store_err(span))?, keys)
            }
        })
    }

    fn write(
        lv: &LValue,
        keys: &[Value],
        value: Value,
        frame: &mut [Value],
        w: &mut World<'_>,
        span: Span,
    ) -> Result<(), RunError> {
        match lv {
            LValue::Local(l) => frame[*l] = value,
            LValue::Global(g) => w.store.set(*g, &[], value).map_err(store_err(span))?,
            LValue::Index(g, _) => w.store.set(*g, keys, value).map_err(store_err(span))?,
        }
        Ok(())
    }

    fn eval(
        &mut self,
        p: &Program,
        e: &Expr,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Value, RunError> {
        if let Some(v) = self.overrides.get(e.id) {
            return Ok(v.clone());
        }
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Long(v) => Value::Long(*v),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Local(l) => frame[*l].clone(),
            ExprKind::Global(g) => w.store.get(*g, &[]).map_err(store_err(span))?,
            ExprKind::Index(g, keys) => {
                let keys = self.keys(p, keys, frame, w)?;
                w.store.get(*g, &keys).map_err(store_err(span))?
            }
            ExprKind::In(g, keys) => {
                let keys = self.keys(p, keys, frame, w)?;
                Value::Long(i64::from(
                    w.store.exists(*g, &keys).map_err(store_err(span))?,
                ))
            }
            ExprKind::Ctx(Ctx::Arg(i)) => Value::Long(w.ctx.arg(*i)),
            ExprKind::Ctx(Ctx::Frame) => Value::Long(w.ctx.frame()),
            ExprKind::Builtin(b, args) => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(p, a, frame, w)?);
                }
                self.builtin(*b, &values, w, span)?
            }
            ExprKind::Call(f, args) => {
                if self.depth >= MAX_NESTING {
                    return Err(err(
                        span,
                        format!("functions called each other more than {MAX_NESTING} deep"),
                    ));
                }
                self.call(p, &p.functions[*f], args, frame, w)?
            }
            ExprKind::Unary(..)
            | ExprKind::Binary(..)
            | ExprKind::And(..)
            | ExprKind::Or(..)
            | ExprKind::Compare(..)
            | ExprKind::Concat(_)
            | ExprKind::Ternary(..) => self.operator(p, e, frame, w)?,
            ExprKind::Assign(..) | ExprKind::Crement { .. } | ExprKind::Aggregate(..) => {
                self.update(p, e, frame, w)?
            }
            ExprKind::Stat(op, lv) => {
                let (v, _) = self.read(p, lv, frame, w, span)?;
                let stats = match v {
                    Value::Stats(s) => s,
                    _ => Stats::default(),
                };
                Value::Long(stats.get(*op).map_err(|_| {
                    err(
                        span,
                        format!(
                            "{} of an empty aggregate (nothing was added with `<<<`)",
                            op.name()
                        ),
                    )
                })?)
            }
            ExprKind::Print(print) => self.print(p, print, frame, w, span)?,
            ExprKind::AggAction { action, agg, arg } => {
                let arg = match arg {
                    Some(a) => Some(self.eval(p, a, frame, w)?.long()),
                    None => None,
                };
                let call = aggs::AggCall {
                    action,
                    agg: *agg,
                    arg,
                };
                self.agg_action(p, call, w, span)?;
                Value::Long(0)
            }
        })
    }

    /// A user function's body run on its arguments (`function`'s locals
    /// start at zero); its value is what it returns.
    fn call(
        &mut self,
        p: &Program,
        function: &Function,
        args: &[Expr],
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Value, RunError> {
        let mut inner: Vec<Value> = function.locals.iter().map(|l| Value::zero(l.ty)).collect();
        for (i, a) in args.iter().enumerate() {
            inner[i] = self.eval(p, a, frame, w)?;
        }
        self.depth += 1;
        let mut result = function.ret.map_or(Value::Long(0), Value::zero);
        for s in &function.body {
            match self.stmt(p, s, &mut inner, w) {
                Ok(Flow::Return(v)) => {
                    result = v;
                    break;
                }
                Ok(Flow::Normal) => {}
                Ok(_) => break,
                Err(e) => {
                    self.depth -= 1;
                    return Err(e);
                }
            }
        }
        self.depth -= 1;
        Ok(result)
    }

    /// An operator's value (`&&`, `||` and `?:` evaluate only what they
    /// need).
    fn operator(
        &mut self,
        p: &Program,
        e: &Expr,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Value, RunError> {
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Unary(op, a) => {
                let v = self.eval(p, a, frame, w)?.long();
                Value::Long(match op {
                    UnOp::Neg => v.wrapping_neg(),
                    UnOp::Plus => v,
                    UnOp::Not => i64::from(v == 0),
                    UnOp::BitNot => !v,
                })
            }
            ExprKind::Binary(op, a, b) => {
                let x = self.eval(p, a, frame, w)?.long();
                let y = self.eval(p, b, frame, w)?.long();
                Value::Long(arith(*op, x, y).ok_or_else(|| err(span, "division by 0"))?)
            }
            ExprKind::And(a, b) => Value::Long(i64::from(
                self.eval(p, a, frame, w)?.long() != 0 && self.eval(p, b, frame, w)?.long() != 0,
            )),
            ExprKind::Or(a, b) => Value::Long(i64::from(
                self.eval(p, a, frame, w)?.long() != 0 || self.eval(p, b, frame, w)?.long() != 0,
            )),
            ExprKind::Compare(op, a, b) => {
                let x = self.eval(p, a, frame, w)?;
                let y = self.eval(p, b, frame, w)?;
                let ord = match (&x, &y) {
                    (Value::Str(s), Value::Str(t)) => s.cmp(t),
                    _ => x.long().cmp(&y.long()),
                };
                Value::Long(i64::from(compare(*op, ord)))
            }
            ExprKind::Concat(parts) => {
                let mut out = Vec::new();
                for part in parts {
                    out.extend_from_slice(self.eval(p, part, frame, w)?.bytes());
                }
                Value::Str(out)
            }
            ExprKind::Ternary(c, a, b) => {
                if self.eval(p, c, frame, w)?.long() != 0 {
                    self.eval(p, a, frame, w)?
                } else {
                    self.eval(p, b, frame, w)?
                }
            }
            _ => unreachable!("not an operator"),
        })
    }

    /// An assignment, `++`/`--` or `<<<`: the place updated, and its new
    /// value (the old one for a post-increment; 0 for `<<<`).
    fn update(
        &mut self,
        p: &Program,
        e: &Expr,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Value, RunError> {
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Assign(lv, op, v) => {
                let value = self.eval(p, v, frame, w)?;
                let (old, keys) = match op {
                    AssignOp::Set => match lv {
                        LValue::Index(_, keys) => (Value::Long(0), self.keys(p, keys, frame, w)?),
                        _ => (Value::Long(0), Vec::new()),
                    },
                    _ => self.read(p, lv, frame, w, span)?,
                };
                let new = match op {
                    AssignOp::Set => value,
                    AssignOp::Compound(bin) => Value::Long(
                        arith(*bin, old.long(), value.long())
                            .ok_or_else(|| err(span, "division by 0"))?,
                    ),
                    AssignOp::Concat => {
                        let mut s = old.bytes().to_vec();
                        s.extend_from_slice(value.bytes());
                        Value::Str(s)
                    }
                };
                Self::write(lv, &keys, new.clone(), frame, w, span)?;
                new
            }
            ExprKind::Crement {
                target,
                delta,
                post,
            } => {
                let (old, keys) = self.read(p, target, frame, w, span)?;
                let new = old.long().wrapping_add(*delta);
                Self::write(target, &keys, Value::Long(new), frame, w, span)?;
                Value::Long(if *post { old.long() } else { new })
            }
            ExprKind::Aggregate(lv, v) => {
                let value = self.eval(p, v, frame, w)?.long();
                let (g, keys) = match lv {
                    LValue::Global(g) => (*g, Vec::new()),
                    LValue::Index(g, keys) => (*g, self.keys(p, keys, frame, w)?),
                    LValue::Local(_) => return Err(err(span, "statistics must be global")),
                };
                w.store
                    .aggregate(g, &keys, value)
                    .map_err(store_err(span))?;
                Value::Long(0)
            }
            _ => unreachable!("not an update"),
        })
    }
}

fn value_ty(v: &Value) -> Ty {
    match v {
        Value::Long(_) => Ty::Long,
        Value::Str(_) => Ty::Str,
        Value::Stats(_) => Ty::Stats,
    }
}
