//! Flush output encoding: one `FlushBatch` of 4096 counter values (~20-byte ids, as a core's
//! flush hands to the sinks) encoded as JSON lines and as m3msg `AggregatedMetric` frames,
//! with the same calls the sink threads make (the JSON sink writes each line's head and
//! appends the tail it keeps for the line's policy, aggregation and type; `json_lines_whole`
//! encodes every line whole; `json_lines_timers` encodes timer aggregations of short ids).
//! Throughput is in values.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheaf_proto::metricpb;
use sheaf_proto::output::{
    AggregatedValue, JsonTimeField, encode_aggregated_frame, json_line_tail, write_json_line,
    write_json_line_head_of_parts,
};
use sheaf_shard_core::murmur3::shard_for;
use sheaf_shard_core::{AggType, FlushBatch, MetricType, Naming, StoragePolicy};

const VALUES: usize = 4096;

fn batch() -> FlushBatch {
    let policy: StoragePolicy = "10s:2d".parse().unwrap();
    let mut b = FlushBatch::new(Arc::new(Naming::default()), 0, VALUES);
    for i in 0..VALUES {
        let id = b.intern_id(format!("svc.requests.{i:08}").as_bytes());
        b.push(id, MetricType::Counter, AggType::Sum, false, false, policy, 1_700_000_010_000_000_000, i as f64);
    }
    b
}

/// The same number of values as a timer flush makes them: short ids (as `sheaf-load`'s), each
/// with the eleven default timer aggregations and their suffixes, most values fractional.
fn timer_batch() -> FlushBatch {
    use AggType::*;
    let aggs = [Min, Max, Mean, Median, Count, Sum, SumSq, Stdev, P50, P95, P99];
    let policy: StoragePolicy = "10s:2d".parse().unwrap();
    let mut b = FlushBatch::new(Arc::new(Naming::default()), 0, VALUES);
    for i in 0..VALUES.div_ceil(aggs.len()) {
        let id = b.intern_id(format!("load.t{i}").as_bytes());
        for (k, agg) in aggs.iter().enumerate().take(VALUES - i * aggs.len()) {
            let v = 100.0 + (i * 31 + k * 7) as f64 / 8.0;
            b.push(id, MetricType::Timer, *agg, true, false, policy, 1_700_000_010_000_000_000, v);
        }
    }
    b
}

/// A flushed value in the encoders' shape, as the sinks build it.
fn aggregated<'a>(v: &sheaf_shard_core::FlushedValue<'_>, id: &'a [u8]) -> AggregatedValue<'a> {
    AggregatedValue {
        id,
        metric_type: metricpb::MetricType::Counter,
        time_nanos: v.time_nanos,
        value: v.value,
        resolution_nanos: v.policy.resolution_nanos,
        retention_nanos: v.policy.retention_nanos,
    }
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let mut group = c.benchmark_group("flush_encode");
    group.throughput(Throughput::Elements(VALUES as u64));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    let (mut id, mut out) = (Vec::with_capacity(256), Vec::with_capacity(VALUES * 160));
    let mut time_field = JsonTimeField::default();
    let policy = "10s:2d".to_string();
    let tail = json_line_tail(&policy, "sum", "counter");
    group.bench_function("json_lines", |b| {
        b.iter(|| {
            out.clear();
            for v in batch.iter() {
                write_json_line_head_of_parts(&v.id_parts(), v.time_nanos, v.value, &mut time_field, &mut id, &mut out);
                out.extend_from_slice(&tail);
            }
            black_box(out.len())
        })
    });
    let timers = timer_batch();
    group.bench_function("json_lines_timers", |b| {
        b.iter(|| {
            out.clear();
            for v in timers.iter() {
                write_json_line_head_of_parts(&v.id_parts(), v.time_nanos, v.value, &mut time_field, &mut id, &mut out);
                out.extend_from_slice(&tail);
            }
            black_box(out.len())
        })
    });
    group.bench_function("json_lines_whole", |b| {
        b.iter(|| {
            out.clear();
            for v in batch.iter() {
                id.clear();
                v.write_id(&mut id);
                write_json_line(&aggregated(&v, &id), &policy, v.agg.name(), v.metric_type.name(), &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("m3msg_frames", |b| {
        b.iter(|| {
            out.clear();
            for (seq, v) in batch.iter().enumerate() {
                id.clear();
                v.write_id(&mut id);
                let shard = u64::from(shard_for(&id, 64));
                encode_aggregated_frame(&aggregated(&v, &id), shard, seq as u64, 1_700_000_011_000_000_000, &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
