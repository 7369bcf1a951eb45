//! Zero-copy decoding of the ingest hot path, used on the shard cores.
//!
//! [`decode_message`] reads an m3msg `msgpb.Message` and [`decode_metric`] reads the
//! `metricpb.MetricWithMetadatas` in its value. Both borrow ids and payloads from the
//! input buffer; the variable-length parts (timer values, pipelines, storage
//! policies) go into a caller-owned [`Scratch`] whose vectors are reused, so there
//! is no heap allocation in steady state.
//!
//! The protobuf wire format is parsed by hand (see `wire.rs`) with prost's semantics:
//! the last occurrence of a scalar field wins, repeated occurrences of an embedded
//! message are merged, repeated doubles may be packed or not, and unknown fields
//! of every wire type are skipped, except groups, which are rejected (M3 never
//! produces them). Tests check that whenever prost decodes an input, these
//! decoders agree with it. The decoders only look inside the fields they need, so
//! they may accept some malformed inputs that prost rejects (for example garbage
//! inside a routing policy, a pipeline op, or a payload field that the type does
//! not select). On error the contents of the [`Scratch`] are unspecified.
//!
//! # Files
//!
//! [`decode_message`] and [`decode_metric`] (here) try the fast path first and fall back on
//! the general decoder:
//!
//! - `fast.rs`: the fast path, for the layout every encoder writes.
//! - `message.rs`, `metric.rs`: the views ([`MessageView`], [`MetricView`]) and the general
//!   decoder of each message, for any layout.
//! - `metadata.rs`: the staged metadata in effect, flattened into the [`Scratch`].
//! - `wire.rs`: varints and the field iterator.
//! - `error.rs`: [`DecodeError`].
//!
//! Each file uses only files listed after it, and none uses `mod.rs`.

mod error;
mod fast;
mod message;
mod metadata;
mod metric;
mod wire;

pub use error::DecodeError;
pub use message::MessageView;
pub use metadata::{OP_ROLLUP, OP_TRANSFORMATION, OpView, PipelineView, Scratch, StoragePolicyView};
pub use metric::{MetricView, TimedType};

/// Decodes a `msgpb.Message` (a frame body).
#[inline]
pub fn decode_message(buf: &[u8]) -> Result<MessageView<'_>, DecodeError> {
    match fast::message(buf) {
        Some(view) => Ok(view),
        None => message::decode_message_in_general(buf),
    }
}

/// Decodes a `metricpb.MetricWithMetadatas`.
///
/// For staged metadatas, picks the `StagedMetadata` with the largest
/// `cutover_nanos <= now_nanos` (the last such on ties), or if none is <= now the
/// one with the smallest cutover (the first such on ties). If it is tombstoned
/// (`scratch.tombstoned` is then set) or there is none, `scratch.pipelines` is
/// left empty, meaning the default policies and aggregations. Each
/// `PipelineMetadata` becomes one [`PipelineView`].
///
/// For `TimedMetricWithMetadata`: one pipeline from the `TimedMetadata`
/// (aggregation id, storage policy). For `TimedMetricWithStoragePolicy`: one
/// pipeline with aggregation id 0 and that storage policy. In both, an absent
/// storage policy gives an empty policy range (the defaults).
///
/// For `ForwardedMetricWithMetadata`: [`MetricView::Forwarded`], its values in
/// `scratch.timer_values` and `scratch.prev_values`, and one pipeline from its
/// `ForwardMetadata` (aggregation id, storage policy, ops).
///
/// UNKNOWN and unknown types give
/// [`DecodeError::Unsupported`]; an absent payload gives
/// [`DecodeError::MissingField`]; a timed metric whose type is not COUNTER, TIMER
/// or GAUGE gives [`DecodeError::UnsupportedTimedType`].
#[inline]
pub fn decode_metric<'a>(buf: &'a [u8], now_nanos: i64, scratch: &mut Scratch) -> Result<MetricView<'a>, DecodeError> {
    match fast::metric(buf, now_nanos, scratch) {
        Some(view) => Ok(view),
        None => metric::decode_metric_in_general(buf, now_nanos, scratch),
    }
}
