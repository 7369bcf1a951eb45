//! m3msg over TCP, as M3 coordinators send it: one metric per `msgpb.Message`, framed,
//! several connections; per connection a writer thread and a reader thread that counts the
//! `msgpb.Ack` metadata coming back and how long each message waited for its ack.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prost::Message as _;
use serde_json::{Value, json};
use sheaf_bench::workload::{Generator, Kind, M3msgEncoder};
use sheaf_proto::frame::{DEFAULT_MAX_FRAME_SIZE, next_frame};
use sheaf_proto::metricpb::StagedMetadatas;
use sheaf_proto::msgpb;

use crate::send_plan::{SendPlan, Totals};

/// Bytes of frames gathered before one `write`.
const WRITE_BATCH_BYTES: usize = 16 << 10;

/// Largest ack frame accepted. M3's producers refuse frames over 4 MiB
/// ([`DEFAULT_MAX_FRAME_SIZE`]); acks larger than that are accepted here but counted, since
/// a real M3 client would drop the connection on them.
const MAX_ACK_FRAME: usize = 1 << 30;

/// A write that makes no progress for this long fails the connection (sheaf stopped reading).
const WRITE_STALL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) timer_batch: usize,
    pub(crate) num_shards: u32,
    pub(crate) ack_timeout: Duration,
    /// Send pre-encoded frames over and over (see [`send_replayed`]).
    pub(crate) replay: bool,
}

/// Connects `plan.threads` connections and starts their writers (each starts its reader).
pub(crate) fn start(
    addr: SocketAddr,
    options: Options,
    plan: &SendPlan,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let mut handles = Vec::with_capacity(plan.threads);
    for c in 0..plan.threads {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to m3msg at {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_STALL))?;
        let plan = plan.clone();
        let handle = std::thread::Builder::new()
            .name(format!("m3msg-{c}"))
            .spawn(move || write_loop(stream, c, options, plan))
            .context("starting a writer thread")?;
        handles.push(handle);
    }
    Ok(handles)
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn write_loop(mut stream: TcpStream, conn: usize, options: Options, plan: SendPlan) -> anyhow::Result<()> {
    let reader_stream = stream.try_clone().context("cloning the stream for the ack reader")?;
    let ack_deadline = plan.deadline + options.ack_timeout;
    let reader_totals = plan.totals.clone();
    let reader = std::thread::Builder::new()
        .name(format!("m3msg-ack-{conn}"))
        .spawn(move || {
            let result = read_acks(&reader_stream, &reader_totals, ack_deadline);
            if result.is_err() {
                // Unblock the writer: without a reader, sheaf's acks would fill the socket.
                let _ = reader_stream.shutdown(Shutdown::Both);
            }
            result
        })
        .context("starting an ack reader thread")?;

    let result = if options.replay {
        send_replayed(&mut stream, conn, options, &plan)
    } else {
        send_generated(&mut stream, conn, options, &plan)
    };
    // End of input: sheaf acks what it has and closes, which ends the reader.
    let _ = stream.shutdown(Shutdown::Write);
    let read = reader.join().map_err(|_| anyhow::anyhow!("ack reader {conn} panicked"))?;
    match (result, read) {
        (Err(w), Err(r)) => Err(w.context(format!("ack reader: {r:#}"))),
        (w, r) => w.and(r),
    }
}

/// Encodes every message as it is sent.
fn send_generated(stream: &mut TcpStream, conn: usize, options: Options, plan: &SendPlan) -> anyhow::Result<()> {
    let mut generator = Generator::new(plan.mix, plan.space, conn as u64, plan.threads as u64);
    let mut encoder = M3msgEncoder::new(StagedMetadatas::default(), options.num_shards);
    let mut out = Vec::with_capacity(WRITE_BATCH_BYTES + 1024);
    let mut timer_values = Vec::with_capacity(options.timer_batch);
    let mut seq = 0u64;
    let mut sent_values = 0u64;
    let start = Instant::now();
    let mut result = Ok(());
    while plan.running() {
        out.clear();
        let sent_at = unix_nanos();
        let (mut values, mut counters, mut messages) = (0u64, 0u64, 0u64);
        while out.len() < WRITE_BATCH_BYTES {
            let s = generator.next_sample();
            timer_values.clear();
            if s.kind == Kind::Timer && options.timer_batch > 1 {
                timer_values.push(s.value);
                timer_values.extend((1..options.timer_batch as u64).map(|j| generator.timer_value(j)));
            }
            seq += 1;
            encoder.encode(&s, &timer_values, seq, sent_at, &mut out);
            messages += 1;
            values += if s.kind == Kind::Timer { options.timer_batch as u64 } else { 1 };
            counters += u64::from(s.kind == Kind::Counter);
            // Keep batches small when rate-limited so pacing stays smooth.
            if plan.rate_per_thread > 0.0 && values as f64 >= plan.rate_per_thread / 1000.0 {
                break;
            }
        }
        if let Err(e) = stream.write_all(&out) {
            plan.totals.send_errors.fetch_add(1, Relaxed);
            result = Err(anyhow::anyhow!("connection {conn}: write: {e} (after {seq} messages)"));
            break;
        }
        sent_values += values;
        plan.totals.add_sent(values, counters, messages, out.len());
        plan.pace(start, sent_values);
    }
    result
}

/// One write's worth of the replayed frames, and what they count for.
struct ReplayChunk {
    bytes: std::ops::Range<usize>,
    /// Where each message's `sent_at_nanos` varint starts, in `ReplayLoop::sent_at`.
    sent_at: std::ops::Range<usize>,
    values: u64,
    counters: u64,
    messages: u64,
}

impl ReplayChunk {
    /// An empty chunk whose frames start at byte `bytes`, its messages at `sent_at`.
    fn starting_at(bytes: usize, sent_at: usize) -> Self {
        Self { bytes: bytes..bytes, sent_at: sent_at..sent_at, values: 0, counters: 0, messages: 0 }
    }
}

/// One connection's share of the series, each visited once, encoded once.
struct ReplayLoop {
    frames: Vec<u8>,
    sent_at: Vec<usize>,
    chunks: Vec<ReplayChunk>,
}

/// A `sent_at_nanos` encoded while building the loop, found again in each frame to patch it.
/// Times since the epoch take 9 varint bytes from 2^56 ns (2004) to 2^63 ns (2262).
const PLACEHOLDER_SENT_AT: u64 = 1 << 60;
const SENT_AT_LEN: usize = 9;

fn varint9(v: u64) -> [u8; SENT_AT_LEN] {
    std::array::from_fn(|i| {
        let group = ((v >> (7 * i)) & 0x7f) as u8;
        if i + 1 < SENT_AT_LEN { group | 0x80 } else { group }
    })
}

impl ReplayLoop {
    fn build(conn: usize, options: Options, plan: &SendPlan) -> anyhow::Result<Self> {
        let mut generator = Generator::new(plan.mix, plan.space, conn as u64, plan.threads as u64);
        let mut encoder = M3msgEncoder::new(StagedMetadatas::default(), options.num_shards);
        let messages = plan.space.total().div_ceil(plan.threads as u64);
        let placeholder = varint9(PLACEHOLDER_SENT_AT);
        let mut timer_values = Vec::with_capacity(options.timer_batch);
        let mut lp = Self { frames: Vec::new(), sent_at: Vec::new(), chunks: Vec::new() };
        let mut chunk = ReplayChunk::starting_at(0, 0);
        for seq in 1..=messages {
            let s = generator.next_sample();
            timer_values.clear();
            if s.kind == Kind::Timer && options.timer_batch > 1 {
                timer_values.push(s.value);
                timer_values.extend((1..options.timer_batch as u64).map(|j| generator.timer_value(j)));
            }
            let start = lp.frames.len();
            encoder.encode(&s, &timer_values, seq, PLACEHOLDER_SENT_AT, &mut lp.frames);
            // The metadata comes first: the varint follows its key (field 3, varint) there.
            let head = &lp.frames[start..lp.frames.len().min(start + 48)];
            let at = head
                .windows(SENT_AT_LEN + 1)
                .position(|w| w[0] == 0x18 && w[1..] == placeholder)
                .context("no sent_at_nanos in an encoded message")?;
            lp.sent_at.push(start + at + 1);
            chunk.values += if s.kind == Kind::Timer { options.timer_batch as u64 } else { 1 };
            chunk.counters += u64::from(s.kind == Kind::Counter);
            chunk.messages += 1;
            let full = lp.frames.len() - chunk.bytes.start >= WRITE_BATCH_BYTES
                || (plan.rate_per_thread > 0.0 && chunk.values as f64 >= plan.rate_per_thread / 1000.0);
            if full || seq == messages {
                chunk.bytes.end = lp.frames.len();
                chunk.sent_at.end = lp.sent_at.len();
                let next = ReplayChunk::starting_at(chunk.bytes.end, chunk.sent_at.end);
                lp.chunks.push(std::mem::replace(&mut chunk, next));
            }
        }
        Ok(lp)
    }
}

/// Encodes the connection's share of the series once, then sends those frames again and
/// again, rewriting only each message's `sent_at_nanos`: the sender then costs a copy per
/// message instead of an encode, so one sender CPU can keep a shard core busy.
fn send_replayed(stream: &mut TcpStream, conn: usize, options: Options, plan: &SendPlan) -> anyhow::Result<()> {
    let mut lp = ReplayLoop::build(conn, options, plan)?;
    let mut sent_values = 0u64;
    let start = Instant::now();
    for i in (0..lp.chunks.len()).cycle() {
        if !plan.running() {
            break;
        }
        let chunk = &lp.chunks[i];
        let sent_at = varint9(unix_nanos().max(1 << 56));
        for &at in &lp.sent_at[chunk.sent_at.clone()] {
            lp.frames[at..at + SENT_AT_LEN].copy_from_slice(&sent_at);
        }
        if let Err(e) = stream.write_all(&lp.frames[chunk.bytes.clone()]) {
            plan.totals.send_errors.fetch_add(1, Relaxed);
            return Err(anyhow::anyhow!("connection {conn}: write: {e}"));
        }
        sent_values += chunk.values;
        plan.totals.add_sent(chunk.values, chunk.counters, chunk.messages, chunk.bytes.len());
        plan.pace(start, sent_values);
    }
    Ok(())
}

fn read_acks(mut stream: &TcpStream, totals: &Totals, deadline: Instant) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut latencies = Vec::new();
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if Instant::now() > deadline {
                    return Ok(());
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(anyhow::anyhow!("reading acks: {e}")),
        }
        let mut at = 0;
        let now = unix_nanos();
        latencies.clear();
        while let Some((payload, used)) = next_frame(&buf[at..], MAX_ACK_FRAME)? {
            at += used;
            let ack = msgpb::Ack::decode(payload).context("decoding an ack")?;
            totals.acked.fetch_add(ack.metadata.len() as u64, Relaxed);
            totals.ack_frames.fetch_add(1, Relaxed);
            totals.max_ack_frame_bytes.fetch_max(payload.len() as u64, Relaxed);
            totals.max_ack_metadata.fetch_max(ack.metadata.len() as u64, Relaxed);
            if payload.len() > DEFAULT_MAX_FRAME_SIZE {
                totals.ack_frames_over_4mib.fetch_add(1, Relaxed);
            }
            latencies.extend(ack.metadata.iter().map(|m| now.saturating_sub(m.sent_at_nanos) as f64 / 1e6));
        }
        buf.drain(..at);
        if !latencies.is_empty()
            && let Ok(mut sketch) = totals.ack_latency_ms.lock()
        {
            for &l in &latencies {
                sketch.add(l);
            }
        }
    }
}

/// Ack latency quantiles (ms), from `sent_at_nanos` to the read of the ack echoing it.
pub(crate) fn ack_latency_report(totals: &Totals) -> Value {
    let Ok(sketch) = totals.ack_latency_ms.lock() else {
        return Value::Null;
    };
    if sketch.count() == 0 {
        return Value::Null;
    }
    let q = |q: f64| sketch.quantile(q).map(|v| (v * 1000.0).round() / 1000.0);
    json!({ "count": sketch.count(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0) })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use sheaf_bench::workload::{Mix, SeriesSpace};
    use sheaf_proto::view::{MetricView, Scratch, decode_message, decode_metric};

    use super::*;

    fn plan(series: u64, threads: usize, rate_per_thread: f64) -> SendPlan {
        let mix = Mix::default();
        SendPlan {
            mix,
            space: SeriesSpace::new(series, mix),
            threads,
            rate_per_thread,
            deadline: Instant::now(),
            totals: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The replayed frames decode, cover the connection's share of the series once, are cut
    /// into chunks that account for every message, and carry the patched `sent_at_nanos`.
    #[test]
    fn replay_loop_covers_the_share_once_and_patches_sent_at() {
        let options = Options { timer_batch: 1, num_shards: 64, ack_timeout: Duration::ZERO, replay: true };
        for rate in [0.0, 50_000.0] {
            let plan = plan(1000, 2, rate);
            let mut lp = ReplayLoop::build(1, options, &plan).expect("built");
            assert_eq!(lp.sent_at.len(), 500);
            assert_eq!(lp.chunks.iter().map(|c| c.messages).sum::<u64>(), 500);
            assert_eq!(lp.chunks.iter().map(|c| c.counters).sum::<u64>(), 300);
            assert_eq!(lp.chunks.last().map(|c| c.bytes.end), Some(lp.frames.len()));
            if rate > 0.0 {
                assert!(lp.chunks.iter().all(|c| c.values <= 50));
            }
            let now = 1_800_000_000_000_000_000u64;
            for &at in &lp.sent_at.clone() {
                lp.frames[at..at + SENT_AT_LEN].copy_from_slice(&varint9(now));
            }
            let (mut rest, mut ids, mut scratch) =
                (&lp.frames[..], std::collections::HashSet::new(), Scratch::default());
            while let Some((payload, used)) = next_frame(rest, DEFAULT_MAX_FRAME_SIZE).expect("frame") {
                rest = &rest[used..];
                let msg = decode_message(payload).expect("message");
                assert_eq!(msg.sent_at_nanos, now);
                let id = match decode_metric(msg.value, 0, &mut scratch).expect("metric") {
                    MetricView::Counter { id, .. }
                    | MetricView::Gauge { id, .. }
                    | MetricView::BatchTimer { id, .. } => id.to_vec(),
                    MetricView::Timed { .. } | MetricView::Passthrough { .. } | MetricView::Forwarded { .. } => {
                        panic!("untimed only")
                    }
                };
                assert!(ids.insert(id), "a series visited twice");
            }
            assert_eq!(ids.len(), 500);
        }
    }
}
