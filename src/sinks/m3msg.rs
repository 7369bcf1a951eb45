//! m3msg sink: each aggregated value as a `metricpb.AggregatedMetric` in an m3msg `Message`
//! (shard = murmur3(id) % num_shards, id = a sequence number), framed with a 4-byte
//! big-endian length, as m3aggregator writes to its `aggregated_metrics` topic.
//!
//! A message is kept until the consumer acks its (shard, id), resent every
//! `retry_interval` (and on reconnect), and dropped and counted once older than
//! `message_ttl`. At most `max_buffered_messages` are held; values beyond are dropped and
//! counted as overflow. Runs on its own thread with blocking sockets.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost::Message as _;
use sheaf_proto::frame::next_frame;
use sheaf_proto::msgpb;
use sheaf_proto::output::encode_aggregated_frame;
use sheaf_shard_core::FlushedValue;
use sheaf_shard_core::murmur3::shard_for;
use sheaf_shard_core::time::now_nanos;
use sheaf_shard_runtime::{FlushBatchPool, SinkQueue};

use super::aggregated::aggregated;
use super::sink_metrics::SinkMetrics;
use crate::config::M3msgHandler;

struct Pending {
    shard: u64,
    frame: Vec<u8>,
    created: Instant,
    sent: Option<Instant>,
}

struct Connection {
    stream: TcpStream,
    read_buf: Vec<u8>,
}

pub(super) fn run(queue: Arc<SinkQueue>, metrics: Arc<SinkMetrics>, pool: Arc<FlushBatchPool>, config: M3msgHandler) {
    queue.register_consumer();
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next_id: u64 = 0;
    let mut conn: Option<Connection> = None;
    let mut next_connect = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut id = Vec::with_capacity(256);
    let mut closing_since: Option<Instant> = None;
    // Whether batches or frames were freed since the last release to the allocator.
    let mut busy_since_release = false;
    loop {
        // 1. Take new values while there is room.
        while pending.len() < config.max_buffered_messages {
            let Some(batch) = queue.pop() else { break };
            busy_since_release = true;
            for v in batch.iter() {
                if pending.len() >= config.max_buffered_messages {
                    SinkMetrics::add(&metrics.overflow_values, 1);
                    continue;
                }
                let (shard, frame) = encode(&v, next_id, config.num_shards, &mut id);
                pending.insert(next_id, Pending { shard, frame, created: Instant::now(), sent: None });
                next_id += 1;
            }
            // In the retry buffer now (M3's producer semantics: retried until acked or expired).
            queue.mark_written(batch.core, batch.seq);
            pool.give_back(batch);
        }
        // 2. Connect when needed.
        if conn.is_none() && !pending.is_empty() && Instant::now() >= next_connect {
            match connect(&config.endpoint) {
                Ok(c) => {
                    tracing::info!(endpoint = %config.endpoint, "m3msg sink connected");
                    metrics.connected.store(1, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    // Everything unacked goes again on the new connection.
                    for p in pending.values_mut() {
                        p.sent = None;
                    }
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(endpoint = %config.endpoint, error = %e, "m3msg sink cannot connect");
                    next_connect = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // 3. Send what is new or due for a retry; read acks.
        if let Some(c) = &mut conn
            && let Err(e) =
                send_due(c, &mut pending, &config, &metrics).and_then(|_| read_acks(c, &mut pending, &metrics))
        {
            tracing::warn!(endpoint = %config.endpoint, error = %e, "m3msg sink connection lost");
            metrics.connected.store(0, Ordering::Relaxed);
            conn = None;
            next_connect = Instant::now() + backoff;
        }
        // 4. Expire what outlived its TTL.
        let ttl = config.message_ttl.0;
        let before = pending.len();
        pending.retain(|_, p| p.created.elapsed() < ttl);
        let expired = (before - pending.len()) as u64;
        if expired > 0 {
            SinkMetrics::add(&metrics.expired_messages, expired);
            tracing::warn!(expired, "m3msg sink dropped messages past their ttl");
        }
        metrics.unacked_messages.store(pending.len() as u64, Ordering::Relaxed);
        // 5. Shutdown: stop once the queue is empty and everything is acked (or time is up).
        if queue.is_closing() {
            let since = *closing_since.get_or_insert_with(Instant::now);
            let drained = queue.backlog_values.load(Ordering::Relaxed) == 0 && pending.is_empty();
            if drained || since.elapsed() >= config.drain_timeout.0 {
                if !pending.is_empty() {
                    tracing::warn!(unacked = pending.len(), "m3msg sink stopping with unacknowledged messages");
                }
                return;
            }
        }
        if pending.is_empty() {
            if std::mem::take(&mut busy_since_release) {
                // Everything is acked: give back what this thread freed (frames, batches).
                crate::allocator::release_freed_memory();
            }
            queue.wait(Duration::from_millis(100));
        } else if conn.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn encode(v: &FlushedValue<'_>, seq: u64, num_shards: u32, id: &mut Vec<u8>) -> (u64, Vec<u8>) {
    id.clear();
    v.write_id(id);
    let shard = u64::from(shard_for(id, num_shards));
    let mut frame = Vec::with_capacity(id.len() + 96);
    encode_aggregated_frame(&aggregated(v, id), shard, seq, now_nanos(), &mut frame);
    (shard, frame)
}

fn connect(endpoint: &str) -> std::io::Result<Connection> {
    let addr = endpoint
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(ErrorKind::NotFound, "endpoint resolves to no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_read_timeout(Some(Duration::from_millis(5)))?;
    Ok(Connection { stream, read_buf: Vec::with_capacity(64 * 1024) })
}

fn send_due(
    c: &mut Connection,
    pending: &mut BTreeMap<u64, Pending>,
    config: &M3msgHandler,
    metrics: &SinkMetrics,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 * 1024);
    let now = Instant::now();
    for p in pending.values_mut() {
        let due = match p.sent {
            None => true,
            Some(at) if now.duration_since(at) >= config.retry_interval.0 => {
                SinkMetrics::add(&metrics.retried_messages, 1);
                true
            }
            Some(_) => false,
        };
        if due {
            out.extend_from_slice(&p.frame);
            p.sent = Some(now);
            if out.len() >= 256 * 1024 {
                c.stream.write_all(&out)?;
                out.clear();
            }
        }
    }
    if !out.is_empty() {
        c.stream.write_all(&out)?;
    }
    Ok(())
}

fn read_acks(c: &mut Connection, pending: &mut BTreeMap<u64, Pending>, metrics: &SinkMetrics) -> std::io::Result<()> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "consumer closed the connection")),
            Ok(n) => c.read_buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut offset = 0;
    while let Some((payload, used)) = next_frame(&c.read_buf[offset..], 64 << 20)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?
    {
        let ack = msgpb::Ack::decode(payload).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
        for m in ack.metadata {
            if pending.get(&m.id).is_some_and(|p| p.shard == m.shard) {
                pending.remove(&m.id);
                SinkMetrics::add(&metrics.acked_values, 1);
            }
        }
        offset += used;
    }
    c.read_buf.drain(..offset);
    Ok(())
}
