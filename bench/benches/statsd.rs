//! StatsD ingest parse: one ~1.4 KB datagram split with `for_each_line`, each line parsed
//! and its canonical series id written with `write_series_id` into a reused buffer (what a
//! shard core does per line before hashing). Throughput is in lines.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::workload::{Generator, MAX_DATAGRAM_BYTES, Mix, SeriesSpace, StatsdWriter};
use sheaf_shard_core::statsd::for_each_line;

/// A datagram as `sheaf-load` sends it for `series` series (60/20/20 mix), taken from the
/// middle of the series range so ids have their full width.
fn datagram(series: u64, lines: usize) -> (Vec<u8>, u64) {
    let mix = Mix::default();
    let mut writer = StatsdWriter::new(Generator::new(mix, SeriesSpace::new(series, mix), series / 2, 1));
    let mut buf = Vec::new();
    let n = writer.fill(&mut buf, lines, MAX_DATAGRAM_BYTES);
    (buf, n.lines)
}

/// DogStatsD lines with three tags each, in no particular order.
fn tagged_datagram() -> (Vec<u8>, u64) {
    let mut buf = Vec::new();
    let mut lines = 0;
    for i in 0u64.. {
        let line = match i % 3 {
            0 => format!("api.requests:1|c|#service:api,env:prod,host:h{:03}\n", i % 200),
            1 => format!("api.latency:{}|ms|@0.5|#host:h{:03},env:prod,service:api\n", 10 + i % 90, i % 200),
            _ => format!("api.inflight:{}|g|#env:prod,service:api,host:h{:03}\n", i % 50, i % 200),
        };
        if buf.len() + line.len() > MAX_DATAGRAM_BYTES {
            break;
        }
        buf.extend_from_slice(line.as_bytes());
        lines += 1;
    }
    (buf, lines)
}

/// Timings in milliseconds with a fraction and signed gauge deltas, as many clients send
/// them (the parser's second fast path; integers take the first).
fn fractional_datagram() -> (Vec<u8>, u64) {
    let mut buf = Vec::new();
    let mut lines = 0;
    for i in 0u64.. {
        let line = match i % 2 {
            0 => format!("app.latency.t{:05}:{}.{:03}|ms\n", i % 5000, i % 900, (i * 37) % 1000),
            _ => format!("app.queue.g{:05}:{}{}|g\n", i % 5000, if i % 4 == 1 { '-' } else { '+' }, i % 40),
        };
        if buf.len() + line.len() > MAX_DATAGRAM_BYTES {
            break;
        }
        buf.extend_from_slice(line.as_bytes());
        lines += 1;
    }
    (buf, lines)
}

fn parse_datagram(buf: &[u8], id: &mut Vec<u8>) -> u64 {
    let mut acc = 0u64;
    for_each_line(buf, 64 * 1024, |line| {
        let line = line.expect("valid line");
        id.clear();
        line.write_series_id(id).expect("valid id");
        acc = acc.wrapping_add(id.len() as u64 + line.value as u64);
    });
    acc
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("load_10k_series", datagram(10_000, 87)),
        ("load_100k_series", datagram(100_000, 87)),
        ("dogstatsd_3_tags", tagged_datagram()),
        ("fractional_values", fractional_datagram()),
    ];
    let mut group = c.benchmark_group("statsd");
    for (name, (buf, lines)) in &cases {
        eprintln!("statsd/{name}: {} bytes, {lines} lines", buf.len());
        group.throughput(Throughput::Elements(*lines));
        let mut id = Vec::with_capacity(256);
        group.bench_function(format!("parse_and_id/{name}"), |b| b.iter(|| parse_datagram(black_box(buf), &mut id)));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
