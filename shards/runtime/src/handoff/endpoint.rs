//! `Handoff`: one core's end of the hand-off, both directions (see the module doc of
//! `handoff` for the protocol).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;
use sheaf_shard_core::SampleBatch;
use sheaf_shard_core::time::now_nanos;

use super::ledger::HandoffLedger;
use super::mailbox::Mailbox;
use super::peer_sender::{PeerSender, Returns};
use crate::core::CoreState;

pub(crate) struct Handoff {
    state: Rc<CoreState>,
    ledger: Arc<HandoffLedger>,
    /// By peer core; `None` for this core, and for every peer once disconnected.
    outgoing: RefCell<Vec<Option<Rc<PeerSender>>>>,
    /// The mailboxes peers hand this core batches in.
    incoming: RefCell<Vec<Incoming>>,
    /// Signalled after a take-in while `wait_all_taken_in` waits.
    taken_in: Semaphore,
    awaiting: Cell<bool>,
}

/// One peer's mailbox into this core.
#[derive(Clone)]
pub(super) struct Incoming {
    pub(super) from: usize,
    pub(super) mailbox: Arc<Mailbox<SampleBatch>>,
    pub(super) returns: Returns,
}

impl Handoff {
    /// This core's end, with no peer connected yet (`connect` connects them).
    pub(super) fn new(state: Rc<CoreState>, ledger: Arc<HandoffLedger>) -> Self {
        let cores = state.cores;
        Self {
            state,
            ledger,
            outgoing: RefCell::new((0..cores).map(|_| None).collect()),
            incoming: RefCell::default(),
            taken_in: Semaphore::new(0),
            awaiting: Cell::new(false),
        }
    }

    pub(super) fn add_incoming(&self, incoming: Incoming) {
        self.incoming.borrow_mut().push(incoming);
    }

    pub(super) fn add_outgoing(&self, to: usize, sender: PeerSender) {
        if let Some(slot) = self.outgoing.borrow_mut().get_mut(to) {
            *slot = Some(Rc::new(sender));
        }
    }

    pub(super) fn batch_values(&self) -> usize {
        self.state.config.handoff_batch_values
    }

    /// Hands the batch in `slot` to core `to` (see the protocol, step 2) and leaves an empty
    /// one to fill in its place: one that core returned, or a new one. If that core is gone
    /// (its executor died) the batch is applied here rather than lost: the shard's state
    /// splits, the sums stay exact.
    pub(crate) async fn send(&self, to: usize, slot: &mut SampleBatch) {
        let peer = self.peer(to);
        let fresh = match &peer {
            Some(peer) => peer.fresh_batch(),
            None => SampleBatch::with_capacity(self.state.config.handoff_batch_values),
        };
        let batch = std::mem::replace(slot, fresh);
        let values = batch.len() as u64;
        let sent = match peer {
            Some(peer) => self.send_or_take_in(&peer, batch).await,
            None => Err(batch),
        };
        match sent {
            Ok(()) => {
                self.ledger.record_sent(self.state.index, to);
                let mut stats = self.state.stats.borrow_mut();
                stats.handed_off_values += values;
                stats.handoff_batches_sent[to] += 1;
            }
            Err(batch) => {
                tracing::error!(core = to, "hand-off peer unavailable, applying its batch locally");
                self.state.aggregator.borrow_mut().apply(&batch, now_nanos());
            }
        }
    }

    async fn send_or_take_in(&self, peer: &PeerSender, mut batch: SampleBatch) -> Result<(), SampleBatch> {
        loop {
            match peer.try_send(batch) {
                None => return Ok(()),
                Some(back) => batch = back,
            }
            if !self.take_in_sent().await {
                return peer.send(batch).await;
            }
        }
    }

    /// Applies every batch peers have handed this core so far; true if there was one.
    ///
    /// Only the batches the ledger counted as sent before the call, so that a peer that
    /// keeps sending cannot hold this core here.
    pub(crate) async fn take_in_sent(&self) -> bool {
        let mut took = false;
        let peers = self.incoming.borrow().len();
        for i in 0..peers {
            let Some(incoming) = self.incoming.borrow().get(i).cloned() else { break };
            took |= self.take_in_from(&incoming) > 0;
        }
        took
    }

    /// Applies the batches `incoming`'s peer was counted as having sent; how many.
    fn take_in_from(&self, incoming: &Incoming) -> usize {
        let sent = self.ledger.sent(incoming.from, self.state.index);
        let mut took = 0;
        while sent > self.received_from(incoming.from) {
            let Some(batch) = incoming.mailbox.pop() else { break };
            self.take_in(incoming, batch);
            took += 1;
        }
        took
    }

    /// Waits until every batch the ledger says peers sent this core has been taken in, or
    /// `timeout` has passed; true if everything was.
    pub(crate) async fn wait_all_taken_in(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.awaiting.set(true);
        let done = loop {
            // Rather than wait for the take-in tasks' next look.
            self.take_in_sent().await;
            if !self.pending() {
                break true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break false };
            let progress = async {
                let _ = self.taken_in.acquire(1).await;
            };
            futures_lite::future::or(progress, glommio::timer::sleep(left)).await;
        };
        self.awaiting.set(false);
        done
    }

    /// Drops the senders, which closes their mailboxes and so ends the peers' take-in tasks
    /// for this core once they have taken in the rest.
    pub(crate) fn disconnect(&self) {
        self.outgoing.borrow_mut().iter_mut().for_each(|p| *p = None);
    }

    fn peer(&self, core: usize) -> Option<Rc<PeerSender>> {
        self.outgoing.borrow().get(core).cloned().flatten()
    }

    /// The period of the grid the take-in tasks look on (see `take_in_tasks`).
    pub(super) fn tick(&self) -> Duration {
        self.state.config.handoff_tick
    }

    pub(super) fn received_from(&self, from: usize) -> u64 {
        self.state.stats.borrow().handoff_batches_received[from]
    }

    fn pending(&self) -> bool {
        (0..self.state.cores)
            .filter(|from| *from != self.state.index)
            .any(|from| self.received_from(from) < self.ledger.sent(from, self.state.index))
    }

    /// Applies what is in `incoming`'s mailbox, yielding to the core's other tasks between
    /// batches when they wait; how many batches.
    pub(super) async fn take_in_all(&self, incoming: &Incoming) -> usize {
        let mut took = 0;
        while let Some(batch) = incoming.mailbox.pop() {
            self.take_in(incoming, batch);
            took += 1;
            glommio::yield_if_needed().await;
        }
        took
    }

    /// Applies one handed-in batch and sends it back to be filled again.
    fn take_in(&self, incoming: &Incoming, mut batch: SampleBatch) {
        self.state.aggregator.borrow_mut().apply(&batch, now_nanos());
        self.state.stats.borrow_mut().handoff_batches_received[incoming.from] += 1;
        batch.clear();
        // Back to the core that filled it; dropped if that queue is full.
        let _ = incoming.returns.push(batch);
        if self.awaiting.get() {
            self.taken_in.signal(1);
        }
    }
}
