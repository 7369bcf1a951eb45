//! Where a core's results leave it: the sink queues its flushes fill (read by the sink
//! threads) and the forwarders that send values to peer nodes (cluster mode).

pub(crate) mod forward;
mod sink_queue;

pub use sink_queue::{FlushBatchPool, SinkQueue};
