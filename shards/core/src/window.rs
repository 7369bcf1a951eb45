//! The aggregation state of one window of one series element, and how it becomes values.
//!
//! Lives inside a series element (`series::Elem`) on the core that owns the series' shard;
//! only that core touches it. `WindowAgg`, the owned form, is for tests and benchmarks.
//!
//! #[PerformanceCriticalPath]: `add_*` runs once per ingested value on the owning core.
//! No allocation except a window's first timer value (its sketch) or set member table.

use std::mem::ManuallyDrop;

use crate::aggregation::{AggType, AggTypes, MetricType};
use crate::quantile::QuantileSketch;

/// Everything a timer (or any non-default aggregation) needs.
#[derive(Debug, Clone)]
pub struct FullAgg {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) sum_sq: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) last: f64,
    pub(crate) last_time: i64,
    pub(crate) sketch: Option<QuantileSketch>,
}

impl FullAgg {
    fn new(needs_sketch: bool) -> Self {
        Self {
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: f64::NAN,
            last_time: i64::MIN,
            sketch: needs_sketch.then(QuantileSketch::new),
        }
    }

    /// Every cache line of the aggregate. Reads none of it, so that the caller does not wait.
    #[inline]
    fn prefetch(&self) {
        crate::paged::prefetch_all(self);
    }

    #[inline]
    fn add(&mut self, v: f64, time: i64) {
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if time >= self.last_time {
            self.last = v;
            self.last_time = time;
        }
        if let Some(s) = &mut self.sketch {
            s.add(v);
        }
    }

    #[inline]
    fn value_of(&self, t: AggType) -> f64 {
        let n = self.count as f64;
        match t {
            AggType::Last => self.last,
            AggType::Min => self.min,
            AggType::Max => self.max,
            AggType::Mean => self.sum / n,
            AggType::Count => n,
            AggType::Sum => self.sum,
            AggType::SumSq => self.sum_sq,
            // Sample standard deviation, as M3's timer computes it; 0 for a single value.
            AggType::Stdev => {
                if self.count < 2 {
                    0.0
                } else {
                    ((self.sum_sq * n - self.sum * self.sum) / (n * (n - 1.0))).max(0.0).sqrt()
                }
            }
            q => match (&self.sketch, q.quantile()) {
                (Some(s), Some(q)) => s.quantile(q).unwrap_or(f64::NAN),
                _ => f64::NAN,
            },
        }
    }
}

/// What a resend-enabled rollup keeps of a flushed window to correct it later: its moments
/// and last value (a sketch or set members are not kept: see [`WindowMut::moments`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    last: f64,
    last_time: i64,
}

impl Moments {
    /// Takes in the values of `later`, a window of the same element and start opened again.
    pub(crate) fn merge(&mut self, later: &Moments) {
        self.count += later.count;
        self.sum += later.sum;
        self.sum_sq += later.sum_sq;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if later.last_time >= self.last_time {
            (self.last, self.last_time) = (later.last, later.last_time);
        }
    }

    /// Takes in `v`, observed at `time`, replacing `prev` if any (as [`WindowMut::replace`]).
    pub(crate) fn update(&mut self, prev: Option<f64>, v: f64, time: i64) {
        if let Some(prev) = prev {
            if !prev.is_nan() {
                self.sum -= prev;
                self.sum_sq -= prev * prev;
            }
            self.count = self.count.saturating_sub(1);
        }
        let one = Moments { count: 1, sum: v, sum_sq: v * v, min: v, max: v, last: v, last_time: time };
        self.merge(&one);
    }

    pub(crate) fn value_of(&self, t: AggType) -> f64 {
        let Moments { count, sum, sum_sq, min, max, last, last_time } = *self;
        FullAgg { count, sum, sum_sq, min, max, last, last_time, sketch: None }.value_of(t)
    }
}

/// Which state a window keeps. Chosen from the metric type and aggregation set when a
/// series element is created; every window of that element has the same kind, so the element
/// stores it once and its windows store only their state (`WindowState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Counter with only `sum`.
    Sum,
    /// Untimed gauge with only `last`: the latest value to arrive (arrival order is time
    /// order on the owning core). Timed gauges use `Full`, which compares timestamps.
    Last,
    /// Timers and any other aggregation set; `sketch` when a quantile is among them.
    Full { sketch: bool },
    /// StatsD set: distinct member hashes.
    Distinct,
}

impl WindowKind {
    /// The kind for a series of `metric_type` aggregated by `aggs` (already resolved); `timed`
    /// when values carry their own timestamps.
    pub fn new(metric_type: MetricType, aggs: AggTypes, timed: bool) -> Self {
        const _: () = assert!(std::mem::size_of::<WindowKind>() == 1);
        match metric_type {
            MetricType::Set => Self::Distinct,
            MetricType::Counter if aggs == AggTypes::of(&[AggType::Sum]) => Self::Sum,
            MetricType::Gauge if !timed && aggs == AggTypes::of(&[AggType::Last]) => Self::Last,
            _ => Self::Full { sketch: aggs.needs_sketch() },
        }
    }
}

/// The state of one window without its kind: 8 bytes instead of the 16 a tagged enum takes,
/// which is 16 bytes per series (two windows inline). Whoever holds one keeps its kind beside
/// it and passes that kind to every access; `WindowAgg` is the owned, tagged form.
pub(crate) union WindowState {
    pub(crate) num: f64,
    pub(crate) full: ManuallyDrop<Box<FullAgg>>,
    pub(crate) set: ManuallyDrop<Box<hashbrown::HashSet<u64>>>,
}

impl WindowState {
    /// A fresh state of `kind`.
    pub(crate) fn new(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Sum => Self { num: 0.0 },
            WindowKind::Last => Self { num: f64::NAN },
            WindowKind::Full { sketch } => Self { full: ManuallyDrop::new(Box::new(FullAgg::new(sketch))) },
            WindowKind::Distinct => Self { set: ManuallyDrop::new(Box::default()) },
        }
    }

    /// A placeholder that owns nothing, for an empty slot (see `WindowList`): never viewed,
    /// added to or dropped as any kind.
    pub(crate) const fn vacant() -> Self {
        Self { num: 0.0 }
    }

    /// A typed view of this state.
    ///
    /// # Safety
    /// `kind` is the kind this state was created with, and the state has not been dropped.
    #[inline]
    pub(crate) unsafe fn view(&mut self, kind: WindowKind) -> WindowMut<'_> {
        // SAFETY: the caller guarantees `kind` names the field `new` wrote, still live.
        unsafe {
            match kind {
                WindowKind::Sum => WindowMut::Sum(&mut self.num),
                WindowKind::Last => WindowMut::Last(&mut self.num),
                WindowKind::Full { .. } => WindowMut::Full(&mut self.full),
                WindowKind::Distinct => WindowMut::Distinct(&mut self.set),
            }
        }
    }

    /// Adds one numeric value observed at `time`, as `view(kind).add(v, time)` does.
    ///
    /// # Safety
    /// As for `view`.
    #[inline]
    pub(crate) unsafe fn add(&mut self, kind: WindowKind, v: f64, time: i64) {
        // SAFETY: the caller guarantees `kind` names the field `new` wrote, still live.
        unsafe {
            match kind {
                WindowKind::Sum => self.num += v,
                WindowKind::Last => self.num = v,
                WindowKind::Full { .. } => self.full.add(v, time),
                // A numeric value sent to a set counts as a member.
                WindowKind::Distinct => {
                    self.set.insert(v.to_bits());
                }
            }
        }
    }

    /// Asks the CPU to start loading what a value added to this state will touch on the heap
    /// (a timer's aggregate, a set's table header); a no-op for the inline kinds.
    ///
    /// # Safety
    /// As for `view`.
    #[inline]
    pub(crate) unsafe fn prefetch(&self, kind: WindowKind) {
        match kind {
            WindowKind::Sum | WindowKind::Last => {}
            WindowKind::Full { .. } => {
                // SAFETY: the caller guarantees `full` is the live field.
                let full: &FullAgg = unsafe { &self.full };
                full.prefetch();
            }
            WindowKind::Distinct => {
                // SAFETY: the caller guarantees `set` is the live field.
                let set: &hashbrown::HashSet<u64> = unsafe { &self.set };
                crate::paged::prefetch(set);
            }
        }
    }

    /// Asks the CPU to start loading where `add(v)` will write inside a timer's quantile
    /// sketch. Reads the aggregate, so call it once `prefetch` has brought that in.
    ///
    /// # Safety
    /// As for `view`.
    #[inline]
    pub(crate) unsafe fn prefetch_add(&self, kind: WindowKind, v: f64) {
        if let WindowKind::Full { sketch: true } = kind {
            // SAFETY: the caller guarantees `full` is the live field.
            let full: &FullAgg = unsafe { &self.full };
            if let Some(sketch) = &full.sketch {
                sketch.prefetch_add(v);
            }
        }
    }

    /// Frees what the state owns.
    ///
    /// # Safety
    /// As for `view`; the state is not used again afterwards.
    #[inline]
    pub(crate) unsafe fn drop_as(&mut self, kind: WindowKind) {
        // The caller never reads the state after this, so each box is dropped exactly once.
        // SAFETY: the caller guarantees `kind` names the live field.
        unsafe {
            match kind {
                WindowKind::Sum | WindowKind::Last => {}
                WindowKind::Full { .. } => ManuallyDrop::drop(&mut self.full),
                WindowKind::Distinct => ManuallyDrop::drop(&mut self.set),
            }
        }
    }
}

/// A window's state, typed: what `WindowState::view` and `WindowAgg::view` hand out.
#[derive(Debug)]
pub enum WindowMut<'a> {
    Sum(&'a mut f64),
    Last(&'a mut f64),
    Full(&'a mut FullAgg),
    Distinct(&'a mut hashbrown::HashSet<u64>),
}

impl WindowMut<'_> {
    /// Adds one numeric value observed at `time`.
    #[inline]
    pub fn add(&mut self, v: f64, time: i64) {
        match self {
            Self::Sum(s) => **s += v,
            Self::Last(value) => **value = v,
            Self::Full(f) => f.add(v, time),
            // A numeric value sent to a set counts as a member.
            Self::Distinct(set) => {
                set.insert(v.to_bits());
            }
        }
    }

    /// Replaces `prev`, a value added before, by `v` observed at `time` (M3's
    /// `UpdatePrevious`, a resent forwarded value): the sum, sum of squares and count no longer
    /// hold `prev`; the minimum, maximum and a timer's quantiles cannot forget it and take `v`
    /// in beside it, as M3's do; the last value is `v` if `time` is the latest.
    pub fn replace(&mut self, prev: f64, v: f64, time: i64) {
        match self {
            Self::Sum(s) => **s += v - prev,
            Self::Full(f) => {
                if !prev.is_nan() {
                    f.sum -= prev;
                    f.sum_sq -= prev * prev;
                }
                f.count = f.count.saturating_sub(1);
                f.add(v, time);
            }
            other => other.add(v, time),
        }
    }

    #[inline]
    pub fn add_member(&mut self, member_hash: u64, time: i64) {
        match self {
            Self::Distinct(set) => {
                set.insert(member_hash);
            }
            other => other.add(member_hash as f64, time),
        }
    }

    /// The window's [`Moments`]; `None` for a timer with quantiles or a set, whose values
    /// cannot be merged with a later window's.
    pub(crate) fn moments(&self) -> Option<Moments> {
        let empty = FullAgg::new(false);
        let of = |f: &FullAgg| Moments {
            count: f.count,
            sum: f.sum,
            sum_sq: f.sum_sq,
            min: f.min,
            max: f.max,
            last: f.last,
            last_time: f.last_time,
        };
        match self {
            Self::Sum(s) => Some(Moments { sum: **s, ..of(&empty) }),
            // An untimed gauge's latest value: a later window's wins.
            Self::Last(v) => Some(Moments { last: **v, ..of(&empty) }),
            Self::Full(f) if f.sketch.is_none() => Some(of(f)),
            _ => None,
        }
    }

    /// Readies the window for several `value_of` calls in a row (a flush reading every
    /// aggregation): a timer's exact values are put in order once, so that each quantile is
    /// read off them.
    #[inline]
    pub fn prepare_reads(&mut self) {
        if let Self::Full(f) = self
            && let Some(sketch) = &mut f.sketch
        {
            sketch.order_exact();
        }
    }

    /// The value of aggregation `t` over this window.
    #[inline]
    pub fn value_of(&self, t: AggType) -> f64 {
        match self {
            Self::Sum(s) => match t {
                AggType::Sum => **s,
                _ => f64::NAN,
            },
            Self::Last(value) => match t {
                AggType::Last => **value,
                _ => f64::NAN,
            },
            Self::Full(f) => f.value_of(t),
            Self::Distinct(set) => match t {
                AggType::Count => set.len() as f64,
                _ => f64::NAN,
            },
        }
    }
}

/// One window's state with its kind: the owned form of what a series element stores
/// untagged, for code that holds a single window (tests, benchmarks).
pub struct WindowAgg {
    kind: WindowKind,
    state: WindowState,
}

impl WindowAgg {
    /// A fresh window for a series of `metric_type` aggregated by `aggs` (already resolved);
    /// `timed` when values carry their own timestamps.
    pub fn new(metric_type: MetricType, aggs: AggTypes, timed: bool) -> Self {
        let kind = WindowKind::new(metric_type, aggs, timed);
        Self { kind, state: WindowState::new(kind) }
    }

    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    #[inline]
    pub fn view(&mut self) -> WindowMut<'_> {
        // SAFETY: `state` was created with `kind` and is dropped only in `drop`.
        unsafe { self.state.view(self.kind) }
    }

    #[inline]
    pub fn add(&mut self, v: f64, time: i64) {
        self.view().add(v, time)
    }

    #[inline]
    pub fn add_member(&mut self, member_hash: u64, time: i64) {
        self.view().add_member(member_hash, time)
    }

    pub fn value_of(&mut self, t: AggType) -> f64 {
        self.view().value_of(t)
    }
}

impl Drop for WindowAgg {
    fn drop(&mut self) {
        // SAFETY: `state` was created with `kind` and is not used after this.
        unsafe { self.state.drop_as(self.kind) }
    }
}

impl std::fmt::Debug for WindowAgg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAgg").field("kind", &self.kind).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn timer(values: &[f64]) -> WindowAgg {
        let mut w = WindowAgg::new(MetricType::Timer, MetricType::Timer.default_aggregations(), false);
        for (i, v) in values.iter().enumerate() {
            w.add(*v, i as i64);
        }
        w
    }

    proptest! {
        #[test]
        fn timer_moments_match_exact_math(values in prop::collection::vec(-1e6f64..1e6, 1..500)) {
            let mut w = timer(&values);
            let n = values.len() as f64;
            let sum: f64 = values.iter().sum();
            let sum_sq: f64 = values.iter().map(|v| v * v).sum();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * (1.0 + b.abs());
            prop_assert!(close(w.value_of(AggType::Sum), sum));
            prop_assert!(close(w.value_of(AggType::SumSq), sum_sq));
            prop_assert!(close(w.value_of(AggType::Mean), sum / n));
            prop_assert_eq!(w.value_of(AggType::Count), n);
            prop_assert_eq!(w.value_of(AggType::Min), values.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(w.value_of(AggType::Max), values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            prop_assert_eq!(w.value_of(AggType::Last), *values.last().unwrap());
            if values.len() > 1 {
                let mean = sum / n;
                let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
                let got = w.value_of(AggType::Stdev);
                prop_assert!((got - var.sqrt()).abs() <= 1e-3 * (1.0 + var.sqrt()), "stdev {got} vs {}", var.sqrt());
            }
        }

        #[test]
        fn counter_sum_is_exact_for_integers(values in prop::collection::vec(-1_000_000i64..1_000_000, 0..1000)) {
            let mut w = WindowAgg::new(MetricType::Counter, MetricType::Counter.default_aggregations(), false);
            for v in &values { w.add(*v as f64, 0); }
            prop_assert_eq!(w.value_of(AggType::Sum), values.iter().sum::<i64>() as f64);
        }

        #[test]
        fn timed_gauge_keeps_the_value_with_the_largest_time(points in prop::collection::vec((0i64..1000, -1e9f64..1e9), 1..200)) {
            let mut w = WindowAgg::new(MetricType::Gauge, MetricType::Gauge.default_aggregations(), true);
            for (t, v) in &points { w.add(*v, *t); }
            let max_t = points.iter().map(|p| p.0).max().unwrap();
            // ties go to the later arrival
            let want = points.iter().rev().find(|p| p.0 == max_t).unwrap().1;
            prop_assert_eq!(w.value_of(AggType::Last), want);
        }
    }

    #[test]
    fn untimed_gauge_keeps_the_last_value_to_arrive() {
        let mut w = WindowAgg::new(MetricType::Gauge, MetricType::Gauge.default_aggregations(), false);
        for v in [3.0, -1.0, 7.5] {
            w.add(v, 0);
        }
        assert_eq!(w.value_of(AggType::Last), 7.5);
    }

    #[test]
    fn sets_count_distinct_members() {
        let mut w = WindowAgg::new(MetricType::Set, MetricType::Set.default_aggregations(), false);
        for m in [1u64, 2, 2, 3, 1] {
            w.add_member(m, 0);
        }
        assert_eq!(w.value_of(AggType::Count), 3.0);
    }
}
