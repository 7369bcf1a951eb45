//! Pins the field numbers of M3's m3msg topic (`topicpb`) with bytes written out by hand from
//! the numbers in M3's topic.proto, and checks a round trip.

use prost::Message;
use sheaf_proto::topicpb;

#[test]
fn topic_fields_are_m3s() {
    let topic = topicpb::Topic {
        name: "t".into(),
        number_of_shards: 64,
        consumer_services: vec![topicpb::ConsumerService {
            service_id: Some(topicpb::ServiceId { name: "n".into(), environment: "e".into(), zone: "z".into() }),
            consumption_type: topicpb::ConsumptionType::Shared as i32,
            message_ttl_nanos: 300,
        }],
    };
    // name=1 "t"; number_of_shards=2 varint 64; consumer_services=3 {service_id=1 {name=1 "n",
    // environment=2 "e", zone=3 "z"}, consumption_type=2 varint 1, message_ttl_nanos=3 varint
    // 300 (0xac 0x02)}.
    let service_id = [0x0a, 1, b'n', 0x12, 1, b'e', 0x1a, 1, b'z'];
    let mut consumer = vec![0x0a, service_id.len() as u8];
    consumer.extend_from_slice(&service_id);
    consumer.extend_from_slice(&[0x10, 1, 0x18, 0xac, 0x02]);
    let mut want = vec![0x0a, 1, b't', 0x10, 64, 0x1a, consumer.len() as u8];
    want.extend_from_slice(&consumer);
    assert_eq!(topic.encode_to_vec(), want);
    assert_eq!(topicpb::Topic::decode(&want[..]).unwrap(), topic);
}

#[test]
fn consumption_types_are_m3s() {
    assert_eq!(topicpb::ConsumptionType::Unknown as i32, 0);
    assert_eq!(topicpb::ConsumptionType::Shared as i32, 1);
    assert_eq!(topicpb::ConsumptionType::Replicated as i32, 2);
    assert_eq!(topicpb::ConsumptionType::Replicated.as_str_name(), "REPLICATED");
}
