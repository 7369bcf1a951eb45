//! m3msg over TCP: 4-byte big-endian length frames of `msgpb.Message`, whose value is a
//! `metricpb.MetricWithMetadatas`; acknowledged in batches with `msgpb.Ack` on the same
//! connection once the values are handed to their owning cores.
//!
//! A malformed message is counted by reason and still acknowledged (as M3 does: resending
//! it would not help); the connection survives. A frame longer than `max_frame_size` closes
//! the connection, since the stream cannot be resynchronised after it; so do the limits of
//! `StreamLimits`: nothing read for `read_timeout`, or a frame the core's buffered-bytes
//! budget cannot hold (each counted as a refused connection, and a partial frame it held as a
//! rejected one).

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use sheaf_proto::frame::{FrameError, HEADER_LEN, next_frame};
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::time::now_nanos;

use super::IngestContext;
use super::read_buffer::{READ_CHUNK, ReadBuffer};
use super::router::Router;
use super::source::Source;
use super::ticks;
use crate::decode::M3msgDecoder;
use crate::stats::{ConnectionRefusal, Protocol};

/// Serves one m3msg connection until EOF, error or shutdown.
///
/// Acks are sent once their messages' values have been handed to the owning cores, in
/// frames that gather the acks of every read until `ack_delay` (at most `ack_interval`)
/// after the oldest one, rounded down to the core-wide grid of that period (`ticks`), or
/// `max_acks_per_frame` of them. Values for this core are applied after every read; those
/// for other cores are handed over when their batch fills or just before the acks that
/// cover them go out. While acks wait, the next read waits no longer than their deadline.
/// A read that returned less than it asked for (it emptied the socket) is followed by a
/// pause until the next instant on the grid of `small_read_pause`, where the core's other
/// connections that paused wake up too. A connection that sends nothing for `read_timeout`
/// while it is waited on is closed.
pub(crate) async fn serve(ctx: Rc<IngestContext>, mut stream: TcpStream) {
    let config = &ctx.state.config;
    let max_frame = config.ingest.max_frame_size;
    let read_timeout = config.ingest.m3msg_limits.read_timeout;
    let max_acks = config.ingest.max_acks_per_frame;
    let ack_wait = config.ingest.ack_delay.min(config.ingest.ack_interval);
    let small_read_pause = config.ingest.small_read_pause;
    let mut router = Router::new(ctx.router.clone(), Source::Replicated);
    let mut decoder = M3msgDecoder::new(config.num_shards, &config.aggregator);
    let mut buf = ReadBuffer::new(ctx.budgets.m3msg.clone());
    let mut acks = AckFrame::default();
    // When the acks waiting in `acks` must go out.
    let mut acks_due: Option<Instant> = None;
    // The connection is closed because of a frame over `max_frame_size` (already counted).
    let mut oversized = false;
    // The connection is closed by one of its limits (counted after the loop).
    let mut refused: Option<ConnectionRefusal> = None;
    // Since when the connection is waited on for bytes: the end of the last read's work.
    let mut waiting_since = Instant::now();
    'read: loop {
        let wait = acks_due.map(|due| due.saturating_duration_since(Instant::now()));
        if wait.is_some_and(|w| w.is_zero()) {
            // The values these acks cover go to their cores first.
            router.dispatch().await;
            if send_acks(&ctx, &mut stream, &mut acks).await.is_err() {
                break;
            }
            acks_due = None;
        }
        let idle_left = read_timeout.map(|t| t.saturating_sub(waiting_since.elapsed()));
        if idle_left.is_some_and(|left| left.is_zero()) {
            refused = Some(ConnectionRefusal::ReadTimeout);
            break;
        }
        // Only a zero timeout is refused, and neither is zero here.
        let _ = stream.set_read_timeout(earliest(acks_due.and(wait), idle_left));
        // A partial frame larger than the base buffer: room for all of it at once.
        let want = frame_rest(buf.unread(), max_frame).max(READ_CHUNK);
        let Ok(room) = buf.spare(want) else {
            refused = Some(ConnectionRefusal::BufferBudget);
            break;
        };
        let asked = room.len();
        let n = match stream.read(room).await {
            Ok(0) => break,
            Ok(n) => n,
            // The acks are due, or the read timeout passed: the loop's top sees which.
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
                    if acks.len() >= max_acks {
                        router.dispatch().await;
                        ctx.record(Protocol::M3msg, decoder.tally());
                        if send_acks(&ctx, &mut stream, &mut acks).await.is_err() {
                            break 'read;
                        }
                        acks_due = None;
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    decoder.reject("frame_too_large");
                    tracing::warn!(len, max, "m3msg frame larger than max_frame_size, closing connection");
                    oversized = true;
                    break 'read;
                }
            }
        }
        // Values for other cores (or peer nodes) wait in the router until a batch fills or
        // the acks that cover them are due: the peer core takes them in at a grid instant,
        // when it is awake for its own connections, rather than being woken after each read.
        router.apply_local();
        ctx.record(Protocol::M3msg, decoder.tally());
        if (!acks.is_empty() || router.has_remote()) && acks_due.is_none() {
            acks_due = Some(ticks::within(Instant::now(), ack_wait));
        }
        // Waking up for every few KiB costs more than the bytes (a wait in io_uring, a
        // recv, a dispatch each): after a read that emptied the socket, let the next bytes
        // gather first. A stream faster than the reads keeps filling them, and never pauses.
        if n < asked && !small_read_pause.is_zero() {
            glommio::timer::sleep(ticks::until_next(Instant::now(), small_read_pause)).await;
        }
        waiting_since = Instant::now();
    }
    if let Some(reason) = refused {
        ctx.refused(Protocol::M3msg, reason);
        tracing::debug!(reason = reason.name(), "m3msg connection closed by its limits");
    }
    // A frame the producer began but never finished: it is not acked, so a producer that
    // reconnects resends it; counted so that the loss is visible when it does not.
    if !oversized && !buf.unread().is_empty() {
        decoder.reject(refused.map_or("truncated_at_close", ConnectionRefusal::name));
    }
    router.dispatch().await;
    ctx.record(Protocol::M3msg, decoder.tally());
    let _ = send_acks(&ctx, &mut stream, &mut acks).await;
}

/// The earlier of two optional timeouts.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Bytes still to come of the frame `unread` starts with (0 while its header is incomplete,
/// or when it is over `max_frame`, which the frame loop refuses).
fn frame_rest(unread: &[u8], max_frame: usize) -> usize {
    let Some(header) = unread.first_chunk::<HEADER_LEN>() else { return 0 };
    let len = u32::from_be_bytes(*header) as usize;
    if len > max_frame { 0 } else { (HEADER_LEN + len).saturating_sub(unread.len()) }
}

async fn send_acks(ctx: &IngestContext, stream: &mut TcpStream, acks: &mut AckFrame) -> std::io::Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    ctx.state.stats.borrow_mut().acked_messages += acks.len() as u64;
    let sent = stream.write_all(acks.frame()).await;
    acks.clear();
    sent
}
