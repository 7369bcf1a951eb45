//! Pins the wire layout independently of our `.proto` files: the expected bytes are
//! written by hand from M3's field numbers, then checked against both the prost
//! types (encoding) and the zero-copy view (decoding).

use prost::Message;
use sheaf_proto::frame::{encode_frame, next_frame};
use sheaf_proto::view::{
    MetricView, PipelineView, Scratch, StoragePolicyView, TimedType, decode_message, decode_metric,
};
use sheaf_proto::{aggregationpb, metricpb, msgpb, policypb};

/// `MetricWithMetadatas` carrying a counter `up` = -2 with one staged metadata
/// (cutover 100): aggregation id 128 (SUM), storage policy 10ns:1ns retained 300ns.
#[rustfmt::skip]
const COUNTER: &[u8] = &[
    0x08, 0x01,                         // type (1, varint) = COUNTER_WITH_METADATAS
    0x12, 0x2d,                         // counter_with_metadatas (2, len 45)
      0x0a, 0x0f,                       //   counter (1, len 15)
        0x0a, 0x02, b'u', b'p',         //     id (1, len 2) = "up"
        0x10, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // value (2, varint) = -2 as int64
      0x12, 0x1a,                       //   metadatas (2, len 26): StagedMetadatas
        0x0a, 0x18,                     //     metadatas (1, len 24): StagedMetadata
          0x08, 0x64,                   //       cutover_nanos (1) = 100
          0x1a, 0x14,                   //       metadata (3, len 20): Metadata
            0x0a, 0x12,                 //         pipelines (1, len 18): PipelineMetadata
              0x0a, 0x03,               //           aggregation_id (1, len 3)
                0x08, 0x80, 0x01,       //             id (1) = 128
              0x12, 0x0b,               //           storage_policies (2, len 11)
                0x0a, 0x04,             //             resolution (1, len 4)
                  0x08, 0x0a,           //               window_size (1) = 10
                  0x10, 0x01,           //               precision (2) = 1
                0x12, 0x03,             //             retention (2, len 3)
                  0x08, 0xac, 0x02,     //               period (1) = 300
];

/// `msgpb.Message` with metadata {shard 3, id 42, sentAtNanos 1000} and `COUNTER`.
#[rustfmt::skip]
const MESSAGE_HEAD: &[u8] = &[
    0x0a, 0x07,                         // metadata (1, len 7)
      0x08, 0x03,                       //   shard (1) = 3
      0x10, 0x2a,                       //   id (2) = 42
      0x18, 0xe8, 0x07,                 //   sentAtNanos (3) = 1000
    0x12, 0x31,                         // value (2, len 49) = COUNTER
];

/// TIMED_METRIC_WITH_STORAGE_POLICY: gauge `g` = 1.5 at 7ns, retention 1ns.
#[rustfmt::skip]
const TIMED: &[u8] = &[
    0x08, 0x07,                         // type (1) = TIMED_METRIC_WITH_STORAGE_POLICY
    0x42, 0x18,                         // timed_metric_with_storage_policy (8, len 24)
      0x0a, 0x10,                       //   timed_metric (1, len 16)
        0x08, 0x03,                     //     type (1) = GAUGE
        0x12, 0x01, b'g',               //     id (2, len 1)
        0x18, 0x07,                     //     time_nanos (3) = 7
        0x21, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // value (4, fixed64) = 1.5
      0x12, 0x04,                       //   storage_policy (2, len 4)
        0x12, 0x02,                     //     retention (2, len 2)
          0x08, 0x01,                   //       period (1) = 1
];

/// BATCH_TIMER_WITH_METADATAS: timer `t` with packed values [1.0, 2.0], no metadatas.
#[rustfmt::skip]
const TIMER_PACKED: &[u8] = &[
    0x08, 0x02,                         // type (1) = BATCH_TIMER_WITH_METADATAS
    0x1a, 0x17,                         // batch_timer_with_metadatas (3, len 23)
      0x0a, 0x15,                       //   batch_timer (1, len 21)
        0x0a, 0x01, b't',               //     id (1, len 1)
        0x12, 0x10,                     //     values (2, packed, len 16)
          0, 0, 0, 0, 0, 0, 0xf0, 0x3f, //       1.0
          0, 0, 0, 0, 0, 0, 0, 0x40,    //       2.0
];

/// The same timer with unpacked values (how proto2-era encoders write them).
#[rustfmt::skip]
const TIMER_UNPACKED: &[u8] = &[
    0x08, 0x02,
    0x1a, 0x17,                         // batch_timer_with_metadatas (3, len 23)
      0x0a, 0x15,                       //   batch_timer (1, len 21)
        0x0a, 0x01, b't',
        0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // values (2, fixed64) = 1.0
        0x11, 0, 0, 0, 0, 0, 0, 0, 0x40,    // values (2, fixed64) = 2.0
];

fn counter_proto() -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::CounterWithMetadatas as i32,
        counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
            counter: Some(metricpb::Counter { id: b"up".to_vec(), value: -2, ..Default::default() }),
            metadatas: Some(metricpb::StagedMetadatas {
                metadatas: vec![metricpb::StagedMetadata {
                    cutover_nanos: 100,
                    tombstoned: false,
                    metadata: Some(metricpb::Metadata {
                        pipelines: vec![metricpb::PipelineMetadata {
                            aggregation_id: Some(aggregationpb::AggregationId {
                                id: 1 << aggregationpb::AggregationType::Sum as u64,
                            }),
                            storage_policies: vec![policypb::StoragePolicy {
                                resolution: Some(policypb::Resolution { window_size: 10, precision: 1 }),
                                retention: Some(policypb::Retention { period: 300 }),
                            }],
                            ..Default::default()
                        }],
                    }),
                }],
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn counter_layout() {
    assert_eq!(counter_proto().encode_to_vec(), COUNTER);

    let mut scratch = Scratch::default();
    let view = decode_metric(COUNTER, 100, &mut scratch).unwrap();
    assert_eq!(view, MetricView::Counter { id: b"up", value: -2, client_time_nanos: 0 });
    assert_eq!(
        scratch.pipelines,
        vec![PipelineView { aggregation_id: 128, policies: 0..1, has_ops: false, ops: 0..0, resend_enabled: false }]
    );
    assert_eq!(
        scratch.policies,
        vec![StoragePolicyView { resolution_nanos: 10, precision_nanos: 1, retention_nanos: 300 }]
    );
    assert_eq!((scratch.tombstoned, scratch.cutover_nanos), (false, 100));
}

#[test]
fn message_and_frame_layout() {
    let mut message = MESSAGE_HEAD.to_vec();
    message.extend_from_slice(COUNTER);
    assert_eq!(message.len(), 60);

    let proto = msgpb::Message {
        metadata: Some(msgpb::Metadata { shard: 3, id: 42, sent_at_nanos: 1000 }),
        value: COUNTER.to_vec(),
    };
    assert_eq!(proto.encode_to_vec(), message);

    let view = decode_message(&message).unwrap();
    assert_eq!((view.shard, view.id, view.sent_at_nanos, view.value), (3, 42, 1000, COUNTER));

    let mut frame = Vec::new();
    encode_frame(&proto, &mut frame);
    assert_eq!(&frame[..4], &[0, 0, 0, 60]);
    assert_eq!(&frame[4..], &message[..]);
    assert_eq!(next_frame(&frame, 60), Ok(Some((&message[..], 64))));
}

#[test]
fn ack_layout() {
    let ack = msgpb::Ack {
        metadata: vec![
            msgpb::Metadata { shard: 1, id: 2, sent_at_nanos: 3 },
            msgpb::Metadata { shard: 0, id: 5, sent_at_nanos: 0 },
        ],
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x0a, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, // metadata (1): shard 1, id 2, sentAtNanos 3
        0x0a, 0x02, 0x10, 0x05,                         // metadata (1): id 5
    ];
    assert_eq!(ack.encode_to_vec(), expected);
}

#[test]
fn timed_layout() {
    let mut scratch = Scratch::default();
    let view = decode_metric(TIMED, 0, &mut scratch).unwrap();
    assert_eq!(view, MetricView::Passthrough { kind: TimedType::Gauge, id: b"g", time_nanos: 7, value: 1.5 });
    assert_eq!(
        scratch.pipelines,
        vec![PipelineView { aggregation_id: 0, policies: 0..1, has_ops: false, ops: 0..0, resend_enabled: false }]
    );
    assert_eq!(scratch.policies[0].retention_nanos, 1);

    let proto = metricpb::MetricWithMetadatas {
        r#type: 7,
        timed_metric_with_storage_policy: Some(metricpb::TimedMetricWithStoragePolicy {
            timed_metric: Some(metricpb::TimedMetric {
                r#type: metricpb::MetricType::Gauge as i32,
                id: b"g".to_vec(),
                time_nanos: 7,
                value: 1.5,
                annotation: Vec::new(),
            }),
            storage_policy: Some(policypb::StoragePolicy {
                resolution: None,
                retention: Some(policypb::Retention { period: 1 }),
            }),
            routing_policy: None,
        }),
        ..Default::default()
    };
    assert_eq!(proto.encode_to_vec(), TIMED);
}

#[test]
fn timer_packed_and_unpacked_layouts() {
    let proto = metricpb::MetricWithMetadatas {
        r#type: 2,
        batch_timer_with_metadatas: Some(metricpb::BatchTimerWithMetadatas {
            batch_timer: Some(metricpb::BatchTimer { id: b"t".to_vec(), values: vec![1.0, 2.0], ..Default::default() }),
            metadatas: None,
        }),
        ..Default::default()
    };
    assert_eq!(proto.encode_to_vec(), TIMER_PACKED);
    assert_eq!(metricpb::MetricWithMetadatas::decode(TIMER_UNPACKED).unwrap(), proto);

    let mut scratch = Scratch::default();
    for buf in [TIMER_PACKED, TIMER_UNPACKED] {
        let view = decode_metric(buf, 0, &mut scratch).unwrap();
        assert_eq!(view, MetricView::BatchTimer { id: b"t", client_time_nanos: 0 });
        assert_eq!(scratch.timer_values, vec![1.0, 2.0]);
        assert!(scratch.pipelines.is_empty());
    }
}
