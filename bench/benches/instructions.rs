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
//! `cargo bench -p sheaf-bench --bench instructions -- --protocol statsd|m3msg [--series N]
//! [--passes P]` prints the values of one pass and, for what it is worth, the rate.

use std::time::Instant;

use anyhow::{Context, bail};
use sheaf_bench::ingest_path::{DATAGRAMS_PER_BATCH, M3msgCore, StatsdCore, m3msg_stream, statsd_datagrams};
use sheaf_bench::workload::Mix;

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    protocol: String,
    series: u64,
    passes: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { protocol: "statsd".into(), series: 100_000, passes: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--protocol" => args.protocol = it.next().context("--protocol needs a value")?,
            "--series" => args.series = it.next().context("--series needs a value")?.parse()?,
            "--passes" => args.passes = it.next().context("--passes needs a value")?.parse()?,
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// Runs `pass` once to create the series, then `passes` times; prints what one pass ingests.
fn run(name: &str, passes: u64, values_per_pass: u64, mut pass: impl FnMut()) {
    pass();
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
            let (datagrams, lines) = statsd_datagrams(args.series, Mix::default());
            let mut core = StatsdCore::default();
            run("statsd", args.passes, lines, || {
                for chunk in datagrams.chunks(DATAGRAMS_PER_BATCH) {
                    core.ingest(chunk);
                }
            });
        }
        "m3msg" => {
            let (frames, starts) = m3msg_stream(args.series, Mix::default());
            let mut core = M3msgCore::default();
            run("m3msg", args.passes, args.series, || {
                for w in starts.windows(2) {
                    core.ingest(&frames[w[0]..w[1]]);
                }
            });
        }
        other => bail!("--protocol is statsd or m3msg, not {other}"),
    }
    Ok(())
}
