//! Forwarding to peer nodes (cluster mode): values for shards another node owns (and, for
//! StatsD, the copies for the other replicas of shards this node owns) go to that node's m3msg
//! endpoint as ordinary m3msg frames, one metric per message, as an M3 producer sends them.
//!
//! One `Forwarder` per (core, peer), living on that core and touched only by its tasks: the
//! router encodes frames into a chunk and hands it over a bounded glommio local channel (a
//! full channel makes ingest wait, as a full hand-off queue does). The forwarder's task
//! writes chunks in order and keeps them until the peer acks their last message; a reconnect
//! resends what is unacked (at least once, like M3's producer). Acks are read by a second
//! task on a dup of the socket, so no lock is shared between the two halves. `Forwarders`
//! is the core's current set, replaced by `ShardCommand::SetRoutes`. A peer whose endpoint
//! has not resolved gets a forwarder too: it keeps what comes in its buffer (bounded, drops
//! counted as unresolved) until new routes bring the address.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::TaskQueueHandle;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use prost::Message as _;
use sheaf_proto::forward::{
    ANNOTATION_FRACTIONAL_COUNTER, ANNOTATION_GAUGE_DELTA, ANNOTATION_SET_MEMBER, Forwarded, ForwardedPolicy,
    ForwardedRollup, encode_forward_frame,
};
use sheaf_proto::msgpb;
use sheaf_shard_core::pipeline::MAX_ROLLUP_DEPTH;
use sheaf_shard_core::{MetricType, RollupRef, Sample, SampleBatch, SampleValue, UNTIMED};

use crate::core::{CoreState, spawn_into};
use crate::routes::{Peer, Routes};

/// The forwarders of one core, one per peer of the current routes (same index as
/// `Routes::peers`).
pub(crate) struct Forwarders {
    state: Rc<CoreState>,
    /// The queue the forwarders' tasks run in (ingest: a full forwarder makes ingest wait).
    queue: TaskQueueHandle,
    current: RefCell<Vec<Rc<Forwarder>>>,
}

impl Forwarders {
    pub(crate) fn new(state: Rc<CoreState>, queue: TaskQueueHandle) -> Self {
        Self { state, queue, current: RefCell::default() }
    }

    /// The forwarders, indexed as `Routes::peers` of the routes last set.
    pub(crate) fn current(&self) -> Vec<Rc<Forwarder>> {
        self.current.borrow().clone()
    }

    /// Follows new routes: a peer that stays (same id and address, or an address found for
    /// one that had none) keeps its forwarder and its unacked frames; a new peer gets one; a
    /// peer that left loses its forwarder once its queue is drained.
    pub(crate) fn set_routes(&self, routes: &Routes) {
        let old = std::mem::take(&mut *self.current.borrow_mut());
        let next = routes
            .peers
            .iter()
            .map(|p| {
                let same = |f: &&Rc<Forwarder>| f.id == p.id && (f.addr.get() == p.addr || f.addr.get().is_none());
                match old.iter().find(same) {
                    Some(f) => {
                        f.addr.set(p.addr);
                        f.clone()
                    }
                    None => Forwarder::start(self.state.clone(), p, self.queue),
                }
            })
            .collect();
        *self.current.borrow_mut() = next;
    }
}

/// A chunk of frames and the id of its last message.
pub(crate) struct Chunk {
    pub(crate) frames: Vec<u8>,
    pub(crate) last_id: u64,
    pub(crate) values: u64,
}

pub(crate) struct Forwarder {
    id: String,
    /// The peer's address, shared with its task (None: its endpoint has not resolved yet).
    addr: Rc<Cell<Option<SocketAddr>>>,
    tx: LocalSender<Chunk>,
    next_id: Cell<u64>,
}

impl Forwarder {
    fn start(state: Rc<CoreState>, peer: &Peer, queue: TaskQueueHandle) -> Rc<Self> {
        let (tx, rx) = local_channel::new_bounded(64);
        let addr = Rc::new(Cell::new(peer.addr));
        spawn_into(queue, run(state, peer.id.clone(), addr.clone(), rx));
        Rc::new(Self { id: peer.id.clone(), addr, tx, next_id: Cell::new(1) })
    }

    /// Encodes `s` (of `batch`, arrived at `arrival` if untimed) as one frame onto `chunk`.
    /// Returns false for a sample that is not forwarded (one that itself came from a peer).
    pub(crate) fn encode(&self, batch: &SampleBatch, s: &Sample, arrival: i64, chunk: &mut Chunk) -> bool {
        let mut one = [0.0];
        let Some(parts) = metrics(batch, s, arrival, &mut one) else { return false };
        let policies: Vec<ForwardedPolicy> = batch
            .spec(s.spec)
            .iter()
            .map(|e| ForwardedPolicy {
                aggregation_id: e.aggs.to_m3_id(),
                resolution_nanos: e.policy.resolution_nanos,
                retention_nanos: e.policy.retention_nanos,
                transformations: e.transforms.iter().map(|t| t as i32).collect(),
                rollup: forwarded_rollup(batch, e.rollup, 0),
            })
            .collect();
        for metric in &parts {
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            encode_forward_frame(metric, &policies, s.shard(), id, arrival, &mut chunk.frames);
            chunk.last_id = id;
            chunk.values += 1;
        }
        true
    }

    /// Queues a chunk, waiting while the forwarder is behind.
    pub(crate) async fn send(&self, chunk: Chunk) {
        let _ = self.tx.send(chunk).await;
    }
}

/// The metrics `s` travels as: one, or for a gathered forwarded sample one per source shard,
/// as M3 forwards them (each a first flush: no previous values); `one` holds a lone timer
/// value (a slice must point somewhere).
fn metrics<'a>(batch: &'a SampleBatch, s: &Sample, arrival: i64, one: &'a mut [f64; 1]) -> Option<Vec<Forwarded<'a>>> {
    let metric = forwarded(batch, s, arrival, one)?;
    let Forwarded::Rollup { kind, id, time, resend_enabled, .. } = metric else { return Some(vec![metric]) };
    let index = batch.index_of(s)?;
    if batch.gathered_runs(index).is_none() {
        return Some(vec![metric]);
    }
    let parts = batch.forwarded_parts(index).map(|(from, values)| Forwarded::Rollup {
        kind,
        id,
        time,
        values,
        prev_values: &[],
        version: from.version,
        source: from.source,
        num_forwarded_times: i32::from(from.times),
        resend_enabled,
    });
    Some(parts.collect())
}

/// What `s` travels as; `one` holds a lone timer value (a slice must point somewhere).
fn forwarded<'a>(batch: &'a SampleBatch, s: &Sample, arrival: i64, one: &'a mut [f64; 1]) -> Option<Forwarded<'a>> {
    if s.stamped() {
        return None;
    }
    let id = batch.id(s);
    if s.forwarded() {
        // A set's rolled-up values have no m3msg metric type: not forwarded (counted).
        let kind = match s.metric_type {
            MetricType::Counter => 1,
            MetricType::Timer => 2,
            MetricType::Gauge => 3,
            MetricType::Set => return None,
        };
        let index = batch.index_of(s)?;
        let from = batch.forwarded_from(index)?;
        let (values, prev_values) = (batch.timer_values_of(s), batch.forwarded_prev_values(index));
        let (version, source, num_forwarded_times) = (from.version, from.source, i32::from(from.times));
        let time = s.time;
        let resend_enabled = batch.forwarded_resend(index);
        return Some(Forwarded::Rollup {
            kind,
            id,
            time,
            values,
            prev_values,
            version,
            source,
            num_forwarded_times,
            resend_enabled,
        });
    }
    if s.time != UNTIMED {
        let kind = match s.metric_type {
            MetricType::Counter => 1,
            MetricType::Timer => 2,
            MetricType::Gauge => 3,
            MetricType::Set => return None,
        };
        let SampleValue::Number(value) = s.value() else { return None };
        if s.passthrough() {
            let [elem] = batch.spec(s.spec) else { return None };
            let (resolution_nanos, retention_nanos) = (elem.policy.resolution_nanos, elem.policy.retention_nanos);
            return Some(Forwarded::Passthrough { kind, id, time: s.time, value, resolution_nanos, retention_nanos });
        }
        return Some(Forwarded::Timed { kind, id, time: s.time, value });
    }
    Some(match (s.metric_type, s.value()) {
        (MetricType::Counter, SampleValue::Number(v)) if v.fract() == 0.0 && v.abs() < 9.0e18 => {
            Forwarded::Counter { id, value: v as i64, arrival }
        }
        (MetricType::Counter, SampleValue::Number(v)) => {
            Forwarded::Gauge { id, value: v, arrival, annotation: ANNOTATION_FRACTIONAL_COUNTER }
        }
        (MetricType::Timer, SampleValue::Timer { start, len }) => {
            Forwarded::Timer { id, values: batch.timer_values(start, len), arrival }
        }
        (MetricType::Timer, SampleValue::Number(v)) => {
            one[0] = v;
            Forwarded::Timer { id, values: one, arrival }
        }
        (MetricType::Gauge, SampleValue::Number(v)) => Forwarded::Gauge { id, value: v, arrival, annotation: b"" },
        (MetricType::Gauge, SampleValue::GaugeDelta(d)) => {
            Forwarded::Gauge { id, value: d, arrival, annotation: ANNOTATION_GAUGE_DELTA }
        }
        (MetricType::Set, SampleValue::Member(h)) => {
            Forwarded::Gauge { id, value: f64::from_bits(h), arrival, annotation: ANNOTATION_SET_MEMBER }
        }
        _ => return None,
    })
}

/// How often a forwarder without an address looks for one.
const UNRESOLVED_RECHECK: Duration = Duration::from_millis(100);

/// What a forwarder keeps while it cannot write: the unacked chunks and their value count.
struct Buffer {
    chunks: VecDeque<Chunk>,
    values: u64,
    limit: u64,
}

/// Connects (retrying with backoff), resends what is unacked, then writes chunks as they come.
async fn run(core: Rc<CoreState>, id: String, addr: Rc<Cell<Option<SocketAddr>>>, rx: LocalReceiver<Chunk>) {
    let limit = core.config.forward_max_buffered_values.max(1) as u64;
    let mut buffer = Buffer { chunks: VecDeque::new(), values: 0, limit };
    let acked = Rc::new(Cell::new(0u64));
    let mut backoff = Duration::from_millis(50);
    'connect: loop {
        let Some(peer) = addr.get() else {
            // No address yet: keep what comes (bounded) until new routes bring one.
            if !keep_for(&core, &rx, &mut buffer, UNRESOLVED_RECHECK, Dropped::Unresolved).await {
                return;
            }
            continue;
        };
        let mut stream = match TcpStream::connect(peer).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(core = core.index, peer = %id, %peer, error = %e, "cannot reach peer; will retry");
                // Keep taking chunks while waiting (bounded), so a dead peer does not hold ingest up.
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if !keep_for(&core, &rx, &mut buffer, wait, Dropped::Unreachable).await {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(50);
        // The duplicate is a new fd, owned by the reader stream alone and closed when it drops.
        // SAFETY: dup(2) of the open socket fd `stream` owns; it does not touch that fd.
        let dup = unsafe { libc::dup(stream.as_raw_fd()) };
        if dup < 0 {
            glommio::timer::sleep(backoff).await;
            continue;
        }
        // SAFETY: `dup` is a freshly duplicated, open TCP socket fd nobody else owns.
        let reader = unsafe { TcpStream::from_raw_fd(dup) };
        let alive = Rc::new(Cell::new(true));
        glommio::spawn_local(read_acks(reader, acked.clone(), alive.clone())).detach();
        for chunk in &buffer.chunks {
            if stream.write_all(&chunk.frames).await.is_err() {
                alive.set(false);
                continue 'connect;
            }
        }
        loop {
            release(&mut buffer, acked.get());
            let Some(chunk) = rx.recv().await else { return };
            core.stats.borrow_mut().forwarded_values += chunk.values;
            let written = stream.write_all(&chunk.frames).await;
            keep(&core, &mut buffer, chunk, Dropped::Unreachable);
            if written.is_err() || !alive.get() {
                tracing::warn!(core = core.index, peer = %id, %peer, "peer connection lost; reconnecting");
                alive.set(false);
                let _ = stream.close().await;
                continue 'connect;
            }
        }
    }
}

/// Why buffered values were given up on.
#[derive(Clone, Copy)]
enum Dropped {
    Unreachable,
    Unresolved,
}

/// Takes chunks into `buffer` for `wait` (the forwarder cannot write meanwhile); false once
/// the router side has gone.
async fn keep_for(
    core: &CoreState,
    rx: &LocalReceiver<Chunk>,
    buffer: &mut Buffer,
    wait: Duration,
    why: Dropped,
) -> bool {
    let until = std::time::Instant::now() + wait;
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        let next = futures_lite::future::or(async { Some(rx.recv().await) }, async {
            glommio::timer::sleep(left).await;
            None
        })
        .await;
        match next {
            Some(Some(chunk)) => keep(core, buffer, chunk, why),
            Some(None) => return false,
            None => break,
        }
    }
    true
}

/// Adds `chunk` to the buffer, dropping (and counting) the oldest beyond the limit.
fn keep(core: &CoreState, buffer: &mut Buffer, chunk: Chunk, why: Dropped) {
    buffer.values += chunk.values;
    buffer.chunks.push_back(chunk);
    while buffer.values > buffer.limit {
        let Some(old) = buffer.chunks.pop_front() else { break };
        buffer.values -= old.values;
        let mut stats = core.stats.borrow_mut();
        match why {
            Dropped::Unreachable => stats.forward_dropped_values += old.values,
            Dropped::Unresolved => stats.forward_unresolved_dropped_values += old.values,
        }
    }
}

fn release(buffer: &mut Buffer, acked: u64) {
    while buffer.chunks.front().is_some_and(|c| c.last_id <= acked) {
        if let Some(c) = buffer.chunks.pop_front() {
            buffer.values -= c.values;
        }
    }
}

/// Reads `Ack` frames and records the highest message id acked.
async fn read_acks(mut reader: TcpStream, acked: Rc<Cell<u64>>, alive: Rc<Cell<bool>>) {
    let mut len = [0u8; 4];
    let mut body = Vec::new();
    while alive.get() {
        if reader.read_exact(&mut len).await.is_err() {
            break;
        }
        body.resize(u32::from_be_bytes(len) as usize, 0);
        if reader.read_exact(&mut body).await.is_err() {
            break;
        }
        match msgpb::Ack::decode(body.as_slice()) {
            Ok(ack) => {
                if let Some(max) = ack.metadata.iter().map(|m| m.id).max() {
                    acked.set(acked.get().max(max));
                }
            }
            Err(_) => break,
        }
    }
    alive.set(false);
    // A peer that closed (or stopped making sense) is let go of at once, not at the next
    // write: the connection closes on both sides, so a restarted peer can bind its port again.
    let _ = reader.shutdown(std::net::Shutdown::Both).await;
}

/// Rollup `r` of `batch` and the rollups after it, as a peer gets them (at most
/// `MAX_ROLLUP_DEPTH` deep).
fn forwarded_rollup(batch: &SampleBatch, r: RollupRef, depth: usize) -> Option<ForwardedRollup> {
    let rollup = batch.rollup(r).filter(|_| depth < MAX_ROLLUP_DEPTH)?;
    Some(ForwardedRollup {
        id: batch.rollup_id(rollup).to_vec(),
        aggregation_id: rollup.aggs.to_m3_id(),
        transformations: rollup.transforms.iter().map(|t| t as i32).collect(),
        resend_enabled: rollup.resend,
        next: forwarded_rollup(batch, rollup.next, depth + 1).map(Box::new),
    })
}

#[cfg(test)]
mod tests {
    use sheaf_shard_core::{AggTypes, ElemSpec, MetricType, SampleBatch};

    use super::*;

    #[test]
    fn a_gathered_sample_goes_to_a_peer_as_one_metric_per_source_shard() {
        let mut batch = SampleBatch::default();
        let elem = ElemSpec { forwarded: 1, ..ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap()) };
        let spec = batch.add_spec(&[elem]);
        let values = [1.0, 2.0, 3.0];
        batch.push_gathered(1, 7, b"total", MetricType::Counter, 10, &values, spec, 1, &[(4, 2), (9, 1)]);
        let mut one = [0.0];
        let got: Vec<(u32, Vec<f64>)> = metrics(&batch, &batch.samples()[0], 0, &mut one)
            .unwrap()
            .into_iter()
            .map(|m| match m {
                Forwarded::Rollup { source, version: 0, num_forwarded_times: 1, values, .. } => {
                    (source, values.to_vec())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(4, vec![1.0, 2.0]), (9, vec![3.0])]);
    }
}
