//! Conversion between [`Placement`] and M3's `placementpb`, and the bytes stored under the etcd
//! placement key: a `PlacementSnapshots` whose latest snapshot is the placement. Written
//! uncompressed (`compress_mode: NONE`) in `snapshots`, which M3's readers accept; read from
//! `snapshots` or, when that is empty, `compressed_placement`. Pure; the cluster agent decodes
//! each placement it watches on the control thread, and the placement API decodes and encodes
//! around each change.

use prost::Message;
use sheaf_proto::placementpb as pb;

use super::error::PlacementError;
use super::invariants::validate;
use super::model::{Instance, Placement, Shard, ShardState};

/// The proto form: sharded and mirrored, not subclustered; no instance metadata, no redirects.
pub fn to_proto(p: &Placement) -> pb::Placement {
    pb::Placement {
        instances: p.instances.iter().map(|(id, inst)| (id.clone(), instance_to_proto(inst))).collect(),
        replica_factor: p.replication_factor,
        num_shards: p.num_shards,
        is_sharded: true,
        cutover_time: p.cutover_time,
        is_mirrored: true,
        max_shard_set_id: p.max_shard_set_id,
        is_subclustered: false,
        instances_per_subcluster: 0,
    }
}

fn instance_to_proto(inst: &Instance) -> pb::Instance {
    pb::Instance {
        id: inst.id.clone(),
        isolation_group: inst.isolation_group.clone(),
        zone: inst.zone.clone(),
        weight: inst.weight,
        endpoint: inst.endpoint.clone(),
        shards: inst.shards.iter().map(shard_to_proto).collect(),
        shard_set_id: inst.shard_set_id,
        hostname: inst.hostname.clone(),
        port: inst.port,
        metadata: None,
        subcluster_id: 0,
    }
}

fn shard_to_proto(s: &Shard) -> pb::Shard {
    let state = match s.state {
        ShardState::Initializing => pb::ShardState::Initializing,
        ShardState::Available => pb::ShardState::Available,
        ShardState::Leaving => pb::ShardState::Leaving,
    };
    pb::Shard {
        id: s.id,
        state: state as i32,
        source_id: s.source_id.clone(),
        cutover_nanos: s.cutover_nanos,
        cutoff_nanos: s.cutoff_nanos,
        redirect_to_shard_id: None,
    }
}

/// The placement in a proto, converted field by field (no invariant check: see
/// [`validate`], which [`decode_snapshots`] applies). Refuses what sheaf does not model:
/// unsharded, unmirrored or subclustered placements, shard redirects, unknown shard states.
/// An instance with an empty id takes its map key; a cutoff of `i64::MAX` is read as 0 (+∞).
/// Instance metadata (`debug_port`) is dropped.
pub fn from_proto(pb: &pb::Placement) -> Result<Placement, PlacementError> {
    if !pb.is_sharded {
        return Err(PlacementError::Unsupported("unsharded placements are not supported".into()));
    }
    if !pb.is_mirrored {
        return Err(PlacementError::Unsupported(
            "unmirrored placements are not supported: sheaf runs mirrored aggregator placements only".into(),
        ));
    }
    if pb.is_subclustered {
        return Err(PlacementError::Unsupported("subclustered placements are not supported".into()));
    }
    let mut keys: Vec<&String> = pb.instances.keys().collect();
    keys.sort();
    let mut instances = std::collections::BTreeMap::new();
    for key in keys {
        let i = &pb.instances[key];
        let id = if i.id.is_empty() { key.clone() } else { i.id.clone() };
        if id != *key {
            return Err(PlacementError::Decode(format!("instance {id:?} is stored under the key {key:?}")));
        }
        let mut shards = Vec::with_capacity(i.shards.len());
        for s in &i.shards {
            let state = match pb::ShardState::try_from(s.state) {
                Ok(pb::ShardState::Initializing) => ShardState::Initializing,
                Ok(pb::ShardState::Available) => ShardState::Available,
                Ok(pb::ShardState::Leaving) => ShardState::Leaving,
                Err(_) => {
                    return Err(PlacementError::Decode(format!(
                        "shard {} of instance {id} has the unknown state {}",
                        s.id, s.state
                    )));
                }
            };
            if let Some(to) = s.redirect_to_shard_id {
                return Err(PlacementError::Unsupported(format!(
                    "shard {} of instance {id} redirects to shard {}: shard redirects are not supported",
                    s.id, to.value
                )));
            }
            shards.push(Shard {
                id: s.id,
                state,
                source_id: s.source_id.clone(),
                cutover_nanos: s.cutover_nanos,
                cutoff_nanos: if s.cutoff_nanos == i64::MAX { 0 } else { s.cutoff_nanos },
            });
        }
        shards.sort_by_key(|s| s.id);
        if let Some(w) = shards.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PlacementError::Decode(format!("instance {id} lists shard {} twice", w[0].id)));
        }
        instances.insert(
            id.clone(),
            Instance {
                id,
                isolation_group: i.isolation_group.clone(),
                zone: i.zone.clone(),
                weight: i.weight,
                endpoint: i.endpoint.clone(),
                hostname: i.hostname.clone(),
                port: i.port,
                shard_set_id: i.shard_set_id,
                shards,
            },
        );
    }
    Ok(Placement {
        num_shards: pb.num_shards,
        replication_factor: pb.replica_factor,
        instances,
        max_shard_set_id: pb.max_shard_set_id,
        cutover_time: pb.cutover_time,
    })
}

/// The etcd value: `PlacementSnapshots { snapshots: [p], compress_mode: NONE }`.
pub fn encode_snapshots(p: &Placement) -> Vec<u8> {
    pb::PlacementSnapshots {
        snapshots: vec![to_proto(p)],
        compress_mode: pb::CompressMode::None as i32,
        compressed_placement: Vec::new(),
    }
    .encode_to_vec()
}

/// Reads an etcd placement value: the last of `snapshots`, or `compressed_placement` when there
/// are none (uncompressed only), converted by [`from_proto`] and checked by [`validate`].
pub fn decode_snapshots(bytes: &[u8]) -> Result<Placement, PlacementError> {
    let snaps = pb::PlacementSnapshots::decode(bytes).map_err(|e| PlacementError::Decode(e.to_string()))?;
    match pb::CompressMode::try_from(snaps.compress_mode) {
        Ok(pb::CompressMode::None) => {}
        Ok(pb::CompressMode::Zstd) => return Err(PlacementError::Zstd),
        Err(_) => {
            return Err(PlacementError::Unsupported(format!("compress mode {} is not supported", snaps.compress_mode)));
        }
    }
    let placement = match snaps.snapshots.last() {
        Some(last) => from_proto(last)?,
        None if !snaps.compressed_placement.is_empty() => {
            let pb = pb::Placement::decode(snaps.compressed_placement.as_slice())
                .map_err(|e| PlacementError::Decode(format!("compressed_placement: {e}")))?;
            from_proto(&pb)?
        }
        None => return Err(PlacementError::Decode("the value holds no placement".into())),
    };
    validate(&placement)?;
    Ok(placement)
}
