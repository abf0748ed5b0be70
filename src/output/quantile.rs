//! Log-linear histograms for latency percentiles: each power of two is
//! split into 64 linear sub-buckets, so a quantile is known within 1/64
//! (1.6 %) of its value, in constant memory however many calls there are.

/// Sub-buckets per power of two.
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;

/// A log-linear histogram of `u64` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantiles {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = u64::BITS - 1 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = (v >> shift) - SUB; // 0..SUB
    ((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The smallest value of a bucket.
fn bucket_low(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let group = i / SUB; // >= 1
    let sub = i % SUB;
    (SUB + sub) << (group - 1)
}

impl Quantiles {
    /// Adds a value.
    pub fn add(&mut self, v: u64) {
        let i = bucket_of(v);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.sum += u128::from(v);
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Their sum.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// The `q` quantile (0.5 for the median), as the low bound of its
    /// bucket: within 1.6 % below the true value. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_low(i);
            }
        }
        bucket_low(self.counts.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 3, u64::MAX]) {
            let i = bucket_of(v);
            assert!(i >= last || v < 5000, "{v}");
            let low = bucket_low(i);
            assert!(low <= v, "{v}: low {low}");
            assert!(v - low <= v / SUB, "{v}: low {low}");
            last = i;
        }
    }

    #[test]
    fn quantiles_of_known_data() {
        let mut q = Quantiles::default();
        for v in 1..=1000u64 {
            q.add(v * 1000);
        }
        assert_eq!(q.count(), 1000);
        let p50 = q.quantile(0.5);
        assert!((492_000..=500_000).contains(&p50), "{p50}");
        let p99 = q.quantile(0.99);
        assert!((975_000..=990_000).contains(&p99), "{p99}");
        assert_eq!(Quantiles::default().quantile(0.5), 0);
        assert_eq!(q.sum(), 500_500_000);
    }
}
