//! `Passthrough`: the points of `TIMED_METRIC_WITH_STORAGE_POLICY` metrics a core owns, on
//! their way out unchanged — each with its own time, value and storage policy, its id bare.
//! No window is formed, so nothing of them is flushed twice, discarded or recorded in flush
//! times. As in M3, only the leader of the shard set writes them; a follower drops them.
//!
//! Lives in its core's `CoreAggregator`, touched only by that core: `apply` adds points, the
//! core's flush task takes the batches (at least every ~100 ms, at a role switch and at the
//! final flush) and queues them on the sinks as it does a round's.

use std::sync::Arc;

use crate::aggregator_options::AggregatorCounters;
use crate::batch::{Sample, SampleBatch, SampleValue};
use crate::flush::{FlushBatch, Naming};
use crate::flush_collector::FlushCollector;

/// Values per batch until the runtime sets its own size (`Passthrough::new`).
const DEFAULT_BATCH_VALUES: usize = 1024;

/// The passthrough points a core has accepted and not yet handed to its sinks.
#[derive(Debug)]
pub struct Passthrough {
    /// Whether this core writes passthrough points (leader) or drops them (follower).
    writes: bool,
    out: FlushCollector,
    /// Points in `out`.
    pending: usize,
}

impl Passthrough {
    /// For core `core`, in batches of up to `batch_values` points.
    pub fn new(naming: Arc<Naming>, core: usize, batch_values: usize) -> Self {
        Self { writes: true, out: FlushCollector::new(naming, core, batch_values), pending: 0 }
    }

    pub(crate) fn with_default_batches(naming: Arc<Naming>) -> Self {
        Self::new(naming, 0, DEFAULT_BATCH_VALUES)
    }

    /// Leader (`true`, the default, and always on a single node): points are written; follower:
    /// they are dropped and counted as they arrive.
    pub fn set_writes(&mut self, writes: bool) {
        self.writes = writes;
    }

    /// Points accepted and not yet taken.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// An emptied batch (handed back by a sink) to fill next instead of allocating one.
    pub fn add_spare(&mut self, batch: FlushBatch) {
        self.out.add_spare(batch);
    }

    /// Every batch of points accepted so far, to be queued on the sinks.
    pub fn take(&mut self) -> Vec<FlushBatch> {
        self.pending = 0;
        self.out.take(true)
    }

    /// Adds passthrough sample `s` of `batch` (for a shard that is `writable` now).
    pub(crate) fn add(&mut self, batch: &SampleBatch, s: &Sample, writable: bool, counters: &mut AggregatorCounters) {
        if !writable {
            counters.shard_not_writable += 1;
            return;
        }
        if !self.writes {
            counters.passthrough_follower_dropped += 1;
            return;
        }
        // The decoder pushes a passthrough point as a number with a spec of one policy.
        let (SampleValue::Number(value), [elem]) = (s.value(), batch.spec(s.spec)) else {
            counters.metadata_rejected += 1;
            return;
        };
        self.out.batch(1).0.push_passthrough(batch.id(s), s.metric_type, elem.policy, s.time, value);
        self.pending += 1;
        counters.passthrough_values += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::{AggTypes, MetricType};
    use crate::batch::ElemSpec;
    use crate::{AggregatorOptions, CoreAggregator, DEFAULT_SPEC};

    const SECOND: i64 = 1_000_000_000;

    fn points(batch: &mut SampleBatch, id: &[u8], times_values: &[(i64, f64)]) {
        let spec = batch.add_spec(&[ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap())]);
        for &(t, v) in times_values {
            batch.push_passthrough(0, 1, id, MetricType::Counter, t, v, spec);
        }
    }

    /// Two points of one id in one 10s window come out as two values, each with its own time
    /// and value, its id bare; no window is held and no flush round emits them again.
    #[test]
    fn a_leader_writes_every_point_unchanged() {
        let now = 1_700_000_000 * SECOND;
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
        let mut agg = CoreAggregator::new(options.clone(), 1);
        let mut batch = SampleBatch::default();
        points(&mut batch, b"pt", &[(now - 3 * SECOND, 4.0), (now - 2 * SECOND, 6.0)]);
        agg.apply(&batch, now);
        assert_eq!(agg.passthrough.pending(), 2);
        let out: Vec<_> = agg
            .passthrough
            .take()
            .iter()
            .flat_map(|b| {
                b.iter().map(|v| (v.id_string(), v.time_nanos, v.value, v.agg_name(), v.policy)).collect::<Vec<_>>()
            })
            .collect();
        let p = "10s:2d".parse().unwrap();
        assert_eq!(
            out,
            [
                ("pt".to_string(), now - 3 * SECOND, 4.0, "passthrough", p),
                ("pt".to_string(), now - 2 * SECOND, 6.0, "passthrough", p)
            ]
        );
        assert_eq!((agg.counters.passthrough_values, agg.series_count()), (2, 0));
        let mut round = FlushCollector::new(options.naming, 0, 16);
        agg.begin_flush(10 * SECOND, now + 60 * SECOND);
        agg.flush_shard(0, 10 * SECOND, now + 60 * SECOND, &mut round);
        assert!(round.take(true).is_empty());
        assert_eq!(agg.passthrough.pending(), 0);
    }

    #[test]
    fn a_follower_drops_and_counts_every_point() {
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
        let mut agg = CoreAggregator::new(options, 1);
        agg.passthrough.set_writes(false);
        let mut batch = SampleBatch::default();
        points(&mut batch, b"pt", &[(5, 1.0), (6, 2.0)]);
        batch.push(0, 1, b"other", MetricType::Counter, crate::UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
        agg.apply(&batch, 10);
        assert_eq!(agg.passthrough.pending(), 0);
        assert!(agg.passthrough.take().is_empty());
        assert_eq!((agg.counters.passthrough_follower_dropped, agg.counters.values_applied), (2, 1));
    }
}
