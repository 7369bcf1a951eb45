//! The reference decoding: prost's decoded value plus the staged metadata selection
//! rule, written independently of the view; and the owned form of a view result so
//! that both can be compared.

use std::cell::RefCell;

use prost::Message;
use sheaf_proto::metricpb::{self, MetricWithMetadatas};
use sheaf_proto::view::{self, DecodeError, MetricView, Scratch, StoragePolicyView, TimedType};
use sheaf_proto::{pipelinepb, policypb};

/// Owned, bit-exact (doubles compared by bits, so NaN equals itself) decoded metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Metric {
    Counter {
        id: Vec<u8>,
        value: i64,
        client_time_nanos: i64,
    },
    BatchTimer {
        id: Vec<u8>,
        client_time_nanos: i64,
    },
    Gauge {
        id: Vec<u8>,
        value: u64,
        client_time_nanos: i64,
    },
    Timed {
        kind: TimedType,
        id: Vec<u8>,
        time_nanos: i64,
        value: u64,
    },
    Passthrough {
        kind: TimedType,
        id: Vec<u8>,
        time_nanos: i64,
        value: u64,
    },
    Forwarded {
        kind: TimedType,
        id: Vec<u8>,
        time_nanos: i64,
        version: u32,
        source_id: u32,
        num_forwarded_times: i32,
        resend_enabled: bool,
    },
}

/// One applied pipeline op: type, transformation type, rollup id, rollup aggregation id
/// (enum values compared as prost keeps them, in 32 bits).
pub(crate) type Op = (i32, i32, Vec<u8>, u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pipeline {
    pub(crate) aggregation_id: u64,
    pub(crate) policies: Vec<StoragePolicyView>,
    pub(crate) has_ops: bool,
    pub(crate) ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) metric: Metric,
    pub(crate) timer_values: Vec<u64>,
    pub(crate) prev_values: Vec<u64>,
    pub(crate) pipelines: Vec<Pipeline>,
    pub(crate) tombstoned: bool,
    pub(crate) cutover_nanos: i64,
}

fn policy_view(p: &policypb::StoragePolicy) -> StoragePolicyView {
    let res = p.resolution.unwrap_or_default();
    StoragePolicyView {
        resolution_nanos: res.window_size,
        precision_nanos: res.precision,
        retention_nanos: p.retention.unwrap_or_default().period,
    }
}

fn ops(p: &Option<pipelinepb::AppliedPipeline>) -> Vec<Op> {
    let ops = p.as_ref().map(|p| p.ops.as_slice()).unwrap_or_default();
    ops.iter()
        .map(|op| {
            let rollup = op.rollup.clone().unwrap_or_default();
            (op.r#type, op.transformation.map_or(0, |t| t.r#type), rollup.id, rollup.aggregation_id.map_or(0, |a| a.id))
        })
        .collect()
}

fn timed_kind(m: &Option<metricpb::TimedMetric>) -> Result<TimedType, DecodeError> {
    match m.as_ref().map_or(0, |m| m.r#type) {
        1 => Ok(TimedType::Counter),
        2 => Ok(TimedType::Timer),
        3 => Ok(TimedType::Gauge),
        other => Err(DecodeError::UnsupportedTimedType(other)),
    }
}

fn timed_metric(kind: TimedType, m: &Option<metricpb::TimedMetric>) -> Metric {
    let m = m.clone().unwrap_or_default();
    Metric::Timed { kind, id: m.id, time_nanos: m.time_nanos, value: m.value.to_bits() }
}

/// The rule: the largest cutover <= now (last on ties), else the smallest cutover
/// (first on ties); tombstoned or none: no pipelines.
fn select(staged: &Option<metricpb::StagedMetadatas>, now_nanos: i64) -> (Vec<Pipeline>, bool, i64) {
    let sms = staged.as_ref().map(|s| s.metadatas.as_slice()).unwrap_or_default();
    let chosen = sms
        .iter()
        .enumerate()
        .filter(|(_, s)| s.cutover_nanos <= now_nanos)
        .max_by_key(|&(i, s)| (s.cutover_nanos, i))
        .or_else(|| sms.iter().enumerate().min_by_key(|&(i, s)| (s.cutover_nanos, i)));
    let Some((_, sm)) = chosen else {
        return (Vec::new(), false, 0);
    };
    if sm.tombstoned {
        return (Vec::new(), true, sm.cutover_nanos);
    }
    let pipelines = sm
        .metadata
        .as_ref()
        .map(|m| m.pipelines.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| Pipeline {
            aggregation_id: p.aggregation_id.map_or(0, |a| a.id),
            policies: p.storage_policies.iter().map(policy_view).collect(),
            has_ops: p.pipeline.as_ref().is_some_and(|p| !p.ops.is_empty()),
            ops: ops(&p.pipeline),
        })
        .collect();
    (pipelines, false, sm.cutover_nanos)
}

/// What `view::decode_metric` must return for a message prost decoded as `m`.
pub(crate) fn reference(m: &MetricWithMetadatas, now_nanos: i64) -> Result<Decoded, DecodeError> {
    let missing = DecodeError::MissingField;
    let staged = |metric, timer_values, staged: &Option<metricpb::StagedMetadatas>| {
        let (pipelines, tombstoned, cutover_nanos) = select(staged, now_nanos);
        Decoded { metric, timer_values, prev_values: Vec::new(), pipelines, tombstoned, cutover_nanos }
    };
    let single = |metric, aggregation_id, policy: Option<&policypb::StoragePolicy>| Decoded {
        metric,
        timer_values: Vec::new(),
        prev_values: Vec::new(),
        pipelines: vec![Pipeline {
            aggregation_id,
            policies: policy.map(policy_view).into_iter().collect(),
            has_ops: false,
            ops: Vec::new(),
        }],
        tombstoned: false,
        cutover_nanos: 0,
    };
    match m.r#type {
        1 => {
            let w = m.counter_with_metadatas.as_ref().ok_or(missing("counter_with_metadatas"))?;
            let c = w.counter.clone().unwrap_or_default();
            let metric = Metric::Counter { id: c.id, value: c.value, client_time_nanos: c.client_time_nanos };
            Ok(staged(metric, Vec::new(), &w.metadatas))
        }
        2 => {
            let w = m.batch_timer_with_metadatas.as_ref().ok_or(missing("batch_timer_with_metadatas"))?;
            let t = w.batch_timer.clone().unwrap_or_default();
            let metric = Metric::BatchTimer { id: t.id, client_time_nanos: t.client_time_nanos };
            let values = t.values.iter().map(|v| v.to_bits()).collect();
            Ok(staged(metric, values, &w.metadatas))
        }
        3 => {
            let w = m.gauge_with_metadatas.as_ref().ok_or(missing("gauge_with_metadatas"))?;
            let g = w.gauge.clone().unwrap_or_default();
            let metric = Metric::Gauge { id: g.id, value: g.value.to_bits(), client_time_nanos: g.client_time_nanos };
            Ok(staged(metric, Vec::new(), &w.metadatas))
        }
        4 => {
            let w = m.forwarded_metric_with_metadata.as_ref().ok_or(missing("forwarded_metric_with_metadata"))?;
            let f = w.metric.clone().unwrap_or_default();
            let kind = TimedType::from_proto(f.r#type)?;
            let md = w.metadata.clone().unwrap_or_default();
            let ops = ops(&md.pipeline);
            Ok(Decoded {
                metric: Metric::Forwarded {
                    kind,
                    id: f.id,
                    time_nanos: f.time_nanos,
                    version: f.version,
                    source_id: md.source_id,
                    num_forwarded_times: md.num_forwarded_times,
                    resend_enabled: md.resend_enabled,
                },
                timer_values: f.values.iter().map(|v| v.to_bits()).collect(),
                prev_values: f.prev_values.iter().map(|v| v.to_bits()).collect(),
                pipelines: vec![Pipeline {
                    aggregation_id: md.aggregation_id.map_or(0, |a| a.id),
                    policies: md.storage_policy.as_ref().map(policy_view).into_iter().collect(),
                    has_ops: !ops.is_empty(),
                    ops,
                }],
                tombstoned: false,
                cutover_nanos: 0,
            })
        }
        5 => {
            let w = m.timed_metric_with_metadata.as_ref().ok_or(missing("timed_metric_with_metadata"))?;
            let kind = timed_kind(&w.metric)?;
            let md = w.metadata.unwrap_or_default();
            Ok(single(timed_metric(kind, &w.metric), md.aggregation_id.map_or(0, |a| a.id), md.storage_policy.as_ref()))
        }
        6 => {
            let w = m.timed_metric_with_metadatas.as_ref().ok_or(missing("timed_metric_with_metadatas"))?;
            let kind = timed_kind(&w.metric)?;
            Ok(staged(timed_metric(kind, &w.metric), Vec::new(), &w.metadatas))
        }
        7 => {
            let w = m.timed_metric_with_storage_policy.as_ref().ok_or(missing("timed_metric_with_storage_policy"))?;
            let kind = timed_kind(&w.timed_metric)?;
            let m = w.timed_metric.clone().unwrap_or_default();
            let metric = Metric::Passthrough { kind, id: m.id, time_nanos: m.time_nanos, value: m.value.to_bits() };
            Ok(single(metric, 0, w.storage_policy.as_ref()))
        }
        other => Err(DecodeError::Unsupported(other)),
    }
}

/// Copies a view result out of the borrowed input and the scratch.
pub(crate) fn owned(view: MetricView<'_>, scratch: &Scratch) -> Decoded {
    let metric = match view {
        MetricView::Counter { id, value, client_time_nanos } => {
            Metric::Counter { id: id.to_vec(), value, client_time_nanos }
        }
        MetricView::BatchTimer { id, client_time_nanos } => Metric::BatchTimer { id: id.to_vec(), client_time_nanos },
        MetricView::Gauge { id, value, client_time_nanos, .. } => {
            Metric::Gauge { id: id.to_vec(), value: value.to_bits(), client_time_nanos }
        }
        MetricView::Timed { kind, id, time_nanos, value } => {
            Metric::Timed { kind, id: id.to_vec(), time_nanos, value: value.to_bits() }
        }
        MetricView::Passthrough { kind, id, time_nanos, value } => {
            Metric::Passthrough { kind, id: id.to_vec(), time_nanos, value: value.to_bits() }
        }
        MetricView::Forwarded { kind, id, time_nanos, version, source_id, num_forwarded_times, resend_enabled } => {
            Metric::Forwarded {
                kind,
                id: id.to_vec(),
                time_nanos,
                version,
                source_id,
                num_forwarded_times,
                resend_enabled,
            }
        }
    };
    Decoded {
        metric,
        timer_values: scratch.timer_values.iter().map(|v| v.to_bits()).collect(),
        prev_values: scratch.prev_values.iter().map(|v| v.to_bits()).collect(),
        pipelines: scratch
            .pipelines
            .iter()
            .map(|p| Pipeline {
                aggregation_id: p.aggregation_id,
                policies: scratch.policies_of(p).to_vec(),
                has_ops: p.has_ops,
                ops: scratch
                    .ops_of(p)
                    .iter()
                    .map(|op| {
                        (
                            op.op_type as i32,
                            op.transformation_type as i32,
                            scratch.rollup_id_of(op).to_vec(),
                            op.rollup_aggregation_id,
                        )
                    })
                    .collect(),
            })
            .collect(),
        tombstoned: scratch.tombstoned,
        cutover_nanos: scratch.cutover_nanos,
    }
}

thread_local! {
    /// One scratch per test thread, reused across cases like on a shard core, so
    /// that stale contents from a previous decode would show up.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes with the view, reusing the thread's scratch.
pub(crate) fn observe(buf: &[u8], now_nanos: i64) -> Result<Decoded, DecodeError> {
    SCRATCH.with_borrow_mut(|scratch| view::decode_metric(buf, now_nanos, scratch).map(|v| owned(v, scratch)))
}

/// What prost says: `Some(reference)` if prost decodes `buf`, `None` if it fails.
pub(crate) fn expected(buf: &[u8], now_nanos: i64) -> Option<Result<Decoded, DecodeError>> {
    let m = MetricWithMetadatas::decode(buf).ok()?;
    Some(reference(&m, now_nanos))
}
