//! One series (an id of one metric type) and its aggregation elements, on the core that owns
//! its shard. Only that core reads or writes it.
//!
//! #[PerformanceCriticalPath]: `Series::elems_for` and `Elem::window_mut` run per value.

use smallvec::SmallVec;

use crate::aggregation::{AggTypes, MetricType};
use crate::spec::{PolicyIdx, SpecId, SpecTable};
use crate::time::UnixNanos;
use crate::window::WindowAgg;

#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) start: UnixNanos,
    pub(crate) agg: WindowAgg,
}

/// The windows of one (policy, aggregations, timed?) of a series, sorted by start.
#[derive(Debug)]
pub(crate) struct Elem {
    // The fields of an `ElemKey`, flattened so that `timed` fits in its padding.
    pub(crate) policy: PolicyIdx,
    pub(crate) aggs: AggTypes,
    pub(crate) timed: bool,
    /// Two windows inline: the open one and, between a window's end and its flush, the
    /// closed one. A third (timed metrics with a long past buffer) goes to the heap.
    pub(crate) windows: SmallVec<[Window; 2]>,
}

impl Elem {
    /// The window starting at `start`, opened if needed (windows stay sorted).
    #[inline]
    pub(crate) fn window_mut(&mut self, start: UnixNanos, metric_type: MetricType) -> &mut WindowAgg {
        let pos = match self.windows.last() {
            Some(w) if w.start == start => self.windows.len() - 1,
            Some(w) if w.start < start => self.open(self.windows.len(), start, metric_type),
            None => self.open(0, start, metric_type),
            Some(_) => match self.windows.binary_search_by_key(&start, |w| w.start) {
                Ok(i) => i,
                Err(i) => self.open(i, start, metric_type),
            },
        };
        &mut self.windows[pos].agg
    }

    fn open(&mut self, at: usize, start: UnixNanos, metric_type: MetricType) -> usize {
        let agg = WindowAgg::new(metric_type, self.aggs.resolve(metric_type), self.timed);
        self.windows.insert(at, Window { start, agg });
        at
    }
}

#[derive(Debug)]
pub(crate) struct Series {
    /// Where the id lies in the shard's id arena (see `ShardMap`).
    pub(crate) id_start: u32,
    pub(crate) id_len: u32,
    pub(crate) metric_type: MetricType,
    /// The spec whose keys are `elems[..n]`, in order (the fast path).
    spec: SpecId,
    spec_timed: bool,
    /// Seconds since the Unix epoch of the last write, for expiry.
    pub(crate) last_write_secs: u32,
    /// A gauge's latest value, the base of StatsD deltas.
    pub(crate) gauge_last: f64,
    pub(crate) elems: SmallVec<[Elem; 1]>,
}

impl Series {
    pub(crate) fn new(id_start: u32, id_len: u32, metric_type: MetricType) -> Self {
        Self {
            id_start,
            id_len,
            metric_type,
            spec: SpecId::MAX,
            spec_timed: false,
            last_write_secs: 0,
            gauge_last: f64::NAN,
            elems: SmallVec::new(),
        }
    }

    /// The elements that spec `spec` writes to, creating missing ones; they come first in
    /// `elems`, in the spec's order, so the next write with the same spec finds them directly.
    #[inline]
    pub(crate) fn elems_for(&mut self, spec: SpecId, timed: bool, specs: &SpecTable) -> &mut [Elem] {
        let keys = specs.keys(spec);
        if self.spec != spec || self.spec_timed != timed {
            for (i, key) in keys.iter().enumerate() {
                match self.elems[i..]
                    .iter()
                    .position(|e| e.policy == key.policy && e.aggs == key.aggs && e.timed == timed)
                {
                    Some(j) => self.elems.swap(i, i + j),
                    None => {
                        let elem = Elem { policy: key.policy, aggs: key.aggs, timed, windows: SmallVec::new() };
                        self.elems.insert(i, elem);
                    }
                }
            }
            self.spec = spec;
            self.spec_timed = timed;
        }
        &mut self.elems[..keys.len()]
    }

    pub(crate) fn has_windows(&self) -> bool {
        self.elems.iter().any(|e| !e.windows.is_empty())
    }

    /// Drops elements no longer named by the current spec once their windows are flushed.
    pub(crate) fn drop_stale_elems(&mut self, specs: &SpecTable) {
        let live = if self.spec == SpecId::MAX { 0 } else { specs.keys(self.spec).len() };
        if self.elems.len() > live {
            let mut i = live;
            while i < self.elems.len() {
                if self.elems[i].windows.is_empty() {
                    self.elems.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// Whether an element's values carry an aggregation suffix: always for timers, for other
/// types when the aggregations differ from the type's default; timed metrics only when
/// more than one aggregation would otherwise share the id.
pub(crate) fn with_suffix(metric_type: MetricType, aggs: AggTypes, timed: bool) -> bool {
    let resolved = aggs.resolve(metric_type);
    if timed {
        resolved.len() > 1
    } else {
        metric_type == MetricType::Timer || resolved != metric_type.default_aggregations()
    }
}
