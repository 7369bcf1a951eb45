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
use sheaf_proto::frame::{FrameError, next_frame};
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::time::now_nanos;

use super::IngestContext;
use super::read_buffer::{READ_CHUNK, ReadBuffer};
use super::router::Router;
use super::source::Source;
use crate::decode::M3msgDecoder;
use crate::stats::Protocol;

/// Serves one m3msg connection until EOF, error or shutdown.
///
/// Acks are sent once their messages' values have been handed to the owning cores, in
/// frames that gather the acks of every read within `ack_delay` (at most `ack_interval`) of
/// the oldest one, or `max_acks_per_frame` of them. While acks wait, the next read waits no
/// longer than their deadline. A read that returned less than half the read size is
/// followed by a pause of `small_read_pause` before the next one.
pub(crate) async fn serve(ctx: Rc<IngestContext>, mut stream: TcpStream) {
    let config = &ctx.state.config;
    let max_frame = config.ingest.max_frame_size;
    let max_acks = config.ingest.max_acks_per_frame;
    let ack_wait = config.ingest.ack_delay.min(config.ingest.ack_interval);
    let small_read_pause = config.ingest.small_read_pause;
    let mut router = Router::new(ctx.router.clone(), Source::Replicated);
    let mut decoder = M3msgDecoder::new(config.num_shards, &config.aggregator);
    let mut buf = ReadBuffer::new();
    let mut acks = AckFrame::default();
    // When the acks waiting in `acks` must go out.
    let mut acks_due: Option<Instant> = None;
    // The connection is closed because of a frame over `max_frame_size` (already counted).
    let mut oversized = false;
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
        router.dispatch().await;
        ctx.record(Protocol::M3msg, decoder.tally());
        if !acks.is_empty() && acks_due.is_none() {
            acks_due = Some(Instant::now() + ack_wait);
        }
        // Waking up for every few KiB costs more than the bytes (a wait in io_uring, a
        // recv, a dispatch each): after a small read, let the next bytes gather first.
        if n < READ_CHUNK / 2 && !small_read_pause.is_zero() {
            glommio::timer::sleep(small_read_pause).await;
        }
    }
    // A frame the producer began but never finished: it is not acked, so a producer that
    // reconnects resends it; counted so that the loss is visible when it does not.
    if !oversized && !buf.unread().is_empty() {
        decoder.reject("truncated_at_close");
    }
    router.dispatch().await;
    ctx.record(Protocol::M3msg, decoder.tally());
    let _ = send_acks(&ctx, &mut stream, &mut acks).await;
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
