//! The placement invariants ([`validate`]) and the checks the operations share with it. Pure.

use std::collections::BTreeMap;

use super::error::PlacementError;
use super::model::{Instance, Placement};

/// The most shards a placement may have: bounds the memory a request can make us allocate.
const MAX_NUM_SHARDS: u32 = 1 << 16;

/// Checks the placement invariants: shard ids below `num_shards`, each listed once per instance;
/// shard set ids in 1..=`max_shard_set_id`; every active shard set has exactly
/// `replication_factor` instances, of equal weight (≥ 1), in distinct isolation groups, owning
/// identical shards; and every shard is owned (non-`LEAVING`) by exactly one shard set.
pub fn validate(p: &Placement) -> Result<(), PlacementError> {
    let invalid = |m: String| Err(PlacementError::Invalid(m));
    if let Err(m) = check_num_shards(p.num_shards) {
        return invalid(m);
    }
    if p.replication_factor == 0 {
        return invalid("replication factor is 0".into());
    }
    let mut sets: BTreeMap<u32, Vec<&Instance>> = BTreeMap::new();
    for (key, inst) in &p.instances {
        if *key != inst.id {
            return invalid(format!("instance {:?} is stored under the key {key:?}", inst.id));
        }
        if inst.shard_set_id == 0 || inst.shard_set_id > p.max_shard_set_id {
            return invalid(format!(
                "instance {} has shard set id {}, outside 1..={} (max_shard_set_id)",
                inst.id, inst.shard_set_id, p.max_shard_set_id
            ));
        }
        if let Some(w) = inst.shards.windows(2).find(|w| w[0].id >= w[1].id) {
            return invalid(format!("instance {} lists shard {} twice or out of order", inst.id, w[1].id));
        }
        if let Some(s) = inst.shards.iter().find(|s| s.id >= p.num_shards) {
            return invalid(format!(
                "instance {} holds shard {}, but the placement has {} shards",
                inst.id, s.id, p.num_shards
            ));
        }
        if !inst.is_leaving() {
            sets.entry(inst.shard_set_id).or_default().push(inst);
        }
    }
    let mut owner: Vec<Option<u32>> = vec![None; p.num_shards as usize];
    for (set, members) in &sets {
        if members.len() != p.replication_factor as usize {
            let ids: Vec<&str> = members.iter().map(|i| i.id.as_str()).collect();
            return invalid(format!(
                "shard set {set} has {} active instances ({}), the replication factor is {}",
                members.len(),
                ids.join(", "),
                p.replication_factor
            ));
        }
        let first = members[0];
        if first.weight == 0 {
            return invalid(format!("instance {} has weight 0", first.id));
        }
        if let Some(other) = members.iter().find(|i| i.weight != first.weight) {
            return invalid(format!(
                "shard set {set} mixes weights {} ({}) and {} ({})",
                first.weight, first.id, other.weight, other.id
            ));
        }
        let groups: Vec<(&str, &str)> = members.iter().map(|i| (i.id.as_str(), i.isolation_group.as_str())).collect();
        if let Some((a, b, group)) = same_group(&groups) {
            return invalid(format!("shard set {set} has {a} and {b} both in isolation group {group:?}"));
        }
        let owned: Vec<u32> = first.owned_shard_ids().collect();
        if let Some(other) = members.iter().find(|i| !i.owned_shard_ids().eq(owned.iter().copied())) {
            return invalid(format!("instances {} and {} of shard set {set} own different shards", first.id, other.id));
        }
        for id in owned {
            match owner[id as usize] {
                Some(prev) => return invalid(format!("shard {id} is owned by shard sets {prev} and {set}")),
                None => owner[id as usize] = Some(*set),
            }
        }
    }
    if let Some(id) = owner.iter().position(Option::is_none) {
        return invalid(format!("shard {id} has no owner"));
    }
    Ok(())
}

pub(super) fn check_num_shards(num_shards: u32) -> Result<(), String> {
    if num_shards == 0 {
        return Err("num_shards must be at least 1".into());
    }
    if num_shards > MAX_NUM_SHARDS {
        return Err(format!("num_shards {num_shards} is above the supported maximum {MAX_NUM_SHARDS}"));
    }
    Ok(())
}

/// Two members sharing an isolation group, if any: `(id, id, group)`.
pub(super) fn same_group<'a>(members: &[(&'a str, &'a str)]) -> Option<(&'a str, &'a str, &'a str)> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for &(id, group) in members {
        if let Some(prev) = seen.insert(group, id) {
            return Some((prev, id, group));
        }
    }
    None
}
