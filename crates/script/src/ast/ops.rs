//! The operations on aggregates and the print functions, by name: what a
//! statistic (`@count`, `@avg`, …), a histogram, an aggregating function
//! (D's `count()`, `quantize()`, …) and a print function are, as both
//! front ends name them and the checker and interpreter read them.

use super::Expr;
use crate::source::Span;

/// Statistics of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatOp {
    /// `@count`.
    Count,
    /// `@sum`.
    Sum,
    /// `@min`.
    Min,
    /// `@max`.
    Max,
    /// `@avg`.
    Avg,
    /// `@variance`.
    Variance,
}

impl StatOp {
    /// The `@word`.
    pub fn name(self) -> &'static str {
        match self {
            StatOp::Count => "@count",
            StatOp::Sum => "@sum",
            StatOp::Min => "@min",
            StatOp::Max => "@max",
            StatOp::Avg => "@avg",
            StatOp::Variance => "@variance",
        }
    }
}

/// `@hist_log(x)` or `@hist_linear(x, start, stop, interval)`.
#[derive(Debug, Clone)]
pub struct HistOp {
    /// Linear bounds, or `None` for log2 buckets.
    pub linear: Option<(i64, i64, i64)>,
    /// The aggregate.
    pub stat: Box<Expr>,
    /// From `@` to `)`.
    pub span: Span,
}

/// D's aggregating functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `count()`.
    Count,
    /// `sum(x)`.
    Sum,
    /// `avg(x)`.
    Avg,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `stddev(x)`.
    Stddev,
    /// `quantize(x)`: power-of-two buckets.
    Quantize,
    /// `lquantize(x, lo, hi, step)`: linear buckets.
    Lquantize,
    /// `llquantize(x, factor, lo, hi, steps)`: log-linear buckets.
    Llquantize,
}

impl AggFunc {
    /// The function a name calls, if an aggregating one.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "stddev" => AggFunc::Stddev,
            "quantize" => AggFunc::Quantize,
            "lquantize" => AggFunc::Lquantize,
            "llquantize" => AggFunc::Llquantize,
            _ => return None,
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Stddev => "stddev",
            AggFunc::Quantize => "quantize",
            AggFunc::Lquantize => "lquantize",
            AggFunc::Llquantize => "llquantize",
        }
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            AggFunc::Count => 0,
            AggFunc::Lquantize => 4,
            AggFunc::Llquantize => 5,
            _ => 1,
        }
    }
}

/// Which print function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintKind {
    /// `print(a, b)`: values back to back.
    Print,
    /// `println(a, b)`: and a newline.
    Println,
    /// `printf("fmt", …)`.
    Printf,
    /// `printd(delim, …)`.
    Printd,
    /// `printdln(delim, …)`.
    Printdln,
    /// `sprint(…)`.
    Sprint,
    /// `sprintln(…)`.
    Sprintln,
    /// `sprintf("fmt", …)`.
    Sprintf,
    /// `sprintd(delim, …)`.
    Sprintd,
    /// `sprintdln(delim, …)`.
    Sprintdln,
}

impl PrintKind {
    /// The kind a function name is, if a print function.
    pub fn from_name(name: &str) -> Option<PrintKind> {
        Some(match name {
            "print" => PrintKind::Print,
            "println" => PrintKind::Println,
            "printf" => PrintKind::Printf,
            "printd" => PrintKind::Printd,
            "printdln" => PrintKind::Printdln,
            "sprint" => PrintKind::Sprint,
            "sprintln" => PrintKind::Sprintln,
            "sprintf" => PrintKind::Sprintf,
            "sprintd" => PrintKind::Sprintd,
            "sprintdln" => PrintKind::Sprintdln,
            _ => return None,
        })
    }

    /// Whether it returns the text instead of printing it.
    pub fn is_sprint(self) -> bool {
        matches!(
            self,
            PrintKind::Sprint
                | PrintKind::Sprintln
                | PrintKind::Sprintf
                | PrintKind::Sprintd
                | PrintKind::Sprintdln
        )
    }

    /// Whether the first argument is a format string.
    pub fn has_format(self) -> bool {
        matches!(self, PrintKind::Printf | PrintKind::Sprintf)
    }

    /// Whether the first argument is a delimiter.
    pub fn has_delimiter(self) -> bool {
        matches!(
            self,
            PrintKind::Printd | PrintKind::Printdln | PrintKind::Sprintd | PrintKind::Sprintdln
        )
    }

    /// Whether a newline ends the output.
    pub fn has_newline(self) -> bool {
        matches!(
            self,
            PrintKind::Println | PrintKind::Printdln | PrintKind::Sprintln | PrintKind::Sprintdln
        )
    }
}
