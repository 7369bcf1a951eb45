//! Cross-core hand-off: `SampleBatch`es of 1024 samples from one glommio executor to another,
//! by the mechanism `sheaf-shard-runtime` uses between two shard cores (its types are
//! crate-private, so it is rebuilt here from glommio's public API): a bounded
//! `glommio::channels::shared_channel` (lock-free SPSC, 64 batches, the
//! `data_plane.handoff_queue_batches` default) carries the batches, and a crossbeam
//! `ArrayQueue` (64 + 4) carries them back to the sender for reuse. The receiver reads every
//! sample (sums the hashes, so the samples' cache lines move to its core when that is another
//! one) and returns the batch; it does not aggregate (`map_upsert` measures that).
//!
//! Cases:
//! * `prefilled`: 68 batches filled before the timing circulate unchanged, so only the
//!   channel, the wake-ups and the recycling queue are measured.
//! * `refill`: as the runtime does it: the receiver clears each batch before it returns it,
//!   the sender takes a returned batch (or allocates one when none is back yet) and pushes
//!   1024 samples into it (ids copied into the batch's arena) before sending.
//!
//! Each runs with glommio's default of parking an idle executor at once (`park`, sheaf's
//! default) and with `spin_before_park(50 µs)` (`spin_50us`). Both executors are `Placement::Unbound`
//! (works on one CPU; on a shared 2-vCPU box the OS decides where they run). One iteration is
//! one batch; `iter_custom` times N batches from the first send to the receipt of the last,
//! with the executors started before the timing: throughput with the channel kept full, not
//! the latency of one hand-off to a parked core. Throughput is in samples.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use sheaf_bench::workload::{Generator, Mix, SeriesSpace, push_sample};
use sheaf_shard_core::SampleBatch;

const BATCH: usize = 1024;
const QUEUE: usize = 64;
const SHARDS: u32 = 64;

/// 1024 samples of the 60/20/20 mix over 100k series, as a decoding core would batch them.
fn template() -> SampleBatch {
    let mix = Mix::default();
    let mut generator = Generator::new(mix, SeriesSpace::new(100_000, mix), 0, 1);
    let mut batch = SampleBatch::with_capacity(BATCH);
    let mut id = Vec::with_capacity(32);
    for _ in 0..BATCH {
        let s = generator.next_sample();
        push_sample(&mut batch, &s, SHARDS, &mut id);
    }
    batch
}

/// Appends the samples of `from` to `to` (what the ingest path's router does per value).
fn fill(to: &mut SampleBatch, from: &SampleBatch) {
    for s in from.samples() {
        to.copy_from(from, s);
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Prefilled,
    Refill,
}

/// Hands `batches` batches from one executor to another; the time from the first send to the
/// receipt of the last.
fn run(batches: u64, mode: Mode, spin: Option<Duration>, template: &Arc<SampleBatch>) -> Duration {
    let (tx, rx) = shared_channel::new_bounded::<SampleBatch>(QUEUE);
    let returns = Arc::new(ArrayQueue::<SampleBatch>::new(QUEUE + 4));
    let builder = |name: &str| {
        let b = LocalExecutorBuilder::new(Placement::Unbound).name(name);
        match spin {
            Some(spin) => b.spin_before_park(spin),
            None => b,
        }
    };
    let expected = batches * BATCH as u64;

    let receiver = builder("handoff-rx")
        .spawn({
            let returns = returns.clone();
            move || async move {
                let rx = rx.connect().await;
                let (mut received, mut check, mut done) = (0u64, 0u64, None);
                while let Some(mut batch) = rx.recv().await {
                    for s in batch.samples() {
                        check = check.wrapping_add(s.hash);
                    }
                    received += batch.len() as u64;
                    if received == expected {
                        done = Some(Instant::now());
                    }
                    if let Mode::Refill = mode {
                        batch.clear();
                    }
                    // As the runtime does: dropped if the queue is full.
                    let _ = returns.push(batch);
                    glommio::yield_if_needed().await;
                }
                black_box(check);
                assert_eq!(received, expected);
                done.expect("every batch received")
            }
        })
        .expect("receiver executor");

    // Enough batches that the sender always finds one back: at most QUEUE are in the channel
    // and one at the receiver.
    let mut initial: Vec<SampleBatch> = match mode {
        Mode::Prefilled => (0..QUEUE + 4)
            .map(|_| {
                let mut b = SampleBatch::with_capacity(BATCH);
                fill(&mut b, template);
                b
            })
            .collect(),
        Mode::Refill => Vec::new(),
    };
    let template = template.clone();
    let sender = builder("handoff-tx")
        .spawn(move || async move {
            // Waits for the receiver to connect.
            let tx = tx.connect().await;
            let start = Instant::now();
            for _ in 0..batches {
                let batch = match mode {
                    Mode::Prefilled => initial.pop().or_else(|| returns.pop()).expect("a batch back"),
                    Mode::Refill => {
                        let mut b = returns.pop().unwrap_or_else(|| SampleBatch::with_capacity(BATCH));
                        fill(&mut b, &template);
                        b
                    }
                };
                tx.send(batch).await.expect("receiver alive");
            }
            start
        })
        .expect("sender executor");
    let start = sender.join().expect("sender");
    let done = receiver.join().expect("receiver");
    done - start
}

fn bench(c: &mut Criterion) {
    let template = Arc::new(template());
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (mode, mode_name) in [(Mode::Prefilled, "prefilled"), (Mode::Refill, "refill")] {
        for (spin, spin_name) in [(None, "park"), (Some(Duration::from_micros(50)), "spin_50us")] {
            group.bench_function(BenchmarkId::new(mode_name, spin_name), |b| {
                b.iter_custom(|batches| run(batches, mode, spin, &template))
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
