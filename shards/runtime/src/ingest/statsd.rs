//! StatsD read loops: over datagrams (UDP, or a Unix datagram socket; several lines per
//! datagram) and TCP (newline-separated stream). The lines are decoded by
//! `crate::decode::StatsdDecoder`; a malformed line is counted by reason and skipped, its
//! neighbours unaffected.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use futures_lite::AsyncReadExt;
use glommio::net::{TcpStream, UdpSocket};
use sheaf_shard_core::statsd;

use super::IngestContext;
use super::pause::AdaptivePause;
use super::read_buffer::{READ_CHUNK, ReadBuffer};
use super::recv_batch::{RecvBatch, SLOTS};
use super::router::Router;
use super::source::Source;
use super::unix_socket::{CoreHandle, MIN_QUEUE_FOR_PAUSE};
use crate::config::PoolConfig;
use crate::core::UdpDropWatch;
use crate::decode::StatsdDecoder;
use crate::stats::{ConnectionRefusal, Protocol};

fn decoder(config: &PoolConfig) -> StatsdDecoder {
    StatsdDecoder::new(config.num_shards, config.ingest.max_line_size)
}

/// Bursts drained with `recvmmsg` before the core yields to its other tasks.
const MAX_DRAINS_PER_WAKE: usize = 16;

/// At most this many `recvmmsg` calls drain a socket once shutdown began (1024 × 32
/// datagrams: more than a Unix socket can queue; UDP senders may keep sending).
const FINAL_DRAINS: usize = 1024;

/// What woke the datagram loop.
enum Wake {
    Readable,
    Linger,
    Stop,
    Failed(std::io::Error),
}

/// A datagram socket one core drains: its own socket of the UDP `SO_REUSEPORT` group, or its
/// handle on the Unix socket all cores share (see `ingest::unix_socket`).
pub(crate) enum DatagramSocket {
    /// `_drops` (held for its `Drop`) is declared first, so it is dropped (and reads the
    /// socket's drop counter a last time) before `socket` closes.
    Udp {
        _drops: UdpDropWatch,
        socket: UdpSocket,
    },
    Unix(CoreHandle),
}

impl DatagramSocket {
    /// Waits until a datagram is queued (a 1-byte peek: it consumes nothing).
    async fn readable(&mut self, probe: &mut [u8]) -> std::io::Result<()> {
        match self {
            Self::Udp { socket, .. } => socket.peek_from(probe).await.map(drop).map_err(Into::into),
            Self::Unix(s) => s.readable().await,
        }
    }

    /// The receive buffer as the kernel counts it against queued datagrams (`SO_RCVBUF`).
    fn recv_buffer_bytes(&self) -> usize {
        socket2::SockRef::from(&BorrowedSocketFd(self.fd())).recv_buffer_size().unwrap_or(DEFAULT_RECV_BUFFER)
    }

    fn fd(&self) -> RawFd {
        match self {
            Self::Udp { socket, .. } => socket.as_raw_fd(),
            Self::Unix(s) => s.fd(),
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Self::Udp { .. } => Protocol::StatsdUdp,
            Self::Unix(_) => Protocol::StatsdUnix,
        }
    }
}

/// A socket's receive buffer when the kernel does not say (Linux's usual `rmem_default`,
/// as `SO_RCVBUF` reports it).
const DEFAULT_RECV_BUFFER: usize = 2 * 212_992;

/// An fd to borrow for a `getsockopt`.
struct BorrowedSocketFd(RawFd);

impl std::os::fd::AsFd for BorrowedSocketFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the fd is the datagram socket of the loop that asks, open for the call.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

/// How a core drains its datagram socket.
pub(crate) struct DrainPolicy {
    /// After a wake-up whose drains the policy calls small, wait this long before looking
    /// again (zero: look again at once); on a socket of the core's own, at most this long.
    pub(crate) small_read_pause: std::time::Duration,
    /// How many datagrams one drain takes when the socket is busy: one `recvmmsg` on UDP;
    /// on a Unix socket at most its queue depth, if that is less.
    pub(crate) full_drain: usize,
    /// Which drains are small.
    pub(crate) small: SmallDrains,
}

/// When a wake-up's drains count as small, so that the core pauses after them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SmallDrains {
    /// The last drain took fewer than `full_drain` datagrams: the socket ran dry. Right for
    /// a socket of the core's own, which runs dry only when its stream is moderate.
    LastDrain,
    /// The wake-up took fewer than `full_drain` datagrams in all. For a socket every core
    /// drains: under full load it runs dry all the time, because the other cores have just
    /// taken what was queued, and pausing then would leave cores idle while datagrams wait.
    WakeTotal,
}

impl DrainPolicy {
    pub(crate) fn udp(config: &PoolConfig) -> Self {
        Self { small_read_pause: config.ingest.udp_small_read_pause, full_drain: SLOTS, small: SmallDrains::LastDrain }
    }

    /// For the shared Unix socket, which queues at most `queue_depth` datagrams (unknown:
    /// as many as UDP). Below `MIN_QUEUE_FOR_PAUSE` the queue would fill during a pause, so
    /// the core only drains.
    pub(crate) fn unix(config: &PoolConfig, queue_depth: Option<usize>) -> Self {
        let depth = queue_depth.unwrap_or(usize::MAX).max(1);
        let small_read_pause =
            if depth >= MIN_QUEUE_FOR_PAUSE { config.ingest.unix_small_read_pause } else { std::time::Duration::ZERO };
        Self { small_read_pause, full_drain: SLOTS.min(depth), small: SmallDrains::WakeTotal }
    }

    /// The pause after small wake-ups: on a socket of the core's own it follows the socket's
    /// fill level (`AdaptivePause`); on one every core drains the fill level says nothing
    /// about this core's share, so the pause stays as configured.
    fn pause(&self, socket: &DatagramSocket) -> AdaptivePause {
        match self.small {
            SmallDrains::LastDrain => AdaptivePause::new(self.small_read_pause, socket.recv_buffer_bytes()),
            SmallDrains::WakeTotal => AdaptivePause::fixed(self.small_read_pause),
        }
    }

    /// Whether a wake-up that took `total` datagrams, `last` in its last drain, was small.
    fn is_small(&self, last: usize, total: usize) -> bool {
        match self.small {
            SmallDrains::LastDrain => last < self.full_drain,
            SmallDrains::WakeTotal => total < self.full_drain,
        }
    }
}

/// Receives datagrams on one core's socket until shutdown.
///
/// The loop waits for the socket to become readable with a 1-byte `MSG_PEEK` through glommio
/// (an idle core sleeps; a peek consumes nothing, so abandoning it when the linger timer or
/// shutdown wins loses no datagram), then drains the burst with `recvmmsg`. Values for this
/// core's shards are applied at once; values for other cores wait in the router until a
/// batch fills or `handoff_linger` has passed since the first of them, so that at moderate
/// load a peer core is woken about once per linger rather than once per datagram. A drain
/// that empties the socket with less than a full drain is followed by the policy's pause,
/// so that at moderate load the core wakes up once per pause rather than once per few
/// datagrams (they wait in the socket's buffer meanwhile).
pub(crate) async fn serve_datagrams(ctx: Rc<IngestContext>, mut socket: DatagramSocket, policy: DrainPolicy) {
    let protocol = socket.protocol();
    let mut router = Router::new(ctx.router.clone(), Source::Single);
    let mut decoder = decoder(&ctx.state.config);
    let mut probe = [0u8; 1];
    let mut burst = RecvBatch::new();
    let linger = ctx.state.config.handoff_linger;
    let mut pause = policy.pause(&socket);
    let mut pending_since: Option<Instant> = None;
    loop {
        let deadline = pending_since.map(|t| linger.saturating_sub(t.elapsed()));
        let readable = async {
            match socket.readable(&mut probe).await {
                Ok(()) => Wake::Readable,
                Err(e) => Wake::Failed(e),
            }
        };
        let lingered = async {
            match deadline {
                Some(d) => glommio::timer::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            Wake::Linger
        };
        let stopped = async {
            ctx.lifecycle.stopped().await;
            Wake::Stop
        };
        // The stop is polled first (once begun, it is ready at once): a socket that is always
        // readable (a flood, or a Unix socket whose reads were shut down at stop, where every
        // peek answers at once) would otherwise win every race and keep the core from stopping.
        match futures_lite::future::or(stopped, futures_lite::future::or(readable, lingered)).await {
            Wake::Stop => break,
            Wake::Failed(e) => {
                tracing::warn!(error = %e, protocol = socket.protocol().name(), "statsd receive failed");
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Wake::Linger => {
                router.dispatch().await;
                pending_since = None;
                continue;
            }
            Wake::Readable => {}
        }
        // Whether the socket was emptied by a drain that found less than a full burst.
        let (mut last, mut total, mut bytes) = (0, 0, 0);
        for _ in 0..MAX_DRAINS_PER_WAKE {
            let received = burst.drain(socket.fd());
            (last, total) = (received, total + received);
            if received == 0 {
                break;
            }
            for datagram in burst.datagrams() {
                bytes += datagram.len();
                decoder.lines(datagram, &mut router);
            }
            if router.is_full() {
                router.dispatch().await;
                pending_since = None;
            }
        }
        router.apply_local();
        ctx.record(protocol, decoder.tally());
        if router.has_remote() {
            let since = *pending_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= linger {
                router.dispatch().await;
                pending_since = None;
            }
        }
        // A moderate stream: let the socket's buffer gather the next datagrams rather than
        // wake up for every few of them (the core runs its other tasks meanwhile).
        if policy.is_small(last, total) {
            let pause = pause.after_small_wake(total, bytes);
            if !pause.is_zero() && ctx.lifecycle.sleep_unless_stopped(pause).await {
                break;
            }
        }
        // A socket that never runs dry (a Unix socket's blocking senders refill it as fast as
        // it drains) makes every await above complete at once: without this, the core's
        // other tasks (flush, stats, commands) would never run.
        glommio::yield_if_needed().await;
    }
    // What the socket had queued when the stop came: a Unix socket refuses senders by now
    // (see `SharedUnixSocket::stop_receiving`), so this leaves nothing a sender was told had
    // been taken; UDP senders are never told.
    for _ in 0..FINAL_DRAINS {
        if burst.drain(socket.fd()) == 0 {
            break;
        }
        for datagram in burst.datagrams() {
            decoder.lines(datagram, &mut router);
        }
        if router.is_full() {
            router.dispatch().await;
        }
    }
    router.dispatch().await;
    ctx.record(protocol, decoder.tally());
}

/// Serves one StatsD TCP connection until EOF, error or shutdown. The socket reads straight
/// into the connection's `ReadBuffer`; a read of less than half its size is followed by a
/// pause of `tcp_small_read_pause` before the next one. A connection that sends nothing for
/// `read_timeout` while it is waited on, or whose partial line the core's buffered-bytes
/// budget cannot hold, is closed (counted).
pub(crate) async fn serve_tcp(ctx: Rc<IngestContext>, mut stream: TcpStream) {
    let mut router = Router::new(ctx.router.clone(), Source::Single);
    let mut decoder = decoder(&ctx.state.config);
    let pause = ctx.state.config.ingest.tcp_small_read_pause;
    // Only a zero timeout is refused, and the config turns zero into none.
    let _ = stream.set_read_timeout(ctx.state.config.ingest.statsd_tcp_limits.read_timeout);
    let mut buf = ReadBuffer::new(ctx.budgets.statsd_tcp.clone());
    // Inside a line longer than `max_line_size`: its bytes are dropped up to its newline.
    let mut skipping = false;
    let mut refused: Option<ConnectionRefusal> = None;
    loop {
        let Ok(room) = buf.spare(READ_CHUNK) else {
            refused = Some(ConnectionRefusal::BufferBudget);
            break;
        };
        let n = match stream.read(room).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                if e.kind() == ErrorKind::TimedOut {
                    refused = Some(ConnectionRefusal::ReadTimeout);
                }
                break;
            }
        };
        buf.filled(n);
        if skipping {
            let Some(newline) = buf.unread().iter().position(|b| *b == b'\n') else {
                buf.consume(buf.unread().len());
                continue;
            };
            buf.consume(newline + 1);
            skipping = false;
        }
        let (complete, rest) = statsd::split_complete_lines(buf.unread());
        let done = complete.len();
        if done > 0 {
            decoder.lines(complete, &mut router);
            buf.consume(done);
        } else if rest.len() > decoder.max_line() {
            // A line that can never complete within the limit: count it, drop it, resync at
            // its newline.
            decoder.reject("line_too_long");
            buf.consume(rest.len());
            skipping = true;
            continue;
        }
        router.dispatch().await;
        ctx.record(Protocol::StatsdTcp, decoder.tally());
        // As on m3msg connections: after a small read, let the next lines gather first.
        if n < READ_CHUNK / 2 && !pause.is_zero() {
            glommio::timer::sleep(pause).await;
        }
    }
    if let Some(reason) = refused {
        ctx.refused(Protocol::StatsdTcp, reason);
        tracing::debug!(reason = reason.name(), "statsd tcp connection closed by its limits");
    }
    if refused == Some(ConnectionRefusal::BufferBudget) {
        // A line cut off by the budget: counted, not decoded.
        decoder.reject(ConnectionRefusal::BufferBudget.name());
    } else if !skipping && !buf.unread().is_empty() {
        // The last line may lack its newline.
        decoder.lines(buf.unread(), &mut router);
    }
    router.dispatch().await;
    ctx.record(Protocol::StatsdTcp, decoder.tally());
}
