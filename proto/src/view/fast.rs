//! The fast path of the zero-copy decoder, for the layout every protobuf encoder writes (M3
//! coordinators, prost, sheaf's own forwarding): each field at most once, in field-number
//! order, with one-byte keys and no unknown fields. It reads the expected keys one after
//! the other instead of iterating over generic fields, whose cost is mostly an indirect
//! branch on the wire type per field and a 32-byte `Result<Field>` returned through memory.
//!
//! Any input that does not have that exact shape, valid or not, gets `None`, and the caller
//! runs the general decoder from the start. So when the fast path answers, its answer is
//! the one the general decoder would give (a field seen once, in order, leaves nothing to
//! merge), and every error is reported by the general decoder alone.
//!
//! Runs on the shard cores for every ingested message; never allocates in steady state.

use super::error::DecodeError;
use super::message::MessageView;
use super::metadata::{Scratch, StagedSelector};
use super::metric::{
    BATCH_TIMER_WITH_METADATAS, COUNTER_WITH_METADATAS, GAUGE_WITH_METADATAS, MetricView, TIMED_METRIC_WITH_METADATAS,
    TimedType,
};
use super::wire::decode_varint;

/// One-byte field keys: `(field number << 3) | wire type`.
const fn key(number: u8, wire_type: u8) -> u8 {
    (number << 3) | wire_type
}
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// Reads the fields of one message body in the expected order.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Consumes `key` if it is the next byte.
    #[inline(always)]
    fn eat(&mut self, key: u8) -> bool {
        match self.buf.split_first() {
            Some((&k, rest)) if k == key => {
                self.buf = rest;
                true
            }
            _ => false,
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        let (v, n) = decode_varint(self.buf).ok()?;
        self.buf = &self.buf[n..];
        Some(v)
    }

    #[inline(always)]
    fn fixed64(&mut self) -> Option<u64> {
        let (v, rest) = self.buf.split_first_chunk::<8>()?;
        self.buf = rest;
        Some(u64::from_le_bytes(*v))
    }

    #[inline(always)]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let (body, rest) = self.buf.split_at_checked(len)?;
        self.buf = rest;
        Some(body)
    }

    /// The value of the varint field `number` if it comes next, else `default`.
    #[inline(always)]
    fn opt_varint(&mut self, number: u8, default: u64) -> Option<u64> {
        if self.eat(key(number, VARINT)) { self.varint() } else { Some(default) }
    }

    /// The body of the length-delimited field `number` if it comes next, else empty.
    #[inline(always)]
    fn opt_bytes(&mut self, number: u8) -> Option<&'a [u8]> {
        if self.eat(key(number, LEN)) { self.bytes() } else { Some(&[]) }
    }

    /// The value of the double field `number` if it comes next, else 0.
    #[inline(always)]
    fn opt_double(&mut self, number: u8) -> Option<f64> {
        if self.eat(key(number, FIXED64)) { self.fixed64().map(f64::from_bits) } else { Some(0.0) }
    }

    #[inline(always)]
    fn done(&self) -> bool {
        self.buf.is_empty()
    }
}

/// `msgpb.Message { Metadata metadata = 1 { shard = 1, id = 2, sent_at_nanos = 3 }; bytes value = 2 }`.
#[inline]
pub(super) fn message(buf: &[u8]) -> Option<MessageView<'_>> {
    let mut c = Cursor::new(buf);
    let mut view = MessageView::default();
    if c.eat(key(1, LEN)) {
        let mut m = Cursor::new(c.bytes()?);
        view.shard = m.opt_varint(1, 0)?;
        view.id = m.opt_varint(2, 0)?;
        view.sent_at_nanos = m.opt_varint(3, 0)?;
        if !m.done() {
            return None;
        }
        view.ack_entry = &buf[..buf.len() - c.buf.len()];
    }
    view.value = c.opt_bytes(2)?;
    c.done().then_some(view)
}

/// `metricpb.MetricWithMetadatas` of the untimed types and of `TimedMetricWithMetadatas`:
/// the type, then its one payload `{ metric = 1, StagedMetadatas metadatas = 2 }`.
#[inline]
pub(super) fn metric<'a>(buf: &'a [u8], now_nanos: i64, scratch: &mut Scratch) -> Option<MetricView<'a>> {
    let mut c = Cursor::new(buf);
    if !c.eat(key(1, VARINT)) {
        return None;
    }
    let ty = i32::try_from(c.varint()?).ok()?;
    if !matches!(
        ty,
        COUNTER_WITH_METADATAS | BATCH_TIMER_WITH_METADATAS | GAUGE_WITH_METADATAS | TIMED_METRIC_WITH_METADATAS
    ) {
        return None;
    }
    // The payload of type k is field k + 1, and k <= 6 here.
    if !c.eat(key(ty as u8 + 1, LEN)) {
        return None;
    }
    let mut payload = Cursor::new(c.bytes()?);
    if !c.done() {
        return None;
    }
    // An absent metric reads as the default one, as in the general decoder.
    let body = payload.opt_bytes(1)?;
    let metadatas = payload.opt_bytes(2)?;
    if !payload.done() {
        return None;
    }
    scratch.timer_values.clear();
    scratch.prev_values.clear();
    let mut m = Cursor::new(body);
    let view = match ty {
        COUNTER_WITH_METADATAS => {
            // Counter { id = 1, int64 value = 2, annotation = 3, client_time_nanos = 4 }
            let id = m.opt_bytes(1)?;
            let value = m.opt_varint(2, 0)? as i64;
            m.opt_bytes(3)?;
            let client_time_nanos = m.opt_varint(4, 0)? as i64;
            MetricView::Counter { id, value, client_time_nanos }
        }
        BATCH_TIMER_WITH_METADATAS => {
            // BatchTimer { id = 1, packed repeated double values = 2, annotation = 3, client_time_nanos = 4 }
            let id = m.opt_bytes(1)?;
            let (values, rest) = m.opt_bytes(2)?.as_chunks::<8>();
            if !rest.is_empty() {
                return None;
            }
            scratch.timer_values.extend(values.iter().map(|v| f64::from_le_bytes(*v)));
            m.opt_bytes(3)?;
            let client_time_nanos = m.opt_varint(4, 0)? as i64;
            MetricView::BatchTimer { id, client_time_nanos }
        }
        GAUGE_WITH_METADATAS => {
            // Gauge { id = 1, double value = 2, annotation = 3, client_time_nanos = 4 }
            let id = m.opt_bytes(1)?;
            let value = m.opt_double(2)?;
            let annotation = m.opt_bytes(3)?;
            let client_time_nanos = m.opt_varint(4, 0)? as i64;
            MetricView::Gauge { id, value, client_time_nanos, annotation }
        }
        _ => {
            // TimedMetric { type = 1, id = 2, time_nanos = 3, double value = 4, annotation = 5 }
            let kind = TimedType::from_proto(i32::try_from(m.opt_varint(1, 0)?).ok()?).ok()?;
            let id = m.opt_bytes(2)?;
            let time_nanos = m.opt_varint(3, 0)? as i64;
            let value = m.opt_double(4)?;
            m.opt_bytes(5)?;
            MetricView::Timed { kind, id, time_nanos, value }
        }
    };
    if !m.done() {
        return None;
    }
    staged_metadatas(metadatas, now_nanos, scratch).ok()?;
    Some(view)
}

/// Puts the metadata in effect into `scratch`, unless it is already there: a producer sends
/// the same metadata bytes with every metric of a rule, so the last ones are remembered
/// while they hold at most one `StagedMetadata` (the choice then does not depend on time).
fn staged_metadatas(body: &[u8], now_nanos: i64, scratch: &mut Scratch) -> Result<(), DecodeError> {
    if scratch.cache.holds(body) {
        return Ok(());
    }
    scratch.clear_metadata();
    let mut selector = StagedSelector::default();
    selector.merge(body, now_nanos)?;
    let candidates = selector.candidates();
    selector.apply(scratch)?;
    if candidates <= 1 {
        scratch.cache.remember(body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::{metricpb, msgpb, policypb};

    fn default_metadatas() -> metricpb::StagedMetadatas {
        metricpb::StagedMetadatas {
            metadatas: vec![metricpb::StagedMetadata {
                cutover_nanos: 5,
                tombstoned: false,
                metadata: Some(metricpb::Metadata {
                    pipelines: vec![metricpb::PipelineMetadata {
                        storage_policies: vec![policypb::StoragePolicy {
                            resolution: Some(policypb::Resolution { window_size: 10, precision: 10 }),
                            retention: Some(policypb::Retention { period: 100 }),
                        }],
                        ..Default::default()
                    }],
                }),
            }],
        }
    }

    fn counter(id: &[u8], metadatas: Option<metricpb::StagedMetadatas>) -> Vec<u8> {
        metricpb::MetricWithMetadatas {
            r#type: COUNTER_WITH_METADATAS,
            counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
                counter: Some(metricpb::Counter { id: id.to_vec(), value: 7, ..Default::default() }),
                metadatas,
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn takes_the_canonical_layout_of_every_supported_type() {
        let mut scratch = Scratch::default();
        let buf = counter(b"c", Some(default_metadatas()));
        let view = metric(&buf, 10, &mut scratch).expect("fast path");
        assert_eq!(view, MetricView::Counter { id: b"c", value: 7, client_time_nanos: 0 });
        assert_eq!(scratch.pipelines.len(), 1);
        assert_eq!(scratch.policies[0].retention_nanos, 100);

        let timer = metricpb::MetricWithMetadatas {
            r#type: BATCH_TIMER_WITH_METADATAS,
            batch_timer_with_metadatas: Some(metricpb::BatchTimerWithMetadatas {
                batch_timer: Some(metricpb::BatchTimer {
                    id: b"t".to_vec(),
                    values: vec![1.5, 2.5],
                    client_time_nanos: 3,
                    ..Default::default()
                }),
                metadatas: None,
            }),
            ..Default::default()
        };
        let buf = timer.encode_to_vec();
        assert_eq!(metric(&buf, 10, &mut scratch), Some(MetricView::BatchTimer { id: b"t", client_time_nanos: 3 }));
        assert_eq!(scratch.timer_values, [1.5, 2.5]);
        assert!(scratch.pipelines.is_empty());

        let gauge = metricpb::MetricWithMetadatas {
            r#type: GAUGE_WITH_METADATAS,
            gauge_with_metadatas: Some(metricpb::GaugeWithMetadatas {
                gauge: Some(metricpb::Gauge {
                    id: b"g".to_vec(),
                    value: -2.0,
                    annotation: b"a".to_vec(),
                    client_time_nanos: 0,
                }),
                metadatas: Some(default_metadatas()),
            }),
            ..Default::default()
        };
        let buf = gauge.encode_to_vec();
        assert_eq!(
            metric(&buf, 10, &mut scratch),
            Some(MetricView::Gauge { id: b"g", value: -2.0, client_time_nanos: 0, annotation: b"a" })
        );

        let timed = metricpb::MetricWithMetadatas {
            r#type: TIMED_METRIC_WITH_METADATAS,
            timed_metric_with_metadatas: Some(metricpb::TimedMetricWithMetadatas {
                metric: Some(metricpb::TimedMetric {
                    r#type: 3,
                    id: b"x".to_vec(),
                    time_nanos: 9,
                    value: 4.0,
                    annotation: Vec::new(),
                }),
                metadatas: Some(default_metadatas()),
            }),
            ..Default::default()
        };
        let buf = timed.encode_to_vec();
        assert_eq!(
            metric(&buf, 10, &mut scratch),
            Some(MetricView::Timed { kind: TimedType::Gauge, id: b"x", time_nanos: 9, value: 4.0 })
        );

        let msg = msgpb::Message {
            metadata: Some(msgpb::Metadata { shard: 3, id: 4, sent_at_nanos: 5 }),
            value: b"abc".to_vec(),
        }
        .encode_to_vec();
        let view = message(&msg).unwrap();
        assert_eq!((view.shard, view.id, view.sent_at_nanos, view.value), (3, 4, 5, &b"abc"[..]));
        assert_eq!(view.ack_entry, &msg[..view.ack_entry.len()]);
        assert_eq!(view.ack_entry[0], 0x0a);
    }

    #[test]
    fn leaves_other_layouts_to_the_general_decoder() {
        let mut scratch = Scratch::default();
        let buf = counter(b"c", None);
        // An unknown field after the payload, and the payload twice.
        let mut extra = buf.clone();
        extra.extend_from_slice(&[key(15, VARINT), 1]);
        assert_eq!(metric(&extra, 0, &mut scratch), None);
        let mut twice = buf.clone();
        twice.extend_from_slice(&buf[2..]);
        assert_eq!(metric(&twice, 0, &mut scratch), None);
        // Truncated.
        assert_eq!(metric(&buf[..buf.len() - 1], 0, &mut scratch), None);
        // Two staged metadatas are decoded but not remembered.
        let mut two = default_metadatas();
        two.metadatas.push(two.metadatas[0].clone());
        let buf = counter(b"c", Some(two));
        assert!(metric(&buf, 10, &mut scratch).is_some());
        assert!(!scratch.cache.is_valid());
    }

    #[test]
    fn remembered_metadata_is_reused_until_it_changes() {
        let mut scratch = Scratch::default();
        let with = counter(b"a", Some(default_metadatas()));
        let without = counter(b"b", None);
        for _ in 0..2 {
            metric(&with, 10, &mut scratch).unwrap();
            assert_eq!(scratch.pipelines.len(), 1);
            metric(&without, 10, &mut scratch).unwrap();
            assert!(scratch.pipelines.is_empty());
        }
        let generation = scratch.metadata_generation();
        metric(&with, 10, &mut scratch).unwrap();
        assert_ne!(scratch.metadata_generation(), generation);
        let generation = scratch.metadata_generation();
        metric(&counter(b"other id", Some(default_metadatas())), 10, &mut scratch).unwrap();
        assert_eq!(scratch.metadata_generation(), generation, "same metadata bytes, nothing redone");
        // The general decoder starts by forgetting what the fast path remembered.
        scratch.clear();
        assert!(!scratch.cache.is_valid());
    }
}
