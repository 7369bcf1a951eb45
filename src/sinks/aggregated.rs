//! A flushed value in the form the output encoders take (any sink thread).

use sheaf_proto::metricpb;
use sheaf_proto::output::AggregatedValue;
use sheaf_shard_core::{AggType, FlushedValue, MetricType};

/// A flushed value in the shape the output encoders take; `id` is its full output id.
pub(super) fn aggregated<'a>(v: &FlushedValue<'_>, id: &'a [u8]) -> AggregatedValue<'a> {
    let metric_type = match (v.metric_type, v.agg) {
        (MetricType::Counter, AggType::Sum) => metricpb::MetricType::Counter,
        _ => metricpb::MetricType::Gauge,
    };
    AggregatedValue {
        id,
        metric_type,
        time_nanos: v.time_nanos,
        value: v.value,
        resolution_nanos: v.policy.resolution_nanos,
        retention_nanos: v.policy.retention_nanos,
    }
}
