//! M3-compatible wire formats for sheaf.
//!
//! - [`frame`]: m3msg framing (a 4-byte big-endian length, then a protobuf message).
//! - [`forward`]: the m3msg frame of a metric one sheaf node forwards to another.
//! - [`output`]: the encoders of one aggregated value as an m3msg `AggregatedMetric` frame
//!   and as a JSON line, used by the sinks.
//! - [`view`]: the zero-copy, allocation-free decoder used on the shard cores for
//!   the ingest hot path (`msgpb.Message` and `metricpb.MetricWithMetadatas`).
//! - [`topicpb`]: M3's m3msg topic as stored in etcd (cluster mode's topic sink and API).
//! - [`msgpb`], [`metricpb`], [`policypb`], [`aggregationpb`], [`pipelinepb`],
//!   [`transformationpb`]: prost types generated from `protos/`, whose field numbers
//!   follow M3's own schema so that bytes produced by M3 decode unchanged. They are
//!   used by the sinks, by [`forward`] and by tests, not by the ingest decoder.
//!
//! Threads: `view`, `frame`, `forward` and `output::AckFrame` run on the shard cores, each
//! call on the core that owns the connection or buffer; the value encoders of `output` run
//! on the sink threads. Nothing here is shared between threads.
//!
//! Layering, so that there is no import cycle: the prost modules and `frame` use nothing of
//! this crate; `forward` uses the prost modules; `view` uses only its own files (its module
//! docs give their order); `output` sits on top (`AckFrame` acknowledges a decoded
//! `view::MessageView`).

pub mod forward;
pub mod frame;
pub mod output;
pub mod view;

/// m3msg envelope: `Message`, its `Metadata`, and `Ack` (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod msgpb {
    include!(concat!(env!("OUT_DIR"), "/msgpb.rs"));
}

/// Metrics, metadatas and the `MetricWithMetadatas` union (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod metricpb {
    include!(concat!(env!("OUT_DIR"), "/metricpb.rs"));
}

/// Storage, routing and drop policies (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod policypb {
    include!(concat!(env!("OUT_DIR"), "/policypb.rs"));
}

/// Aggregation types and the aggregation ID bitset (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod aggregationpb {
    include!(concat!(env!("OUT_DIR"), "/aggregationpb.rs"));
}

/// Applied pipelines (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod pipelinepb {
    include!(concat!(env!("OUT_DIR"), "/pipelinepb.rs"));
}

/// Transformation types referenced by applied pipelines (prost, generated).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod transformationpb {
    include!(concat!(env!("OUT_DIR"), "/transformationpb.rs"));
}

/// M3's cluster placement, as stored in etcd (prost, generated). For cluster mode.
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod placementpb {
    include!(concat!(env!("OUT_DIR"), "/placementpb.rs"));
}

/// M3's per-shard-set flush times, as stored in etcd (prost, generated). For cluster mode.
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod flushpb {
    include!(concat!(env!("OUT_DIR"), "/flushpb.rs"));
}

/// M3's m3msg topic (name, shards, consumer services), as stored in etcd (prost, generated).
/// For the topic sink and the topic API.
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod topicpb {
    include!(concat!(env!("OUT_DIR"), "/topicpb.rs"));
}
