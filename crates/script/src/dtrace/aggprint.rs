//! Aggregations printed as dtrace prints them (libdtrace's
//! `dt_print_aggs`, `dt_print_datum`, `dt_print_quantize`,
//! `dt_print_lquantize`): one line per entry sorted by value (ties by
//! key), string keys as `"  %-50s"`, numbers as `" %16lld"`;
//! quantizations as the `value  --- Distribution --- count` table with a
//! 40-column bar of `@`. The caller adds the `"\n"` that comes before
//! (`printa(@a)` prints one, and so does the end of the run before every
//! aggregation not printed yet).
//!
//! `printa("format", @a)` formats each entry with its keys taking the
//! conversions in order and `%@d` (any conversion with `@`) the value.

use crate::ast::AggFunc;
use crate::format::{Arg, Format, FormatError};
use crate::ir::{Global, HistShape};
use crate::value::{Stats, Value};

/// DTrace's quantize buckets: 63 negative, zero, 63 positive.
const QUANTIZE_BUCKETS: usize = 127;
/// The zero bucket.
const QUANTIZE_ZERO: usize = 63;
/// The bar's width.
const BAR: u64 = 40;

/// The value an entry is sorted (`normal` 1) and printed by.
fn value_of(global: &Global, s: &Stats, normal: i64) -> i64 {
    let normal = normal.max(1);
    match global.agg.unwrap_or(AggFunc::Count) {
        AggFunc::Count => s.count / normal,
        AggFunc::Sum | AggFunc::Quantize | AggFunc::Lquantize | AggFunc::Llquantize => {
            s.sum / normal
        }
        AggFunc::Avg => {
            if s.count == 0 {
                0
            } else {
                s.sum / s.count / normal
            }
        }
        // dtrace prints it unsigned; it is below 2^63 for any i64 values.
        AggFunc::Stddev => s.stddev(normal) as i64,
        AggFunc::Min => s.min / normal,
        AggFunc::Max => s.max / normal,
    }
}

/// Sorts entries as dtrace does: by value, ties by keys.
pub fn sort(global: &Global, entries: &mut [(Vec<Value>, Stats)]) {
    entries.sort_by(|a, b| {
        value_of(global, &a.1, 1)
            .cmp(&value_of(global, &b.1, 1))
            .then_with(|| a.0.cmp(&b.0))
    });
}

/// One datum as `dt_print_datum` prints it.
fn datum(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            out.extend_from_slice(b"  ");
            out.extend_from_slice(s);
            out.extend(std::iter::repeat_n(b' ', 50usize.saturating_sub(s.len())));
        }
        v => out.extend_from_slice(format!(" {:>16}", v.long()).as_bytes()),
    }
}

/// Why `printa` printed nothing: its format does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("printa's format: {}", .0.message)]
pub struct PrintaError(pub FormatError);

/// The message of a run error ([`crate::interp::RunError`] carries text).
impl From<PrintaError> for String {
    fn from(e: PrintaError) -> String {
        e.to_string()
    }
}

/// Prints the aggregation `global` (its entries), divided by `normal`,
/// with `format` if `printa` gave one.
pub fn print(
    global: &Global,
    mut entries: Vec<(Vec<Value>, Stats)>,
    normal: i64,
    format: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), PrintaError> {
    let normal = normal.max(1);
    sort(global, &mut entries);
    let Some(format) = format else {
        for (keys, stats) in &entries {
            for (i, k) in keys.iter().enumerate() {
                match k {
                    // A stack is its frames' lines as dtrace prints them
                    // (`dt_print_stack`: a newline, then each frame
                    // indented), the value on the line after.
                    Value::Str(s) if global.stack_key(i) => out.extend_from_slice(s),
                    k => datum(k, out),
                }
            }
            match global.hist {
                Some(shape) => distribution(shape, &stats.buckets, normal, out),
                None => {
                    datum(&Value::Long(value_of(global, stats, normal)), out);
                }
            }
            out.push(b'\n');
        }
        return Ok(());
    };
    let (format, value_slots) = strip_value_conversions(format, global.hist.is_some());
    let parsed = Format::parse(&format).map_err(PrintaError)?;
    for (keys, stats) in &entries {
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut rendered_hist = Vec::new();
        let mut k = keys.iter();
        let total = parsed.args().len();
        let value = value_of(global, stats, normal);
        if let Some(shape) = global.hist {
            distribution(shape, &stats.buckets, normal, &mut rendered_hist);
        }
        for slot in 0..total {
            if value_slots.contains(&slot) {
                match global.hist {
                    Some(_) => args.push(Arg::Str(&rendered_hist)),
                    None => args.push(Arg::Long(value)),
                }
            } else {
                args.push(k.next().map_or(Arg::Long(0), Value::arg));
            }
        }
        parsed.render(&args, out);
    }
    Ok(())
}

/// Removes the `@` of value conversions (`%@d`, `%-10@u`), returning the
/// format and which conversions (by argument index) take the value. A
/// quantization's value conversion becomes `%s`: its table is printed
/// there, whatever the conversion says.
fn strip_value_conversions(format: &[u8], table: bool) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(format.len());
    let mut slots = Vec::new();
    let mut arg = 0;
    let mut i = 0;
    while i < format.len() {
        let c = format[i];
        out.push(c);
        i += 1;
        if c != b'%' {
            continue;
        }
        if format.get(i) == Some(&b'%') {
            out.push(b'%');
            i += 1;
            continue;
        }
        let mut is_value = false;
        let conv_start = out.len();
        while let Some(&d) = format.get(i) {
            if d == b'@' {
                is_value = true;
                i += 1;
                continue;
            }
            if d == b'*' {
                // A `*` width takes an argument of its own.
                arg += 1;
            }
            out.push(d);
            i += 1;
            if d.is_ascii_alphabetic() && !matches!(d, b'l' | b'h' | b'L' | b'z' | b'j' | b't') {
                break;
            }
        }
        if is_value {
            if table {
                out.truncate(conv_start);
                out.push(b's');
            }
            slots.push(arg);
        }
        arg += 1;
    }
    (out, slots)
}

/// A quantization's table (`dt_print_quantize`, `dt_print_lquantize`).
pub fn distribution(shape: HistShape, buckets: &[u64], normal: i64, out: &mut Vec<u8>) {
    // Rows: (label, count).
    let rows: Vec<(String, u64)> = match shape {
        HistShape::Log => {
            // SystemTap's 128 log buckets hold DTrace's 127 one place up.
            let mut counts = vec![0u64; QUANTIZE_BUCKETS];
            for (i, &c) in buckets.iter().enumerate() {
                counts[i.saturating_sub(1).min(QUANTIZE_BUCKETS - 1)] += c;
            }
            let label = |i: usize| -> String {
                let v: i64 = if i < QUANTIZE_ZERO {
                    -(1i64 << (QUANTIZE_ZERO - 1 - i))
                } else if i == QUANTIZE_ZERO {
                    0
                } else {
                    1i64 << (i - QUANTIZE_ZERO - 1)
                };
                format!("{v:>16}")
            };
            let (first, last) = shown(&counts, QUANTIZE_ZERO);
            (first..=last).map(|i| (label(i), counts[i])).collect()
        }
        HistShape::Linear {
            start, interval, ..
        } => {
            let n = shape.buckets();
            let levels = n as i64 - 2;
            let counts: Vec<u64> = (0..n)
                .map(|i| buckets.get(i).copied().unwrap_or(0))
                .collect();
            let (first, last) = if counts.iter().all(|&c| c == 0) {
                (0, 2.min(n - 1))
            } else {
                shown(&counts, usize::MAX)
            };
            let label = |i: usize| -> String {
                if i == 0 {
                    format!("{:>16}", format!("< {start}"))
                } else if i == n - 1 {
                    format!("{:>16}", format!(">= {}", start + levels * interval))
                } else {
                    format!("{:>16}", start + (i as i64 - 1) * interval)
                }
            };
            (first..=last).map(|i| (label(i), counts[i])).collect()
        }
        HistShape::LogLinear { .. } => {
            // `dt_print_llquantize`: no data shows the first two rows.
            let orders = crate::hist::log_linear_orders(shape);
            let n = shape.buckets();
            let counts: Vec<u64> = (0..n)
                .map(|i| buckets.get(i).copied().unwrap_or(0))
                .collect();
            let (first, last) = if counts.iter().all(|&c| c == 0) {
                (0, 1)
            } else {
                shown(&counts, usize::MAX)
            };
            let label = |i: usize| -> String {
                let value = crate::hist::log_linear_value(&orders, i);
                if i == 0 {
                    format!("{:>16}", format!("< {value}"))
                } else if i == n - 1 {
                    format!("{:>16}", format!(">= {value}"))
                } else {
                    format!("{value:>16}")
                }
            };
            (first..=last).map(|i| (label(i), counts[i])).collect()
        }
    };
    // The bars are shares of the rows shown.
    let total: u64 = rows.iter().map(|r| r.1).sum();
    out.extend_from_slice(
        format!(
            "\n{:>16} {:>41} {:<9}\n",
            "value", "------------- Distribution -------------", "count"
        )
        .as_bytes(),
    );
    for (label, count) in rows {
        let depth = if total == 0 {
            0
        } else {
            // (count * 40) / total, rounded half up, as dtrace's long double.
            ((count as f64 * BAR as f64) / total as f64 + 0.5) as usize
        };
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b" |");
        out.extend(std::iter::repeat_n(b'@', depth));
        out.extend(std::iter::repeat_n(b' ', BAR as usize - depth));
        out.extend_from_slice(format!(" {:<9}\n", count as i64 / normal).as_bytes());
    }
}

/// The first and last rows dtrace shows: one empty row either side of
/// the data; around `zero` when there is none.
fn shown(counts: &[u64], zero: usize) -> (usize, usize) {
    let n = counts.len();
    let Some(first) = counts.iter().position(|&c| c > 0) else {
        let z = zero.min(n - 1);
        return (z.saturating_sub(1), (z + 1).min(n - 1));
    };
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(first);
    (first.saturating_sub(1), (last + 1).min(n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Ty;
    use crate::source::{FileId, Span};

    fn global(agg: AggFunc, hist: Option<HistShape>, keyed: bool) -> Global {
        Global {
            name: "@".into(),
            span: Span::new(FileId(0), 0, 0),
            value: Ty::Stats,
            keys: if keyed { vec![Ty::Str] } else { Vec::new() },
            size: None,
            init: None,
            hist,
            agg: Some(agg),
            stack_keys: Vec::new(),
        }
    }

    fn stats(values: &[i64], hist: Option<HistShape>) -> Stats {
        let mut s = Stats::default();
        for &v in values {
            s.add(v, hist);
        }
        s
    }

    fn printed(g: &Global, entries: Vec<(Vec<Value>, Stats)>, format: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        print(g, entries, 1, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The Dynamic Tracing Guide's layout for `quantize`, as dtrace's
    /// `dt_print_quantize` prints it.
    #[test]
    fn quantize_as_dtrace_prints_it() {
        let g = global(AggFunc::Quantize, Some(HistShape::Log), false);
        let s = stats(&[1, 2, 3, 4, 5, 6, 7, 8, 100], g.hist);
        let text = printed(&g, vec![(Vec::new(), s)], None);
        let expected = "\n           value  ------------- Distribution ------------- count    \n               0 |                                         0        \n               1 |@@@@                                     1        \n               2 |@@@@@@@@@                                2        \n               4 |@@@@@@@@@@@@@@@@@@                       4        \n               8 |@@@@                                     1        \n              16 |                                         0        \n              32 |                                         0        \n              64 |@@@@                                     1        \n             128 |                                         0        \n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn lquantize_as_dtrace_prints_it() {
        let shape = HistShape::Linear {
            start: 0,
            stop: 90,
            interval: 10,
        };
        let g = global(AggFunc::Lquantize, Some(shape), false);
        let s = stats(&[5, 5, 95, 250], g.hist);
        let text = printed(&g, vec![(Vec::new(), s)], None);
        let expected = "\n           value  ------------- Distribution ------------- count    \n             < 0 |                                         0        \n               0 |@@@@@@@@@@@@@@@@@@@@                     2        \n              10 |                                         0        \n              20 |                                         0        \n              30 |                                         0        \n              40 |                                         0        \n              50 |                                         0        \n              60 |                                         0        \n              70 |                                         0        \n              80 |                                         0        \n              90 |@@@@@@@@@@                               1        \n          >= 100 |@@@@@@@@@@                               1        \n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn keyed_counts_sorted_by_value_and_printa_formats() {
        let g = global(AggFunc::Count, None, true);
        let entries = vec![
            (vec![Value::Str(b"b".to_vec())], stats(&[1, 1, 1], None)),
            (vec![Value::Str(b"a".to_vec())], stats(&[1], None)),
        ];
        let text = printed(&g, entries.clone(), None);
        assert_eq!(
            text,
            format!(
                "  a{}{:>17}\n  b{}{:>17}\n",
                " ".repeat(49),
                1,
                " ".repeat(49),
                3
            )
        );
        let text = printed(&g, entries, Some(b"%-4s %@d\n"));
        assert_eq!(text, "a    1\nb    3\n");
        let sum = global(AggFunc::Sum, None, false);
        assert_eq!(
            printed(&sum, vec![(Vec::new(), stats(&[2, 3], None))], None),
            format!("{:>17}\n", 5)
        );
    }

    /// `dt_print_llquantize`: an order's labels step by its width; no
    /// data at all shows the underflow row and the first.
    #[test]
    fn llquantize_as_dtrace_prints_it() {
        let shape = HistShape::LogLinear {
            factor: 10,
            low: 0,
            high: 1,
            steps: 20,
        };
        let g = global(AggFunc::Llquantize, Some(shape), false);
        let s = stats(&[3, 12, 14, 17, 500], g.hist);
        let text = printed(&g, vec![(Vec::new(), s)], None);
        let expected = "\n           value  ------------- Distribution ------------- count    \n               2 |                                         0        \n               3 |@@@@@@@@                                 1        \n               4 |                                         0        \n               5 |                                         0        \n               6 |                                         0        \n               7 |                                         0        \n               8 |                                         0        \n               9 |                                         0        \n              10 |@@@@@@@@@@@@@@@@                         2        \n              15 |@@@@@@@@                                 1        \n              20 |                                         0        \n              25 |                                         0        \n              30 |                                         0        \n              35 |                                         0        \n              40 |                                         0        \n              45 |                                         0        \n              50 |                                         0        \n              55 |                                         0        \n              60 |                                         0        \n              65 |                                         0        \n              70 |                                         0        \n              75 |                                         0        \n              80 |                                         0        \n              85 |                                         0        \n              90 |                                         0        \n              95 |                                         0        \n          >= 100 |@@@@@@@@                                 1        \n\n";
        assert_eq!(text, expected);
        let empty = printed(&g, vec![(Vec::new(), Stats::default())], None);
        assert_eq!(
            empty,
            "\n           value  ------------- Distribution ------------- count    \n             < 1 |                                         0        \n               1 |                                         0        \n\n"
        );
    }

    /// `dt_stddev`: the 128-bit average of squares less the squared
    /// average, integer square root; `normalize` divides inside.
    #[test]
    fn stddev_as_dtrace_computes_it() {
        let g = global(AggFunc::Stddev, None, false);
        let s = stats(&[2, 4, 4, 4, 5, 5, 7, 9], None);
        assert_eq!(s.stddev(1), 2);
        assert_eq!(
            printed(&g, vec![(Vec::new(), s)], None),
            format!("{:>17}\n", 2)
        );
        let big = stats(&[-4_000_000_000_000, 4_000_000_000_000], None);
        assert_eq!(big.squares, 2 * 16_000_000_000_000_000_000_000_000u128);
        assert_eq!(big.stddev(1), 4_000_000_000_000);
        assert_eq!(big.stddev(1000), 4_000_000_000);
        assert_eq!(Stats::default().stddev(1), 0);
    }
}
