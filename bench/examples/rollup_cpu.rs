//! The cycles of `benches/rollup.rs` (same series, same cycle), timed in this thread's CPU
//! time rather than wall time, the rows interleaved cycle by cycle in one process: on a
//! machine shared with other work, the CPU a cycle costs is steadier than its wall time.
//! Prints, per row, the minimum and median CPU milliseconds per cycle and their ratio to the
//! plain row.
//!
//! `cargo run --release -p sheaf-bench --example rollup_cpu [cycles]` (default 15);
//! `SHEAF_BENCH_ROLLUP_SERIES` as for the bench.

use sheaf_bench::rollup_cycle::{RollupCycle, series};

struct Row {
    name: &'static str,
    cycle: RollupCycle,
    cpu_ms: Vec<f64>,
}

impl Row {
    fn new(name: &'static str, series: usize, rollup: bool, per_shard: bool) -> Self {
        Self { name, cycle: RollupCycle::new(series, rollup, per_shard), cpu_ms: Vec::new() }
    }
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn main() {
    let cycles: usize = std::env::args().nth(1).and_then(|c| c.parse().ok()).unwrap_or(15);
    let series = series();
    let mut rows = vec![
        Row::new("plain_1m_series", series, false, false),
        Row::new("rolled_up_into_10k", series, true, false),
        Row::new("rolled_up_into_10k_routed_per_shard", series, true, true),
    ];
    for _ in 0..2 {
        rows.iter_mut().for_each(|row| row.cycle.run());
    }
    for _ in 0..cycles {
        for row in &mut rows {
            let start = thread_cpu_ms();
            row.cycle.run();
            row.cpu_ms.push(thread_cpu_ms() - start);
        }
    }
    let stats = |row: &Row| {
        let mut v = row.cpu_ms.clone();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (plain_min, plain_median) = stats(&rows[0]);
    for row in &rows {
        let (min, median) = stats(row);
        println!(
            "{:<40} CPU ms/cycle min {min:7.1} median {median:7.1}   ÷ plain: min {:.2}× median {:.2}×",
            row.name,
            min / plain_min,
            median / plain_median
        );
    }
}
