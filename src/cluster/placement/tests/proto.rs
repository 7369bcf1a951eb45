//! Tests of the proto form and the etcd value: round trips, and what decoding refuses.

use prost::Message;
use sheaf_proto::placementpb as pb;

use super::{NOW, err_text, inst, opts, two_sets};
use crate::cluster::placement::PlacementError;
use crate::cluster::placement::operations::add;
use crate::cluster::placement::proto::{decode_snapshots, encode_snapshots, from_proto, to_proto};

#[test]
fn proto_round_trips() {
    let p = two_sets();
    let q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let pbq = to_proto(&q);
    assert!(pbq.is_sharded && pbq.is_mirrored && !pbq.is_subclustered);
    assert_eq!(pbq.replica_factor, 2);
    assert_eq!(pbq.instances["c1"].shards[0].state, pb::ShardState::Initializing as i32);
    assert_eq!(from_proto(&pbq).unwrap(), q);
    let bytes = encode_snapshots(&q);
    assert_eq!(decode_snapshots(&bytes).unwrap(), q);
    let snaps = pb::PlacementSnapshots::decode(bytes.as_slice()).unwrap();
    assert_eq!(snaps.snapshots.len(), 1);
    assert_eq!(snaps.compress_mode, pb::CompressMode::None as i32);
    assert!(snaps.compressed_placement.is_empty());
}

#[test]
fn decode_snapshots_reads_the_latest_and_refuses_what_it_cannot() {
    let p = two_sets();
    let q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let two = pb::PlacementSnapshots { snapshots: vec![to_proto(&p), to_proto(&q)], ..Default::default() };
    assert_eq!(decode_snapshots(&two.encode_to_vec()).unwrap(), q);
    let inner = pb::PlacementSnapshots { compressed_placement: to_proto(&q).encode_to_vec(), ..Default::default() };
    assert_eq!(decode_snapshots(&inner.encode_to_vec()).unwrap(), q);
    let zstd = pb::PlacementSnapshots {
        compress_mode: pb::CompressMode::Zstd as i32,
        compressed_placement: vec![1, 2, 3],
        ..Default::default()
    };
    assert_eq!(err_text(decode_snapshots(&zstd.encode_to_vec())), "zstd-compressed placements are not supported");
    assert_eq!(decode_snapshots(&zstd.encode_to_vec()), Err(PlacementError::Zstd));
    let odd = pb::PlacementSnapshots { compress_mode: 7, ..Default::default() };
    assert_eq!(err_text(decode_snapshots(&odd.encode_to_vec())), "compress mode 7 is not supported");
    assert_eq!(err_text(decode_snapshots(&[])), "decoding the placement: the value holds no placement");
    assert!(err_text(decode_snapshots(&[0x0a, 0xff])).starts_with("decoding the placement: "));
    // A stored placement that breaks an invariant is refused on load.
    let mut broken = to_proto(&p);
    broken.instances.get_mut("a1").unwrap().shards.pop();
    let bytes = pb::PlacementSnapshots { snapshots: vec![broken], ..Default::default() }.encode_to_vec();
    assert_eq!(
        err_text(decode_snapshots(&bytes)),
        "invalid placement: instances a1 and b1 of shard set 1 own different shards"
    );
}

#[test]
fn from_proto_normalizes_and_refuses() {
    let p = two_sets();
    let mut m = to_proto(&p);
    // Cutoff i64::MAX is another spelling of "never"; an empty id takes its key; shard order
    // does not matter.
    for i in m.instances.values_mut() {
        for s in &mut i.shards {
            s.cutoff_nanos = i64::MAX;
        }
        i.shards.reverse();
    }
    m.instances.get_mut("a1").unwrap().id.clear();
    assert_eq!(from_proto(&m).unwrap(), p);
    let mut m = to_proto(&p);
    m.is_sharded = false;
    assert_eq!(err_text(from_proto(&m)), "unsharded placements are not supported");
    let mut m = to_proto(&p);
    m.is_subclustered = true;
    assert_eq!(err_text(from_proto(&m)), "subclustered placements are not supported");
    let mut m = to_proto(&p);
    m.instances.get_mut("a1").unwrap().shards[3].state = 9;
    assert_eq!(err_text(from_proto(&m)), "decoding the placement: shard 3 of instance a1 has the unknown state 9");
    let mut m = to_proto(&p);
    let dup = m.instances["a1"].shards[3].clone();
    m.instances.get_mut("a1").unwrap().shards.push(dup);
    assert_eq!(err_text(from_proto(&m)), "decoding the placement: instance a1 lists shard 3 twice");
    let mut m = to_proto(&p);
    m.instances.get_mut("a1").unwrap().id = "other".into();
    assert_eq!(err_text(from_proto(&m)), "decoding the placement: instance \"other\" is stored under the key \"a1\"");
}
