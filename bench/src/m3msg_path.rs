//! What a shard core does with the m3msg frames it reads, up to the batches it applies or
//! hands off: split frames, decode each message and its metric (zero-copy `view`), compute
//! the shard and series hash, push the sample into the batch of the core owning the shard.
//! The runtime's `MetricDecoder` is crate-private, so the benches (`m3msg_ingest`,
//! `scaling`) share this rebuild of its path for untimed counters, gauges and batch timers
//! with the default metadata (what `sheaf-load` sends).

use sheaf_proto::frame::{DEFAULT_MAX_FRAME_SIZE, next_frame};
use sheaf_proto::view::{MessageView, MetricView, Scratch, decode_message, decode_metric};
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::{DEFAULT_SPEC, MetricType, SampleBatch, SampleValue, UNTIMED};

/// Decodes framed m3msg messages into sample batches; holds the reused scratch space.
pub struct FrameDecoder {
    scratch: Scratch,
    shard_of: ShardOf,
    now: i64,
}

impl FrameDecoder {
    /// `now`: the decoding time, which picks the staged metadata in effect.
    pub fn new(num_shards: u32, now: i64) -> Self {
        Self { scratch: Scratch::default(), shard_of: ShardOf::new(num_shards), now }
    }

    /// Decodes up to `max` frames at the start of `frames`, each sample into
    /// `batches[batch_for(shard)]`, calling `on_message` with every message (for its ack);
    /// returns the bytes used. Timed metrics and undecodable messages are skipped.
    pub fn decode(
        &mut self,
        frames: &[u8],
        max: usize,
        mut on_message: impl FnMut(&MessageView<'_>),
        mut batch_for: impl FnMut(u32) -> usize,
        batches: &mut [SampleBatch],
    ) -> usize {
        let mut at = 0;
        for _ in 0..max {
            let Ok(Some((payload, used))) = next_frame(&frames[at..], DEFAULT_MAX_FRAME_SIZE) else { break };
            at += used;
            let Ok(msg) = decode_message(payload) else { continue };
            on_message(&msg);
            let Ok(metric) = decode_metric(msg.value, self.now, &mut self.scratch) else { continue };
            let (metric_type, id, value) = match metric {
                MetricView::Counter { id, value, .. } => (MetricType::Counter, id, SampleValue::Number(value as f64)),
                MetricView::Gauge { id, value, .. } => (MetricType::Gauge, id, SampleValue::Number(value)),
                MetricView::BatchTimer { id, .. } => (MetricType::Timer, id, SampleValue::Timer { start: 0, len: 0 }),
                MetricView::Timed { .. } => continue,
            };
            let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
            let batch = &mut batches[batch_for(shard)];
            match value {
                SampleValue::Timer { .. } => {
                    batch.push_timer(shard, hash, id, UNTIMED, &self.scratch.timer_values, DEFAULT_SPEC)
                }
                v => batch.push(shard, hash, id, metric_type, UNTIMED, v, DEFAULT_SPEC),
            }
        }
        at
    }
}
