//! Shard selection: `murmur3::shard_for(id, 64)` (M3's `murmur3.Sum32(id) % numShards`) on
//! ~20-byte and ~60-byte ids, and what the decoders call per value: the shard and the map hash
//! from one murmur3 pass (`ShardOf::shard_and_hash`).
//! Each iteration hashes 1024 distinct ids; throughput is in ids.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheaf_shard_core::MetricType;
use sheaf_shard_core::murmur3::{ShardOf, shard_for};

const IDS: u64 = 1024;

fn ids(width: usize) -> Vec<Vec<u8>> {
    (0..IDS)
        .map(|i| {
            let id = if width <= 20 {
                format!("load.c{:05}.requests", i * 37)
            } else {
                format!("http.server.requests;env=prod;host=h{:04};region=eu-west-1a", i * 7)
            };
            id.into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_hash");
    group.throughput(Throughput::Elements(IDS));
    for width in [20usize, 60] {
        let ids = ids(width);
        let avg = ids.iter().map(Vec::len).sum::<usize>() as f64 / ids.len() as f64;
        eprintln!("shard_hash: ~{width}-byte ids average {avg:.1} bytes");
        group.bench_function(format!("murmur3_shard_for/{width}B"), |b| {
            b.iter(|| ids.iter().fold(0u32, |acc, id| acc.wrapping_add(shard_for(black_box(id), 64))))
        });
        let shard_of = ShardOf::new(64);
        group.bench_function(format!("shard_and_hash/{width}B"), |b| {
            b.iter(|| {
                ids.iter().fold(0u64, |acc, id| {
                    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, black_box(id));
                    acc.wrapping_add(hash).wrapping_add(u64::from(shard))
                })
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
