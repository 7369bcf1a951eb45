//! Zero-copy view of a `metricpb.MetricWithMetadatas` (the value of an m3msg
//! message): the metric itself borrowed from the input, its metadata in effect
//! flattened into the [`Scratch`]. Used on the shard cores.

use super::error::DecodeError;
use super::metadata::{
    Scratch, StagedSelector, StoragePolicyView, TimedMetadataFields, merge_aggregation_id, merge_applied_pipeline,
    merge_storage_policy,
};
use super::wire::Fields;

// `MetricWithMetadatas.Type` values; the payload for type k is field k + 1.
pub(super) const COUNTER_WITH_METADATAS: i32 = 1;
pub(super) const BATCH_TIMER_WITH_METADATAS: i32 = 2;
pub(super) const GAUGE_WITH_METADATAS: i32 = 3;
const FORWARDED_METRIC_WITH_METADATA: i32 = 4;
const TIMED_METRIC_WITH_METADATA: i32 = 5;
pub(super) const TIMED_METRIC_WITH_METADATAS: i32 = 6;
const TIMED_METRIC_WITH_STORAGE_POLICY: i32 = 7;

/// Type of a timed metric (`metricpb.MetricType` without UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimedType {
    /// COUNTER (1).
    Counter,
    /// TIMER (2).
    Timer,
    /// GAUGE (3).
    Gauge,
}

impl TimedType {
    /// Maps a `metricpb.MetricType` value.
    pub fn from_proto(value: i32) -> Result<Self, DecodeError> {
        match value {
            1 => Ok(TimedType::Counter),
            2 => Ok(TimedType::Timer),
            3 => Ok(TimedType::Gauge),
            other => Err(DecodeError::UnsupportedTimedType(other)),
        }
    }
}

/// A decoded `metricpb.MetricWithMetadatas`; the metadata in effect is in the
/// [`Scratch`] passed to `decode_metric`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricView<'a> {
    /// Untimed counter; the metadata chosen is in `scratch.pipelines` / `scratch.policies`.
    Counter {
        /// Metric id.
        id: &'a [u8],
        /// Increment.
        value: i64,
        /// Client timestamp, 0 when not set.
        client_time_nanos: i64,
    },
    /// Untimed batch timer; values are in `scratch.timer_values`.
    BatchTimer {
        /// Metric id.
        id: &'a [u8],
        /// Client timestamp, 0 when not set.
        client_time_nanos: i64,
    },
    /// Untimed gauge.
    Gauge {
        /// Metric id.
        id: &'a [u8],
        /// Value.
        value: f64,
        /// Client timestamp, 0 when not set.
        client_time_nanos: i64,
        /// Opaque annotation bytes (empty when not set).
        annotation: &'a [u8],
    },
    /// TIMED_METRIC_WITH_METADATA (5), TIMED_METRIC_WITH_METADATAS (6): pipelines/policies
    /// in scratch.
    Timed {
        /// Counter, timer or gauge.
        kind: TimedType,
        /// Metric id.
        id: &'a [u8],
        /// Timestamp of the value.
        time_nanos: i64,
        /// Value.
        value: f64,
    },
    /// TIMED_METRIC_WITH_STORAGE_POLICY (7): a passthrough point, written out as it is (no
    /// aggregation); its storage policy is the scratch's one pipeline.
    Passthrough {
        /// Counter, timer or gauge.
        kind: TimedType,
        /// Metric id.
        id: &'a [u8],
        /// Timestamp of the point.
        time_nanos: i64,
        /// Value.
        value: f64,
    },
    /// FORWARDED_METRIC_WITH_METADATA (4): a rollup's value from another aggregator. Its
    /// values are in `scratch.timer_values`, its previous values in `scratch.prev_values`,
    /// and its `ForwardMetadata` is the one pipeline in `scratch.pipelines` (aggregation id,
    /// at most one storage policy, the ops still to run).
    Forwarded {
        /// Counter, timer or gauge.
        kind: TimedType,
        /// Metric id (the rollup id).
        id: &'a [u8],
        /// Timestamp of the source window.
        time_nanos: i64,
        /// `ForwardedMetric.version`: raised by the source for each resend of the window.
        version: u32,
        /// `ForwardMetadata.source_id`: the source shard.
        source_id: u32,
        /// `ForwardMetadata.num_forwarded_times`.
        num_forwarded_times: i32,
        /// `ForwardMetadata.resend_enabled`.
        resend_enabled: bool,
    },
}

/// `decode_metric` for any layout, not only the one the fast path reads.
#[inline(never)]
pub(super) fn decode_metric_in_general<'a>(
    buf: &'a [u8],
    now_nanos: i64,
    scratch: &mut Scratch,
) -> Result<MetricView<'a>, DecodeError> {
    scratch.clear();
    let ty = metric_type(buf)?;
    let payload = match ty {
        COUNTER_WITH_METADATAS => "counter_with_metadatas",
        BATCH_TIMER_WITH_METADATAS => "batch_timer_with_metadatas",
        GAUGE_WITH_METADATAS => "gauge_with_metadatas",
        FORWARDED_METRIC_WITH_METADATA => "forwarded_metric_with_metadata",
        TIMED_METRIC_WITH_METADATA => "timed_metric_with_metadata",
        TIMED_METRIC_WITH_METADATAS => "timed_metric_with_metadatas",
        TIMED_METRIC_WITH_STORAGE_POLICY => "timed_metric_with_storage_policy",
        other => return Err(DecodeError::Unsupported(other)),
    };
    // `ty` is in 1..=7 here.
    let payload_field = ty as u32 + 1;
    let mut wrapper = Wrapper::default();
    let mut present = false;
    for field in Fields::new(buf) {
        let field = field?;
        if field.number == payload_field {
            present = true;
            wrapper.merge(ty, field.bytes()?, now_nanos, scratch)?;
        }
    }
    if !present {
        return Err(DecodeError::MissingField(payload));
    }
    wrapper.finish(ty, scratch)
}

/// First pass over the top level: the type (last occurrence wins) and the framing
/// of every payload field.
fn metric_type(buf: &[u8]) -> Result<i32, DecodeError> {
    let mut ty = 0;
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => ty = field.varint()? as i32,
            2..=8 => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    Ok(ty)
}

/// Scalar fields of whichever metric the wrapper carries.
#[derive(Debug, Clone, Copy, Default)]
struct MetricFields<'a> {
    id: &'a [u8],
    int_value: i64,
    float_value: f64,
    client_time_nanos: i64,
    annotation: &'a [u8],
    timed_type: i32,
    time_nanos: i64,
    version: u32,
}

/// `metricpb.ForwardMetadata` fields but the pipeline (whose ops go straight to the scratch).
#[derive(Debug, Clone, Copy, Default)]
struct ForwardFields {
    aggregation_id: u64,
    policy: Option<StoragePolicyView>,
    source_id: u32,
    num_forwarded_times: i32,
    resend_enabled: bool,
}

/// State merged over every occurrence of the payload field.
#[derive(Debug, Clone, Copy, Default)]
struct Wrapper<'a> {
    metric: MetricFields<'a>,
    staged: StagedSelector<'a>,
    timed: TimedMetadataFields,
    forward: ForwardFields,
}

impl<'a> Wrapper<'a> {
    fn merge(&mut self, ty: i32, buf: &'a [u8], now_nanos: i64, scratch: &mut Scratch) -> Result<(), DecodeError> {
        for field in Fields::new(buf) {
            let field = field?;
            match (field.number, ty) {
                (1, COUNTER_WITH_METADATAS) => merge_counter(field.bytes()?, &mut self.metric)?,
                (1, BATCH_TIMER_WITH_METADATAS) => {
                    merge_batch_timer(field.bytes()?, &mut self.metric, &mut scratch.timer_values)?
                }
                (1, GAUGE_WITH_METADATAS) => merge_gauge(field.bytes()?, &mut self.metric)?,
                (1, FORWARDED_METRIC_WITH_METADATA) => {
                    merge_forwarded_metric(field.bytes()?, &mut self.metric, scratch)?
                }
                (2, FORWARDED_METRIC_WITH_METADATA) => self.forward.merge(field.bytes()?, scratch)?,
                (1, _) => merge_timed_metric(field.bytes()?, &mut self.metric)?,
                (2, TIMED_METRIC_WITH_METADATA) => self.timed.merge_timed_metadata(field.bytes()?)?,
                (2, TIMED_METRIC_WITH_STORAGE_POLICY) => self.timed.merge_storage_policy(field.bytes()?)?,
                (2, _) => self.staged.merge(field.bytes()?, now_nanos)?,
                // TimedMetricWithStoragePolicy.routing_policy: not interpreted.
                (3, TIMED_METRIC_WITH_STORAGE_POLICY) => {
                    field.bytes()?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self, ty: i32, scratch: &mut Scratch) -> Result<MetricView<'a>, DecodeError> {
        let m = self.metric;
        match ty {
            COUNTER_WITH_METADATAS => {
                self.staged.apply(scratch)?;
                Ok(MetricView::Counter { id: m.id, value: m.int_value, client_time_nanos: m.client_time_nanos })
            }
            BATCH_TIMER_WITH_METADATAS => {
                self.staged.apply(scratch)?;
                Ok(MetricView::BatchTimer { id: m.id, client_time_nanos: m.client_time_nanos })
            }
            GAUGE_WITH_METADATAS => {
                self.staged.apply(scratch)?;
                Ok(MetricView::Gauge {
                    id: m.id,
                    value: m.float_value,
                    client_time_nanos: m.client_time_nanos,
                    annotation: m.annotation,
                })
            }
            FORWARDED_METRIC_WITH_METADATA => {
                let kind = TimedType::from_proto(m.timed_type)?;
                let f = self.forward;
                scratch.push_forwarded(f.aggregation_id, f.policy);
                Ok(MetricView::Forwarded {
                    kind,
                    id: m.id,
                    time_nanos: m.time_nanos,
                    version: m.version,
                    source_id: f.source_id,
                    num_forwarded_times: f.num_forwarded_times,
                    resend_enabled: f.resend_enabled,
                })
            }
            _ => {
                let kind = TimedType::from_proto(m.timed_type)?;
                match ty {
                    TIMED_METRIC_WITH_METADATAS => self.staged.apply(scratch)?,
                    TIMED_METRIC_WITH_METADATA => scratch.push_single(self.timed.aggregation_id, self.timed.policy),
                    _ => {
                        scratch.push_single(0, self.timed.policy);
                        return Ok(MetricView::Passthrough {
                            kind,
                            id: m.id,
                            time_nanos: m.time_nanos,
                            value: m.float_value,
                        });
                    }
                }
                Ok(MetricView::Timed { kind, id: m.id, time_nanos: m.time_nanos, value: m.float_value })
            }
        }
    }
}

/// Merges a `metricpb.Counter` body: id=1, value=2, annotation=3, client_time_nanos=4.
fn merge_counter<'a>(buf: &'a [u8], m: &mut MetricFields<'a>) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => m.id = field.bytes()?,
            2 => m.int_value = field.varint()? as i64,
            3 => {
                field.bytes()?;
            }
            4 => m.client_time_nanos = field.varint()? as i64,
            _ => {}
        }
    }
    Ok(())
}

/// Merges a `metricpb.BatchTimer` body: id=1, values=2, annotation=3, client_time_nanos=4.
fn merge_batch_timer<'a>(buf: &'a [u8], m: &mut MetricFields<'a>, values: &mut Vec<f64>) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => m.id = field.bytes()?,
            2 => field.push_doubles(values)?,
            3 => {
                field.bytes()?;
            }
            4 => m.client_time_nanos = field.varint()? as i64,
            _ => {}
        }
    }
    Ok(())
}

/// Merges a `metricpb.Gauge` body: id=1, value=2, annotation=3, client_time_nanos=4.
fn merge_gauge<'a>(buf: &'a [u8], m: &mut MetricFields<'a>) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => m.id = field.bytes()?,
            2 => m.float_value = field.double()?,
            3 => m.annotation = field.bytes()?,
            4 => m.client_time_nanos = field.varint()? as i64,
            _ => {}
        }
    }
    Ok(())
}

/// Merges a `metricpb.TimedMetric` body: type=1, id=2, time_nanos=3, value=4, annotation=5.
fn merge_timed_metric<'a>(buf: &'a [u8], m: &mut MetricFields<'a>) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => m.timed_type = field.varint()? as i32,
            2 => m.id = field.bytes()?,
            3 => m.time_nanos = field.varint()? as i64,
            4 => m.float_value = field.double()?,
            5 => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl ForwardFields {
    /// Merges a `metricpb.ForwardMetadata` body: aggregation_id=1, storage_policy=2,
    /// pipeline=3, source_id=4, num_forwarded_times=5, resend_enabled=6, routing_policy=7.
    fn merge(&mut self, buf: &[u8], scratch: &mut Scratch) -> Result<(), DecodeError> {
        for field in Fields::new(buf) {
            let field = field?;
            match field.number {
                1 => merge_aggregation_id(field.bytes()?, &mut self.aggregation_id)?,
                2 => merge_storage_policy(field.bytes()?, self.policy.get_or_insert_default())?,
                3 => merge_applied_pipeline(field.bytes()?, scratch)?,
                4 => self.source_id = field.varint()? as u32,
                5 => self.num_forwarded_times = field.varint()? as i32,
                6 => self.resend_enabled = field.varint()? != 0,
                7 => {
                    field.bytes()?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Merges a `metricpb.ForwardedMetric` body: type=1, id=2, time_nanos=3, values=4,
/// annotation=5, prev_values=6, version=7.
fn merge_forwarded_metric<'a>(
    buf: &'a [u8],
    m: &mut MetricFields<'a>,
    scratch: &mut Scratch,
) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => m.timed_type = field.varint()? as i32,
            2 => m.id = field.bytes()?,
            3 => m.time_nanos = field.varint()? as i64,
            4 => field.push_doubles(&mut scratch.timer_values)?,
            5 => {
                field.bytes()?;
            }
            6 => field.push_doubles(&mut scratch.prev_values)?,
            7 => m.version = field.varint()? as u32,
            _ => {}
        }
    }
    Ok(())
}
