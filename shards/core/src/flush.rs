//! `FlushBatch`: values a core's flush produced, on their way to the sinks.
//!
//! Built on the flushing core, then shared read-only (`Arc`) with every sink thread; ids are
//! stored once per series window and prefix and suffix are composed when a sink encodes them.

use std::sync::Arc;

use crate::aggregation::{AggType, MetricType};
use crate::policy::StoragePolicy;
use crate::time::UnixNanos;

/// The id prefixes of untimed output, as m3aggregator's `metricPrefix` and per-type prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    pub metric_prefix: String,
    pub counter_prefix: String,
    pub timer_prefix: String,
    pub gauge_prefix: String,
}

impl Naming {
    fn type_prefix(&self, t: MetricType) -> &str {
        match t {
            MetricType::Counter => &self.counter_prefix,
            MetricType::Timer => &self.timer_prefix,
            // A set is emitted as the gauge of its distinct count.
            MetricType::Gauge | MetricType::Set => &self.gauge_prefix,
        }
    }
}

/// One value in a batch: 32 bytes, the policy as an index into the batch's own table (a core
/// holds at most `MAX_POLICIES` = 1024 of them, so a u16 always fits). A round at 1M series
/// holds ~1M of these until the sinks have written them.
#[derive(Debug, Clone, Copy)]
struct FlushRecord {
    id_start: u32,
    id_len: u32,
    metric_type: MetricType,
    agg: AggType,
    with_suffix: bool,
    timed: bool,
    passthrough: bool,
    policy: u16,
    time_nanos: UnixNanos,
    value: f64,
}

const _: () = assert!(std::mem::size_of::<FlushRecord>() == 32);

/// One aggregated value, as a sink sees it.
#[derive(Debug, Clone, Copy)]
pub struct FlushedValue<'a> {
    naming: &'a Naming,
    /// The series id as ingested (no prefix, no suffix).
    pub series_id: &'a [u8],
    pub metric_type: MetricType,
    pub agg: AggType,
    with_suffix: bool,
    /// Timed metrics are emitted without prefixes, as M3 does.
    pub timed: bool,
    /// A passthrough point, written out as it came in: `time_nanos` is its own time, not a
    /// window's end, and `agg` only says which output type it is (counter: `Sum`, else `Last`).
    pub passthrough: bool,
    pub policy: StoragePolicy,
    /// The end of the window (a passthrough point's own time).
    pub time_nanos: UnixNanos,
    pub value: f64,
}

impl<'a> FlushedValue<'a> {
    /// The output id in its parts, in order: the prefixes (untimed only), the series id and
    /// the aggregation's suffix. Any of them may be empty.
    pub fn id_parts(&self) -> [&'a [u8]; 4] {
        let (metric_prefix, type_prefix) = if self.timed {
            (&[][..], &[][..])
        } else {
            (self.naming.metric_prefix.as_bytes(), self.naming.type_prefix(self.metric_type).as_bytes())
        };
        let suffix = if self.with_suffix { self.agg.suffix().as_bytes() } else { &[] };
        [metric_prefix, type_prefix, self.series_id, suffix]
    }

    /// Appends the output id: prefixes (untimed only) + series id + aggregation suffix.
    pub fn write_id(&self, out: &mut Vec<u8>) {
        for part in self.id_parts() {
            out.extend_from_slice(part);
        }
    }

    /// The aggregation as the output names it: `passthrough` for a passthrough point.
    pub fn agg_name(&self) -> &'static str {
        if self.passthrough { "passthrough" } else { self.agg.name() }
    }

    pub fn id_string(&self) -> String {
        let mut v = Vec::new();
        self.write_id(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[derive(Debug)]
pub struct FlushBatch {
    naming: Arc<Naming>,
    ids: Vec<u8>,
    records: Vec<FlushRecord>,
    /// The distinct policies of `records` (usually one to three).
    policies: Vec<StoragePolicy>,
    /// Which core flushed it, for logs and metrics.
    pub core: usize,
    /// Position in its core's output sequence (set when it is queued on the sinks), so a sink
    /// can say how far it has written each core's output.
    pub seq: u64,
}

impl FlushBatch {
    pub fn new(naming: Arc<Naming>, core: usize, capacity: usize) -> Self {
        Self {
            naming,
            ids: Vec::with_capacity(capacity * 24),
            records: Vec::with_capacity(capacity),
            policies: Vec::new(),
            core,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Empties the batch, keeping its memory, so that a sink can hand it back to the core.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.records.clear();
        self.policies.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Stores a series id once; the returned handle is passed to [`FlushBatch::push`] for each
    /// value of that series.
    #[inline]
    pub fn intern_id(&mut self, id: &[u8]) -> (u32, u32) {
        let start = self.ids.len() as u32;
        crate::batch::append_id(&mut self.ids, id);
        (start, id.len() as u32)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn push(
        &mut self,
        id: (u32, u32),
        metric_type: MetricType,
        agg: AggType,
        with_suffix: bool,
        timed: bool,
        policy: StoragePolicy,
        time_nanos: UnixNanos,
        value: f64,
    ) {
        self.push_record(id, metric_type, agg, with_suffix, timed, false, policy, time_nanos, value);
    }

    /// Adds a passthrough point: its id bare (no prefix, no suffix), its own time and policy.
    pub fn push_passthrough(
        &mut self,
        id: &[u8],
        metric_type: MetricType,
        policy: StoragePolicy,
        time_nanos: UnixNanos,
        value: f64,
    ) {
        let id = self.intern_id(id);
        let agg = if metric_type == MetricType::Counter { AggType::Sum } else { AggType::Last };
        self.push_record(id, metric_type, agg, false, true, true, policy, time_nanos, value);
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn push_record(
        &mut self,
        id: (u32, u32),
        metric_type: MetricType,
        agg: AggType,
        with_suffix: bool,
        timed: bool,
        passthrough: bool,
        policy: StoragePolicy,
        time_nanos: UnixNanos,
        value: f64,
    ) {
        let policy = match self.policies.iter().rposition(|p| *p == policy) {
            Some(i) => i,
            None => {
                self.policies.push(policy);
                self.policies.len() - 1
            }
        } as u16;
        self.records.push(FlushRecord {
            id_start: id.0,
            id_len: id.1,
            metric_type,
            agg,
            with_suffix,
            timed,
            passthrough,
            policy,
            time_nanos,
            value,
        });
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = FlushedValue<'_>> + '_ {
        self.records.iter().map(|r| FlushedValue {
            naming: &self.naming,
            series_id: &self.ids[r.id_start as usize..(r.id_start + r.id_len) as usize],
            metric_type: r.metric_type,
            agg: r.agg,
            with_suffix: r.with_suffix,
            timed: r.timed,
            passthrough: r.passthrough,
            policy: self.policies[usize::from(r.policy)],
            time_nanos: r.time_nanos,
            value: r.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_get_prefixes_and_suffixes_as_m3() {
        let naming = Arc::new(Naming {
            metric_prefix: "stats.".into(),
            counter_prefix: "counts.".into(),
            timer_prefix: "timers.".into(),
            gauge_prefix: "gauges.".into(),
        });
        let mut b = FlushBatch::new(naming, 0, 4);
        let p = "10s:2d".parse().unwrap();
        let id = b.intern_id(b"req");
        b.push(id, MetricType::Timer, AggType::Max, true, false, p, 10, 1.0);
        b.push(id, MetricType::Counter, AggType::Sum, false, false, p, 10, 1.0);
        b.push(id, MetricType::Gauge, AggType::Last, false, true, p, 10, 1.0);
        let ids: Vec<_> = b.iter().map(|v| v.id_string()).collect();
        assert_eq!(ids, ["stats.timers.req.upper", "stats.counts.req", "req"]);
    }
}
