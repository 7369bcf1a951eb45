//! `LogBuckets`: counts of values in buckets whose bounds grow geometrically, so that every
//! value in a bucket lies within 1 % (relative) of the value reported for it: the guarantee
//! of a DDSketch, and the same design (Masson, Rim and Lee, VLDB 2019).
//!
//! Lives inside a timer window on the core that owns the series; only that core touches it.
//!
//! Why not the `sketches-ddsketch` crate: it takes a natural log and a `floor` call per value,
//! and keeps its buckets two heap hops away from the window (a box, then the bucket vector),
//! so that with many series a timer value waits on three dependent cache misses.
//! Here a value's bucket comes from its float bits (a piecewise-linear log2, DDSketch's
//! "linearly interpolated" mapping): a handful of instructions, exact to invert, and cheap
//! enough that `apply` computes it a few values ahead to prefetch the very bucket. The
//! buckets are one hop from the window. The price is 50 buckets per octave instead of 35.
//!
//! #[PerformanceCriticalPath]: `add` runs per timer value once a window outgrows its exact list.

/// Bucket boundaries: bucket `k` holds the positive values `x` with
/// `⌊50 · (e + s)⌋ = k`, where `x = 2^e · (1 + s)`, `0 ≤ s < 1`. Along `ln x` the function
/// `e + s` grows at a rate `1 + s ≥ 1`, so a bucket spans at most `ln γ ≤ 1/50` in `ln x`,
/// γ = (1 + α)/(1 − α) for α = 1 %.
const BUCKETS_PER_OCTAVE: i32 = 50;

/// Most buckets one side keeps: 82 octaves. Beyond that the lowest buckets are merged into
/// one (as DDSketch's collapsing store does), which costs accuracy only at the low quantiles
/// of a window whose values span more than 24 decimal orders of magnitude.
const MAX_BUCKETS: usize = 4096;

/// Buckets added beyond what a new key needs, so that a window's first values do not grow
/// the vector one bucket at a time.
const GROWTH_SLACK: usize = 16;

/// The bucket of a positive, finite or infinite `x` (≥ `f64::MIN_POSITIVE`).
#[inline]
pub(crate) fn key_of(x: f64) -> i32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    // 1 + s, from the mantissa bits under a zero exponent.
    let significand = f64::from_bits((bits & ((1 << 52) - 1)) | 0x3ff0_0000_0000_0000);
    // (1 + s − 1) · 50 lies in [0, 50): truncation is the floor, with no libm call.
    exponent * BUCKETS_PER_OCTAVE + ((significand - 1.0) * f64::from(BUCKETS_PER_OCTAVE)) as i32
}

/// The smallest value of bucket `key`.
pub(crate) fn lower_bound(key: i32) -> f64 {
    let exponent = key.div_euclid(BUCKETS_PER_OCTAVE);
    let step = key.rem_euclid(BUCKETS_PER_OCTAVE);
    let mut x = 2f64.powi(exponent) * (1.0 + f64::from(step) / f64::from(BUCKETS_PER_OCTAVE));
    if x.is_infinite() {
        return x;
    }
    // `step / 50` is rounded, and so is `key_of`'s product: step to the float where `key_of`
    // actually changes (at most a few ulps away).
    let up = |v: f64| f64::from_bits(v.to_bits() + 1);
    let down = |v: f64| f64::from_bits(v.to_bits() - 1);
    while key_of(x) < key {
        x = up(x);
    }
    while key_of(down(x)) >= key {
        x = down(x);
    }
    x
}

/// The value reported for bucket `key`: the harmonic mean of its bounds, which is within
/// (hi − lo)/(hi + lo) ≤ α of every value in `[lo, hi]`.
pub(crate) fn representative(key: i32) -> f64 {
    let (lo, hi) = (lower_bound(key), lower_bound(key + 1));
    // 2·lo·hi/(lo + hi), written so that it neither underflows nor overflows.
    if hi.is_infinite() { lo } else { lo * (2.0 / (1.0 + lo / hi)) }
}

/// Counts by bucket over a contiguous range of keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogBuckets {
    pub(crate) counts: Vec<u64>,
    /// The key of `counts[0]`.
    pub(crate) first_key: i32,
    /// Whether keys below `first_key` have been merged into `counts[0]` (then they still are).
    pub(crate) collapsed: bool,
}

impl LogBuckets {
    #[inline]
    pub(crate) fn add(&mut self, key: i32) {
        let i = self.index(key);
        match self.counts.get_mut(i) {
            Some(count) => *count += 1,
            None => self.grow_and_add(key),
        }
    }

    /// Where `key`'s count is (wrapping: far outside for keys out of range).
    #[inline]
    fn index(&self, key: i32) -> usize {
        key.wrapping_sub(self.first_key) as u32 as usize
    }

    /// Asks the CPU to start loading `key`'s count (nothing when out of range).
    #[inline]
    pub(crate) fn prefetch(&self, key: i32) {
        if let Some(count) = self.counts.get(self.index(key)) {
            crate::paged::prefetch(count);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_and_add(&mut self, key: i32) {
        if self.counts.is_empty() {
            self.first_key = key;
            self.counts = vec![0; GROWTH_SLACK];
            self.counts[0] = 1;
            return;
        }
        if key < self.first_key && self.collapsed {
            self.counts[0] += 1;
            return;
        }
        let last_key = self.first_key + self.counts.len() as i32 - 1;
        let (low, high) = if key < self.first_key {
            (key - GROWTH_SLACK as i32 + 1, last_key)
        } else {
            (self.first_key, key + GROWTH_SLACK as i32 - 1)
        };
        let low = if (high - low) as usize >= MAX_BUCKETS {
            self.collapsed = true;
            high - MAX_BUCKETS as i32 + 1
        } else {
            low
        };
        let mut counts = vec![0u64; (high - low + 1) as usize];
        for (i, count) in self.counts.iter().enumerate() {
            // Keys below the new range fold into its first bucket.
            let k = (self.first_key + i as i32).max(low);
            counts[(k - low) as usize] += count;
        }
        counts[(key.max(low) - low) as usize] += 1;
        self.counts = counts;
        self.first_key = low;
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The key holding the `rank`-th value (0-based) counting from the lowest key, with
    /// `descending` from the highest; `None` when `rank` ≥ the total.
    pub(crate) fn key_at_rank(&self, mut rank: u64, descending: bool) -> Option<i32> {
        let at = |i: usize| self.first_key + i as i32;
        let mut visit = |(i, count): (usize, &u64)| {
            if rank < *count {
                return Some(at(i));
            }
            rank -= count;
            None
        };
        if descending {
            self.counts.iter().enumerate().rev().find_map(&mut visit)
        } else {
            self.counts.iter().enumerate().find_map(&mut visit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALPHA: f64 = 0.01;

    #[test]
    fn fifty_buckets_per_octave_meet_one_percent() {
        let gamma = (1.0 + ALPHA) / (1.0 - ALPHA);
        assert!(f64::from(BUCKETS_PER_OCTAVE) >= 1.0 / gamma.ln());
    }

    #[test]
    fn bucket_bounds_are_consistent_with_keys() {
        for key in -2000..2000 {
            let lo = lower_bound(key);
            assert_eq!(key_of(lo), key, "lower bound of {key}");
            let below = f64::from_bits(lower_bound(key + 1).to_bits() - 1);
            assert_eq!(key_of(below), key, "just below the next bound of {key}");
        }
    }

    proptest! {
        #[test]
        // Every positive normal float, exponents drawn evenly.
        fn every_value_is_within_one_percent_of_its_bucket(
            x in (0x0010_0000_0000_0000u64..0x7ff0_0000_0000_0000).prop_map(f64::from_bits)
        ) {
            let rep = representative(key_of(x));
            prop_assert!((rep - x).abs() <= ALPHA * x * (1.0 + 1e-12), "x={x} rep={rep}");
        }

        #[test]
        fn ranks_match_a_sorted_list_of_keys(keys in prop::collection::vec(-300i32..300, 1..400)) {
            let mut buckets = LogBuckets::default();
            for k in &keys {
                buckets.add(*k);
            }
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            prop_assert_eq!(buckets.total(), keys.len() as u64);
            for (rank, k) in sorted.iter().enumerate() {
                prop_assert_eq!(buckets.key_at_rank(rank as u64, false), Some(*k));
                prop_assert_eq!(buckets.key_at_rank(rank as u64, true), Some(sorted[sorted.len() - 1 - rank]));
            }
            prop_assert_eq!(buckets.key_at_rank(keys.len() as u64, false), None);
        }
    }

    #[test]
    fn a_range_wider_than_the_cap_collapses_its_lowest_keys() {
        let mut buckets = LogBuckets::default();
        buckets.add(0);
        buckets.add(10_000);
        buckets.add(-5);
        assert_eq!(buckets.total(), 3);
        assert!(buckets.counts.len() <= MAX_BUCKETS);
        // The two low keys share the lowest kept bucket; the high one keeps its own.
        let lowest = buckets.key_at_rank(0, false).unwrap();
        assert_eq!(buckets.key_at_rank(1, false), Some(lowest));
        assert_eq!(buckets.key_at_rank(2, false), Some(10_000));
    }
}
