//! Power-of-two histograms, rendered like bpftrace's `hist()`.

/// Counts of values in power-of-two buckets: bucket 0 holds 0, bucket `i`
/// holds `[2^(i-1), 2^i)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log2Hist {
    buckets: Vec<u64>,
}

impl Log2Hist {
    /// Adds one value.
    pub fn add(&mut self, value: u64) {
        let i = (u64::BITS - value.leading_zeros()) as usize;
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Non-empty range of buckets as `(low, high_exclusive, count)`, from the
    /// first non-empty bucket to the last.
    pub fn buckets(&self) -> Vec<(u64, u64, u64)> {
        let Some(first) = self.buckets.iter().position(|&c| c > 0) else {
            return Vec::new();
        };
        let last = self.buckets.iter().rposition(|&c| c > 0).unwrap_or(first);
        (first..=last)
            .map(|i| {
                let (low, high) = match i {
                    0 => (0, 1),
                    _ => (
                        1u64 << (i - 1),
                        1u64.checked_shl(i as u32).unwrap_or(u64::MAX),
                    ),
                };
                (low, high, self.buckets[i])
            })
            .collect()
    }

    /// Text rendering, one line per bucket; `scale` divides the bounds
    /// (e.g. 1000 to show nanoseconds as microseconds).
    pub fn render(&self, scale: u64) -> String {
        let rows = self.buckets();
        let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
        let mut out = String::new();
        for (low, high, count) in rows {
            let range = format!("[{}, {})", human(low / scale), human(high / scale));
            let bar = "@".repeat(((count * 52).div_ceil(max)) as usize);
            out.push_str(&format!("{range:<20} {count:>8} |{bar:<52}|\n"));
        }
        out
    }
}

/// 1K, 4M, ... as bpftrace prints bucket bounds.
fn human(v: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if v >= 1 << shift && v.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", v >> shift);
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let mut h = Log2Hist::default();
        for v in [0, 1, 2, 3, 4, 7, 8, 1000] {
            h.add(v);
        }
        assert_eq!(h.count(), 8);
        let b = h.buckets();
        assert_eq!(b[0], (0, 1, 1));
        assert_eq!(b[1], (1, 2, 1));
        assert_eq!(b[2], (2, 4, 2));
        assert_eq!(b[3], (4, 8, 2));
        assert_eq!(b[4], (8, 16, 1));
        assert_eq!(*b.last().unwrap(), (512, 1024, 1));
        let text = h.render(1);
        assert!(text.contains("[512, 1K)"), "{text}");
        assert_eq!(text.lines().count(), b.len());
        assert_eq!(Log2Hist::default().render(1), "");
    }
}
