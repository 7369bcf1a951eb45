//! The flush of one shard core: each resolution flushes at `truncate(now, r) + offset(r)`,
//! shard by shard, yielding between shards so ingest on this core keeps running during a
//! long flush. A leader emits what is due to every sink's lock-free queue (a full sink is
//! waited on for a bounded time, by the flush task only, then counted as dropped); a
//! follower emits nothing and drops what the leader's flush times say was emitted.
//!
//! - `schedule`: the loop that runs rounds when they are due (the `flush` task queue).
//! - `rounds`: `Flusher`, the rounds themselves, the role switch and the final flush.
//! - `to_sinks`: `SinkWriter`, what carries a round's batches to the sink queues.
//!
//! Everything here lives on its shard core; `Flusher` is shared through `Rc` by that core's
//! flush task and command loop, one at a time (a round holds the flusher's round permit).
//!
//! #[PerformanceCriticalPath]: the per-series work is in `CoreAggregator::flush_shard`.

mod rounds;
mod schedule;
mod to_sinks;

pub(crate) use rounds::Flusher;
pub(crate) use schedule::{run, run_passthrough};
