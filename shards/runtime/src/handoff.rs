//! Cross-core hand-off of `SampleBatch`es over glommio's lock-free SPSC shared channels,
//! one per ordered pair of cores.
//!
//! #[PerformanceCriticalPath]. Before waiting for room in a full channel, the sending core
//! takes in what its peers handed it (`core_loop::take_in_handed_batches`); with nothing to
//! take in, `send` waits, which stops the sending ingest task reading its socket
//! (backpressure). The receiving core's drain task is a separate task, so two cores sending
//! to each other cannot deadlock. Nothing is dropped.
//! `HandoffLedger` counts batches sent per pair in atomics that only the sender writes,
//! so a receiver can tell at shutdown that it has taken in everything sent to it.

use std::sync::Arc;

use crate::sync::{AtomicU64, Ordering};

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

/// Emptied batches on their way back from the receiving core to the core that filled them,
/// so that steady-state hand-off allocates nothing. One per ordered pair of cores; the
/// receiver pushes, the sender pops (crossbeam's lock-free `ArrayQueue`). When it is full
/// (it holds `RETAINED_RETURNS`, see `pool.rs`) the receiver simply drops the batch, which
/// frees what a burst of batches in flight left behind.
pub(crate) type Returns = Arc<crossbeam_queue::ArrayQueue<SampleBatch>>;

/// One ordered pair's wiring, as handed to a core at start.
pub(crate) struct PeerLink<End> {
    pub(crate) peer: usize,
    pub(crate) channel: End,
    pub(crate) returns: Returns,
}

/// The sending end of one core's channel to one peer, shared by that core's ingest tasks.
pub(crate) struct PeerSender {
    channel: ConnectedSender<SampleBatch>,
    /// One sender at a time: glommio's `send` expects a single waiter per channel.
    turn: Semaphore,
    returns: Returns,
    batch_values: usize,
}

impl PeerSender {
    pub(crate) fn new(channel: ConnectedSender<SampleBatch>, returns: Returns, batch_values: usize) -> Self {
        Self { channel, turn: Semaphore::new(1), returns, batch_values }
    }

    /// An empty batch to fill for this peer: a returned one, or a new one.
    pub(crate) fn fresh_batch(&self) -> SampleBatch {
        self.returns.pop().unwrap_or_else(|| SampleBatch::with_capacity(self.batch_values))
    }

    /// Sends if the channel has room; gives the batch back if it has none (or the peer is
    /// gone: `send` tells which).
    pub(crate) fn try_send(&self, batch: SampleBatch) -> Option<SampleBatch> {
        self.channel.try_send(batch).err().map(batch_back)
    }

    /// Waits for room, then sends; Err only if the peer is gone (shutdown).
    pub(crate) async fn send(&self, batch: SampleBatch) -> Result<(), SampleBatch> {
        let Ok(_permit) = self.turn.acquire_permit(1).await else { return Err(batch) };
        self.channel.send(batch).await.map_err(batch_back)
    }
}

/// The batch a refused send gives back (glommio returns it inside the error).
fn batch_back(e: glommio::GlommioError<SampleBatch>) -> SampleBatch {
    match e {
        glommio::GlommioError::Closed(glommio::ResourceType::Channel(b))
        | glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(b)) => b,
        _ => SampleBatch::default(),
    }
}

#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use super::HandoffLedger;
    use crate::sync::{AtomicU64, BoundedQueue, Ordering};
    use shuttle::sync::Arc;
    use shuttle::thread;

    /// The shutdown check of the hand-off: once the sender has stopped (joined, as after
    /// `StopIngest`), a receiver that has taken in as many batches as the ledger says were
    /// sent has applied every value. The receiver drains concurrently with the sender, and
    /// the sender records a batch only after the queue accepted it.
    fn drained_means_everything_applied() {
        let ledger = Arc::new(HandoffLedger::new(2));
        let channel = Arc::new(BoundedQueue::<u64>::new(2));
        let received = Arc::new(AtomicU64::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let sender = {
            let (ledger, channel) = (ledger.clone(), channel.clone());
            thread::spawn(move || {
                for batch in 1..=4u64 {
                    let mut b = batch;
                    while let Err(back) = channel.push(b) {
                        b = back;
                        thread::yield_now();
                    }
                    ledger.record_sent(0, 1);
                }
            })
        };
        let receiver = {
            let (channel, received, applied) = (channel.clone(), received.clone(), applied.clone());
            thread::spawn(move || {
                while received.load(Ordering::SeqCst) < 4 {
                    match channel.pop() {
                        Some(v) => {
                            applied.fetch_add(v, Ordering::SeqCst);
                            received.fetch_add(1, Ordering::SeqCst);
                        }
                        None => thread::yield_now(),
                    }
                }
            })
        };
        sender.join().unwrap();
        // The final flush: wait until received catches up with the ledger.
        while received.load(Ordering::SeqCst) < ledger.sent(0, 1) {
            thread::yield_now();
        }
        assert_eq!(applied.load(Ordering::SeqCst), 1 + 2 + 3 + 4);
        receiver.join().unwrap();
    }

    #[test]
    fn shuttle_handoff_drain_random() {
        shuttle::check_random(drained_means_everything_applied, 2000);
    }
}
