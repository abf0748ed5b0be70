//! Statistics' histograms as SystemTap keeps and draws them: log2 and
//! linear buckets (`_stp_val_to_bucket`, `__stp_stat_add`) and the drawing
//! of `print(@hist_*(x))` (`_stp_stat_print_histogram`), byte for byte.

use crate::ir::HistShape;

/// The log2 bucket of a value (SystemTap's `_stp_val_to_bucket`): 64 is
/// zero, 65 + k holds `[2^k, 2^(k+1))`, below 64 the negatives.
pub fn log_bucket(value: i64) -> usize {
    if value == 0 {
        return 64;
    }
    let magnitude = value.unsigned_abs();
    let bits = 64 - magnitude.leading_zeros() as usize;
    if value < 0 {
        128 - (64 + bits)
    } else {
        64 + bits
    }
}

/// The linear bucket of a value: 0 underflow, `buckets - 1` overflow.
pub fn linear_bucket(value: i64, start: i64, interval: i64, buckets: usize) -> usize {
    let v = value.wrapping_sub(start);
    let bucket = if v < 0 {
        0
    } else {
        (v as u64 / interval as u64).saturating_add(1)
    };
    bucket.min(buckets as u64 - 1) as usize
}

/// One order of magnitude of a log-linear shape: values in
/// `[last, this)` go to bucket `base + (value - last) / width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// `factor^order`: the order's lowest value.
    pub last: i64,
    /// `factor^(order+1)`: the next order's lowest value.
    pub this: i64,
    /// A bucket's width.
    pub width: i64,
    /// The bucket of `last`.
    pub base: usize,
}

impl Order {
    /// The bucket after this order's last one: the next order's base,
    /// or the overflow bucket after the highest order.
    pub fn top(&self) -> usize {
        self.base + ((self.this - self.last) / self.width) as usize
    }
}

/// Why an `llquantize` shape cannot be used.
pub fn log_linear_problem(factor: i64, low: i64, high: i64, steps: i64) -> Option<String> {
    if !(2..=i64::from(u16::MAX)).contains(&factor) {
        return Some("the factor must be at least 2".into());
    }
    if !(0..=i64::from(u16::MAX)).contains(&low) || !(low..=i64::from(u16::MAX)).contains(&high) {
        return Some("the magnitudes must satisfy 0 <= low <= high".into());
    }
    if !(1..=i64::from(u16::MAX)).contains(&steps) || steps < factor || steps % factor != 0 {
        return Some("the steps must be a multiple of the factor".into());
    }
    let mut this = 1i64;
    for _ in 0..=high {
        let Some(next) = this.checked_mul(factor) else {
            return Some("factor to the power high + 1 overflows 64 bits".into());
        };
        this = next;
    }
    let mut last = factor.pow(low as u32);
    for _ in low..=high {
        let next = last * factor;
        if next > steps && next % steps != 0 {
            return Some(format!(
                "the steps must evenly divide every order's width ({next} is not a multiple of {steps})"
            ));
        }
        last = next;
    }
    let buckets: i64 = (low..=high)
        .map(|o| {
            let this = factor.pow(o as u32 + 1);
            let n = this.min(steps);
            n - n / factor
        })
        .sum();
    if buckets > MAX_LOG_LINEAR_BUCKETS {
        return Some(format!(
            "{buckets} buckets; at most {MAX_LOG_LINEAR_BUCKETS} are kept"
        ));
    }
    None
}

/// The most buckets an `llquantize` may have.
pub const MAX_LOG_LINEAR_BUCKETS: i64 = 1000;

/// The orders of magnitude of a log-linear shape (libdtrace's
/// `dtrace_aggregate_llquantize_bucket`, unrolled): bucket 0 holds what
/// is below `factor^low`.
pub fn log_linear_orders(shape: HistShape) -> Vec<Order> {
    let HistShape::LogLinear {
        factor,
        low,
        high,
        steps,
    } = shape
    else {
        return Vec::new();
    };
    let (factor, steps) = (i64::from(factor), i64::from(steps));
    let mut last = factor.saturating_pow(u32::from(low));
    let mut base = 1usize;
    let mut orders = Vec::new();
    for _ in low..=high {
        let this = last.saturating_mul(factor);
        let n = this.min(steps);
        let order = Order {
            last,
            this,
            width: (this / n).max(1),
            base,
        };
        base = order.top();
        orders.push(order);
        last = this;
    }
    orders
}

/// The log-linear bucket of a value.
pub fn log_linear_bucket(orders: &[Order], value: i64) -> usize {
    match orders.first() {
        Some(first) if value >= first.last => {}
        _ => return 0,
    }
    for o in orders {
        if value < o.this {
            return o.base + ((value - o.last) / o.width) as usize;
        }
    }
    orders.last().map_or(0, Order::top)
}

/// The lowest value of a log-linear shape's bucket `i` (of those between
/// the under- and the overflow bucket).
pub fn log_linear_value(orders: &[Order], i: usize) -> i64 {
    for o in orders {
        if i < o.top() {
            return o.last + (i.saturating_sub(o.base)) as i64 * o.width;
        }
    }
    orders.last().map_or(0, |o| o.this)
}

/// The bucket `value` falls in, for `shape`.
pub fn bucket(shape: HistShape, value: i64) -> usize {
    match shape {
        HistShape::Log => log_bucket(value),
        HistShape::Linear {
            start, interval, ..
        } => linear_bucket(value, start, interval, shape.buckets()),
        HistShape::LogLinear { .. } => log_linear_bucket(&log_linear_orders(shape), value),
    }
}

fn bucket_value(num: usize) -> i64 {
    if num == 64 {
        0
    } else if num < 64 {
        (i64::MIN) >> num
    } else {
        1i64 << (num - 65)
    }
}

fn needed_space(v: i64) -> usize {
    if v == 0 {
        return 1;
    }
    let sign = usize::from(v < 0);
    sign + v.unsigned_abs().to_string().len()
}

/// The rows a histogram shows: two around its first and last non-zero
/// buckets, and for linear shapes whether the under- and overflow rows
/// are among them.
struct Rows {
    low: usize,
    high: usize,
    under: bool,
    over: bool,
}

fn shown_rows(shape: HistShape, counts: &[u64]) -> Rows {
    let buckets = counts.len();
    let mut low: i64 = -1;
    let mut high: usize = 0;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && low == -1 {
            low = i as i64;
        }
        if c > 0 {
            high = i;
        }
    }
    let linear = matches!(
        shape,
        HistShape::Linear { .. } | HistShape::LogLinear { .. }
    );
    for _ in 0..2 {
        if linear {
            if low > 0 {
                low -= 1;
            }
        } else if low != 64 && low > 0 {
            low -= 1;
        }
        if high < buckets - 1 {
            high += 1;
        }
    }
    let (mut under, mut over) = (false, false);
    if linear {
        if low == 0 && counts[0] == 0 {
            low += 1;
        }
        if high == buckets - 1 && counts[high] == 0 {
            high -= 1;
        }
        under = low == 0;
        over = high == buckets - 1;
    }
    Rows {
        low: low.max(0) as usize,
        high,
        under,
        over,
    }
}

/// Row `i`'s value, and `<` or `>` for a linear shape's under- and
/// overflow rows.
fn row_label(shape: HistShape, orders: &[Order], i: usize, buckets: usize) -> (i64, &'static str) {
    match shape {
        HistShape::Linear {
            start, interval, ..
        } => {
            if i == 0 {
                (start, "<")
            } else if i == buckets - 1 {
                (start + (i as i64 - 2) * interval, ">")
            } else {
                (start + (i as i64 - 1) * interval, "")
            }
        }
        HistShape::Log => (bucket_value(i), ""),
        HistShape::LogLinear { .. } => {
            let prefix = match i {
                0 => "<",
                i if i == buckets - 1 => ">",
                _ => "",
            };
            (log_linear_value(orders, i), prefix)
        }
    }
}

/// Draws a histogram as SystemTap's `print(@hist_*(x))` does (50 columns
/// of `@`, zero rows elided beyond two, a blank line at the end).
pub fn draw_histogram(shape: HistShape, counts: &[u64], out: &mut Vec<u8>) {
    const WIDTH: u64 = 50;
    let buckets = counts.len();
    if buckets == 0 {
        return;
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    let orders = log_linear_orders(shape);
    let Rows {
        low,
        high,
        under,
        over,
    } = shown_rows(shape, counts);
    let scale = if max <= WIDTH { 1 } else { max.div_ceil(WIDTH) };
    let cnt_space = needed_space(max as i64);
    let val_space = match shape {
        HistShape::Linear {
            start, interval, ..
        } => (needed_space(start) + usize::from(under))
            .max(needed_space(start + interval * high as i64) + usize::from(over)),
        HistShape::Log => needed_space(bucket_value(high)).max(needed_space(bucket_value(low))),
        HistShape::LogLinear { .. } => (needed_space(log_linear_value(&orders, low))
            + usize::from(under))
        .max(needed_space(log_linear_value(&orders, high)) + usize::from(over)),
    }
    .max(5);
    out.extend_from_slice(format!("{:>val_space$} |", "value").as_bytes());
    out.extend(std::iter::repeat_n(b'-', WIDTH as usize));
    out.extend_from_slice(b" count\n");
    let mut eliding = false;
    for i in low..=high {
        let (from, to) = (i.saturating_sub(2).max(low), (i + 2).min(high));
        if (from..=to).all(|k| counts[k] == 0) {
            eliding = true;
            continue;
        }
        if eliding {
            out.extend_from_slice(format!("{:val_space$} ~\n", "").as_bytes());
            eliding = false;
        }
        let (val, prefix) = row_label(shape, &orders, i, buckets);
        let pad = val_space.saturating_sub(needed_space(val));
        out.extend_from_slice(format!("{prefix:>pad$}{val} |").as_bytes());
        let bar = counts[i] / scale;
        out.extend(std::iter::repeat_n(b'@', bar as usize));
        let field = (WIDTH - bar) as usize + 1 + cnt_space;
        out.extend_from_slice(format!("{:>field$}\n", counts[i]).as_bytes());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_linear_buckets_follow_dtrace() {
        // llquantize(x, 10, 0, 1, 20): 1..9 by 1, then 10..95 by 5.
        let shape = HistShape::LogLinear {
            factor: 10,
            low: 0,
            high: 1,
            steps: 20,
        };
        let orders = log_linear_orders(shape);
        assert_eq!(shape.buckets(), 1 + 9 + 18 + 1);
        let at = |v| log_linear_bucket(&orders, v);
        assert_eq!(
            [at(-5), at(0), at(1), at(9), at(10), at(14), at(15)],
            [0, 0, 1, 9, 10, 10, 11]
        );
        assert_eq!([at(95), at(99), at(100), at(i64::MAX)], [27, 27, 28, 28]);
        assert_eq!(log_linear_value(&orders, 1), 1);
        assert_eq!(log_linear_value(&orders, 11), 15);
        assert_eq!(log_linear_value(&orders, 28), 100);
        assert_eq!(log_linear_problem(10, 0, 1, 20), None);
        assert!(
            log_linear_problem(1, 0, 1, 20)
                .unwrap()
                .contains("at least 2")
        );
        assert!(
            log_linear_problem(10, 0, 1, 15)
                .unwrap()
                .contains("multiple")
        );
        assert!(
            log_linear_problem(10, 0, 30, 10)
                .unwrap()
                .contains("overflows")
        );
        assert!(
            log_linear_problem(10, 2, 6, 80)
                .unwrap()
                .contains("evenly divide")
        );
        assert!(
            log_linear_problem(10, 3, 1, 10)
                .unwrap()
                .contains("low <= high")
        );
    }

    #[test]
    fn log_buckets() {
        assert_eq!(log_bucket(0), 64);
        assert_eq!(log_bucket(1), 65);
        assert_eq!(log_bucket(2), 66);
        assert_eq!(log_bucket(3), 66);
        assert_eq!(log_bucket(4), 67);
        assert_eq!(log_bucket(-1), 63);
        assert_eq!(log_bucket(i64::MAX), 127);
        assert_eq!(bucket_value(65), 1);
        assert_eq!(bucket_value(67), 4);
        assert_eq!(bucket_value(63), -1);
    }

    #[test]
    fn a_log_histogram_drawn_as_systemtap_draws_it() {
        let mut counts = vec![0u64; 128];
        for v in [1, 2, 3, 4, 5, 6, 7, 8, 100] {
            counts[log_bucket(v)] += 1;
        }
        let mut out = Vec::new();
        draw_histogram(HistShape::Log, &counts, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "value |-------------------------------------------------- count\n    0 |                                                   0\n    1 |@                                                  1\n    2 |@@                                                 2\n    4 |@@@@                                               4\n    8 |@                                                  1\n   16 |                                                   0\n   32 |                                                   0\n   64 |@                                                  1\n  128 |                                                   0\n  256 |                                                   0\n\n"
        );
    }

    #[test]
    fn a_linear_histogram_elides_long_runs_of_zeros() {
        let shape = HistShape::Linear {
            start: 0,
            stop: 100,
            interval: 10,
        };
        let mut counts = vec![0u64; shape.buckets()];
        for v in [5, 5, 95, 250] {
            counts[bucket(shape, v)] += 1;
        }
        let mut out = Vec::new();
        draw_histogram(shape, &counts, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "value |-------------------------------------------------- count\n    0 |@@                                                 2\n   10 |                                                   0\n   20 |                                                   0\n      ~\n   70 |                                                   0\n   80 |                                                   0\n   90 |@                                                  1\n  100 |                                                   0\n >100 |@                                                  1\n\n"
        );
    }
}
