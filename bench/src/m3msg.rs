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

use crate::{SendPlan, Totals};

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
        plan.totals.values.fetch_add(values, Relaxed);
        plan.totals.counter_values.fetch_add(counters, Relaxed);
        plan.totals.units.fetch_add(messages, Relaxed);
        plan.totals.bytes.fetch_add(out.len() as u64, Relaxed);
        plan.pace(start, sent_values);
    }
    // End of input: sheaf acks what it has and closes, which ends the reader.
    let _ = stream.shutdown(Shutdown::Write);
    let read = reader.join().map_err(|_| anyhow::anyhow!("ack reader {conn} panicked"))?;
    match (result, read) {
        (Err(w), Err(r)) => Err(w.context(format!("ack reader: {r:#}"))),
        (w, r) => w.and(r),
    }
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
