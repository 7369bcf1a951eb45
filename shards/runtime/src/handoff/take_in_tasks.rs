//! The two tasks that take in one peer's batches on the receiving core, besides the ingest
//! tasks' own `take_in_sent` after each dispatch:
//!
//! - `look_on_ticks`, while batches keep coming: looks at the mailbox at each tick of the
//!   `handoff_tick` grid (the grid m3msg's acks and pauses use, so the core is awake then
//!   anyway). A look that finds nothing arms the mailbox and stops looking until a ring.
//! - `answer_rings`: waits on the doorbell, which the peer rings on its first push after the
//!   mailbox was armed, or when the mailbox is half full; takes in what is there and sets
//!   the ticks going again.
//!
//! So a core that receives a steady stream wakes once per tick for all of a peer's batches,
//! an idle core wakes for nothing, and a fast stream wakes it before the mailbox can fill.
//! Both run on the receiving core, in its ingest queue, and end once the peer has closed the
//! mailbox and everything in it is taken in.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use glommio::channels::shared_channel::SharedReceiver;
use glommio::sync::Semaphore;

use super::endpoint::{Handoff, Incoming};
use crate::ingest::ticks;

/// Whether `look_on_ticks` is looking, and the permit that sets it looking again.
pub(crate) struct Looks {
    ticking: Cell<bool>,
    resume: Semaphore,
}

impl Default for Looks {
    fn default() -> Self {
        Self { ticking: Cell::new(false), resume: Semaphore::new(0) }
    }
}

impl Looks {
    fn resume(&self) {
        if !self.ticking.replace(true) {
            self.resume.signal(1);
        }
    }
}

/// Tells the peer when this core's take-in ends, however it ends (the executor may stop
/// with the task still waiting): the peer then applies its values itself.
struct LeaveOnDrop(Incoming);

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.0.mailbox.receiver_left();
    }
}

pub(crate) async fn answer_rings(
    handoff: Rc<Handoff>,
    incoming: Incoming,
    doorbell: SharedReceiver<()>,
    looks: Rc<Looks>,
) {
    let _leave = LeaveOnDrop(incoming.clone());
    let doorbell = doorbell.connect().await;
    let ticks = !handoff.tick().is_zero();
    // `None`: the peer's sender is gone (it closed the mailbox first, unless its executor died).
    while doorbell.recv().await.is_some() {
        handoff.take_in_all(&incoming).await;
        if ticks {
            // The stream has begun (or is fast): look on the ticks from now on.
            looks.resume();
        } else {
            // Without ticks, every push after an empty look rings.
            while !incoming.mailbox.arm() && !incoming.mailbox.is_finished() {
                handoff.take_in_all(&incoming).await;
            }
        }
    }
    handoff.take_in_all(&incoming).await;
    // Ends the ticks too.
    looks.resume.close();
}

pub(crate) async fn look_on_ticks(handoff: Rc<Handoff>, incoming: Incoming, looks: Rc<Looks>) {
    let tick = handoff.tick();
    if tick.is_zero() {
        incoming.mailbox.arm();
        return;
    }
    // Batches taken in from this peer by then (here, by the ring task or by an ingest task
    // after its dispatch): the stream goes on while the count moves from tick to tick.
    let mut seen = handoff.received_from(incoming.from);
    loop {
        if !looks.ticking.get() {
            if incoming.mailbox.arm() {
                if looks.resume.acquire(1).await.is_err() {
                    return;
                }
            } else {
                // Something came between the last look and the arming.
                looks.ticking.set(true);
            }
        }
        glommio::timer::sleep(ticks::until_next(Instant::now(), tick)).await;
        handoff.take_in_all(&incoming).await;
        if incoming.mailbox.is_finished() {
            return;
        }
        let now_seen = handoff.received_from(incoming.from);
        if now_seen == seen {
            // Nothing for a whole tick: the peer's next push rings.
            looks.ticking.set(false);
        }
        seen = now_seen;
    }
}
