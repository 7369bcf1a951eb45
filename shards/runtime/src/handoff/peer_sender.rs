//! `PeerSender`: the sending end of one core's channel to one peer (glommio's lock-free SPSC
//! shared channel), and the queue its emptied batches come back on. Lives on the sending
//! core, shared by that core's ingest tasks through `Handoff`.

use std::sync::Arc;

use glommio::channels::shared_channel::ConnectedSender;
use glommio::sync::Semaphore;
use sheaf_shard_core::SampleBatch;

/// Emptied batches on their way back from the receiving core to the core that filled them,
/// so that steady-state hand-off allocates nothing. One per ordered pair of cores; the
/// receiver pushes, the sender pops (crossbeam's lock-free `ArrayQueue`). When it is full
/// (it holds `RETAINED_RETURNS`, see `links.rs`) the receiver simply drops the batch, which
/// frees what a burst of batches in flight left behind.
pub(crate) type Returns = Arc<crossbeam_queue::ArrayQueue<SampleBatch>>;

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
