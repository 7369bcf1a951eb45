//! sans-IO data plane of sheaf: what one shard core does with values, without any I/O,
//! executor or lock. See ARCHITECTURE.md for where it sits.
//!
//! Everything here is owned by one core at a time. Types that cross cores (`SampleBatch`,
//! `FlushBatch`) are moved or shared read-only; `Published` is the one type other threads
//! read while its core writes, and it goes through crossbeam-epoch.
//!
//! # Layering
//!
//! A module uses only modules listed before it, so there is no import cycle:
//!
//! - the bottom floor, using nothing of this crate: `time`, `policy`, `paged`, `published`,
//!   `murmur3::hash` (the hash function), `transform` (M3's transformations);
//! - plain types on it: `aggregation` (metric and aggregation types, series hashes),
//!   `shard_window`, `log_buckets`, `series_index`, `pipeline` (ops after an aggregation,
//!   forwarded de-duplication), then `batch` and `quantile`;
//! - what reads and writes those types: `murmur3::shard` (`ShardOf`), `statsd` (lines into
//!   samples), `rules` (mapping and rollup rules), `flush`, `spec`, `window`, then
//!   `aggregator_options`, `flush_collector` and `window_list`, then `rate_limit` and
//!   `passthrough`, then `rollup` (rollup targets, the outbox, forwarded windows);
//! - one shard's state: `series`, then `shard_map`; a core's transformation states:
//!   `transform_states`;
//! - on top, `aggregator` (`CoreAggregator`, with `aggregator::resolutions`,
//!   `aggregator::prefetch` and `aggregator::new_series`).

pub mod aggregation;
pub mod aggregator;
mod aggregator_options;
pub mod batch;
pub mod checkpoint;
pub mod flush;
mod flush_collector;
mod log_buckets;
pub mod murmur3;
mod paged;
pub mod passthrough;
pub mod pipeline;
pub mod policy;
pub mod published;
pub mod quantile;
mod rate_limit;
mod rollup;
pub mod rules;
mod series;
mod series_index;
mod shard_map;
mod shard_window;
mod spec;
pub mod statsd;
pub mod time;
pub mod transform;
mod transform_states;
pub mod window;
mod window_list;

pub use aggregation::{AggType, AggTypes, MetricType, series_hash};
pub use aggregator::{
    AggregatorCounters, AggregatorOptions, CoreAggregator, ForwardedUntil, RateLimitSettings, ShardActivity, ShardSync,
    SyncRefused,
};
pub use batch::{
    BatchRollup, DEFAULT_SPEC, ElemSpec, ForwardedFrom, NO_ROLLUP, RollupRef, Sample, SampleBatch, SampleValue,
    SpecRef, UNTIMED,
};
pub use flush::{FlushBatch, FlushedValue, Naming};
pub use flush_collector::FlushCollector;
pub use passthrough::Passthrough;
pub use pipeline::{ForwardedSources, Pipeline, PipelineError, PipelineOp, RollupOp};
pub use policy::{PolicyError, StoragePolicy};
pub use published::Published;
pub use quantile::QuantileSketch;
pub use series::MAX_ID_LEN;
pub use shard_window::ShardWindow;
pub use transform::{Datapoint, TransformChain, TransformType};
