//! Connecting one core's ends of the hand-off when the core starts: the take-in tasks of
//! each peer, then the senders. Runs on that core.

use std::rc::Rc;

use glommio::TaskQueueHandle;

use super::endpoint::{Handoff, Incoming};
use super::links::CoreLinks;
use super::peer_sender::PeerSender;
use super::take_in_tasks::{Looks, answer_rings, look_on_ticks};
use crate::core::{CoreState, spawn_into};

/// Connects this core's ends: the take-in tasks of each peer (spawned into `queue`), then the
/// senders (a doorbell's sender connects once its receiver has, so receivers go first).
pub(crate) async fn connect(state: Rc<CoreState>, links: CoreLinks, queue: TaskQueueHandle) -> Rc<Handoff> {
    let handoff = Rc::new(Handoff::new(state, links.ledger));
    for link in links.incoming {
        let incoming = Incoming { from: link.peer, mailbox: link.mailbox, returns: link.returns };
        handoff.add_incoming(incoming.clone());
        let looks = Rc::new(Looks::default());
        spawn_into(queue, answer_rings(handoff.clone(), incoming.clone(), link.doorbell, looks.clone()));
        spawn_into(queue, look_on_ticks(handoff.clone(), incoming, looks));
    }
    for link in links.outgoing {
        let doorbell = link.doorbell.connect().await;
        handoff.add_outgoing(link.peer, PeerSender::new(link.mailbox, doorbell, link.returns, handoff.batch_values()));
    }
    handoff
}
