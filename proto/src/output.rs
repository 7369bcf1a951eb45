//! Encoders of one aggregated value in sheaf's two output formats, used by the sink threads
//! (and the benches): an m3msg frame carrying a `metricpb.AggregatedMetric`, and a JSON line
//! (`json_lines`).
//! Both append to a caller's buffer, so a sink reuses one buffer for a whole batch.
//!
//! [`AckFrame`] is the m3msg `Ack` an ingest connection sends back; each connection owns
//! one, on the shard core that reads it.

use crate::metricpb;

mod json_lines;

pub use json_lines::{JsonTimeField, json_line_tail, write_json_line, write_json_line_head_of_parts};

/// One aggregated value, as both encoders take it.
#[derive(Debug, Clone, Copy)]
pub struct AggregatedValue<'a> {
    /// The output id (prefixes and suffix already applied).
    pub id: &'a [u8],
    pub metric_type: metricpb::MetricType,
    /// End of the window.
    pub time_nanos: i64,
    pub value: f64,
    pub resolution_nanos: i64,
    pub retention_nanos: i64,
}

/// Appends an m3msg frame: `Message{metadata{shard, id: seq, sent_at_nanos: now}, value =
/// AggregatedMetric{TimedMetricWithStoragePolicy, encode_nanos: now}}`.
///
/// Written field by field straight into `out` (no intermediate messages or buffers, so no
/// allocation per value); `aggregated_frames_decode_with_prost` checks it against prost.
pub fn encode_aggregated_frame(v: &AggregatedValue<'_>, shard: u64, seq: u64, now_nanos: i64, out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encoded_len_varint as vlen};
    let encode_key =
        |tag: u32, wire_type: WireType, out: &mut Vec<u8>| push_varint(u64::from(tag << 3 | wire_type as u32), out);
    let encode_varint = push_varint;
    // proto3 leaves out scalar fields that hold their default (0, 0.0, empty), as prost does;
    // present sub-messages are always written. int64 fields are varints of the u64 bits.
    let varint_len = |n: u64| if n == 0 { 0 } else { 1 + vlen(n) };
    let bytes_len = |n: usize| if n == 0 { 0 } else { 1 + vlen(n as u64) + n };
    let message_len = |n: usize| 1 + vlen(n as u64) + n;
    let double_len = |x: f64| if x == 0.0 { 0 } else { 9 };
    let timed_metric = varint_len(v.metric_type as i32 as u64)
        + bytes_len(v.id.len())
        + varint_len(v.time_nanos as u64)
        + double_len(v.value);
    let resolution = varint_len(v.resolution_nanos as u64) * 2;
    let retention = varint_len(v.retention_nanos as u64);
    let policy = message_len(resolution) + message_len(retention);
    let with_policy = message_len(timed_metric) + message_len(policy);
    let aggregated = message_len(with_policy) + varint_len(now_nanos as u64);
    let metadata = varint_len(shard) + varint_len(seq) + varint_len(now_nanos as u64);
    let message = message_len(metadata) + bytes_len(aggregated);

    let message_field = |tag: u32, len: usize, out: &mut Vec<u8>| {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
    };
    let varint_field = |tag: u32, n: u64, out: &mut Vec<u8>| {
        if n != 0 {
            encode_key(tag, WireType::Varint, out);
            encode_varint(n, out);
        }
    };
    out.reserve(4 + message);
    out.extend_from_slice(&(message as u32).to_be_bytes());
    // msgpb.Message
    message_field(1, metadata, out);
    varint_field(1, shard, out);
    varint_field(2, seq, out);
    varint_field(3, now_nanos as u64, out);
    if aggregated != 0 {
        message_field(2, aggregated, out);
    }
    // metricpb.AggregatedMetric.metric
    message_field(1, with_policy, out);
    // TimedMetricWithStoragePolicy.timed_metric
    message_field(1, timed_metric, out);
    varint_field(1, v.metric_type as i32 as u64, out);
    if !v.id.is_empty() {
        message_field(2, v.id.len(), out);
        out.extend_from_slice(v.id);
    }
    varint_field(3, v.time_nanos as u64, out);
    if v.value != 0.0 {
        encode_key(4, WireType::SixtyFourBit, out);
        out.extend_from_slice(&v.value.to_le_bytes());
    }
    // TimedMetricWithStoragePolicy.storage_policy
    message_field(2, policy, out);
    message_field(1, resolution, out);
    varint_field(1, v.resolution_nanos as u64, out);
    varint_field(2, v.resolution_nanos as u64, out);
    message_field(2, retention, out);
    varint_field(1, v.retention_nanos as u64, out);
    // AggregatedMetric.encode_nanos
    varint_field(2, now_nanos as u64, out);
}

/// The `Ack` of the messages of one connection, built as they are decoded: each entry is the
/// message's own metadata field copied as it came (`MessageView::ack_entry`: the key and body
/// of a `Metadata` are the same in a `Message` and in an `Ack`, field 1 in both), or encoded
/// from its values when the decoder did not keep the bytes. The entries are written after
/// room for the frame's length, so that the finished frame is sent from where it was built.
#[derive(Debug)]
pub struct AckFrame {
    /// `FRAME_HEADER` bytes for the length, then the `Ack`.
    frame: Vec<u8>,
    entries: usize,
}

const FRAME_HEADER: usize = 4;

impl Default for AckFrame {
    fn default() -> Self {
        Self { frame: vec![0; FRAME_HEADER], entries: 0 }
    }
}

impl AckFrame {
    /// Messages acknowledged so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Acknowledges a decoded message.
    #[inline]
    pub fn push_message(&mut self, m: &crate::view::MessageView<'_>) {
        if m.ack_entry.is_empty() {
            self.push(m.shard, m.id, m.sent_at_nanos);
        } else {
            self.frame.extend_from_slice(m.ack_entry);
            self.entries += 1;
        }
    }

    /// Acknowledges the message with this metadata, written field by field like
    /// `encode_aggregated_frame`; equal to prost's bytes.
    pub fn push(&mut self, shard: u64, id: u64, sent_at_nanos: u64) {
        // An entry's body is at most 3 × (1 + 10) = 33 bytes, so its length is one byte.
        let mut entry = [0u8; 35];
        entry[0] = 1 << 3 | 2; // field 1, length-delimited
        let mut at = 2;
        for (tag, n) in [(1u8, shard), (2, id), (3, sent_at_nanos)] {
            if n != 0 {
                entry[at] = tag << 3; // varint
                at = put_varint(n, &mut entry, at + 1);
            }
        }
        entry[1] = (at - 2) as u8;
        self.frame.extend_from_slice(&entry[..at]);
        self.entries += 1;
    }

    /// The m3msg frame of the acks so far: 4-byte big-endian length, then the `Ack`.
    pub fn frame(&mut self) -> &[u8] {
        let len = (self.frame.len() - FRAME_HEADER) as u32;
        self.frame[..FRAME_HEADER].copy_from_slice(&len.to_be_bytes());
        &self.frame
    }

    /// Starts over, once the frame is sent.
    pub fn clear(&mut self) {
        self.frame.truncate(FRAME_HEADER);
        self.entries = 0;
    }

    /// Appends the frame to `out` and starts over.
    pub fn write(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.frame());
        self.clear();
    }
}

/// Writes the varint of `n` into `buf` from `at`; returns where it ends. `buf` has room for
/// 10 bytes from `at`.
#[inline]
fn put_varint(mut n: u64, buf: &mut [u8], mut at: usize) -> usize {
    while n >= 0x80 {
        buf[at] = (n as u8) | 0x80;
        n >>= 7;
        at += 1;
    }
    buf[at] = n as u8;
    at + 1
}

/// Appends a protobuf varint. prost's `encode_varint` goes through `BufMut` one byte at a
/// time, with a capacity check per byte; one bounded copy from the stack is cheaper.
#[inline]
fn push_varint(mut n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let mut i = 0;
    while n >= 0x80 {
        buf[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    buf[i] = n as u8;
    out.extend_from_slice(&buf[..=i]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, next_frame};
    use crate::{msgpb, policypb};
    use prost::Message as _;

    pub(super) fn value(id: &[u8], v: f64) -> AggregatedValue<'_> {
        AggregatedValue {
            id,
            metric_type: metricpb::MetricType::Counter,
            time_nanos: 1_700_000_010_000_000_000,
            value: v,
            resolution_nanos: 10_000_000_000,
            retention_nanos: 172_800_000_000_000,
        }
    }

    #[test]
    fn aggregated_frames_decode_with_prost() {
        let mut out = Vec::new();
        encode_aggregated_frame(&value(b"req.count", 42.0), 7, 99, 123, &mut out);
        let (payload, used) = next_frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(used, out.len());
        let m = msgpb::Message::decode(payload).unwrap();
        assert_eq!(m.metadata.unwrap(), msgpb::Metadata { shard: 7, id: 99, sent_at_nanos: 123 });
        let a = metricpb::AggregatedMetric::decode(m.value.as_slice()).unwrap();
        let tm = a.metric.as_ref().unwrap().timed_metric.as_ref().unwrap();
        assert_eq!((tm.id.as_slice(), tm.value, tm.time_nanos), (&b"req.count"[..], 42.0, 1_700_000_010_000_000_000));
        assert_eq!(a.encode_nanos, 123);
    }

    /// Byte for byte what prost writes for the same message.
    fn prost_frame(v: &AggregatedValue<'_>, shard: u64, seq: u64, now: i64) -> Vec<u8> {
        let aggregated = metricpb::AggregatedMetric {
            metric: Some(metricpb::TimedMetricWithStoragePolicy {
                timed_metric: Some(metricpb::TimedMetric {
                    r#type: v.metric_type as i32,
                    id: v.id.to_vec(),
                    time_nanos: v.time_nanos,
                    value: v.value,
                    annotation: Vec::new(),
                }),
                storage_policy: Some(policypb::StoragePolicy {
                    resolution: Some(policypb::Resolution {
                        window_size: v.resolution_nanos,
                        precision: v.resolution_nanos,
                    }),
                    retention: Some(policypb::Retention { period: v.retention_nanos }),
                }),
                routing_policy: None,
            }),
            encode_nanos: now,
        };
        let message = msgpb::Message {
            metadata: Some(msgpb::Metadata { shard, id: seq, sent_at_nanos: now as u64 }),
            value: aggregated.encode_to_vec(),
        };
        let mut out = Vec::new();
        encode_frame(&message, &mut out);
        out
    }

    /// An ack field: absent (0), small, or any width.
    fn field() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![Just(0u64), 1u64..300, any::<u64>()]
    }

    proptest::proptest! {
        #[test]
        fn ack_frames_equal_prost(entries in proptest::collection::vec((field(), field(), field()), 0..50)) {
            let metadata: Vec<msgpb::Metadata> =
                entries.iter().map(|&(shard, id, sent_at_nanos)| msgpb::Metadata { shard, id, sent_at_nanos }).collect();
            let mut acks = AckFrame::default();
            for m in &metadata {
                acks.push(m.shard, m.id, m.sent_at_nanos);
            }
            let mut ours = Vec::new();
            acks.write(&mut ours);
            let mut theirs = Vec::new();
            encode_frame(&msgpb::Ack { metadata }, &mut theirs);
            proptest::prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn hand_encoding_equals_prost(
            id in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            time in proptest::prelude::any::<i64>(),
            value in proptest::prelude::any::<f64>(),
            res in proptest::prelude::any::<i64>(), ret in proptest::prelude::any::<i64>(),
            shard in proptest::prelude::any::<u64>(), seq in proptest::prelude::any::<u64>(), now in proptest::prelude::any::<i64>(),
            gauge in proptest::prelude::any::<bool>(),
        ) {
            let v = AggregatedValue {
                id: &id,
                metric_type: if gauge { metricpb::MetricType::Gauge } else { metricpb::MetricType::Counter },
                time_nanos: time,
                value,
                resolution_nanos: res,
                retention_nanos: ret,
            };
            let mut ours = Vec::new();
            encode_aggregated_frame(&v, shard, seq, now, &mut ours);
            proptest::prop_assert_eq!(ours, prost_frame(&v, shard, seq, now));
        }
    }
}
