//! m3msg ingest decode: `msgpb.Message` + `metricpb.MetricWithMetadatas` with the zero-copy
//! `sheaf_proto::view` decoder (what the shard cores run), against prost's owned decode.
//! Each iteration decodes a buffer of 1024 framed messages; throughput is in messages.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use sheaf_bench::workload::{Kind, M3msgEncoder, Sample, default_staged_metadatas};
use sheaf_proto::frame::{DEFAULT_MAX_FRAME_SIZE, next_frame};
use sheaf_proto::metricpb::{MetricWithMetadatas, StagedMetadatas};
use sheaf_proto::msgpb;
use sheaf_proto::view::{MetricView, Scratch, decode_message, decode_metric};

const MESSAGES: usize = 1024;
const NOW: i64 = 1_700_000_000_000_000_000;

/// 1024 framed messages of `kind` over distinct series.
fn stream(kind: Kind, metadatas: StagedMetadatas, timer_values: usize) -> Vec<u8> {
    let mut enc = M3msgEncoder::new(metadatas, 64);
    let mut out = Vec::new();
    let values: Vec<f64> = (0..timer_values).map(|i| 1.5 + i as f64).collect();
    for i in 0..MESSAGES as u64 {
        let s = Sample { kind, index: 100_000 + i, value: 1.0 };
        enc.encode(&s, &values, i + 1, NOW as u64, &mut out);
    }
    out
}

/// Splits the frames and decodes each with the view decoder; returns a checksum.
fn decode_view(buf: &[u8], scratch: &mut Scratch) -> u64 {
    let mut at = 0;
    let mut acc = 0u64;
    while let Ok(Some((payload, used))) = next_frame(&buf[at..], DEFAULT_MAX_FRAME_SIZE) {
        at += used;
        let msg = decode_message(payload).expect("valid message");
        acc = acc.wrapping_add(msg.id ^ msg.shard);
        match decode_metric(msg.value, NOW, scratch).expect("valid metric") {
            MetricView::Counter { id, value, .. } => acc = acc.wrapping_add(id.len() as u64 + value as u64),
            MetricView::BatchTimer { id, .. } => {
                acc = acc.wrapping_add(id.len() as u64 + scratch.timer_values.len() as u64)
            }
            MetricView::Gauge { id, value, .. } => acc = acc.wrapping_add(id.len() as u64 + value as u64),
            MetricView::Timed { id, .. } | MetricView::Passthrough { id, .. } | MetricView::Forwarded { id, .. } => {
                acc = acc.wrapping_add(id.len() as u64)
            }
        }
    }
    acc
}

/// The same with prost: owned `Message`, then owned `MetricWithMetadatas`.
fn decode_prost(buf: &[u8]) -> u64 {
    let mut at = 0;
    let mut acc = 0u64;
    while let Ok(Some((payload, used))) = next_frame(&buf[at..], DEFAULT_MAX_FRAME_SIZE) {
        at += used;
        let msg = msgpb::Message::decode(payload).expect("valid message");
        let metric = MetricWithMetadatas::decode(&msg.value[..]).expect("valid metric");
        acc = acc.wrapping_add(msg.metadata.map_or(0, |m| m.id) + metric.r#type as u64);
        black_box(metric);
    }
    acc
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("counter_default_metadata", stream(Kind::Counter, default_staged_metadatas(), 0)),
        ("counter_empty_metadata", stream(Kind::Counter, StagedMetadatas::default(), 0)),
        ("batch_timer_10_values", stream(Kind::Timer, default_staged_metadatas(), 10)),
    ];
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, buf) in &cases {
        let mut scratch = Scratch::default();
        assert_eq!(decode_view(buf, &mut scratch), decode_view(buf, &mut scratch));
        group.bench_function(format!("view/{name}"), |b| b.iter(|| decode_view(black_box(buf), &mut scratch)));
        group.bench_function(format!("prost/{name}"), |b| b.iter(|| decode_prost(black_box(buf))));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
