//! The placement operations: [`init`], [`add`], [`remove`], [`replace`] and [`cleanup`], and the
//! invariant checker [`validate`]. All are pure functions of their inputs; the mutating ones
//! return a new placement and leave the given one untouched when they refuse.
//!
//! Shard counts follow set weights: with `S` shards and total active set weight `W`, a set of
//! weight `w` has the quota `q = S·w/W` and ends with ⌊q⌋ or ⌈q⌉ shards, and never with none
//! (an operation that cannot keep both rules is refused). A change moves the fewest shards that
//! reach such counts, taking them from the sets above their share (highest shard ids first).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Instance, NANOS_PER_MINUTE, Options, Placement, PlacementError, Shard, ShardState};

/// The most shards a placement may have: bounds the memory a request can make us allocate.
pub const MAX_NUM_SHARDS: u32 = 1 << 16;

/// The cutover of shards moved at `now_nanos`: the first multiple of `alignment` strictly
/// after `now + warmup`. With a one-minute alignment (the default) this is what m3coordinator
/// uses for m3aggregator placements; a shorter one makes hand-offs quicker to watch in tests.
pub fn next_cutover(now_nanos: i64, warmup: Duration, alignment: Duration) -> i64 {
    let warmup = i64::try_from(warmup.as_nanos()).unwrap_or(i64::MAX);
    let step = i64::try_from(alignment.as_nanos()).unwrap_or(NANOS_PER_MINUTE).max(1);
    let t = now_nanos.saturating_add(warmup);
    t.div_euclid(step).saturating_add(1).saturating_mul(step)
}

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
/// same isolation group) on the receiving one, T = [`next_cutover`].
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

fn check_num_shards(num_shards: u32) -> Result<(), String> {
    if num_shards == 0 {
        return Err("num_shards must be at least 1".into());
    }
    if num_shards > MAX_NUM_SHARDS {
        return Err(format!("num_shards {num_shards} is above the supported maximum {MAX_NUM_SHARDS}"));
    }
    Ok(())
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

/// Two members sharing an isolation group, if any: `(id, id, group)`.
fn same_group<'a>(members: &[(&'a str, &'a str)]) -> Option<(&'a str, &'a str, &'a str)> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for &(id, group) in members {
        if let Some(prev) = seen.insert(group, id) {
            return Some((prev, id, group));
        }
    }
    None
}

/// Groups instances into shard sets of `rf` instances of equal weight in distinct isolation
/// groups. Within a weight class sorted by (isolation group, id), set j takes the instances at
/// j, j+m, j+2m… (m = sets in the class); this works exactly when no group holds more than m.
fn group_into_sets(instances: &[Instance], rf: u32) -> Result<Vec<Vec<Instance>>, String> {
    let per_set = rf as usize;
    let n = instances.len();
    if !n.is_multiple_of(per_set) {
        return Err(format!("{n} instances is not a multiple of the replication factor {rf}"));
    }
    let groups: BTreeSet<&str> = instances.iter().map(|i| i.isolation_group.as_str()).collect();
    if groups.len() < per_set {
        return Err(format!("replication factor {rf} needs {rf} isolation groups, instances span {}", groups.len()));
    }
    let mut by_weight: BTreeMap<u32, Vec<&Instance>> = BTreeMap::new();
    for inst in instances {
        by_weight.entry(inst.weight).or_default().push(inst);
    }
    let mut sets = Vec::with_capacity(n / per_set);
    for (weight, mut class) in by_weight {
        let count = class.len();
        if !count.is_multiple_of(per_set) {
            return Err(format!(
                "the instances of weight {weight} number {count}, not a multiple of the replication factor {rf} (the \
                 instances of a shard set must have equal weight)"
            ));
        }
        let m = count / per_set;
        class.sort_by(|a, b| (&a.isolation_group, &a.id).cmp(&(&b.isolation_group, &b.id)));
        let mut per_group: BTreeMap<&str, usize> = BTreeMap::new();
        for inst in &class {
            *per_group.entry(inst.isolation_group.as_str()).or_default() += 1;
        }
        if let Some((group, c)) = per_group.into_iter().find(|&(_, c)| c > m) {
            return Err(format!(
                "isolation group {group:?} holds {c} of the {count} instances of weight {weight}, which form {m} shard \
                 set(s); the {rf} instances of a shard set must be in distinct isolation groups"
            ));
        }
        for j in 0..m {
            sets.push((0..per_set).map(|k| class[j + k * m].identity()).collect());
        }
    }
    Ok(sets)
}

/// A shard set as the count balancer sees it.
#[derive(Debug, Clone, Copy)]
struct SetCount {
    id: u32,
    weight: u32,
    current: u32,
}

/// The shard count each set ends with: within [max(⌊q⌋, 1), ⌈q⌉] of its quota `q = S·w/W`, and
/// among those the counts that make the fewest sets receive shards (the fewest moves). Ties go
/// to the larger remainder of `q`, then the lower set id.
fn final_counts(sets: &[SetCount], num_shards: u32) -> Result<Vec<u32>, PlacementError> {
    let total: u128 = sets.iter().map(|s| u128::from(s.weight)).sum();
    if total == 0 {
        return Err(PlacementError::Invalid("no shard set with a weight to own the shards".into()));
    }
    let mut lows = Vec::with_capacity(sets.len());
    let mut highs = Vec::with_capacity(sets.len());
    let mut rems = Vec::with_capacity(sets.len());
    for s in sets {
        let num = u128::from(num_shards) * u128::from(s.weight);
        let floor = (num / total) as u32; // ≤ num_shards
        let rem = num % total;
        lows.push(floor.max(1));
        highs.push(floor + u32::from(rem > 0));
        rems.push(rem);
    }
    let need: u64 = lows.iter().map(|&l| u64::from(l)).sum();
    if need > u64::from(num_shards) {
        return Err(PlacementError::Refused(format!(
            "{num_shards} shards are too few for {} shard sets with these weights: every shard set needs at least one \
             shard, and none may get more than one above its weight-proportional share",
            sets.len()
        )));
    }
    let mut counts: Vec<u32> = (0..sets.len()).map(|i| sets[i].current.clamp(lows[i], highs[i])).collect();
    let mut sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    while sum > u64::from(num_shards) {
        // Shrink a set above its floor: first one that would otherwise receive, then the
        // smallest remainder, then the highest id.
        let pick = (0..sets.len())
            .filter(|&i| counts[i] > lows[i])
            .min_by_key(|&i| (counts[i] <= sets[i].current, rems[i], std::cmp::Reverse(sets[i].id)));
        let Some(i) = pick else { break };
        counts[i] -= 1;
        sum -= 1;
    }
    while sum < u64::from(num_shards) {
        // Grow a set below its ceiling: first one that keeps its own shards (free), then one
        // that receives anyway, then the largest remainder, then the lowest id.
        let pick = (0..sets.len()).filter(|&i| counts[i] < highs[i]).min_by_key(|&i| {
            let free = counts[i] < sets[i].current;
            let receiving = sets[i].current == 0 || counts[i] > sets[i].current;
            (!free, !receiving, std::cmp::Reverse(rems[i]), sets[i].id)
        });
        let Some(i) = pick else { break };
        counts[i] += 1;
        sum += 1;
    }
    if sum != u64::from(num_shards) {
        return Err(PlacementError::Invalid(format!("shard counts add up to {sum}, not {num_shards}")));
    }
    Ok(counts)
}

/// Moves shards between the active shard sets (except `removed`, which give all theirs away)
/// until every remaining set holds its [`final_counts`] share, staging each move at `t`.
fn rebalance(p: &mut Placement, removed: &BTreeSet<u32>, t: i64, now_nanos: i64) -> Result<(), PlacementError> {
    let mut members: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut owned: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut weights: BTreeMap<u32, u32> = BTreeMap::new();
    for inst in p.instances.values().filter(|i| !i.is_leaving()) {
        members.entry(inst.shard_set_id).or_default().push(inst.id.clone());
        owned.entry(inst.shard_set_id).or_default().extend(inst.owned_shard_ids());
        weights.insert(inst.shard_set_id, inst.weight);
    }
    let sets: Vec<SetCount> = members
        .keys()
        .filter(|id| !removed.contains(id))
        .map(|&id| SetCount { id, weight: weights[&id], current: owned[&id].len() as u32 })
        .collect();
    let counts = final_counts(&sets, p.num_shards)?;

    // (shard, giving set): everything of the removed sets, and each set's excess, highest first.
    let mut pool: Vec<(u32, u32)> = Vec::new();
    for set in removed {
        pool.extend(owned.get(set).into_iter().flatten().map(|&shard| (shard, *set)));
    }
    for (set, &count) in sets.iter().zip(&counts) {
        let excess = set.current.saturating_sub(count) as usize;
        pool.extend(owned[&set.id].iter().rev().take(excess).map(|&shard| (shard, set.id)));
    }
    pool.sort_unstable();
    let mut pool = pool.into_iter();
    let mut moves = Vec::new();
    for (set, &count) in sets.iter().zip(&counts) {
        for _ in set.current..count {
            let Some((shard, from)) = pool.next() else {
                return Err(PlacementError::Invalid("fewer shards to move than shard sets to receive them".into()));
            };
            moves.push((shard, from, set.id));
        }
    }
    if pool.next().is_some() {
        return Err(PlacementError::Invalid("more shards to move than shard sets to receive them".into()));
    }
    for (shard, from, to) in moves {
        move_shard(p, shard, &members[&from], &members[&to], t, now_nanos);
    }
    Ok(())
}

/// Hands `shard` over from the instances `from` (one shard set) to `to` (another). The cutover
/// is `t`, or later if a giver only takes the shard over after `t` itself, so that the givers'
/// cutoff always equals the receivers' cutover. A receiver still holding the shard as `LEAVING`
/// (it is taking back what it is handing over) keeps its entry, owned again (as M3 does).
fn move_shard(p: &mut Placement, shard: u32, from: &[String], to: &[String], t: i64, now_nanos: i64) {
    let mut givers: Vec<(String, String)> = Vec::new();
    let mut cutover = t;
    for id in from {
        if let Some(inst) = p.instances.get(id)
            && let Some(s) = inst.shard(shard).filter(|s| !s.is_leaving())
        {
            cutover = cutover.max(s.cutover_nanos);
            givers.push((inst.id.clone(), inst.isolation_group.clone()));
        }
    }
    for (id, _) in &givers {
        if let Some(s) = p.instances.get_mut(id).and_then(|i| i.shard_mut(shard)) {
            s.state = ShardState::Leaving;
            s.cutoff_nanos = cutover;
        }
    }
    // Pair each receiver with the giver in its isolation group, else with an unused giver.
    let receivers: Vec<(String, String)> =
        to.iter().filter_map(|id| p.instances.get(id)).map(|i| (i.id.clone(), i.isolation_group.clone())).collect();
    let mut used = vec![false; givers.len()];
    let mut source: Vec<Option<usize>> = vec![None; receivers.len()];
    for (r, (_, group)) in receivers.iter().enumerate() {
        if let Some(g) = (0..givers.len()).find(|&g| !used[g] && givers[g].1 == *group) {
            used[g] = true;
            source[r] = Some(g);
        }
    }
    for slot in source.iter_mut().filter(|s| s.is_none()) {
        let g = (0..givers.len()).find(|&g| !used[g]).or(if givers.is_empty() { None } else { Some(0) });
        if let Some(g) = g {
            used[g] = true;
            *slot = Some(g);
        }
    }
    for ((id, _), g) in receivers.iter().zip(source) {
        let Some(inst) = p.instances.get_mut(id) else { continue };
        match inst.shard_mut(shard) {
            Some(s) if s.is_leaving() => {
                s.state = if s.cutover_nanos <= now_nanos { ShardState::Available } else { ShardState::Initializing };
                s.cutoff_nanos = 0;
            }
            _ => inst.put_shard(Shard {
                id: shard,
                state: ShardState::Initializing,
                source_id: g.map(|g| givers[g].0.clone()).unwrap_or_default(),
                cutover_nanos: cutover,
                cutoff_nanos: 0,
            }),
        }
    }
}
