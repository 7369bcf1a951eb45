//! The topic sink: each aggregated value as an m3msg `AggregatedMetric` message to the
//! consumer services of an m3msg topic, as M3's `dynamicBackend` producer writes to
//! `aggregated_metrics`. The message's shard is murmur3(id) % the topic's `numberOfShards`;
//! SHARED services get it on one instance owning the shard, REPLICATED ones on each (see
//! `services`). Every instance has its own connection and keeps its own messages until it
//! acknowledges them, resending every `retry_interval` and on reconnect, so one consumer down
//! holds back only its own messages; a message is dropped and counted once older than its
//! service's `messageTtlNanos`. At most `max_buffered_messages` are held over all services.
//!
//! Runs on its own thread (`sheaf-sink-N`) with blocking sockets; a watcher thread
//! (`topic::watcher`, with its own etcd client) sends it the topic's routes. Until the first
//! routes arrive the sink takes nothing off its queue.

mod services;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use sheaf_proto::output::encode_aggregated_frame;
use sheaf_shard_core::murmur3::shard_for;
use sheaf_shard_core::time::now_nanos;
use sheaf_shard_runtime::{FlushBatchPool, SinkQueue};

use super::aggregated::aggregated;
use super::sink_metrics::SinkMetrics;
use crate::config::M3msgHandler;
use crate::topic::routes::Routes;
use services::Services;
use writer::Msg;

pub(super) fn run(
    queue: Arc<SinkQueue>,
    metrics: Arc<SinkMetrics>,
    pool: Arc<FlushBatchPool>,
    config: M3msgHandler,
    routes_rx: flume::Receiver<Arc<Routes>>,
) {
    queue.register_consumer();
    let mut routes: Option<Arc<Routes>> = None;
    let mut services = Services::new(config.message_ttl.0);
    let mut next_id: u64 = 0;
    let mut id = Vec::with_capacity(256);
    let mut frame = Vec::with_capacity(512);
    let mut closing_since: Option<Instant> = None;
    loop {
        // 1. The newest routes.
        if let Some(r) = routes_rx.try_iter().last() {
            let dropped = services.apply(&r);
            if dropped > 0 {
                tracing::warn!(dropped, topic = %r.topic, "messages of removed consumer services dropped");
            }
            if r.services.is_empty() {
                tracing::warn!(topic = %r.topic, "the topic has no consumer services; its values are dropped");
            }
            metrics.consumers.publish(services.all_metrics());
            routes = Some(r);
        }
        let mut held: usize = services.by_key.values().map(services::Service::held).sum();
        // 2. New values while there is room (none before the topic is known).
        if let Some(r) = &routes {
            while held < config.max_buffered_messages {
                let Some(batch) = queue.pop() else { break };
                for v in batch.iter() {
                    if held >= config.max_buffered_messages {
                        SinkMetrics::add(&metrics.overflow_values, 1);
                        continue;
                    }
                    id.clear();
                    v.write_id(&mut id);
                    let shard = shard_for(&id, r.number_of_shards);
                    frame.clear();
                    encode_aggregated_frame(&aggregated(&v, &id), u64::from(shard), next_id, now_nanos(), &mut frame);
                    let msg = Msg { shard, frame: Arc::from(frame.as_slice()), created: Instant::now(), sent: None };
                    services.route(next_id, &msg);
                    next_id += 1;
                    held += r.services.len();
                }
                SinkMetrics::add(&metrics.written_values, batch.len() as u64);
                queue.mark_written(batch.core, batch.seq);
                pool.give_back(batch);
            }
        }
        // 3. Write, read acks; move a down instance's messages where they can go.
        let mut acked = 0;
        for s in services.by_key.values_mut() {
            for w in s.writers.values_mut() {
                acked += w.pump(config.retry_interval.0, &metrics);
            }
            s.move_off_down_instances();
        }
        SinkMetrics::add(&metrics.acked_values, acked);
        // 4. Expire, and publish the gauges.
        let mut expired = 0;
        let mut connected = 0;
        for s in services.by_key.values_mut() {
            let ttl = s.ttl;
            for w in s.writers.values_mut() {
                expired += w.expire(ttl);
                w.metrics.queued.store(w.pending.len() as u64, Relaxed);
                connected += u64::from(w.is_connected());
            }
            let before = s.homeless.len();
            s.homeless.retain(|_, m| m.created.elapsed() < ttl);
            let n = (before - s.homeless.len()) as u64;
            SinkMetrics::add(&s.homeless_metrics.dropped_ttl, n);
            s.homeless_metrics.queued.store(s.homeless.len() as u64, Relaxed);
            expired += n;
        }
        if expired > 0 {
            SinkMetrics::add(&metrics.expired_messages, expired);
            tracing::warn!(expired, "topic sink dropped messages past their ttl");
        }
        let held: usize = services.by_key.values().map(services::Service::held).sum();
        metrics.unacked_messages.store(held as u64, Relaxed);
        metrics.connected.store(u64::from(connected > 0), Relaxed);
        // 5. Shutdown: stop once the queue is empty and everything is acked (or time is up).
        if queue.is_closing() {
            let since = *closing_since.get_or_insert_with(Instant::now);
            let drained = routes.is_some() && queue.backlog_values.load(Relaxed) == 0 && held == 0;
            if drained || since.elapsed() >= config.drain_timeout.0 {
                if held > 0 {
                    tracing::warn!(unacked = held, "topic sink stopping with unacknowledged messages");
                }
                return;
            }
        }
        if acked == 0 {
            queue.wait(if held == 0 { Duration::from_millis(50) } else { Duration::from_millis(5) });
        }
    }
}
