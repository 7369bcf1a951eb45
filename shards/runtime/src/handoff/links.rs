//! The wiring of the hand-off, made once by the pool before the cores start: per ordered pair
//! of cores a mailbox of batches, a doorbell (a glommio shared channel of `()`, connected by
//! each core on its own thread) and a return queue; and the ledger they all share.

use std::sync::Arc;

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use sheaf_shard_core::SampleBatch;

use super::ledger::HandoffLedger;
use super::mailbox::Mailbox;
use super::peer_sender::Returns;

/// Emptied hand-off batches a core pair keeps for reuse (fewer when its queue is shorter: no
/// more can be in flight). A burst can put up to `handoff_queue_batches` in flight (~80 KB
/// each); once it is over, returned batches past this many are freed, so that resident
/// memory falls back instead of holding the burst's peak. In steady flow the sender takes a
/// returned batch as fast as they come back, so the cap rarely frees one.
const RETAINED_RETURNS: usize = 8;

/// One ordered pair's wiring, as handed to a core at start.
pub(crate) struct PeerLink<Doorbell> {
    pub(crate) peer: usize,
    pub(crate) mailbox: Arc<Mailbox<SampleBatch>>,
    pub(crate) doorbell: Doorbell,
    pub(crate) returns: Returns,
}

/// One core's ends of the channels: to every peer, and from every peer.
pub(crate) struct CoreLinks {
    pub(crate) ledger: Arc<HandoffLedger>,
    pub(crate) outgoing: Vec<PeerLink<SharedSender<()>>>,
    pub(crate) incoming: Vec<PeerLink<SharedReceiver<()>>>,
}

/// Wires `cores` cores to each other with mailboxes of `queue_batches` batches; element i is
/// core i's ends.
pub(crate) fn wire(cores: usize, queue_batches: usize) -> Vec<CoreLinks> {
    let ledger = Arc::new(HandoffLedger::new(cores));
    let mut links: Vec<CoreLinks> =
        (0..cores).map(|_| CoreLinks { ledger: ledger.clone(), outgoing: Vec::new(), incoming: Vec::new() }).collect();
    for from in 0..cores {
        for to in (0..cores).filter(|to| *to != from) {
            // One ring waiting is enough: the receiver takes in everything when it wakes.
            let (ring, doorbell) = shared_channel::new_bounded(1);
            let mailbox = Arc::new(Mailbox::new(queue_batches));
            let retained = queue_batches.clamp(1, RETAINED_RETURNS);
            let returns = Arc::new(crossbeam_queue::ArrayQueue::new(retained));
            links[from].outgoing.push(PeerLink {
                peer: to,
                mailbox: mailbox.clone(),
                doorbell: ring,
                returns: returns.clone(),
            });
            links[to].incoming.push(PeerLink { peer: from, mailbox, doorbell, returns });
        }
    }
    links
}
