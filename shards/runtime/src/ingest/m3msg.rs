//! m3msg over TCP: 4-byte big-endian length frames of `msgpb.Message`, whose value is a
//! `metricpb.MetricWithMetadatas`; acknowledged in batches with `msgpb.Ack` on the same
//! connection once the values are handed to their owning cores.
//!
//! A malformed message is counted by reason and still acknowledged (as M3 does: resending
//! it would not help); the connection survives. Only a frame longer than `max_frame_size`
//! closes the connection, since the stream cannot be resynchronised after it.

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use sheaf_proto::forward::{ANNOTATION_FRACTIONAL_COUNTER, ANNOTATION_GAUGE_DELTA, ANNOTATION_SET_MEMBER};
use sheaf_proto::frame::{FrameError, next_frame};
use sheaf_proto::output::AckFrame;
use sheaf_proto::view::{self, MetricView, Scratch, TimedType};
use sheaf_shard_core::batch::DEFAULT_SPEC;
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::time::now_nanos;
use sheaf_shard_core::{AggTypes, ElemSpec, MetricType, SampleBatch, SampleValue, SpecRef, StoragePolicy, UNTIMED};

use super::Router;
use super::read_buffer::{READ_CHUNK, ReadBuffer};
use super::router::Source;
use crate::core_loop::CoreCtx;
use crate::stats::Protocol;

/// Serves one m3msg connection until EOF, error or shutdown.
///
/// Acks are sent once their messages' values have been handed to the owning cores, in
/// frames that gather the acks of every read within `ack_delay` (at most `ack_interval`) of
/// the oldest one, or `max_acks_per_frame` of them. While acks wait, the next read waits no
/// longer than their deadline. A read that returned less than half the read size is
/// followed by a pause of `small_read_pause` before the next one.
pub(crate) async fn serve(ctx: Rc<CoreCtx>, mut stream: TcpStream) {
    let max_frame = ctx.config.ingest.max_frame_size;
    let ack_wait = ctx.config.ingest.ack_delay.min(ctx.config.ingest.ack_interval);
    let small_read_pause = ctx.config.ingest.small_read_pause;
    let mut router = Router::new(ctx.clone(), Source::Replicated);
    let mut decoder = MetricDecoder::new(&ctx);
    let mut buf = ReadBuffer::new();
    let mut acks = AckFrame::default();
    // When the acks waiting in `acks` must go out.
    let mut acks_due: Option<Instant> = None;
    'read: loop {
        let wait = acks_due.map(|due| due.saturating_duration_since(Instant::now()));
        if wait.is_some_and(|w| w.is_zero()) {
            if send_acks(&ctx, &mut stream, &mut acks).await.is_err() {
                break;
            }
            acks_due = None;
        }
        // Only a zero timeout is refused, and `wait` is not zero here.
        let _ = stream.set_read_timeout(acks_due.and(wait));
        let n = match stream.read(buf.spare(READ_CHUNK)).await {
            Ok(0) => break,
            Ok(n) => n,
            // The acks are due: the loop's top sends them.
            Err(e) if e.kind() == ErrorKind::TimedOut => continue,
            Err(_) => break,
        };
        buf.filled(n);
        let now = now_nanos();
        loop {
            match next_frame(buf.unread(), max_frame) {
                Ok(Some((payload, used))) => {
                    decoder.message(payload, now, &mut router, &mut acks);
                    buf.consume(used);
                    if router.is_full() {
                        router.dispatch().await;
                    }
                    // Keep ack frames well under the 4 MiB a stock M3 producer accepts.
                    if acks.len() >= ctx.config.ingest.max_acks_per_frame {
                        router.dispatch().await;
                        if send_acks(&ctx, &mut stream, &mut acks).await.is_err() {
                            break 'read;
                        }
                        acks_due = None;
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    ctx.stats.borrow_mut().reject(Protocol::M3msg, "frame_too_large");
                    tracing::warn!(len, max, "m3msg frame larger than max_frame_size, closing connection");
                    break 'read;
                }
            }
        }
        router.dispatch().await;
        if !acks.is_empty() && acks_due.is_none() {
            acks_due = Some(Instant::now() + ack_wait);
        }
        // Waking up for every few KiB costs more than the bytes (a wait in io_uring, a
        // recv, a dispatch each): after a small read, let the next bytes gather first.
        if n < READ_CHUNK / 2 && !small_read_pause.is_zero() {
            glommio::timer::sleep(small_read_pause).await;
        }
    }
    router.dispatch().await;
    let _ = send_acks(&ctx, &mut stream, &mut acks).await;
}

async fn send_acks(ctx: &CoreCtx, stream: &mut TcpStream, acks: &mut AckFrame) -> std::io::Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    ctx.stats.borrow_mut().acked_messages += acks.len() as u64;
    let sent = stream.write_all(acks.frame()).await;
    acks.clear();
    sent
}

/// Turns decoded m3msg metrics into samples; holds the reused scratch space.
pub(crate) struct MetricDecoder {
    scratch: Scratch,
    elems: Vec<ElemSpec>,
    defaults: Vec<StoragePolicy>,
    shard_of: ShardOf,
    /// What `elems` was derived from (`Scratch::metadata_generation`), so that a metadata
    /// repeated from one message to the next is not derived again.
    elems_generation: Option<u64>,
    /// What `elems` means: the default spec, or an error for the metadata.
    elems_outcome: Result<bool, &'static str>,
    /// The last spec added, reused while the metadata repeats (checked against the batch).
    last_spec: Option<SpecRef>,
    /// Pipelines with ops left out of the last metric's spec.
    skipped_pipelines: u32,
}

impl MetricDecoder {
    pub(crate) fn new(ctx: &CoreCtx) -> Self {
        Self {
            scratch: Scratch::default(),
            elems: Vec::new(),
            defaults: ctx.config.aggregator.default_policies.clone(),
            shard_of: ShardOf::new(ctx.config.num_shards),
            elems_generation: None,
            elems_outcome: Ok(true),
            last_spec: None,
            skipped_pipelines: 0,
        }
    }

    fn message(&mut self, payload: &[u8], now: i64, router: &mut Router, acks: &mut AckFrame) {
        let msg = match view::decode_message(payload) {
            Ok(m) => m,
            Err(e) => {
                router_ctx_reject(router, e.reason());
                return;
            }
        };
        acks.push_message(&msg);
        if let Err(reason) = self.metric(msg.value, now, router) {
            router_ctx_reject(router, reason);
        }
    }

    /// Decodes one `MetricWithMetadatas` and routes it.
    pub(crate) fn metric(&mut self, value: &[u8], now: i64, router: &mut Router) -> Result<(), &'static str> {
        let metric = view::decode_metric(value, now, &mut self.scratch).map_err(|e| e.reason())?;
        // M3 drops a metric whose metadata in effect is tombstoned.
        if self.scratch.tombstoned {
            return Err("tombstoned");
        }
        // An untimed value with a client time came from a peer node (or an M3 client with
        // resend enabled): it goes in the window of that time, as on the node that took it in.
        let stamped = |t: i64| if t != 0 { t } else { UNTIMED };
        let (metric_type, id, time) = match metric {
            MetricView::Counter { id, client_time_nanos, .. } => (MetricType::Counter, id, stamped(client_time_nanos)),
            MetricView::BatchTimer { id, client_time_nanos } => (MetricType::Timer, id, stamped(client_time_nanos)),
            MetricView::Gauge { id, client_time_nanos, annotation, .. } => {
                let t = match annotation {
                    ANNOTATION_SET_MEMBER => MetricType::Set,
                    ANNOTATION_FRACTIONAL_COUNTER => MetricType::Counter,
                    _ => MetricType::Gauge,
                };
                (t, id, stamped(client_time_nanos))
            }
            MetricView::Timed { kind, id, time_nanos, .. } => {
                let t = match kind {
                    TimedType::Counter => MetricType::Counter,
                    TimedType::Timer => MetricType::Timer,
                    TimedType::Gauge => MetricType::Gauge,
                };
                // i64::MIN marks "untimed" inside a batch; a client sending it means the
                // distant past, which the owner refuses as too late.
                (t, id, time_nanos.max(UNTIMED + 1))
            }
        };
        if id.is_empty() {
            return Err("empty_id");
        }
        let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
        let values = match metric {
            MetricView::BatchTimer { .. } => self.scratch.timer_values.len() as u64,
            _ => 1,
        };
        let untimed_arrival = !matches!(metric, MetricView::Timed { .. }) && time != UNTIMED;
        let batch = router.batch_for(shard);
        let spec = self.spec(batch)?;
        let value = match metric {
            MetricView::Counter { value, .. } => SampleValue::Number(value as f64),
            MetricView::Gauge { annotation, value, .. } if annotation == ANNOTATION_SET_MEMBER => {
                SampleValue::Member(value.to_bits())
            }
            MetricView::Gauge { annotation, value, .. } if annotation == ANNOTATION_GAUGE_DELTA => {
                if !value.is_finite() {
                    return Err("non_finite");
                }
                SampleValue::GaugeDelta(value)
            }
            MetricView::Gauge { value, .. } | MetricView::Timed { value, .. } => {
                if !value.is_finite() {
                    return Err("non_finite");
                }
                SampleValue::Number(value)
            }
            MetricView::BatchTimer { .. } => {
                if self.scratch.timer_values.iter().any(|v| !v.is_finite()) {
                    return Err("non_finite");
                }
                SampleValue::Timer { start: 0, len: 0 }
            }
        };
        match (value, untimed_arrival) {
            (SampleValue::Timer { .. }, false) => {
                batch.push_timer(shard, hash, id, time, &self.scratch.timer_values, spec)
            }
            (SampleValue::Timer { .. }, true) => {
                batch.push_timer(shard, hash, id, time, &self.scratch.timer_values, spec);
                batch.mark_last_stamped();
            }
            (v, false) => batch.push(shard, hash, id, metric_type, time, v, spec),
            (v, true) => batch.push_stamped(shard, hash, id, metric_type, time, v, spec),
        }
        let mut stats = router.ctx().stats.borrow_mut();
        stats.ingested[Protocol::M3msg as usize] += values;
        if self.skipped_pipelines > 0 {
            stats.reject(Protocol::M3msg, "pipeline_with_ops_skipped");
        }
        Ok(())
    }

    /// The spec of the metadata in the scratch, added to `batch` unless it is the default.
    fn spec(&mut self, batch: &mut SampleBatch) -> Result<SpecRef, &'static str> {
        if self.scratch.pipelines.is_empty() {
            self.skipped_pipelines = 0;
            return Ok(DEFAULT_SPEC);
        }
        let generation = self.scratch.metadata_generation();
        if self.elems_generation != Some(generation) {
            self.elems_outcome = self.derive_elems();
            self.elems_generation = Some(generation);
        }
        if self.elems_outcome? {
            return Ok(DEFAULT_SPEC);
        }
        // Reuse the spec just added when the metadata repeats (a fresh batch has no specs,
        // so the comparison fails there).
        if let Some(r) = self.last_spec
            && batch.spec(r) == self.elems.as_slice()
        {
            return Ok(r);
        }
        let r = batch.add_spec(&self.elems);
        self.last_spec = Some(r);
        Ok(r)
    }

    /// Fills `elems` from the pipelines in the scratch; `Ok(true)` when they amount to the
    /// default spec.
    fn derive_elems(&mut self) -> Result<bool, &'static str> {
        self.elems.clear();
        // Pipelines with ops (rollups, transformations) are not built yet: they are left out
        // (counted by the caller) rather than aggregated as if they had none.
        self.skipped_pipelines = 0;
        for p in &self.scratch.pipelines {
            if p.has_ops {
                self.skipped_pipelines += 1;
                continue;
            }
            let aggs = AggTypes::from_m3_id(p.aggregation_id);
            let policies = self.scratch.policies_of(p);
            let add = |e: ElemSpec, elems: &mut Vec<ElemSpec>| {
                // The same (aggregations, policy) from two pipelines is one element, as in M3.
                if !elems.contains(&e) {
                    elems.push(e);
                }
            };
            if policies.is_empty() {
                for policy in &self.defaults {
                    add(ElemSpec { aggs, policy: *policy }, &mut self.elems);
                }
            }
            for v in policies {
                let policy =
                    StoragePolicy::new(v.resolution_nanos, v.retention_nanos).map_err(|_| "bad_storage_policy")?;
                add(ElemSpec { aggs, policy }, &mut self.elems);
            }
        }
        if self.elems.is_empty() {
            return Err("unsupported_pipeline_ops");
        }
        Ok(self.elems.iter().all(|e| e.aggs.is_default())
            && self.elems.len() == self.defaults.len()
            && self.elems.iter().zip(&self.defaults).all(|(e, d)| e.policy == *d))
    }
}

fn router_ctx_reject(router: &Router, reason: &'static str) {
    router.ctx().stats.borrow_mut().reject(Protocol::M3msg, reason);
}
