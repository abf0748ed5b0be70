//! The compiled form of a script: names resolved to slots, every
//! expression typed, probe points resolved to what they attach to.
//!
//! One [`Program`] is what both executors run: the engine lowers marker
//! probes onto BPF, and [`crate::interp`] runs `begin`, `end` and timer
//! bodies (and any probe body on events that did not come from BPF). Every
//! expression has an [`ExprId`] unique in the program, so an executor can
//! attach facts to it (where a printf argument's value comes from) without
//! changing the tree.

use crate::ast::{BinOp, CmpOp, PrintKind, StatOp, UnOp};
use crate::format::Format;
use crate::source::Span;

/// Index into [`Program::globals`].
pub type GlobalId = usize;
/// Index into a probe's or function's `locals`.
pub type LocalId = usize;
/// Index into [`Program::functions`].
pub type FuncId = usize;
/// Unique number of an expression in its program.
pub type ExprId = u32;

/// The type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// A 64-bit signed integer.
    Long,
    /// A string of bytes.
    Str,
    /// A statistics aggregate (`<<<`).
    Stats,
}

impl Ty {
    /// As messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Ty::Long => "a number",
            Ty::Str => "a string",
            Ty::Stats => "a statistics aggregate",
        }
    }
}

/// A constant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Const {
    /// A number.
    Long(i64),
    /// A string.
    Str(Vec<u8>),
}

/// How a statistics global's values are drawn as a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistShape {
    /// Powers of two (`@hist_log`), 128 buckets as SystemTap has.
    Log,
    /// `@hist_linear(x, start, stop, interval)`.
    Linear {
        /// Lowest bucket's start.
        start: i64,
        /// Highest bucket's end.
        stop: i64,
        /// Bucket width.
        interval: i64,
    },
    /// D's `llquantize(x, factor, low, high, steps)`: every order of
    /// magnitude from `factor^low` to `factor^(high+1)` cut into `steps`
    /// equal buckets (fewer where the order is narrower than `steps`),
    /// with one bucket below and one above. The checker guarantees
    /// `factor >= 2`, `steps % factor == 0`, `low <= high`, integral
    /// widths and no overflow (see `hist::log_linear_orders`).
    LogLinear {
        /// The base of the orders of magnitude.
        factor: u16,
        /// The lowest order.
        low: u16,
        /// The highest order.
        high: u16,
        /// Buckets per order.
        steps: u16,
    },
}

impl HistShape {
    /// Buckets, including under- and overflow for linear ones.
    pub fn buckets(self) -> usize {
        match self {
            HistShape::Log => 128,
            HistShape::Linear {
                start,
                stop,
                interval,
            } => ((stop - start) / interval + 3) as usize,
            HistShape::LogLinear { .. } => crate::hist::log_linear_orders(self)
                .last()
                .map_or(2, |o| o.top() + 1),
        }
    }
}

/// A global variable or array.
#[derive(Debug, Clone)]
pub struct Global {
    /// Its name.
    pub name: String,
    /// Its declaration.
    pub span: Span,
    /// The type of its values.
    pub value: Ty,
    /// Key types; empty for a scalar.
    pub keys: Vec<Ty>,
    /// `global a[N]`: most entries.
    pub size: Option<u32>,
    /// `global x = 5`.
    pub init: Option<Const>,
    /// For statistics: the histogram printed of it, if any.
    pub hist: Option<HistShape>,
    /// D: the aggregating function of an aggregation (`@a = count()`).
    pub agg: Option<crate::ast::AggFunc>,
    /// D: the key positions that hold stacks (`@[jstack()]`), printed as
    /// dtrace prints stacks rather than as strings.
    pub stack_keys: Vec<bool>,
}

impl Global {
    /// Whether key `i` holds stacks.
    pub fn stack_key(&self, i: usize) -> bool {
        self.stack_keys.get(i).copied().unwrap_or(false)
    }
}

impl Global {
    /// Whether it is an array.
    pub fn is_array(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// A local variable (parameters of a function are its first locals).
#[derive(Debug, Clone)]
pub struct Local {
    /// Its name.
    pub name: String,
    /// Its type (locals are never statistics).
    pub ty: Ty,
}

/// A user-defined function.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Parameters, as its first locals.
    pub params: usize,
    /// Return type; `None` for a function that returns nothing.
    pub ret: Option<Ty>,
    /// Its locals.
    pub locals: Vec<Local>,
    /// Its body.
    pub body: Vec<Stmt>,
    /// Its declaration.
    pub span: Span,
}

/// Which process a marker probe watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Binary {
    /// `process.mark(…)`: the `-c`/`-x` target.
    Target,
    /// `process("PATH")`: a path or a name looked up as SystemTap does.
    Path(String),
}

/// Where a probe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointKind {
    /// `begin`, before anything else.
    Begin,
    /// `end`, when the run ends.
    End,
    /// `timer.ms(N)` and its kin: every `period_ns`, in pytap.
    Timer {
        /// The period.
        period_ns: u64,
    },
    /// D's `profile-N`, SystemTap's `timer.profile` (and a `timer.hz(N)`
    /// whose body reads the thread it interrupts): `hz` times a second on
    /// every CPU, in the kernel, in the context of whatever runs there (a
    /// process of any kind, or none: pid 0).
    Profile {
        /// Firings a second on each CPU.
        hz: u64,
    },
    /// A marker of a binary.
    Marker {
        /// The binary (or the target).
        binary: Binary,
        /// `.library("NAME")`: the markers are in this shared library.
        library: Option<String>,
        /// Index of the marker in [`crate::check::Catalog::markers`].
        marker: usize,
    },
    /// A function of a file the target maps, by its symbol: D's
    /// `pid$target:MODULE:FUNCTION:entry`, SystemTap's
    /// `process("PATH").function("NAME")`; a uprobe at its first
    /// instruction, or with `ret` a uretprobe (its return).
    Function {
        /// `process("PATH")`: the file holding the function (or a binary
        /// whose linked files are searched); the target's files otherwise.
        binary: Binary,
        /// D's module field or `.library("NAME")`: the file, by base name
        /// or path, among the target's.
        library: Option<String>,
        /// The symbol's name (`*` matches any run of characters).
        function: String,
        /// At its return.
        ret: bool,
    },
}

/// Arguments a function probe has: the registers x86-64's calling
/// convention passes them in (`rdi`, `rsi`, `rdx`, `rcx`, `r8`, `r9`).
pub const FUNCTION_ARGS: usize = 6;

/// A probe point as resolved.
#[derive(Debug, Clone)]
pub struct Point {
    /// What it is.
    pub kind: PointKind,
    /// `?`: a point that resolves to nothing is skipped, not an error.
    pub optional: bool,
    /// Where it was written (in the script, or the alias it expands).
    pub span: Span,
}

/// A probe: one point and the body it runs (a probe written on several
/// points, or on a wildcard, is one `Probe` per resolved point).
#[derive(Debug, Clone)]
pub struct Probe {
    /// Where it fires.
    pub point: Point,
    /// Its locals (including the alias prologue's).
    pub locals: Vec<Local>,
    /// Its body (the alias prologue first, or epilogue last).
    pub body: Vec<Stmt>,
    /// The `probe` keyword the user wrote.
    pub span: Span,
    /// Index of the declaration it came from, in source order (probes of
    /// one declaration share it).
    pub decl: usize,
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
    /// Evaluate for its effects.
    Expr(Expr),
    /// `{ … }`.
    Block(Vec<Stmt>),
    /// `if`.
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    /// `while`; also `for` (its init before, its step in `step`).
    Loop {
        /// Checked before each round; `None` loops forever.
        cond: Option<Expr>,
        /// The body.
        body: Box<Stmt>,
        /// Run after each round (and on `continue`).
        step: Option<Expr>,
    },
    /// `foreach`.
    Foreach(Box<Foreach>),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `next`: leave the probe.
    Next,
    /// `return`, from a function.
    Return(Option<Expr>),
    /// `delete`.
    Delete(Delete),
}

/// What `delete` removes.
#[derive(Debug, Clone)]
pub enum Delete {
    /// A local: back to 0 or "".
    Local(LocalId),
    /// A global scalar back to 0 or "", or every entry of an array.
    Global(GlobalId),
    /// One entry of an array.
    Index(GlobalId, Vec<Expr>),
}

/// `foreach ([k1, k2] in array- limit n)`.
#[derive(Debug, Clone)]
pub struct Foreach {
    /// The array.
    pub array: GlobalId,
    /// The locals that receive the keys.
    pub keys: Vec<LocalId>,
    /// The local that receives the value.
    pub value: Option<LocalId>,
    /// Sort order.
    pub sort: Option<Sort>,
    /// Most rounds.
    pub limit: Option<Expr>,
    /// The body.
    pub body: Stmt,
}

/// A `foreach` sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// 0: by value; n: by the n-th key.
    pub column: usize,
    /// `+`.
    pub ascending: bool,
    /// Which statistic a statistics value sorts by (`@count` unless said).
    pub stat: StatOp,
}

/// A context value of a marker probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ctx {
    /// `$argN` (0-based here).
    Arg(usize),
    /// `$argN` past a function marker's three: the frame pointer where
    /// pytap knows where it is, else 0.
    Frame,
}

/// A place a value is stored.
#[derive(Debug, Clone)]
pub enum LValue {
    /// A local.
    Local(LocalId),
    /// A global scalar.
    Global(GlobalId),
    /// An array element.
    Index(GlobalId, Vec<Expr>),
}

/// Built-in functions.
pub use crate::builtins::Builtin;

/// A histogram to print: the aggregate and its shape.
#[derive(Debug, Clone)]
pub struct HistPrint {
    /// The statistics value.
    pub stat: LValue,
    /// Its shape.
    pub shape: HistShape,
}

/// An expression, typed.
#[derive(Debug, Clone)]
pub struct Expr {
    /// Unique in the program.
    pub id: ExprId,
    /// Its type (statistics only for `LValue`s of aggregates).
    pub ty: Ty,
    /// Where.
    pub span: Span,
    /// What it is.
    pub kind: ExprKind,
}

/// How an assignment combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`.
    Set,
    /// `+=` and the other arithmetic ones.
    Compound(BinOp),
    /// `.=`.
    Concat,
}

/// The kinds of expression.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// A number.
    Long(i64),
    /// A string.
    Str(Vec<u8>),
    /// Read a local.
    Local(LocalId),
    /// Read a global scalar.
    Global(GlobalId),
    /// Read an array element (0 or "" when absent; never creates it).
    Index(GlobalId, Vec<Expr>),
    /// `[keys] in array`.
    In(GlobalId, Vec<Expr>),
    /// A marker's context.
    Ctx(Ctx),
    /// A built-in function.
    Builtin(Builtin, Vec<Expr>),
    /// A user function.
    Call(FuncId, Vec<Expr>),
    /// `-x`, `!x`, `~x`.
    Unary(UnOp, Box<Expr>),
    /// Arithmetic and bits.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `&&`.
    And(Box<Expr>, Box<Expr>),
    /// `||`.
    Or(Box<Expr>, Box<Expr>),
    /// Numbers or strings (both sides have the same type).
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `a . b . c`.
    Concat(Vec<Expr>),
    /// `c ? a : b`.
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `target op value`; its value is the target's new value.
    Assign(LValue, AssignOp, Box<Expr>),
    /// `++x`, `x--`: the value before (`post`) or after.
    Crement {
        /// The variable.
        target: LValue,
        /// +1 or -1.
        delta: i64,
        /// Suffix form.
        post: bool,
    },
    /// `stats <<< value`.
    Aggregate(LValue, Box<Expr>),
    /// `@count(x)`, … of a statistics value.
    Stat(StatOp, LValue),
    /// `printf`, `sprintf`, … (`sprint*` are strings; the others print
    /// and are numbers, 0).
    Print(Box<Print>),
    /// D's actions on a whole aggregation (run in pytap): `printa`,
    /// `clear`, `trunc`, `normalize`, `denormalize`.
    AggAction {
        /// Which.
        action: AggAction,
        /// The aggregation.
        agg: GlobalId,
        /// `trunc`'s count or `normalize`'s divisor.
        arg: Option<Box<Expr>>,
    },
}

/// An action on a whole D aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggAction {
    /// `printa(@a)`, `printa("format", @a)`.
    Printa(Option<Vec<u8>>),
    /// `clear(@a)`: values back to zero, keys kept.
    Clear,
    /// `trunc(@a)`, `trunc(@a, n)`: all entries, or all but the top `n`.
    Trunc,
    /// `normalize(@a, n)`: printed values divided by `n`.
    Normalize,
    /// `denormalize(@a)`.
    Denormalize,
}

/// A print call.
#[derive(Debug, Clone)]
pub struct Print {
    /// Which function.
    pub kind: PrintKind,
    /// `printf`'s format, parsed.
    pub format: Option<Format>,
    /// `printd`'s delimiter.
    pub delimiter: Option<Vec<u8>>,
    /// The arguments.
    pub args: Vec<Expr>,
    /// `print(@hist_*(x))`.
    pub hist: Option<HistPrint>,
}

/// A compiled script.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// Globals, in declaration order.
    pub globals: Vec<Global>,
    /// User functions (only those some probe calls).
    pub functions: Vec<Function>,
    /// Probes, in source order (`begin`s run in this order).
    pub probes: Vec<Probe>,
    /// How many [`ExprId`]s were given out.
    pub exprs: u32,
}

impl Program {
    /// A global by name.
    pub fn global(&self, name: &str) -> Option<GlobalId> {
        self.globals.iter().position(|g| g.name == name)
    }
}
