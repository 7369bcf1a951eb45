//! One consumer instance of a topic sink: its connection (blocking writes, acks read without
//! blocking), the messages it holds until it acknowledges them, and its counters. Lives on the
//! sink thread; only its [`ConsumerMetrics`] are read elsewhere (by the admin API).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use prost::Message as _;
use sheaf_proto::frame::next_frame;
use sheaf_proto::msgpb;

use crate::sinks::sink_metrics::{ConsumerMetrics, SinkMetrics};

/// A message held for one instance (the frame is shared by every instance that gets it).
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub shard: u32,
    pub frame: Arc<[u8]>,
    pub created: Instant,
    /// When it was last written to this instance (`None`: due now).
    pub sent: Option<Instant>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) struct Writer {
    pub endpoint: String,
    conn: Option<(TcpStream, Vec<u8>)>,
    next_connect: Instant,
    backoff: Duration,
    /// A connection attempt failed, or the connection broke, and none has succeeded since.
    pub down: bool,
    /// By message id.
    pub pending: BTreeMap<u64, Msg>,
    pub metrics: Arc<ConsumerMetrics>,
}

impl Writer {
    pub fn new(endpoint: &str, metrics: Arc<ConsumerMetrics>) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            conn: None,
            next_connect: Instant::now(),
            backoff: Duration::from_millis(50),
            down: false,
            pending: BTreeMap::new(),
            metrics,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connects when due, writes what is new or due for a retry, reads acks; returns the
    /// messages acknowledged. A broken connection is dropped and retried with a backoff.
    pub fn pump(&mut self, retry_interval: Duration, sink: &SinkMetrics) -> u64 {
        let now = Instant::now();
        if self.conn.is_none() {
            if self.pending.is_empty() || now < self.next_connect {
                return 0;
            }
            match connect(&self.endpoint) {
                Ok(stream) => {
                    tracing::info!(endpoint = %self.endpoint, service = %self.metrics.service, "topic consumer connected");
                    self.conn = Some((stream, Vec::with_capacity(64 * 1024)));
                    self.backoff = Duration::from_millis(50);
                    self.down = false;
                    self.metrics.connected.store(1, Relaxed);
                    // Everything unacked goes again on the new connection.
                    for m in self.pending.values_mut() {
                        m.sent = None;
                    }
                }
                Err(e) => {
                    if !self.down {
                        tracing::warn!(endpoint = %self.endpoint, service = %self.metrics.service, error = %e, "topic consumer unreachable");
                    }
                    self.fail(now);
                    return 0;
                }
            }
        }
        let result = self.send_due(retry_interval, now, sink).and_then(|()| self.read_acks());
        match result {
            Ok(acked) => acked,
            Err(e) => {
                tracing::warn!(endpoint = %self.endpoint, service = %self.metrics.service, error = %e, "topic consumer connection lost");
                self.fail(now);
                0
            }
        }
    }

    fn fail(&mut self, now: Instant) {
        self.conn = None;
        self.down = true;
        self.metrics.connected.store(0, Relaxed);
        self.next_connect = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn send_due(&mut self, retry_interval: Duration, now: Instant, sink: &SinkMetrics) -> std::io::Result<()> {
        let Some((stream, _)) = self.conn.as_mut() else { return Ok(()) };
        let mut out = Vec::with_capacity(64 * 1024);
        let (mut sent, mut retried) = (0u64, 0u64);
        for m in self.pending.values_mut() {
            let due = match m.sent {
                None => true,
                Some(at) if now.duration_since(at) >= retry_interval => {
                    retried += 1;
                    true
                }
                Some(_) => false,
            };
            if due {
                out.extend_from_slice(&m.frame);
                m.sent = Some(now);
                sent += 1;
                if out.len() >= 256 * 1024 {
                    stream.write_all(&out)?;
                    out.clear();
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
        SinkMetrics::add(&self.metrics.sent, sent);
        SinkMetrics::add(&self.metrics.retried, retried);
        SinkMetrics::add(&sink.retried_messages, retried);
        Ok(())
    }

    fn read_acks(&mut self) -> std::io::Result<u64> {
        let Some((stream, buf)) = self.conn.as_mut() else { return Ok(0) };
        stream.set_nonblocking(true)?;
        let mut chunk = [0u8; 64 * 1024];
        let read = loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    break Err(std::io::Error::new(ErrorKind::UnexpectedEof, "the consumer closed the connection"));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        let mut offset = 0;
        let mut acked = 0;
        while let Some((payload, used)) = next_frame(&buf[offset..], 64 << 20)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?
        {
            let ack = msgpb::Ack::decode(payload).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
            for m in ack.metadata {
                if self.pending.get(&m.id).is_some_and(|p| u64::from(p.shard) == m.shard) {
                    self.pending.remove(&m.id);
                    acked += 1;
                }
            }
            offset += used;
        }
        buf.drain(..offset);
        SinkMetrics::add(&self.metrics.acked, acked);
        read.map(|()| acked)
    }

    /// Drops what is older than `ttl`; returns how many.
    pub fn expire(&mut self, ttl: Duration) -> u64 {
        let before = self.pending.len();
        self.pending.retain(|_, m| m.created.elapsed() < ttl);
        let n = (before - self.pending.len()) as u64;
        SinkMetrics::add(&self.metrics.dropped_ttl, n);
        n
    }
}

fn connect(endpoint: &str) -> std::io::Result<TcpStream> {
    let addr = endpoint
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(ErrorKind::NotFound, "endpoint resolves to no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}
