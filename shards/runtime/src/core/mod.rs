//! The floor of a shard core: the state every task of the core stands on, and nothing that
//! runs. The tasks (ingest, hand-off, flush, the command loop in `core_main`) sit on top and
//! each is handed the pieces it uses; nothing here depends on them.
//!
//! - `CoreState`: the core's aggregator and counters.
//! - `IngestLifecycle`: the stop signal, the count of ingest tasks alive, open connections.
//! - `RouteTable`: which core owns each shard and, in cluster mode, which node.
//! - `TaskQueues`: the core's glommio task queues and what each is for.
//! - `UdpDrops` (in `CoreState`): the kernel's drops at the core's StatsD UDP socket.
//!
//! Everything here lives on one shard core, in `Rc`s shared by that core's tasks and by no
//! other thread. Tasks interleave only at `.await`s and never hold a `RefCell` borrow across
//! one.

mod lifecycle;
mod queues;
mod routing;
mod state;
mod udp_drops;

pub(crate) use lifecycle::IngestLifecycle;
pub(crate) use queues::{StallWarning, TaskQueues, spawn_into};
pub(crate) use routing::RouteTable;
pub(crate) use state::{CoreState, UdpDropWatch};
