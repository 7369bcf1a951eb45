//! JSON lines sink: one object per aggregated value,
//! `{"id":…,"time_ns":…,"value":…,"policy":"10s:2d","agg":"sum","type":"counter"}`.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use sheaf_proto::output::write_json_line;
use sheaf_shard_core::{FlushBatch, FlushedValue, StoragePolicy};
use sheaf_shard_runtime::{FlushBatchPool, SinkQueue};

use super::aggregated::aggregated;
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

pub(super) fn run(
    queue: Arc<SinkQueue>,
    metrics: Arc<SinkMetrics>,
    pool: Arc<FlushBatchPool>,
    out: Box<dyn Write + Send>,
) {
    queue.register_consumer();
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut policies = PolicyNames::default();
    let mut scratch = Scratch::default();
    let mut written: Vec<(usize, u64)> = Vec::new();
    loop {
        // Read the flag before draining: every push happens before `close`, so a pass that
        // starts closed drains everything there will ever be.
        let closing = queue.is_closing();
        let mut wrote = false;
        while let Some(batch) = queue.pop() {
            write_batch(&mut out, &batch, &mut policies, &mut scratch, &metrics);
            written.push((batch.core, batch.seq));
            pool.give_back(batch);
            wrote = true;
        }
        if wrote && out.flush().is_err() {
            SinkMetrics::add(&metrics.write_errors, 1);
        }
        // Only once the lines are in the file (the page cache survives a kill -9) may a
        // cluster leader persist the flush times that say they are out.
        for (core, seq) in written.drain(..) {
            queue.mark_written(core, seq);
        }
        if closing {
            let _ = out.flush();
            return;
        }
        queue.wait(Duration::from_millis(100));
    }
}

/// The text of each storage policy seen (a deployment has a handful: a short list beats
/// hashing the policy for every value).
#[derive(Default)]
struct PolicyNames(Vec<(StoragePolicy, String)>);

impl PolicyNames {
    fn name(&mut self, p: StoragePolicy) -> &str {
        let i = match self.0.iter().position(|(q, _)| *q == p) {
            Some(i) => i,
            None => {
                self.0.push((p, p.to_string()));
                self.0.len() - 1
            }
        };
        &self.0[i].1
    }
}

/// Writes a batch, counting each value as written or as a write error.
fn write_batch(
    out: &mut impl Write,
    batch: &FlushBatch,
    policies: &mut PolicyNames,
    scratch: &mut Scratch,
    metrics: &SinkMetrics,
) {
    let (mut written, mut failed) = (0, 0);
    for v in batch.iter() {
        match write_value(out, &v, policies, scratch) {
            Ok(()) => written += 1,
            Err(_) => failed += 1,
        }
    }
    SinkMetrics::add(&metrics.written_values, written);
    SinkMetrics::add(&metrics.write_errors, failed);
}

/// Reused buffers of the sink thread: the output id and the encoded line.
#[derive(Default)]
struct Scratch {
    id: Vec<u8>,
    line: Vec<u8>,
}

fn write_value(
    out: &mut impl Write,
    v: &FlushedValue<'_>,
    policies: &mut PolicyNames,
    scratch: &mut Scratch,
) -> std::io::Result<()> {
    scratch.id.clear();
    v.write_id(&mut scratch.id);
    scratch.line.clear();
    let policy = policies.name(v.policy);
    write_json_line(&aggregated(v, &scratch.id), policy, v.agg_name(), v.metric_type.name(), &mut scratch.line);
    out.write_all(&scratch.line)
}
