//! Timer quantiles: exact for small windows, then a DDSketch-style bucketed sketch
//! (`LogBuckets`) with 1% relative error.
//!
//! Lives inside a timer window on the core that owns the series; only that core touches it.
//!
//! Why a DDSketch and not M3's CKMS stream: a shard core owns its series outright, so what
//! matters is insert cost and memory, and a DDSketch inserts in O(1) (one bucket increment, no
//! buffering or compression passes) with memory bounded by the value range, not by the number
//! of samples. Its guarantee is on the *value*: for quantile q over n samples, the estimate
//! lies within 1% (relative) of the exact sample at 0-based rank ⌊q·(n−1)⌋, plus 1e-9
//! absolute for values the sketch treats as zero. M3's CKMS guarantees rank error 1e-3
//! instead; a value-relative bound is what dashboards read. It is also mergeable: two
//! sketches combine by adding their bucket counts. `log_buckets.rs` says why sheaf keeps its
//! own buckets rather than use the `sketches-ddsketch` crate.
//!
//! Most timer windows hold few values, and a sketch's bucket array costs 400 bytes per
//! octave its values span (4 KiB for values spread over 1 to 1000), so a window keeps its
//! first `EXACT_LIMIT` values as they are and answers exactly from them; the sketch is built
//! only when the window outgrows that. Its first `EXACT_INLINE` values need no allocation.

use smallvec::SmallVec;

use crate::log_buckets::{LogBuckets, key_of, representative};

/// Values a window keeps exactly before it switches to the sketch.
const EXACT_LIMIT: usize = 128;
/// Values kept inside the window before the exact list moves to the heap.
const EXACT_INLINE: usize = 8;

#[derive(Clone)]
pub(crate) enum Inner {
    Exact(SmallVec<[f64; EXACT_INLINE]>),
    Sketch(Sketch),
}

/// The bucketed form: positive and negative values in buckets by magnitude, the rest as zeros.
#[derive(Clone)]
pub(crate) struct Sketch {
    pub(crate) positive: LogBuckets,
    /// Timers are rarely negative: kept off the window until one is.
    pub(crate) negative: Option<Box<LogBuckets>>,
    pub(crate) zeros: u64,
    pub(crate) count: u64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Sketch {
    fn new() -> Self {
        Self {
            positive: LogBuckets::default(),
            negative: None,
            zeros: 0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    #[inline]
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v > QuantileSketch::MIN_MAGNITUDE {
            self.positive.add(key_of(v));
        } else if v < -QuantileSketch::MIN_MAGNITUDE {
            self.negative.get_or_insert_default().add(key_of(-v));
        } else {
            // Zero, tiny and NaN values (NaN never reaches a window: it is discarded earlier).
            self.zeros += 1;
        }
    }

    /// The value at 0-based rank `rank`: negatives from the largest magnitude down, then
    /// zeros, then positives from the smallest up.
    fn at_rank(&self, rank: u64) -> f64 {
        let mut rank = rank;
        if let Some(negative) = &self.negative {
            match negative.key_at_rank(rank, true) {
                Some(key) => return -representative(key),
                None => rank -= negative.total(),
            }
        }
        if rank < self.zeros {
            return 0.0;
        }
        rank -= self.zeros;
        self.positive.key_at_rank(rank, false).map_or(self.max, representative)
    }
}

/// Streaming quantile estimate of one timer window.
#[derive(Clone)]
pub struct QuantileSketch {
    pub(crate) inner: Inner,
}

impl std::fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantileSketch").field("count", &self.count()).finish()
    }
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantileSketch {
    /// Relative error bound of [`QuantileSketch::quantile`].
    pub const RELATIVE_ERROR: f64 = 0.01;
    /// Values closer to zero than this are counted as zero.
    pub const MIN_MAGNITUDE: f64 = 1e-9;

    pub fn new() -> Self {
        Self { inner: Inner::Exact(SmallVec::new()) }
    }

    #[inline]
    pub fn add(&mut self, v: f64) {
        match &mut self.inner {
            Inner::Exact(values) if values.len() < EXACT_LIMIT => values.push(v),
            Inner::Exact(values) => {
                let mut sketch = Sketch::new();
                for x in values.iter() {
                    sketch.add(*x);
                }
                sketch.add(v);
                self.inner = Inner::Sketch(sketch);
            }
            Inner::Sketch(sketch) => sketch.add(v),
        }
    }

    /// Asks the CPU to start loading what `add(v)` will write: the next slot of a spilled exact
    /// list, or `v`'s bucket. Reads only this struct, which the caller should have loaded.
    #[inline]
    pub(crate) fn prefetch_add(&self, v: f64) {
        match &self.inner {
            Inner::Exact(values) => {
                if values.spilled() {
                    crate::paged::prefetch_address(values.as_ptr().wrapping_add(values.len()).cast());
                }
            }
            Inner::Sketch(sketch) => {
                if v > Self::MIN_MAGNITUDE {
                    sketch.positive.prefetch(key_of(v));
                }
            }
        }
    }

    /// Puts the exact values in order, so that every `quantile` after it reads its value off
    /// the list instead of selecting it in a copy: what a flush does before it reads a window's
    /// several quantiles. The order of the exact values means nothing else.
    pub fn order_exact(&mut self) {
        if let Inner::Exact(values) = &mut self.inner {
            values.sort_unstable_by(f64::total_cmp);
        }
    }

    pub fn count(&self) -> u64 {
        match &self.inner {
            Inner::Exact(values) => values.len() as u64,
            Inner::Sketch(sketch) => sketch.count,
        }
    }

    /// Estimate of quantile `q` in [0, 1]: exact while the window holds at most 128 values (the
    /// value at rank ⌊q·(n−1)⌋), else within the stated bound; `None` when empty. q = 0 and 1
    /// are the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let q = q.clamp(0.0, 1.0);
        match &self.inner {
            Inner::Exact(values) => {
                // `as` truncates, which for q·(n−1) ≥ 0 is the floor (without a call to libm's `floor`).
                let rank = (q * values.len().checked_sub(1)? as f64) as usize;
                // In order already (one value, or `order_exact` ran): read it off.
                if values.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
                    return values.get(rank).copied();
                }
                // Selected in a copy on the stack (linear time, no sort): flushing allocates
                // nothing, and a timer's several quantiles cost about what the sketch's do.
                let mut buf = [0.0; EXACT_LIMIT];
                let copy = &mut buf[..values.len()];
                copy.copy_from_slice(values);
                Some(*copy.select_nth_unstable_by(rank, f64::total_cmp).1)
            }
            Inner::Sketch(sketch) => {
                if sketch.count == 0 {
                    return None;
                }
                if q == 0.0 {
                    return Some(sketch.min);
                }
                if q == 1.0 {
                    return Some(sketch.max);
                }
                let rank = (q * (sketch.count - 1) as f64) as u64; // truncation: the floor of a value ≥ 0
                // A bucket's representative can stray past the extremes; the extremes are exact.
                Some(sketch.at_rank(rank).clamp(sketch.min, sketch.max))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)).floor() as usize]
    }

    fn check(values: &[f64]) -> Result<(), TestCaseError> {
        let mut sketch = QuantileSketch::new();
        for v in values {
            sketch.add(*v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&sorted, q);
            let got = sketch.quantile(q).unwrap();
            let bound = QuantileSketch::RELATIVE_ERROR * want.abs() + QuantileSketch::MIN_MAGNITUDE;
            prop_assert!((got - want).abs() <= bound * 1.000_001, "q={q} got={got} want={want} n={}", values.len());
        }
        Ok(())
    }

    proptest! {
        /// A flush orders the exact values before it reads several quantiles: each must be what
        /// the unordered list gave, and exactly the value at its rank.
        #[test]
        fn ordering_the_exact_values_changes_no_quantile(values in prop::collection::vec(-1e6f64..1e6, 1..=128)) {
            let mut sketch = QuantileSketch::new();
            for v in &values {
                sketch.add(*v);
            }
            let qs = [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0];
            let before: Vec<Option<f64>> = qs.iter().map(|&q| sketch.quantile(q)).collect();
            sketch.order_exact();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for (q, want) in qs.iter().zip(before) {
                prop_assert_eq!(sketch.quantile(*q), want);
                prop_assert_eq!(want, Some(exact(&sorted, *q)));
            }
        }

        #[test]
        fn positive_latencies_are_within_one_percent(values in prop::collection::vec(0.001f64..1e7, 1..3000)) {
            check(&values)?;
        }

        #[test]
        fn mixed_sign_values_are_within_one_percent(values in prop::collection::vec(-1e6f64..1e6, 1..2000)) {
            check(&values)?;
        }

        #[test]
        fn heavy_tails_are_within_one_percent(exps in prop::collection::vec(-6.0f64..9.0, 1..2000)) {
            let values: Vec<f64> = exps.iter().map(|e| 10f64.powf(*e)).collect();
            check(&values)?;
        }
    }

    #[test]
    fn small_windows_are_exact_and_the_switch_keeps_every_value() {
        let mut s = QuantileSketch::new();
        for v in [5.0, 1.0, 9.0, 3.0] {
            s.add(v);
        }
        assert_eq!(s.quantile(0.5), Some(3.0));
        assert_eq!(s.quantile(0.99), Some(5.0));
        assert_eq!(s.quantile(1.0), Some(9.0));
        for v in 0..20 {
            s.add(f64::from(v));
        }
        assert_eq!(s.count(), 24);
        assert_eq!(s.quantile(1.0), Some(19.0));
        assert_eq!(s.quantile(0.0), Some(0.0));
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        assert_eq!(QuantileSketch::new().quantile(0.5), None);
    }
}
