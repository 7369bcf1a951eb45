//! JSON lines sink: one object per aggregated value,
//! `{"id":…,"time_ns":…,"value":…,"policy":"10s:2d","agg":"sum","type":"counter"}`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sheaf_proto::output::{JsonTimeField, json_line_tail, write_json_line_head_of_parts};
use sheaf_shard_core::{AggType, FlushedValue, MetricType, StoragePolicy};
use sheaf_shard_runtime::{FlushBatchPool, SinkQueue};

use super::sink_metrics::SinkMetrics;

pub(super) fn open(path: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(if path == "-" {
        Box::new(std::io::stdout())
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("opening json sink file {path}: {e}"))?;
        Box::new(f)
    })
}

/// Lines are written out once this many bytes of them wait, and at the end of every pass
/// over the queue.
const WRITE_AT: usize = 1 << 20;

pub(super) fn run(
    queue: Arc<SinkQueue>,
    metrics: Arc<SinkMetrics>,
    pool: Arc<FlushBatchPool>,
    mut out: Box<dyn Write + Send>,
) {
    queue.register_consumer();
    let mut pending = Pending::default();
    let mut tails = LineTails::default();
    let mut id_scratch = Vec::new();
    let mut written: Vec<(usize, u64)> = Vec::new();
    loop {
        // Read the flag before draining: every push happens before `close`, so a pass that
        // starts closed drains everything there will ever be.
        let closing = queue.is_closing();
        let mut wrote = false;
        while let Some(batch) = queue.pop() {
            for v in batch.iter() {
                pending.push(&v, &mut tails, &mut id_scratch);
            }
            if pending.lines.len() >= WRITE_AT {
                pending.write_out(&mut out, &metrics);
            }
            written.push((batch.core, batch.seq));
            pool.give_back(batch);
            wrote = true;
        }
        if wrote {
            pending.write_out(&mut out, &metrics);
            if out.flush().is_err() {
                SinkMetrics::add(&metrics.write_errors, 1);
            }
        }
        // Only once the lines are in the file (the page cache survives a kill -9) may a
        // cluster leader persist the flush times that say they are out.
        for (core, seq) in written.drain(..) {
            queue.mark_written(core, seq);
        }
        if closing {
            return;
        }
        queue.wait(Duration::from_millis(100));
    }
}

/// Encoded lines not yet written, and how many values they hold. One buffer of the sink
/// thread's own, written with one call: each line is encoded straight into it (a
/// `BufWriter` would copy every line once more).
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    values: u64,
    time_field: JsonTimeField,
}

impl Pending {
    fn push(&mut self, v: &FlushedValue<'_>, tails: &mut LineTails, id_scratch: &mut Vec<u8>) {
        let parts = v.id_parts();
        write_json_line_head_of_parts(&parts, v.time_nanos, v.value, &mut self.time_field, id_scratch, &mut self.lines);
        self.lines.extend_from_slice(tails.tail(v));
        self.values += 1;
    }

    /// Writes the lines out, counting their values as written or, when the write fails, as
    /// write errors.
    fn write_out(&mut self, out: &mut impl Write, metrics: &SinkMetrics) {
        if self.lines.is_empty() {
            return;
        }
        let counter = match out.write_all(&self.lines) {
            Ok(()) => &metrics.written_values,
            Err(_) => &metrics.write_errors,
        };
        SinkMetrics::add(counter, self.values);
        self.lines.clear();
        self.values = 0;
    }
}

/// What ends a line after its value (`,"policy":…,"agg":…,"type":…}`), for each storage
/// policy, aggregation and type seen. A deployment has a handful, and a flush batch runs
/// of values that share one (a timer's aggregations, a shard's counters): the last one
/// found is tried first, then a short list, which beats hashing the key for every value.
#[derive(Default)]
struct LineTails {
    tails: Vec<(TailKey, Vec<u8>)>,
    last: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct TailKey {
    policy: StoragePolicy,
    agg: AggType,
    passthrough: bool,
    metric_type: MetricType,
}

impl LineTails {
    fn tail(&mut self, v: &FlushedValue<'_>) -> &[u8] {
        let key = TailKey { policy: v.policy, agg: v.agg, passthrough: v.passthrough, metric_type: v.metric_type };
        if self.tails.get(self.last).is_none_or(|(k, _)| *k != key) {
            self.last = match self.tails.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    let tail = json_line_tail(&v.policy.to_string(), v.agg_name(), v.metric_type.name());
                    self.tails.push((key, tail));
                    self.tails.len() - 1
                }
            };
        }
        &self.tails[self.last].1
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use sheaf_proto::output::write_json_line;
    use sheaf_shard_core::{FlushBatch, Naming};

    use super::super::aggregated::aggregated;
    use super::*;

    fn batch() -> FlushBatch {
        // Prefixes for untimed values, and a gauge prefix with a byte that needs escaping.
        let naming = Naming {
            metric_prefix: "stats.".into(),
            counter_prefix: "counters.".into(),
            timer_prefix: String::new(),
            gauge_prefix: "g\tauges.".into(),
        };
        let mut b = FlushBatch::new(Arc::new(naming), 0, 16);
        let (ten_s, one_m): (StoragePolicy, StoragePolicy) = ("10s:2d".parse().unwrap(), "1m:40d".parse().unwrap());
        let t = 1_700_000_010_000_000_000;
        let id = b.intern_id(b"req.latency");
        for (agg, v) in [(AggType::P99, 0.25), (AggType::Count, 3.0), (AggType::Max, 1.5)] {
            b.push(id, MetricType::Timer, agg, true, false, ten_s, t, v);
        }
        let id = b.intern_id(b"req.count");
        b.push(id, MetricType::Counter, AggType::Sum, false, false, ten_s, t, 7.0);
        b.push(id, MetricType::Counter, AggType::Sum, false, false, one_m, t, 9.0);
        b.push(id, MetricType::Counter, AggType::Sum, false, false, ten_s, t, 8.0);
        b.push_passthrough(b"g\"q", MetricType::Gauge, ten_s, t + 1, -0.5);
        let id = b.intern_id(b"temp\xff");
        b.push(id, MetricType::Gauge, AggType::Last, false, false, ten_s, t, 21.5);
        b
    }

    /// A writer whose every write fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk gone"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_the_whole_lines_whichever_tail_was_found_and_are_counted_when_written() {
        let batch = batch();
        let (mut pending, mut tails, mut id) = (Pending::default(), LineTails::default(), Vec::new());
        let mut expected = Vec::new();
        for v in batch.iter() {
            pending.push(&v, &mut tails, &mut id);
            let mut whole_id = Vec::new();
            v.write_id(&mut whole_id);
            write_json_line(
                &aggregated(&v, &whole_id),
                &v.policy.to_string(),
                v.agg_name(),
                v.metric_type.name(),
                &mut expected,
            );
        }
        assert_eq!(String::from_utf8_lossy(&pending.lines), String::from_utf8_lossy(&expected));
        // Three timer aggregations, two policies of the counter, the passthrough gauge, the
        // gauge.
        assert_eq!(tails.tails.len(), 7);

        let metrics = SinkMetrics::default();
        let mut file = Vec::new();
        pending.write_out(&mut file, &metrics);
        assert_eq!((file, metrics.written_values.load(Ordering::Relaxed)), (expected, 8));
        assert!(pending.lines.is_empty());

        for v in batch.iter() {
            pending.push(&v, &mut tails, &mut id);
        }
        pending.write_out(&mut Broken, &metrics);
        assert_eq!(metrics.written_values.load(Ordering::Relaxed), 8);
        assert_eq!(metrics.write_errors.load(Ordering::Relaxed), 8);
        assert_eq!(pending.values, 0);
    }
}
