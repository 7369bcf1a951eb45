//! The instructions one shard core's user-space ingest path executes per value: the path of
//! `statsd_ingest` and `m3msg_ingest` (`sheaf_bench::ingest_path`), run for a number of passes
//! over every series after a first pass that creates them.
//!
//! Counting instructions is for comparing two builds on a shared, noisy host, where the
//! timings of the same build differ by ±20 % from one minute to the next: the count of a
//! build is the same on every run. It is not a speed: a change can execute fewer
//! instructions and wait longer on memory. `bench/instructions.sh` runs this under
//! valgrind's cachegrind, once with 0 passes and once with P, and divides the difference.
//!
//! `--protocol flush` is the flush instead: a pass puts one value into every series (a new
//! 10 s window each) and then flushes all 64 shards into a null sink (`FlushCollector`
//! batches of 4096, dropped); `bench/instructions.sh` counts only what `flush_shard`
//! executes (callgrind's `--toggle-collect`), per value emitted.
//!
//! `cargo bench -p sheaf-bench --bench instructions -- --protocol statsd|m3msg|flush
//! [--series N] [--passes P] [--mix 60,20,20]` prints the values of one pass and, for what it is worth, the rate.

use std::time::Instant;

use anyhow::{Context, bail};
use sheaf_bench::ingest_path::{DATAGRAMS_PER_BATCH, M3msgCore, StatsdCore, m3msg_stream, statsd_datagrams};
use sheaf_bench::workload::{Generator, Mix, SeriesSpace, push_sample};
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, FlushCollector, SampleBatch};

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    protocol: String,
    series: u64,
    passes: u64,
    mix: Mix,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { protocol: "statsd".into(), series: 100_000, passes: 3, mix: Mix::default() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--protocol" => args.protocol = it.next().context("--protocol needs a value")?,
            "--series" => args.series = it.next().context("--series needs a value")?.parse()?,
            "--passes" => args.passes = it.next().context("--passes needs a value")?.parse()?,
            "--mix" => {
                args.mix =
                    it.next().context("--mix needs a value")?.parse().map_err(|e| anyhow::anyhow!("--mix: {e}"))?
            }
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// Runs `pass` once to create the series, then `passes` times; prints what one pass handles
/// (the values `pass` returns).
fn run(name: &str, passes: u64, mut pass: impl FnMut() -> u64) {
    let values_per_pass = pass();
    let start = Instant::now();
    for _ in 0..passes {
        pass();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = if passes > 0 { (passes * values_per_pass) as f64 / secs / 1e6 } else { 0.0 };
    println!("{name}: values_per_pass {values_per_pass} passes {passes} rate {rate:.2} M/s");
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    match args.protocol.as_str() {
        "statsd" => {
            let (datagrams, lines) = statsd_datagrams(args.series, args.mix);
            let mut core = StatsdCore::default();
            run("statsd", args.passes, || {
                for chunk in datagrams.chunks(DATAGRAMS_PER_BATCH) {
                    core.ingest(chunk);
                }
                lines
            });
        }
        "m3msg" => {
            let (frames, starts) = m3msg_stream(args.series, args.mix);
            let mut core = M3msgCore::default();
            run("m3msg", args.passes, || {
                for w in starts.windows(2) {
                    core.ingest(&frames[w[0]..w[1]]);
                }
                args.series
            });
        }
        "flush" => {
            const SHARDS: u32 = 64;
            const R: i64 = 10_000_000_000;
            let space = SeriesSpace::new(args.series, args.mix);
            let mut generator = Generator::new(args.mix, space, 0, 1);
            let (mut batches, mut id) = (vec![SampleBatch::with_capacity(1024)], Vec::with_capacity(32));
            for _ in 0..space.total() {
                if batches.last().is_some_and(|b| b.len() == 1024) {
                    batches.push(SampleBatch::with_capacity(1024));
                }
                let batch = batches.last_mut().context("a batch")?;
                push_sample(batch, &generator.next_sample(), SHARDS, &mut id);
            }
            let options = AggregatorOptions::with_policies(vec!["10s:2d".parse()?]);
            let mut out = FlushCollector::new(options.naming.clone(), 0, 4096);
            let mut agg = CoreAggregator::new(options, SHARDS);
            let mut round = 0;
            run("flush", args.passes, || {
                let before = agg.counters.values_flushed;
                let now = 1_700_000_000_000_000_000 + round * R + 1_000_000_000;
                for b in &batches {
                    agg.apply(b, now);
                }
                agg.begin_flush(R, now + R);
                for shard in 0..SHARDS {
                    agg.flush_shard(shard, R, now + R, &mut out);
                }
                drop(out.take(true));
                round += 1;
                agg.counters.values_flushed - before
            });
        }
        other => bail!("--protocol is statsd, m3msg or flush, not {other}"),
    }
    Ok(())
}
