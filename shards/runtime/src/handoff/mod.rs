//! The cross-core hand-off: how a value decoded on one shard core reaches the core that owns
//! its shard. #[PerformanceCriticalPath].
//!
//! The protocol, in steps:
//!
//! 1. The pool wires every ordered pair of cores (`links::wire`): a `Mailbox` of
//!    `SampleBatch`es (a crossbeam lock-free `ArrayQueue`) with its doorbell (a glommio
//!    shared channel of `()`, whose send wakes the peer's executor if it sleeps), a second
//!    `ArrayQueue` that brings emptied batches back to the core that filled them (so
//!    steady-state hand-off allocates nothing), and a `HandoffLedger` of batches sent per
//!    pair, written only by the sender.
//! 2. A core's router fills one batch per peer and sends it with `Handoff::send` once it is
//!    full or the read is done. The push rings the doorbell only when the peer armed its
//!    mailbox (it found it empty and waits) or the mailbox is half full (`mailbox.rs`). While
//!    the peer's mailbox is full, the sender first takes in what peers handed it (the peer
//!    may be waiting on exactly that); with nothing to take in it rings and waits for room,
//!    which stops that ingest task reading its socket: backpressure, never a drop. After
//!    each dispatch it takes in what was handed to it too (`Handoff::take_in_sent`): left to
//!    the take-in tasks alone, a loaded core would run them only when its ingest task waits,
//!    and two loaded cores would wait on each other's full mailboxes.
//! 3. Two take-in tasks per peer (`take_in_tasks.rs`) apply what the peer sends while the
//!    core's ingest tasks wait: on the ticks of `handoff_tick` while batches keep coming
//!    (the core wakes then anyway), and on a ring after the mailbox was armed or half full.
//!    So an idle core still applies what it is sent, a steadily fed one wakes once per tick
//!    for all of a peer's batches, and a fast stream wakes it before the mailbox fills.
//!    Taking in = apply to the aggregator, count it, return the batch.
//! 4. At shutdown, after every core stopped ingest, each core takes in, and waits until it
//!    has taken in as many batches from each peer as the ledger says were sent
//!    (`Handoff::wait_all_taken_in`), before its final flush, so nothing sent is left
//!    behind. The shuttle models in `ledger.rs` and `mailbox.rs` check that this wait is
//!    enough and that no ring is lost.
//!
//! `Handoff` lives on its shard core, shared through `Rc` by that core's ingest tasks,
//! take-in tasks and final flush. Only the mailboxes, doorbells, return queues and the ledger
//! cross threads.

mod connect;
mod endpoint;
mod ledger;
mod links;
mod mailbox;
mod peer_sender;
mod take_in_tasks;

pub(crate) use connect::connect;
pub(crate) use endpoint::Handoff;
pub(crate) use links::{CoreLinks, wire};
