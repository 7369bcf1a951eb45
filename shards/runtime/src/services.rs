//! `PoolServices`: the live objects a pool is wired to, as opposed to its plain settings
//! (`PoolConfig`): the sinks' queues, the queue of flush reports, the pool of flush batches,
//! and the allocator's release hook.
//!
//! Built by the binary before the pool starts and shared (`Arc`) by every core and by the
//! threads on the other end: the sink threads pop the sink queues and give flush batches
//! back, the control thread pops the flush reports. Every queue here is lock-free.

use std::sync::Arc;

use crate::flush_role::FlushReports;
use crate::output::{FlushBatchPool, SinkQueue};

/// What the cores flush into and report to.
#[derive(Debug, Clone)]
pub struct PoolServices {
    /// Every flushed batch goes to each of these (one per sink thread).
    pub sinks: Vec<Arc<SinkQueue>>,
    /// Where the cores report finished leader rounds (cluster mode persists flush times).
    pub flush_reports: Arc<FlushReports>,
    /// Where the sinks hand emptied flush batches back to the cores.
    pub flush_batches: Arc<FlushBatchPool>,
    /// Called on each core after every flush round: hands memory the allocator holds for
    /// this thread (freed here, or by the sink threads, since) back to the OS. A core that
    /// allocates nothing between rounds would otherwise keep it. The binary owns the
    /// allocator.
    pub release_memory: Option<fn()>,
}
