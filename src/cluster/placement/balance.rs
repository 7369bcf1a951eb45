//! How shards are spread and moved: grouping new instances into shard sets, the shard count
//! each set ends with, and the staged hand-over of each moved shard. Pure; the operations
//! (`init`, `add`, `remove`) call it.
//!
//! Shard counts follow set weights: with `S` shards and total active set weight `W`, a set of
//! weight `w` has the quota `q = S·w/W` and ends with ⌊q⌋ or ⌈q⌉ shards, and never with none
//! (an operation that cannot keep both rules is refused). A change moves the fewest shards that
//! reach such counts, taking them from the sets above their share (highest shard ids first).

use std::collections::{BTreeMap, BTreeSet};

use super::error::PlacementError;
use super::model::{Instance, Placement, Shard, ShardState};

/// Groups instances into shard sets of `rf` instances of equal weight in distinct isolation
/// groups. Within a weight class sorted by (isolation group, id), set j takes the instances at
/// j, j+m, j+2m… (m = sets in the class); this works exactly when no group holds more than m.
pub(super) fn group_into_sets(instances: &[Instance], rf: u32) -> Result<Vec<Vec<Instance>>, String> {
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
pub(super) struct SetCount {
    pub(super) id: u32,
    pub(super) weight: u32,
    pub(super) current: u32,
}

/// The shard count each set ends with: within [max(⌊q⌋, 1), ⌈q⌉] of its quota `q = S·w/W`, and
/// among those the counts that make the fewest sets receive shards (the fewest moves). Ties go
/// to the larger remainder of `q`, then the lower set id.
pub(super) fn final_counts(sets: &[SetCount], num_shards: u32) -> Result<Vec<u32>, PlacementError> {
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
pub(super) fn rebalance(
    p: &mut Placement,
    removed: &BTreeSet<u32>,
    t: i64,
    now_nanos: i64,
) -> Result<(), PlacementError> {
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
