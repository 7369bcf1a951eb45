//! The wiring of the hand-off, made once by the pool before the cores start: one glommio
//! shared channel and one return queue per ordered pair of cores, and the ledger they all
//! share. Each core is handed its `CoreLinks` and connects them on its own thread.

use std::sync::Arc;

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use sheaf_shard_core::SampleBatch;

use super::ledger::HandoffLedger;
use super::peer_sender::Returns;

/// Emptied hand-off batches a core pair keeps for reuse (fewer when its queue is shorter: no
/// more can be in flight). A burst can put up to `handoff_queue_batches` in flight (~80 KB
/// each); once it is over, returned batches past this many are freed, so that resident
/// memory falls back instead of holding the burst's peak. In steady flow the sender takes a
/// returned batch as fast as they come back, so the cap rarely frees one.
const RETAINED_RETURNS: usize = 8;

/// One ordered pair's wiring, as handed to a core at start.
pub(crate) struct PeerLink<End> {
    pub(crate) peer: usize,
    pub(crate) channel: End,
    pub(crate) returns: Returns,
}

/// One core's ends of the channels: to every peer, and from every peer.
pub(crate) struct CoreLinks {
    pub(crate) ledger: Arc<HandoffLedger>,
    pub(crate) outgoing: Vec<PeerLink<SharedSender<SampleBatch>>>,
    pub(crate) incoming: Vec<PeerLink<SharedReceiver<SampleBatch>>>,
}

/// Wires `cores` cores to each other with channels of `queue_batches` batches; element i is
/// core i's ends.
pub(crate) fn wire(cores: usize, queue_batches: usize) -> Vec<CoreLinks> {
    let ledger = Arc::new(HandoffLedger::new(cores));
    let mut links: Vec<CoreLinks> =
        (0..cores).map(|_| CoreLinks { ledger: ledger.clone(), outgoing: Vec::new(), incoming: Vec::new() }).collect();
    for from in 0..cores {
        for to in (0..cores).filter(|to| *to != from) {
            let (tx, rx) = shared_channel::new_bounded(queue_batches.max(1));
            let retained = queue_batches.clamp(1, RETAINED_RETURNS);
            let returns = Arc::new(crossbeam_queue::ArrayQueue::new(retained));
            links[from].outgoing.push(PeerLink { peer: to, channel: tx, returns: returns.clone() });
            links[to].incoming.push(PeerLink { peer: from, channel: rx, returns });
        }
    }
    links
}
