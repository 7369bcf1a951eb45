//! `PeerSender`: the sending end of one core's mailbox to one peer, its doorbell, and the
//! queue its emptied batches come back on. Lives on the sending core, shared by that core's
//! ingest tasks through `Handoff`.

use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::ConnectedSender;
use sheaf_shard_core::SampleBatch;

use super::mailbox::Mailbox;

/// Emptied batches on their way back from the receiving core to the core that filled them,
/// so that steady-state hand-off allocates nothing. One per ordered pair of cores; the
/// receiver pushes, the sender pops (crossbeam's lock-free `ArrayQueue`). When it is full
/// (it holds `RETAINED_RETURNS`, see `links.rs`) the receiver simply drops the batch, which
/// frees what a burst of batches in flight left behind.
pub(crate) type Returns = Arc<crossbeam_queue::ArrayQueue<SampleBatch>>;

/// How often a sender facing a full mailbox looks for room again (it has rung the peer).
const ROOM_POLL: Duration = Duration::from_micros(200);

/// The sending end of one core's mailbox to one peer, shared by that core's ingest tasks.
pub(crate) struct PeerSender {
    mailbox: Arc<Mailbox<SampleBatch>>,
    doorbell: ConnectedSender<()>,
    returns: Returns,
    batch_values: usize,
}

impl PeerSender {
    pub(crate) fn new(
        mailbox: Arc<Mailbox<SampleBatch>>,
        doorbell: ConnectedSender<()>,
        returns: Returns,
        batch_values: usize,
    ) -> Self {
        Self { mailbox, doorbell, returns, batch_values }
    }

    /// An empty batch to fill for this peer: a returned one, or a new one.
    pub(crate) fn fresh_batch(&self) -> SampleBatch {
        self.returns.pop().unwrap_or_else(|| SampleBatch::with_capacity(self.batch_values))
    }

    /// Sends if the mailbox has room, ringing the peer when the mailbox says to; gives the
    /// batch back if it has none, or the peer is gone (then `send` says so).
    pub(crate) fn try_send(&self, batch: SampleBatch) -> Option<SampleBatch> {
        if self.mailbox.receiver_gone() {
            return Some(batch);
        }
        match self.mailbox.push(batch) {
            Ok(ring) => {
                if ring {
                    self.ring();
                }
                None
            }
            Err(batch) => Some(batch),
        }
    }

    /// Waits for room, then sends; Err only if the peer is gone (its executor stopped).
    pub(crate) async fn send(&self, mut batch: SampleBatch) -> Result<(), SampleBatch> {
        loop {
            // A full mailbox is more than half full: make sure the peer is on its way.
            if !self.ring() {
                return Err(batch);
            }
            glommio::timer::sleep(ROOM_POLL).await;
            match self.try_send(batch) {
                None => return Ok(()),
                Some(back) => batch = back,
            }
        }
    }

    /// Wakes the peer's ring task (and its core, if asleep); false if the peer is gone. A
    /// ring already waiting is enough.
    fn ring(&self) -> bool {
        !self.mailbox.receiver_gone() && !matches!(self.doorbell.try_send(()), Err(glommio::GlommioError::Closed(_)))
    }
}

impl Drop for PeerSender {
    /// The peer's take-in tasks end once they have taken in what is left.
    fn drop(&mut self) {
        self.mailbox.close();
        self.ring();
    }
}
