//! What the rollup tests share: one 10 s policy over 8 shards, a flush of every shard that
//! collects what was emitted, and the core's rollup outbox taken as the flush task routes it.
//! Each test file uses the parts it needs.
#![allow(dead_code)]

use std::collections::BTreeMap;

use sheaf_shard_core::*;

pub(crate) const R: i64 = 10_000_000_000;
pub(crate) const BASE: i64 = 1_700_000_000_000_000_000;
pub(crate) const SHARDS: u32 = 8;

pub(crate) fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()])
}

/// Flushes every shard of `agg` up to `horizon`; returns what was emitted, by (id, time since
/// `BASE`), and fails on a value emitted twice.
pub(crate) fn flush(agg: &mut CoreAggregator, horizon: i64) -> BTreeMap<(String, i64), f64> {
    let mut out = FlushCollector::new(options().naming, 0, 64);
    agg.begin_flush(R, horizon);
    for shard in 0..SHARDS {
        agg.flush_shard(shard, R, horizon, &mut out);
    }
    let mut got = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            let key = (v.id_string(), v.time_nanos - BASE);
            assert!(got.insert(key.clone(), v.value).is_none(), "emitted twice: {key:?}");
        }
    }
    got
}

/// What the flushes forwarded, moved into a batch of its own (as the flush task routes it).
pub(crate) fn take_outbox(agg: &mut CoreAggregator) -> SampleBatch {
    let mut routed = SampleBatch::default();
    let outbox = agg.rollup_outbox();
    for s in outbox.samples() {
        routed.copy_from(outbox, s);
    }
    outbox.clear();
    routed
}
