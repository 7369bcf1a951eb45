//! Cross-core hand-off of `SampleBatch`es over glommio's lock-free SPSC shared channels,
//! one per ordered pair of cores.
//!
//! #[PerformanceCriticalPath]. A full channel makes `send` wait, which stops the sending
//! ingest task reading its socket (backpressure); the receiving core's drain task is a
//! separate task, so two cores sending to each other cannot deadlock. Nothing is dropped.
//! `HandoffLedger` counts batches sent per pair in atomics that only the sender writes,
//! so a receiver can tell at shutdown that it has taken in everything sent to it.

use std::sync::atomic::{AtomicU64, Ordering};

use glommio::channels::shared_channel::ConnectedSender;
use glommio::sync::Semaphore;
use sheaf_shard_core::SampleBatch;

/// Batches sent from core i to core j, at `i * cores + j`.
#[derive(Debug)]
pub(crate) struct HandoffLedger {
    cores: usize,
    sent: Vec<AtomicU64>,
}

impl HandoffLedger {
    pub(crate) fn new(cores: usize) -> Self {
        Self { cores, sent: (0..cores * cores).map(|_| AtomicU64::new(0)).collect() }
    }

    pub(crate) fn record_sent(&self, from: usize, to: usize) {
        self.sent[from * self.cores + to].fetch_add(1, Ordering::Release);
    }

    pub(crate) fn sent(&self, from: usize, to: usize) -> u64 {
        self.sent[from * self.cores + to].load(Ordering::Acquire)
    }
}

/// The sending end of one core's channel to one peer, shared by that core's ingest tasks.
pub(crate) struct PeerSender {
    channel: ConnectedSender<SampleBatch>,
    /// One sender at a time: glommio's `send` expects a single waiter per channel.
    turn: Semaphore,
}

impl PeerSender {
    pub(crate) fn new(channel: ConnectedSender<SampleBatch>) -> Self {
        Self { channel, turn: Semaphore::new(1) }
    }

    /// Waits for room, then sends; Err only if the peer is gone (shutdown).
    pub(crate) async fn send(&self, batch: SampleBatch) -> Result<(), SampleBatch> {
        let Ok(_permit) = self.turn.acquire_permit(1).await else { return Err(batch) };
        self.channel.send(batch).await.map_err(|e| match e {
            glommio::GlommioError::Closed(glommio::ResourceType::Channel(b))
            | glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(b)) => b,
            _ => SampleBatch::default(),
        })
    }
}
