//! The cross-core hand-off: how a value decoded on one shard core reaches the core that owns
//! its shard. #[PerformanceCriticalPath].
//!
//! The protocol, in steps:
//!
//! 1. The pool wires every ordered pair of cores (`links::wire`): a glommio lock-free SPSC
//!    shared channel of `SampleBatch`es, a crossbeam `ArrayQueue` that brings emptied batches
//!    back to the core that filled them (so steady-state hand-off allocates nothing), and a
//!    `HandoffLedger` of batches sent per pair, written only by the sender.
//! 2. A core's router fills one batch per peer and sends it with `Handoff::send` once it is
//!    full or the read is done. While the peer's channel is full, the sender first takes in
//!    what peers handed it (the peer may be waiting on exactly that); with nothing to take in
//!    it waits for room, which stops that ingest task reading its socket: backpressure, never
//!    a drop. After each dispatch it takes in what was handed to it too
//!    (`Handoff::take_in_sent`): left to the drain tasks alone, a loaded core would run them
//!    only when its ingest task waits, and two loaded cores would wait on each other's full
//!    channels.
//! 3. A drain task per peer takes in batches whenever the core is otherwise idle, so an idle
//!    core still applies what it is sent. Taking in = apply to the aggregator, count it,
//!    return the batch.
//! 4. At shutdown, after every core stopped ingest, each core waits until it has taken in as
//!    many batches from each peer as the ledger says were sent (`Handoff::wait_all_taken_in`)
//!    before its final flush, so nothing sent is left behind. The shuttle model in `ledger.rs`
//!    checks that this wait is enough.
//!
//! `Handoff` lives on its shard core, shared through `Rc` by that core's ingest tasks, drain
//! tasks and final flush. Only the channels, the return queues and the ledger cross threads.

mod endpoint;
mod ledger;
mod links;
mod peer_sender;

pub(crate) use endpoint::Handoff;
pub(crate) use links::{CoreLinks, wire};
