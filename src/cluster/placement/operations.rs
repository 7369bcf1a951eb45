//! The placement operations: [`init`], [`add`], [`remove`], [`replace`] and [`cleanup`]. All
//! are pure functions of their inputs; the mutating ones return a new placement and leave the
//! given one untouched when they refuse. The placement API runs them on the control thread
//! (or `sheaf placement` on the main thread), between reading the placement from etcd and
//! writing the result back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::balance::{SetCount, final_counts, group_into_sets, rebalance};
use super::cutover::Options;
use super::error::PlacementError;
use super::invariants::{check_num_shards, same_group, validate};
use super::model::{Instance, Placement, Shard, ShardState};

/// A new placement of `num_shards` shards over `instances`, grouped into shard sets of
/// `replication_factor` instances (deterministically: by weight, then isolation group and id).
/// Shards are spread over the sets by weight and are `AVAILABLE` with cutover and cutoff 0:
/// an initial placement takes effect at once. `shard_set_id` and `shards` of the given
/// instances are ignored.
pub fn init(num_shards: u32, replication_factor: u32, instances: &[Instance]) -> Result<Placement, PlacementError> {
    check_num_shards(num_shards).map_err(PlacementError::Request)?;
    if replication_factor == 0 {
        return Err(PlacementError::Request("replication_factor must be at least 1".into()));
    }
    check_new_instances(None, instances)?;
    let groups = group_into_sets(instances, replication_factor).map_err(PlacementError::ShardSets)?;
    let sets: Vec<SetCount> =
        (1u32..).zip(&groups).map(|(id, g)| SetCount { id, weight: g[0].weight, current: 0 }).collect();
    let counts = final_counts(&sets, num_shards)?;
    let mut placement =
        Placement { num_shards, replication_factor, instances: BTreeMap::new(), max_shard_set_id: 0, cutover_time: 0 };
    let mut next_shard = 0u32;
    for ((set, group), count) in sets.iter().zip(groups).zip(counts) {
        let shards: Vec<Shard> = (next_shard..next_shard + count).map(Shard::available).collect();
        next_shard += count;
        for mut inst in group {
            inst.shard_set_id = set.id;
            inst.shards = shards.clone();
            placement.instances.insert(inst.id.clone(), inst);
        }
        placement.max_shard_set_id = set.id;
    }
    validate(&placement)?;
    Ok(placement)
}

/// Adds `new_instances` as new, complete shard sets (ids `max_shard_set_id + 1`…) and moves the
/// fewest shards from the sets above their weight share to them. A moved shard becomes `LEAVING`
/// with cutoff T on the giving set and `INITIALIZING` with cutover T (source: the giver in the
/// same isolation group) on the receiving one, T = [`next_cutover`](super::cutover::next_cutover).
pub fn add(
    placement: &Placement,
    new_instances: &[Instance],
    now_nanos: i64,
    opts: &Options,
) -> Result<Placement, PlacementError> {
    validate(placement)?;
    check_new_instances(Some(placement), new_instances)?;
    let groups = group_into_sets(new_instances, placement.replication_factor).map_err(|why| {
        PlacementError::ShardSets(format!("{why}; add whole shard sets, or use replace to swap single instances"))
    })?;
    let mut next = placement.clone();
    for group in groups {
        let id = next
            .max_shard_set_id
            .checked_add(1)
            .ok_or_else(|| PlacementError::Refused("shard set ids are exhausted".into()))?;
        next.max_shard_set_id = id;
        for mut inst in group {
            inst.shard_set_id = id;
            next.instances.insert(inst.id.clone(), inst);
        }
    }
    let t = opts.cutover(now_nanos);
    rebalance(&mut next, &BTreeSet::new(), t, now_nanos)?;
    next.cutover_time = t;
    validate(&next)?;
    Ok(next)
}

/// Removes whole shard sets: every active instance of a set must be named, and one set must
/// remain. Their shards move to the remaining sets by weight (staged as in [`add`]); the
/// removed instances stay, holding only `LEAVING` shards, until [`cleanup`] drops them.
pub fn remove(
    placement: &Placement,
    instance_ids: &[String],
    now_nanos: i64,
    opts: &Options,
) -> Result<Placement, PlacementError> {
    validate(placement)?;
    if instance_ids.is_empty() {
        return Err(PlacementError::Request("no instance ids given".into()));
    }
    let named = existing_active_ids(placement, instance_ids)?;
    let mut removed_sets = BTreeSet::new();
    for id in &named {
        let set = placement.instances[*id].shard_set_id;
        removed_sets.insert(set);
        let partner = placement
            .instances
            .values()
            .find(|i| i.shard_set_id == set && !i.is_leaving() && !named.contains(i.id.as_str()));
        if let Some(partner) = partner {
            return Err(PlacementError::Refused(format!(
                "instance {id} shares shard set {set} with {}, which is not being removed; remove whole shard sets, \
                 or use replace to swap a single instance",
                partner.id
            )));
        }
    }
    let remaining = placement.instances.values().any(|i| !i.is_leaving() && !removed_sets.contains(&i.shard_set_id));
    if !remaining {
        return Err(PlacementError::Refused(format!(
            "removing every shard set would leave no instance to own the {} shards",
            placement.num_shards
        )));
    }
    let mut next = placement.clone();
    let t = opts.cutover(now_nanos);
    rebalance(&mut next, &removed_sets, t, now_nanos)?;
    for id in &named {
        if next.instances.get(*id).is_some_and(|i| i.shards.is_empty()) {
            next.instances.remove(*id);
        }
    }
    next.cutover_time = t;
    validate(&next)?;
    Ok(next)
}

/// Replaces `leaving_ids[i]` with `candidates[i]`: the candidate joins the leaving instance's
/// shard set and takes all its owned shards as `INITIALIZING` with cutover T and source the
/// leaving instance, whose copies become `LEAVING` with cutoff T. Candidates must be new, of the
/// leaving instance's weight, and keep the set's isolation groups distinct.
pub fn replace(
    placement: &Placement,
    leaving_ids: &[String],
    candidates: &[Instance],
    now_nanos: i64,
    opts: &Options,
) -> Result<Placement, PlacementError> {
    validate(placement)?;
    if leaving_ids.is_empty() {
        return Err(PlacementError::Request("no leaving instance ids given".into()));
    }
    if leaving_ids.len() != candidates.len() {
        return Err(PlacementError::Request(format!(
            "{} leaving instances but {} candidates; replace pairs them one to one",
            leaving_ids.len(),
            candidates.len()
        )));
    }
    existing_active_ids(placement, leaving_ids)?;
    check_new_instances(Some(placement), candidates)?;
    for (leaving_id, cand) in leaving_ids.iter().zip(candidates) {
        let leaving = &placement.instances[leaving_id];
        if cand.weight != leaving.weight {
            return Err(PlacementError::Refused(format!(
                "candidate {} has weight {} but {leaving_id}, which it replaces in shard set {}, has weight {}; \
                 the instances of a shard set must have equal weight",
                cand.id, cand.weight, leaving.shard_set_id, leaving.weight
            )));
        }
    }
    // The active members of each affected set after the swap, in distinct isolation groups.
    let leaving_set: BTreeSet<&str> = leaving_ids.iter().map(String::as_str).collect();
    let mut members: BTreeMap<u32, Vec<(&str, &str)>> = BTreeMap::new();
    for (leaving_id, cand) in leaving_ids.iter().zip(candidates) {
        let set = placement.instances[leaving_id].shard_set_id;
        members.entry(set).or_default().push((cand.id.as_str(), cand.isolation_group.as_str()));
    }
    for inst in placement.instances.values() {
        if !inst.is_leaving()
            && !leaving_set.contains(inst.id.as_str())
            && let Some(m) = members.get_mut(&inst.shard_set_id)
        {
            m.push((inst.id.as_str(), inst.isolation_group.as_str()));
        }
    }
    for (set, m) in &members {
        if let Some((a, b, group)) = same_group(m) {
            return Err(PlacementError::Refused(format!(
                "shard set {set} would hold {a} and {b} both in isolation group {group:?}; the instances of a shard \
                 set must be in distinct isolation groups"
            )));
        }
    }

    let mut next = placement.clone();
    let t = opts.cutover(now_nanos);
    for (leaving_id, cand) in leaving_ids.iter().zip(candidates) {
        let Some(leaving) = next.instances.get_mut(leaving_id) else { continue };
        let mut taken = Vec::new();
        for s in leaving.shards.iter_mut().filter(|s| !s.is_leaving()) {
            let cutover = t.max(s.cutover_nanos);
            s.state = ShardState::Leaving;
            s.cutoff_nanos = cutover;
            taken.push(Shard {
                id: s.id,
                state: ShardState::Initializing,
                source_id: leaving_id.clone(),
                cutover_nanos: cutover,
                cutoff_nanos: 0,
            });
        }
        let set = leaving.shard_set_id;
        if leaving.shards.is_empty() {
            next.instances.remove(leaving_id);
        }
        let mut inst = cand.identity();
        inst.shard_set_id = set;
        inst.shards = taken;
        next.instances.insert(inst.id.clone(), inst);
    }
    next.cutover_time = t;
    validate(&next)?;
    Ok(next)
}

/// Applies the passage of time: `INITIALIZING` shards whose cutover ≤ now become `AVAILABLE`;
/// `LEAVING` shards whose cutoff + `retain_after_cutoff` ≤ now are dropped (a cutoff of 0 never
/// passes); instances that lose their last shard here are removed. Returns whether anything
/// changed.
pub fn cleanup(placement: &mut Placement, now_nanos: i64, retain_after_cutoff: Duration) -> bool {
    let retain = i64::try_from(retain_after_cutoff.as_nanos()).unwrap_or(i64::MAX);
    let mut changed = false;
    let mut emptied = Vec::new();
    for inst in placement.instances.values_mut() {
        let before = inst.shards.len();
        inst.shards
            .retain(|s| !(s.is_leaving() && s.cutoff_nanos != 0 && s.cutoff_nanos.saturating_add(retain) <= now_nanos));
        changed |= inst.shards.len() != before;
        for s in &mut inst.shards {
            if s.state == ShardState::Initializing && s.cutover_nanos <= now_nanos {
                s.state = ShardState::Available;
                changed = true;
            }
        }
        if before > 0 && inst.shards.is_empty() {
            emptied.push(inst.id.clone());
        }
    }
    for id in emptied {
        placement.instances.remove(&id);
    }
    changed
}

/// Request checks for instances about to join: non-empty, unique, weight ≥ 1, not yet placed.
fn check_new_instances(placement: Option<&Placement>, instances: &[Instance]) -> Result<(), PlacementError> {
    if instances.is_empty() {
        return Err(PlacementError::Request("no instances given".into()));
    }
    let mut seen = BTreeSet::new();
    for inst in instances {
        if inst.id.is_empty() {
            return Err(PlacementError::Request("an instance has an empty id".into()));
        }
        if !seen.insert(inst.id.as_str()) {
            return Err(PlacementError::Request(format!("instance {} is listed twice", inst.id)));
        }
        if inst.weight == 0 {
            return Err(PlacementError::Request(format!(
                "instance {} has weight 0; weights must be at least 1",
                inst.id
            )));
        }
        if placement.is_some_and(|p| p.instances.contains_key(&inst.id)) {
            return Err(PlacementError::DuplicateInstance(inst.id.clone()));
        }
    }
    Ok(())
}

/// The named instances, checked to be unique, present and not already leaving.
fn existing_active_ids<'a>(placement: &Placement, ids: &'a [String]) -> Result<BTreeSet<&'a str>, PlacementError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            return Err(PlacementError::Request(format!("instance {id} is listed twice")));
        }
        match placement.instances.get(id) {
            None => return Err(PlacementError::UnknownInstance(id.clone())),
            Some(inst) if inst.is_leaving() => {
                return Err(PlacementError::Refused(format!("instance {id} is already leaving the placement")));
            }
            Some(_) => {}
        }
    }
    Ok(seen)
}
