//! `CoreState`: one shard core's aggregator and counters.
//!
//! Lives on its shard core, shared through `Rc` by that core's tasks only, one `RefCell`
//! borrow at a time. Other threads see the counters only as the snapshots `publish_stats`
//! hands to `Published<CoreStats>` (crossbeam-epoch).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use sheaf_shard_core::{CoreAggregator, Passthrough, Published};

use crate::config::PoolConfig;
use crate::stats::CoreStats;

use super::udp_drops::UdpDrops;

pub(crate) struct CoreState {
    /// This core's position in the pool (0-based).
    pub(crate) index: usize,
    /// How many shard cores the pool has.
    pub(crate) cores: usize,
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) aggregator: RefCell<CoreAggregator>,
    pub(crate) stats: RefCell<CoreStats>,
    /// The kernel's drops at this core's StatsD UDP socket, read at each publish.
    udp_drops: UdpDrops,
    published: Arc<Published<CoreStats>>,
    /// The series held have reached 90 % of the core's limit and not fallen back below since
    /// the warning: one warning per crossing.
    near_series_limit: Cell<bool>,
}

impl CoreState {
    pub(crate) fn new(index: usize, cpu: usize, config: Arc<PoolConfig>, published: Arc<Published<CoreStats>>) -> Self {
        let cores = config.cpus.len();
        let mut aggregator = CoreAggregator::new(config.aggregator.clone(), config.num_shards);
        aggregator.passthrough = Passthrough::new(config.aggregator.naming.clone(), index, config.flush_batch_values);
        Self {
            index,
            cores,
            aggregator: RefCell::new(aggregator),
            stats: RefCell::new(CoreStats::new(index, cpu, cores)),
            udp_drops: UdpDrops::default(),
            published,
            config,
            near_series_limit: Cell::new(false),
        }
    }

    /// Publishes a snapshot of the counters, with the aggregator's own, for other threads.
    pub(crate) fn publish_stats(&self) {
        let mut snapshot = self.stats.borrow().clone();
        let agg = self.aggregator.borrow();
        snapshot.series = agg.series_count() as u64;
        snapshot.series_limit = agg.options().max_series_per_core as u64;
        snapshot.rate_limits = agg.options().rate_limits;
        snapshot.storage_policies = agg.policy_count() as u64;
        snapshot.windows_held = agg.windows_held();
        snapshot.aggregation = agg.counters.clone();
        snapshot.udp_dropped_datagrams = self.udp_drops.total();
        self.warn_near_series_limit(snapshot.series, snapshot.series_limit);
        self.published.publish(snapshot);
    }

    /// A number that moves whenever the core does work its stats would show (values in or
    /// handed over, rounds, checkpoint writes, connections, leadership): equal twice, the
    /// core was idle in between.
    pub(crate) fn activity(&self) -> u64 {
        let s = self.stats.borrow();
        let handed_in: u64 = s.handoff_batches_received.iter().sum();
        let ingested: u64 = s.ingested.iter().sum();
        [
            ingested,
            handed_in,
            s.handed_off_values,
            s.flush_rounds,
            s.follower_rounds,
            s.checkpoint.writes,
            s.open_connections,
            u64::from(s.leader),
            self.udp_drops.total(),
        ]
        .iter()
        .fold(0u64, |h, &v| h.rotate_left(7) ^ v)
    }

    /// Warns once when the series held reach 90 % of the core's limit, again only after they
    /// have fallen below it.
    fn warn_near_series_limit(&self, series: u64, limit: u64) {
        let near = limit > 0 && series.saturating_mul(10) >= limit.saturating_mul(9);
        if near && !self.near_series_limit.replace(true) {
            tracing::warn!(
                core = self.index,
                series,
                limit,
                "series at 90% of this core's share of aggregator.max_series; values of new series \
                 past it are refused (counted as series_limit)"
            );
        } else if !near {
            self.near_series_limit.set(false);
        }
    }

    /// Counts the kernel's drops at `fd`, this core's freshly bound StatsD UDP socket, for as
    /// long as the watch lives. The watch must be dropped before the socket is closed.
    pub(crate) fn watch_udp_drops(self: &Rc<Self>, fd: RawFd) -> UdpDropWatch {
        self.udp_drops.watch(fd);
        UdpDropWatch { state: self.clone() }
    }
}

/// Keeps a UDP socket's drops counted (see `CoreState::watch_udp_drops`); reads them a last
/// time when dropped.
pub(crate) struct UdpDropWatch {
    state: Rc<CoreState>,
}

impl Drop for UdpDropWatch {
    fn drop(&mut self) {
        self.state.udp_drops.unwatch();
    }
}
