//! Pins the field numbers of the placement and flush-time messages to M3's, with bytes
//! written out by hand from the numbers in the reference (not from our .proto files).

use prost::Message;
use sheaf_proto::{flushpb, placementpb};

#[test]
fn shard_fields_are_m3s() {
    let shard = placementpb::Shard {
        id: 3,
        state: placementpb::ShardState::Available as i32,
        source_id: "a".into(),
        cutover_nanos: 5,
        cutoff_nanos: 6,
        redirect_to_shard_id: Some(placementpb::UInt32Value { value: 7 }),
    };
    // id=1 varint 3; state=2 varint 1; source_id=3 "a"; cutover=4 varint 5; cutoff=5 varint 6;
    // redirect=6 message {value=1 varint 7}.
    let want = [0x08, 3, 0x10, 1, 0x1a, 1, b'a', 0x20, 5, 0x28, 6, 0x32, 2, 0x08, 7];
    assert_eq!(shard.encode_to_vec(), want);
    assert_eq!(placementpb::Shard::decode(&want[..]).unwrap(), shard);
}

#[test]
fn placement_and_instance_fields_are_m3s() {
    let instance = placementpb::Instance {
        id: "i".into(),
        isolation_group: "g".into(),
        zone: "z".into(),
        weight: 100,
        endpoint: "e".into(),
        shards: vec![placementpb::Shard { id: 1, ..Default::default() }],
        shard_set_id: 2,
        hostname: "h".into(),
        port: 6000,
        ..Default::default()
    };
    let bytes = instance.encode_to_vec();
    // id=1, isolation_group=2, zone=3, weight=4 (100), endpoint=5, shards=6 {id=1},
    // shard_set_id=7, hostname=8, port=9 (6000 = 0xf0 0x2e).
    let want = [
        0x0a, 1, b'i', 0x12, 1, b'g', 0x1a, 1, b'z', 0x20, 100, 0x2a, 1, b'e', 0x32, 2, 0x08, 1, 0x38, 2, 0x42, 1,
        b'h', 0x48, 0xf0, 0x2e,
    ];
    assert_eq!(bytes, want);
    let placement = placementpb::Placement {
        instances: [("i".to_string(), instance)].into(),
        replica_factor: 2,
        num_shards: 64,
        is_sharded: true,
        cutover_time: 9,
        is_mirrored: true,
        max_shard_set_id: 1,
        ..Default::default()
    };
    let snapshots = placementpb::PlacementSnapshots { snapshots: vec![placement.clone()], ..Default::default() };
    let back = placementpb::PlacementSnapshots::decode(snapshots.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.snapshots[0], placement);
    // replica_factor is field 2, num_shards field 3.
    let small = placementpb::Placement { replica_factor: 2, num_shards: 64, ..Default::default() };
    assert_eq!(small.encode_to_vec(), [0x10, 2, 0x18, 64]);
}

#[test]
fn flush_time_fields_are_m3s() {
    let shard =
        flushpb::ShardFlushTimes { standard_by_resolution: [(10, 20)].into(), tombstoned: true, ..Default::default() };
    // standard_by_resolution=1: map entry {key=1 varint 10, value=2 varint 20}; tombstoned=2.
    assert_eq!(shard.encode_to_vec(), [0x0a, 4, 0x08, 10, 0x10, 20, 0x10, 1]);
    let set = flushpb::ShardSetFlushTimes { by_shard: [(7, shard.clone())].into() };
    let back = flushpb::ShardSetFlushTimes::decode(set.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.by_shard[&7], shard);
    let timed = flushpb::ShardFlushTimes { timed_by_resolution: [(1, 2)].into(), ..Default::default() };
    assert_eq!(timed.encode_to_vec()[0], 4 << 3 | 2, "timed_by_resolution is field 4");
}
