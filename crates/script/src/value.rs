//! Run-time values: numbers, strings and statistics aggregates.

use crate::ast::StatOp;
use crate::format;
use crate::ir::{HistShape, Ty};

/// A value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// A number.
    Long(i64),
    /// A string.
    Str(Vec<u8>),
    /// A statistics aggregate.
    Stats(Stats),
}

impl Value {
    /// The zero value of a type (0, "", an empty aggregate).
    pub fn zero(ty: Ty) -> Value {
        match ty {
            Ty::Long => Value::Long(0),
            Ty::Str => Value::Str(Vec::new()),
            Ty::Stats => Value::Stats(Stats::default()),
        }
    }

    /// The number (0 for other kinds).
    pub fn long(&self) -> i64 {
        match self {
            Value::Long(v) => *v,
            _ => 0,
        }
    }

    /// The string's bytes (empty for other kinds).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Str(s) => s,
            _ => b"",
        }
    }

    /// As a format argument.
    pub fn arg(&self) -> format::Arg<'_> {
        match self {
            Value::Long(v) => format::Arg::Long(*v),
            Value::Str(s) => format::Arg::Str(s),
            Value::Stats(_) => format::Arg::Long(0),
        }
    }
}

/// A statistics aggregate: what `<<<` gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stats {
    /// Values added.
    pub count: i64,
    /// Their sum.
    pub sum: i64,
    /// The smallest (meaningless while `count` is 0).
    pub min: i64,
    /// The largest.
    pub max: i64,
    /// Bucket counts of its histogram, when one is drawn of it.
    pub buckets: Vec<u64>,
    /// The sum of the values' squares, 128 bits as DTrace keeps it for
    /// `stddev()` (the kernel keeps it only for stddev aggregations).
    pub squares: u128,
}

/// Why a statistic has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyAggregate;

impl Stats {
    /// Adds a value (and counts it in `shape`'s bucket).
    pub fn add(&mut self, value: i64, shape: Option<HistShape>) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(value);
        let magnitude = u128::from(value.unsigned_abs());
        self.squares = self.squares.wrapping_add(magnitude * magnitude);
        if let Some(shape) = shape {
            if self.buckets.len() != shape.buckets() {
                self.buckets = vec![0; shape.buckets()];
            }
            self.buckets[crate::hist::bucket(shape, value)] += 1;
        }
    }

    /// Adds another aggregate's values (per-CPU parts, or keys merged).
    pub fn merge(&mut self, other: &Stats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.squares = self.squares.wrapping_add(other.squares);
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// A statistic: `@count` and `@sum` of nothing are 0; the others of
    /// nothing are an error, as in SystemTap.
    pub fn get(&self, op: StatOp) -> Result<i64, EmptyAggregate> {
        match op {
            StatOp::Count => Ok(self.count),
            StatOp::Sum => Ok(self.sum),
            _ if self.count == 0 => Err(EmptyAggregate),
            StatOp::Min => Ok(self.min),
            StatOp::Max => Ok(self.max),
            StatOp::Avg | StatOp::Variance => Ok(self.sum / self.count),
        }
    }

    /// D's `stddev()`, divided by `normal`, as libdtrace computes it
    /// (`dt_stddev`): the integer square root of the average of the
    /// squares less the square of the average, in 128 bits.
    pub fn stddev(&self, normal: i64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let normal = normal.max(1);
        let n = normal as u128;
        let avg_of_squares = self.squares / n / n / self.count as u128;
        let avg = (self.sum / normal / self.count).unsigned_abs() as u128;
        avg_of_squares.wrapping_sub(avg * avg).isqrt() as u64
    }

    /// The statistic `foreach` sorts by, with empty aggregates first.
    pub fn sort_key(&self, op: StatOp) -> i64 {
        self.get(op).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_and_merge() {
        let mut a = Stats::default();
        for v in [5, -2, 9] {
            a.add(v, Some(HistShape::Log));
        }
        assert_eq!((a.count, a.sum, a.min, a.max), (3, 12, -2, 9));
        assert_eq!(a.get(StatOp::Avg), Ok(4));
        let mut b = Stats::default();
        assert_eq!(b.get(StatOp::Min), Err(EmptyAggregate));
        assert_eq!(b.get(StatOp::Count), Ok(0));
        b.add(100, Some(HistShape::Log));
        b.merge(&a);
        assert_eq!((b.count, b.sum, b.min, b.max), (4, 112, -2, 100));
        assert_eq!(b.buckets.iter().sum::<u64>(), 4);
    }
}
