//! Shard checkpoints: with N series resident over 64 shards (one open 10 s window each),
//! - `serialise_shard`: `checkpoint_shard` + `encode_in` of one shard into a reused buffer
//!   (what the core does), and `snapshot_shard`: `checkpoint_shard` alone;
//! - `write_shard`: the same, then the file written whole (temp file, write, fsync, rename,
//!   fsync of the directory; what the core's blocking thread does) under `target/`;
//! - `load_shard`: `decode` + `restore_shard` of one shard into a fresh core (throughput in
//!   series: the load rate), and each half alone: `decode_shard` runs on the core's blocking
//!   thread at start (the next shard's, while this one is restored), `restore_shard` on the
//!   core;
//! - `ingest`: applying one value to every series, alone and with one whole checkpoint pass
//!   (every shard's snapshot taken into a reused one, spread over the batches: the part of a
//!   pass that runs on the core; archiving and the write run on its blocking thread) per
//!   round of values: a pass per N values, where sheaf at 2M values/s and a 10 s interval
//!   makes one per 20M.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::workload::{Generator, Mix, SeriesSpace, push_sample};
use sheaf_shard_core::checkpoint::{ArchiveBuffer, ShardCheckpoint, decode, encode, encode_in};
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, SampleBatch};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;
const BASE: i64 = 1_700_000_000_000_000_000;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")])
}

/// One value for every series, in batches of 1024.
fn batches(series: u64, mix: Mix) -> Vec<SampleBatch> {
    let space = SeriesSpace::new(series, mix);
    let mut generator = Generator::new(mix, space, 0, 1);
    let mut out = Vec::new();
    let mut batch = SampleBatch::with_capacity(1024);
    let mut id = Vec::with_capacity(32);
    for _ in 0..space.total() {
        push_sample(&mut batch, &generator.next_sample(), SHARDS, &mut id);
        if batch.len() == 1024 {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

fn resident(batches: &[SampleBatch]) -> CoreAggregator {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    for b in batches {
        agg.apply(b, BASE + 1_000_000_000);
    }
    agg
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(path.parent().expect("parent"))?.sync_all()
}

fn scratch() -> PathBuf {
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../target".into()))
        .join("bench-checkpoint");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    let dir = scratch();
    for (label, series, mix) in
        [("counters", 1_000_000u64, Mix { weights: [100, 0, 0] }), ("mix_60_20_20", 1_000_000, Mix::default())]
    {
        let batches = batches(series, mix);
        let agg = resident(&batches);
        let per_shard = agg.checkpoint_shard(0).expect("shard 0 held").series.len() as u64;
        let bytes = encode(&agg.checkpoint_shard(0).expect("shard 0"), SHARDS, 0, 1, 0).expect("encode");
        eprintln!("checkpoint/{label}/{series}: {per_shard} series, {} bytes per shard", bytes.len());
        group.throughput(Throughput::Elements(per_shard));
        let mut buffer = Some(ArchiveBuffer::new());
        group.bench_function(BenchmarkId::new(format!("serialise_shard/{label}"), series), |b| {
            b.iter(|| {
                let ck = agg.checkpoint_shard(0).expect("shard");
                let file = encode_in(&ck, SHARDS, 0, 1, 0, buffer.take().unwrap_or_default()).expect("encode");
                let len = file.payload.len();
                buffer = Some(file.payload);
                len
            })
        });
        group.bench_function(BenchmarkId::new(format!("snapshot_shard/{label}"), series), |b| {
            b.iter(|| agg.checkpoint_shard(0).expect("shard").series.len())
        });
        let path = dir.join("00000.ckpt");
        group.bench_function(BenchmarkId::new(format!("write_shard/{label}"), series), |b| {
            b.iter(|| {
                let bytes = encode(&agg.checkpoint_shard(0).expect("shard"), SHARDS, 0, 1, 0).expect("encode");
                write_atomic(&path, &bytes).expect("write");
            })
        });
        group.bench_function(BenchmarkId::new(format!("load_shard/{label}"), series), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut fresh = CoreAggregator::new(options(), SHARDS);
                    let start = Instant::now();
                    let (_, ck) = decode(&bytes).expect("decode");
                    fresh.restore_shard(0, &ck).expect("restore");
                    total += start.elapsed();
                    drop(fresh);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new(format!("decode_shard/{label}"), series), |b| {
            b.iter(|| decode(&bytes).expect("decode").1.series.len())
        });
        let (_, ck) = decode(&bytes).expect("decode");
        group.bench_function(BenchmarkId::new(format!("restore_shard/{label}"), series), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut fresh = CoreAggregator::new(options(), SHARDS);
                    let start = Instant::now();
                    fresh.restore_shard(0, &ck).expect("restore");
                    total += start.elapsed();
                    drop(fresh);
                }
                total
            })
        });
        group.throughput(Throughput::Elements(series));
        for (mode, checkpointing) in [("alone", false), ("with_checkpoint", true)] {
            let mut agg = resident(&batches);
            let mut round = 0i64;
            let mut snapshot = ShardCheckpoint::default();
            group.bench_function(BenchmarkId::new(format!("ingest_{mode}/{label}"), series), |b| {
                b.iter(|| {
                    round += 1;
                    let now = BASE + 1_000_000_000 + round * 1_000_000;
                    let every = (batches.len() / SHARDS as usize).max(1);
                    for (i, batch) in batches.iter().enumerate() {
                        agg.apply(batch, now);
                        if checkpointing && i % every == 0 {
                            let shard = (i / every) as u32 % SHARDS;
                            agg.checkpoint_shard_into(shard, &mut snapshot);
                            std::hint::black_box(snapshot.series.len());
                        }
                    }
                })
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
