//! The syntax tree both front ends produce, with a [`Span`] on every node.
//!
//! It keeps what was written (names as strings, probe points as
//! components); [`crate::check`] resolves it into the compiled form
//! ([`crate::ir`]).

mod ops;

pub use ops::*;

use crate::source::Span;

/// A name and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// One file's declarations.
#[derive(Debug, Clone, Default)]
pub struct File {
    /// In source order.
    pub items: Vec<Item>,
}

/// A top-level declaration.
#[derive(Debug, Clone)]
pub enum Item {
    /// `probe POINTS { … }`.
    Probe(ProbeDecl),
    /// `probe NAME = POINTS { … }` (a prologue alias) or `+=` (epilogue).
    Alias(AliasDecl),
    /// `global a, b[100], c = 5`.
    Global(Vec<GlobalDecl>),
    /// `function name:type(p:type, …) { … }`.
    Function(FunctionDecl),
}

/// `probe POINTS { body }`.
#[derive(Debug, Clone)]
pub struct ProbeDecl {
    /// Where it is attached (`probe A, B { }` has two).
    pub points: Vec<ProbePoint>,
    /// What it does.
    pub body: Block,
    /// The `probe` keyword.
    pub span: Span,
}

/// `probe NAME = POINTS { body }`.
#[derive(Debug, Clone)]
pub struct AliasDecl {
    /// The names it defines (`probe a = b` has one).
    pub names: Vec<ProbePoint>,
    /// What they expand to.
    pub points: Vec<ProbePoint>,
    /// Runs before (`=`) or after (`+=`) the user's body.
    pub epilogue: bool,
    /// The alias's own statements.
    pub body: Block,
    /// The `probe` keyword.
    pub span: Span,
}

/// A probe point: `process("python").mark("function__entry")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    /// Its dotted parts.
    pub components: Vec<Component>,
    /// `?`: optional.
    pub optional: bool,
    /// `!`: sufficient.
    pub sufficient: bool,
    /// `if (expr)` after it (not supported; kept to say so).
    pub condition: Option<Span>,
    /// The whole point.
    pub span: Span,
}

impl ProbePoint {
    /// The point as text, components joined with dots (`timer.ms(100)`).
    pub fn text(&self) -> String {
        self.components
            .iter()
            .map(|c| match &c.arg {
                None => c.name.clone(),
                Some(Literal::Num(n)) => format!("{}({n})", c.name),
                Some(Literal::Str(s)) => {
                    format!("{}(\"{}\")", c.name, String::from_utf8_lossy(s))
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// One part of a probe point: `mark("function__entry")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The name (may hold `*` wildcards).
    pub name: String,
    /// The parenthesised literal, if any.
    pub arg: Option<Literal>,
    /// Where.
    pub span: Span,
}

/// A literal in a probe point or a global's initialiser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A number.
    Num(i64),
    /// A string.
    Str(Vec<u8>),
}

/// `global name[size] = init`.
#[derive(Debug, Clone)]
pub struct GlobalDecl {
    /// The name.
    pub name: Ident,
    /// `[N]`: most entries of an array.
    pub size: Option<i64>,
    /// `= literal`.
    pub init: Option<(Literal, Span)>,
    /// D's declared type (`int x;`, `string s;`), if any.
    pub ty: Option<TypeName>,
}

/// A type annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    /// `long`.
    Long,
    /// `string`.
    String,
}

/// A function parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// The name.
    pub name: Ident,
    /// `:long` or `:string`, if written.
    pub ty: Option<TypeName>,
}

/// `function name:type(params) { body }`.
#[derive(Debug, Clone)]
pub struct FunctionDecl {
    /// The name.
    pub name: Ident,
    /// The return type, if written.
    pub ret: Option<TypeName>,
    /// Parameters.
    pub params: Vec<Param>,
    /// The body.
    pub body: Block,
}

/// `{ statements }`.
#[derive(Debug, Clone)]
pub struct Block {
    /// The statements.
    pub stmts: Vec<Stmt>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// What it is.
    pub kind: StmtKind,
    /// Where.
    pub span: Span,
}

/// The kinds of statement.
#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `{ … }`.
    Block(Block),
    /// An expression (assignments, calls).
    Expr(Expr),
    /// `if (cond) then else els`.
    If {
        /// Condition.
        cond: Box<Expr>,
        /// Taken branch.
        then: Box<Stmt>,
        /// `else` branch.
        els: Option<Box<Stmt>>,
    },
    /// `while (cond) body`.
    While {
        /// Condition.
        cond: Expr,
        /// Body.
        body: Box<Stmt>,
    },
    /// `for (init; cond; step) body`.
    For {
        /// Before the loop.
        init: Option<Box<Expr>>,
        /// Checked before each round.
        cond: Option<Box<Expr>>,
        /// After each round.
        step: Option<Box<Expr>>,
        /// Body.
        body: Box<Stmt>,
    },
    /// `foreach (…)`.
    Foreach(Box<Foreach>),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `next`: leave the probe (or function).
    Next,
    /// `return expr`.
    Return(Option<Expr>),
    /// `delete x`, `delete a`, `delete a[k]`.
    Delete(Expr),
    /// `try { } catch { }` (not supported; kept to say so).
    Try,
    /// `;`.
    Empty,
}

/// Sort order of a `foreach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// 0 sorts by value, `n` by the n-th key (1-based).
    pub column: usize,
    /// `+` ascending, `-` descending.
    pub ascending: bool,
    /// For statistics values: which statistic (`foreach (x in a @sum -)`).
    pub aggregate: Option<StatOp>,
}

/// `foreach (v = [k1, k2] in array- limit n) body`.
#[derive(Debug, Clone)]
pub struct Foreach {
    /// `v =`: the value.
    pub value: Option<Ident>,
    /// The key variables.
    pub keys: Vec<Ident>,
    /// `+`/`-` on a key, the value or the array.
    pub sort: Option<Sort>,
    /// The array.
    pub array: Ident,
    /// `array[k, *]`: a slice (not supported; kept to say so).
    pub slice: Option<Span>,
    /// `limit n`.
    pub limit: Option<Expr>,
    /// The body.
    pub body: Stmt,
}

/// An expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

impl Expr {
    /// How many nodes deep the expression is (a leaf is 1). The parsers
    /// keep every expression within [`crate::cursor::MAX_NESTING`], so this
    /// recursion, like every later pass's, is bounded.
    pub fn depth(&self) -> usize {
        let max = |es: &[Expr]| es.iter().map(Expr::depth).max().unwrap_or(0);
        1 + match &self.kind {
            ExprKind::Num(_)
            | ExprKind::Str(_)
            | ExprKind::Name(_)
            | ExprKind::Target(_)
            | ExprKind::Regex
            | ExprKind::AggRef(_)
            | ExprKind::Unsupported(_) => 0,
            ExprKind::Index { keys, .. } | ExprKind::In { keys, .. } => max(keys),
            ExprKind::Call { args, .. } | ExprKind::Concat(args) => max(args),
            ExprKind::Print { args, hist, .. } => {
                max(args).max(hist.as_ref().map_or(0, |h| h.stat.depth()))
            }
            ExprKind::Stat { operand, .. } => operand.depth(),
            ExprKind::Hist(h) => h.stat.depth(),
            ExprKind::Unary(_, e) | ExprKind::Crement { target: e, .. } => e.depth(),
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Compare(_, a, b)
            | ExprKind::Assign(_, a, b) => a.depth().max(b.depth()),
            ExprKind::Ternary(a, b, c) => a.depth().max(b.depth()).max(c.depth()),
            ExprKind::AggSet { keys, args, .. } => max(keys).max(max(args)),
        }
    }
}

/// Binary operators on numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `<<`.
    Shl,
    /// `>>` (arithmetic).
    Shr,
    /// `>>>` (logical).
    Ushr,
    /// `&`.
    And,
    /// `|`.
    Or,
    /// `^`.
    Xor,
}

/// Comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`.
    Neg,
    /// `+x`.
    Plus,
    /// `!x`.
    Not,
    /// `~x`.
    BitNot,
}

/// Assignment operators: `=` or a compound (`+=` is `Some(Add)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`.
    Set,
    /// `+=`, `-=`, … .
    Compound(BinOp),
    /// `.=`.
    Concat,
    /// `<<<`.
    Aggregate,
}

/// The kinds of expression.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// A number.
    Num(i64),
    /// A string.
    Str(Vec<u8>),
    /// A variable (local, global) or a function called without `()`.
    Name(String),
    /// `$arg1`, `$$name`, `$$parms`, `$var`.
    Target(String),
    /// `a[k1, k2]`.
    Index {
        /// The array.
        array: Ident,
        /// The keys.
        keys: Vec<Expr>,
    },
    /// `name(args)`.
    Call {
        /// The function.
        name: Ident,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `printf`, `print`, … (`print(@hist_log(x))` has `hist`).
    Print {
        /// Which one.
        kind: PrintKind,
        /// The format or delimiter (a literal in SystemTap).
        head: Option<(Vec<u8>, Span)>,
        /// Arguments after it.
        args: Vec<Expr>,
        /// `print(@hist_*(x))`.
        hist: Option<HistOp>,
    },
    /// `@count(x)`, … .
    Stat {
        /// Which statistic.
        op: StatOp,
        /// The aggregate.
        operand: Box<Expr>,
        /// Extra numeric parameters (`@variance(x, 2)`).
        params: Vec<i64>,
    },
    /// `@hist_log(x)[bucket]` and other uses outside `print` (not supported).
    Hist(HistOp),
    /// `-x`, `!x`, … .
    Unary(UnOp, Box<Expr>),
    /// `a + b`, … .
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a < b`, … .
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `a =~ "re"` (not supported; kept to say so).
    Regex,
    /// `a . b . c`.
    Concat(Vec<Expr>),
    /// `c ? a : b`.
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `target op value`.
    Assign(AssignOp, Box<Expr>, Box<Expr>),
    /// `++x`, `x--`, … : `delta` is 1 or -1, `post` for the suffix form.
    Crement {
        /// The variable.
        target: Box<Expr>,
        /// +1 or -1.
        delta: i64,
        /// `x++` (value before) rather than `++x`.
        post: bool,
    },
    /// `[k1, k2] in array`.
    In {
        /// The keys.
        keys: Vec<Expr>,
        /// The array.
        array: Ident,
    },
    /// D's `@name[keys] = func(args)`: an aggregation.
    AggSet {
        /// `@name` (`@` alone for the anonymous one).
        agg: Ident,
        /// The keys.
        keys: Vec<Expr>,
        /// The aggregating function.
        func: AggFunc,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// D's `@name` as an argument of `printa`, `clear`, `trunc`, … .
    AggRef(Ident),
    /// `@entry(…)`, `@cast(…)`, `&x`, `%{ … %}` and other forms pytap
    /// parses only to say they are not supported: what was written.
    Unsupported(String),
}
