//! Randomized properties of the operations (seeded, so a failure names a reproducible case):
//! every result is valid and balanced, moves are the fewest possible and staged, and no shard is
//! ever left without an owner.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{FAR_FUTURE, MIN, NOW, inst, minute_aligned, owned_by_set, owner_set_of, owners_of};
use crate::cluster::placement::PlacementError;
use crate::cluster::placement::invariants::validate;
use crate::cluster::placement::model::{Instance, Placement, Shard, ShardState};
use crate::cluster::placement::operations::{add, cleanup, init, remove, replace};

/// A random valid init: `rf` 1–3, 1–4 shard sets (each of one random weight, members in random
/// distinct isolation groups out of rf+1), 1–256 shards. Instances are listed shuffled.
fn random_init(rng: &mut StdRng) -> (u32, u32, Vec<Instance>) {
    let rf = rng.random_range(1..=3u32);
    let sets = rng.random_range(1..=4u32);
    let num_shards = if rng.random_bool(0.2) { rng.random_range(1..=8) } else { rng.random_range(1..=256) };
    let mut instances = Vec::new();
    for set in 0..sets {
        instances.extend(random_set(rng, rf, &format!("i{set}")));
    }
    shuffle(rng, &mut instances);
    (num_shards, rf, instances)
}

/// `rf` instances of one random weight in distinct random isolation groups out of `rf + 1`.
fn random_set(rng: &mut StdRng, rf: u32, prefix: &str) -> Vec<Instance> {
    let weight = [1, 2, 3, 100, 250][rng.random_range(0..5)];
    let mut groups: Vec<u32> = (0..=rf).collect();
    shuffle(rng, &mut groups);
    (0..rf).map(|k| inst(&format!("{prefix}-{k}"), &format!("g{}", groups[k as usize]), weight)).collect()
}

fn shuffle<T>(rng: &mut StdRng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// Per-set bounds recomputed independently: [max(⌊q⌋, 1), ⌈q⌉] for q = S·w/W.
fn bounds(num_shards: u32, weights: &BTreeMap<u32, u32>) -> BTreeMap<u32, (u64, u64)> {
    let total: u64 = weights.values().map(|&w| u64::from(w)).sum();
    weights
        .iter()
        .map(|(&set, &w)| {
            let num = u64::from(num_shards) * u64::from(w);
            (set, ((num / total).max(1), num.div_ceil(total)))
        })
        .collect()
}

fn feasible(num_shards: u32, weights: &BTreeMap<u32, u32>) -> bool {
    bounds(num_shards, weights).values().map(|b| b.0).sum::<u64>() <= u64::from(num_shards)
}

fn set_weights(p: &Placement) -> BTreeMap<u32, u32> {
    p.instances.values().filter(|i| !i.is_leaving()).map(|i| (i.shard_set_id, i.weight)).collect()
}

/// Every active set's shard count is within its bounds.
fn assert_balanced(p: &Placement, case: &str) {
    let b = bounds(p.num_shards, &set_weights(p));
    for (set, shards) in owned_by_set(p) {
        let (lo, hi) = b[&set];
        let n = shards.len() as u64;
        assert!(lo <= n && n <= hi, "{case}: set {set} holds {n} shards, bounds {lo}..={hi}");
    }
}

/// The fewest shards any balanced assignment must move, from the counts before (`current`,
/// 0 for new sets; removed sets left out) and the bounds after.
fn minimal_moves(num_shards: u32, current: &BTreeMap<u32, u64>, weights: &BTreeMap<u32, u32>) -> u64 {
    let b = bounds(num_shards, weights);
    let mut forced = 0;
    let mut kept = 0;
    for (set, &(lo, hi)) in &b {
        let c = current.get(set).copied().unwrap_or(0);
        forced += lo.saturating_sub(c);
        kept += c.clamp(lo, hi);
    }
    forced + u64::from(num_shards).saturating_sub(kept)
}

/// Checks the staging of every shard whose owning set changed between `before` and `after`
/// (both from a cleaned placement, so nothing was pending): the givers hold it LEAVING with
/// cutoff T, the receivers INITIALIZING with cutover T and a giver as source. Returns how many
/// shards moved.
fn assert_staged_moves(before: &Placement, after: &Placement, t: i64, case: &str) -> usize {
    let old = owner_set_of(before);
    let new = owner_set_of(after);
    let mut moved = 0;
    for (shard, &set) in &new {
        let prev = old[shard];
        let receivers: Vec<&Instance> = owners_of(after, *shard).owners;
        if prev == set && receivers.iter().all(|r| before.instance(&r.id).is_some()) {
            for r in receivers {
                assert_eq!(r.shard(*shard), before.instance(&r.id).unwrap().shard(*shard), "{case}: shard {shard}");
            }
            continue;
        }
        moved += usize::from(prev != set);
        let givers: Vec<&Instance> = owners_of(after, *shard).leaving;
        assert!(!givers.is_empty(), "{case}: shard {shard} has no giver");
        for g in &givers {
            let gs = g.shard(*shard).unwrap();
            assert_eq!(gs.cutoff_nanos, t, "{case}: giver {} of shard {shard}", g.id);
        }
        for r in receivers.iter().filter(|r| before.instance(&r.id).and_then(|b| b.shard(*shard)).is_none()) {
            let rs = r.shard(*shard).unwrap();
            assert_eq!(rs.state, ShardState::Initializing, "{case}: receiver {} of shard {shard}", r.id);
            assert_eq!(rs.cutover_nanos, t, "{case}: the receiver's cutover equals the giver's cutoff");
            assert!(givers.iter().any(|g| g.id == rs.source_id), "{case}: source {} of shard {shard}", rs.source_id);
            let source = after.instance(&rs.source_id).unwrap();
            if givers.iter().any(|g| g.isolation_group == r.isolation_group) {
                assert_eq!(source.isolation_group, r.isolation_group, "{case}: source in the same isolation group");
            }
        }
    }
    moved
}

/// After `cleanup(far future)`: valid, balanced, every shard AVAILABLE, no leaving instance.
fn assert_settled(mut p: Placement, case: &str) {
    cleanup(&mut p, FAR_FUTURE, Duration::from_secs(3600));
    validate(&p).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_balanced(&p, case);
    for i in p.instances.values() {
        assert!(!i.shards.is_empty(), "{case}: {} kept with no shards", i.id);
        assert!(i.shards.iter().all(|s| s.state == ShardState::Available), "{case}: {} not settled", i.id);
    }
}

#[test]
fn random_init_then_one_change_keeps_the_invariants() {
    let mut rng = StdRng::seed_from_u64(0x5eaf_0001);
    let (mut adds, mut removes, mut replaces, mut refused) = (0, 0, 0, 0);
    for case_no in 0..1500 {
        let (num_shards, rf, instances) = random_init(&mut rng);
        let case = format!("case {case_no}: {num_shards} shards, rf {rf}, {instances:?}");
        let p = match init(num_shards, rf, &instances) {
            Ok(p) => p,
            Err(e) => {
                // Refused only when the sets cannot all get a shard within their share.
                let mut per_weight: BTreeMap<u32, usize> = BTreeMap::new();
                for i in &instances {
                    *per_weight.entry(i.weight).or_default() += 1;
                }
                let weights: BTreeMap<u32, u32> = per_weight
                    .iter()
                    .flat_map(|(&w, &n)| std::iter::repeat_n(w, n / rf as usize))
                    .zip(1u32..)
                    .map(|(w, id)| (id, w))
                    .collect();
                assert!(matches!(e, PlacementError::Refused(_)), "{case}: {e}");
                assert!(!feasible(num_shards, &weights), "{case}: {e}");
                refused += 1;
                continue;
            }
        };
        validate(&p).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_balanced(&p, &case);
        assert!(p.instances.values().all(|i| i.shards.iter().all(|s| *s == Shard::available(s.id))));
        let now = NOW + rng.random_range(0..10 * MIN);
        let o = minute_aligned(Duration::from_secs(rng.random_range(0..600)));
        let t = o.cutover(now);
        let before_counts: BTreeMap<u32, u64> =
            owned_by_set(&p).into_iter().map(|(s, v)| (s, v.len() as u64)).collect();
        let sets: Vec<u32> = before_counts.keys().copied().collect();
        match rng.random_range(0..3) {
            0 => {
                let n_new = rng.random_range(1..=2);
                let new: Vec<Instance> = (0..n_new).flat_map(|k| random_set(&mut rng, rf, &format!("n{k}"))).collect();
                let case = format!("{case}; add {new:?}");
                let mut weights = set_weights(&p);
                let first_new = p.max_shard_set_id + 1;
                // The new sets' weights, whatever ids they get: only the total per weight matters.
                for (k, chunk) in new.chunks(rf as usize).enumerate() {
                    weights.insert(first_new + k as u32, chunk[0].weight);
                }
                match add(&p, &new, now, &o) {
                    Ok(q) => {
                        adds += 1;
                        validate(&q).unwrap_or_else(|e| panic!("{case}: {e}"));
                        assert_eq!(q.cutover_time, t);
                        let moved = assert_staged_moves(&p, &q, t, &case);
                        let new_sets: usize =
                            owned_by_set(&q).iter().filter(|(s, _)| **s >= first_new).map(|(_, v)| v.len()).sum();
                        assert_eq!(moved, new_sets, "{case}: only the new sets receive");
                        let q_weights = set_weights(&q);
                        assert_eq!(moved as u64, minimal_moves(num_shards, &before_counts, &q_weights), "{case}");
                        assert_settled(q, &case);
                    }
                    Err(e) => {
                        assert!(!feasible(num_shards, &weights), "{case}: {e}");
                        refused += 1;
                    }
                }
            }
            1 if sets.len() > 1 => {
                let keep = rng.random_range(0..sets.len());
                let removed: Vec<u32> =
                    sets.iter().copied().filter(|&s| s != sets[keep] && rng.random_bool(0.6)).collect();
                if removed.is_empty() {
                    continue;
                }
                let names: Vec<String> =
                    p.instances.values().filter(|i| removed.contains(&i.shard_set_id)).map(|i| i.id.clone()).collect();
                let case = format!("{case}; remove {names:?}");
                let mut weights = set_weights(&p);
                weights.retain(|s, _| !removed.contains(s));
                match remove(&p, &names, now, &o) {
                    Ok(q) => {
                        removes += 1;
                        validate(&q).unwrap_or_else(|e| panic!("{case}: {e}"));
                        assert_staged_moves(&p, &q, t, &case);
                        for n in &names {
                            let i = q.instance(n).unwrap();
                            assert!(i.is_leaving(), "{case}: {n} still owns shards");
                            assert!(i.shards.iter().all(|s| s.cutoff_nanos == t));
                        }
                        let mut current = before_counts.clone();
                        current.retain(|s, _| !removed.contains(s));
                        let after: BTreeMap<u32, u64> =
                            owned_by_set(&q).into_iter().map(|(s, v)| (s, v.len() as u64)).collect();
                        let received: u64 = after.iter().map(|(s, &n)| n.saturating_sub(current[s])).sum();
                        assert_eq!(received, minimal_moves(num_shards, &current, &weights), "{case}");
                        let mut settled = q.clone();
                        cleanup(&mut settled, FAR_FUTURE, Duration::ZERO);
                        assert!(names.iter().all(|n| settled.instance(n).is_none()), "{case}");
                        assert_settled(q, &case);
                    }
                    Err(e) => {
                        assert!(!feasible(num_shards, &weights), "{case}: {e}");
                        refused += 1;
                    }
                }
            }
            _ => {
                let all: Vec<&Instance> = p.instances.values().collect();
                let mut leaving: Vec<String> =
                    all.iter().filter(|_| rng.random_bool(0.3)).map(|i| i.id.clone()).collect();
                if leaving.is_empty() {
                    leaving.push(all[rng.random_range(0..all.len())].id.clone());
                }
                let candidates: Vec<Instance> = leaving
                    .iter()
                    .map(|l| {
                        let old = p.instance(l).unwrap();
                        let mut c = old.identity();
                        c.id = format!("{l}-new");
                        c
                    })
                    .collect();
                let case = format!("{case}; replace {leaving:?}");
                let q = replace(&p, &leaving, &candidates, now, &o).unwrap_or_else(|e| panic!("{case}: {e}"));
                replaces += 1;
                validate(&q).unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(owner_set_of(&q), owner_set_of(&p), "{case}: replace moves no shard between sets");
                for (l, c) in leaving.iter().zip(&candidates) {
                    let old = q.instance(l).unwrap();
                    let new = q.instance(&c.id).unwrap();
                    assert_eq!(new.shard_set_id, old.shard_set_id);
                    assert_eq!(old.shards.len(), new.shards.len());
                    for (o, n) in old.shards.iter().zip(&new.shards) {
                        assert_eq!((o.state, o.cutoff_nanos), (ShardState::Leaving, t), "{case}");
                        assert_eq!(
                            (n.state, n.cutover_nanos, n.source_id.as_str()),
                            (ShardState::Initializing, t, l.as_str())
                        );
                    }
                }
                assert_settled(q, &case);
            }
        }
    }
    // The generator exercises every path.
    assert!(adds > 200 && removes > 100 && replaces > 200 && refused > 10, "{adds} {removes} {replaces} {refused}");
}

/// Windows `[cutover, cutoff)` of every holder of a shard cover `[now, +∞)`: no moment in the
/// future is left without an owner, however the operations and cleanups interleave.
fn assert_no_ownership_gap(p: &Placement, now: i64, case: &str) {
    for shard in 0..p.num_shards {
        let o = owners_of(p, shard);
        let windows: Vec<(i64, i64)> = o
            .owners
            .iter()
            .chain(&o.leaving)
            .map(|i| i.shard(shard).unwrap())
            .map(|s| (s.cutover_nanos, s.cutoff()))
            .collect();
        let mut point = now;
        while point < i64::MAX {
            let next = windows.iter().filter(|(a, b)| *a <= point && point < *b).map(|w| w.1).max();
            match next {
                Some(end) => point = end,
                None => panic!("{case}: shard {shard} has no owner at {point} ({windows:?})"),
            }
        }
    }
}

#[test]
fn random_sequences_of_changes_stay_valid_and_gapless() {
    let mut rng = StdRng::seed_from_u64(0x5eaf_0002);
    let mut applied = 0;
    for seq in 0..150 {
        let (num_shards, rf, instances) = random_init(&mut rng);
        let Ok(mut p) = init(num_shards, rf, &instances) else { continue };
        let mut now = NOW;
        let mut fresh = 0;
        let mut log = format!("seq {seq}: {num_shards} shards rf {rf}");
        for _ in 0..10 {
            now += rng.random_range(0..3 * MIN);
            let o = minute_aligned(Duration::from_secs([0, 60, 600, 3600][rng.random_range(0..4)]));
            let active: Vec<&Instance> = p.instances.values().filter(|i| !i.is_leaving()).collect();
            let sets: BTreeSet<u32> = active.iter().map(|i| i.shard_set_id).collect();
            let result = match rng.random_range(0..4) {
                0 => {
                    fresh += 1;
                    let new = random_set(&mut rng, rf, &format!("s{fresh}"));
                    log += &format!("; at {now} add {:?}", new.iter().map(|i| &i.id).collect::<Vec<_>>());
                    add(&p, &new, now, &o)
                }
                1 => {
                    let set = *sets.iter().nth(rng.random_range(0..sets.len())).unwrap();
                    let names: Vec<String> =
                        active.iter().filter(|i| i.shard_set_id == set).map(|i| i.id.clone()).collect();
                    log += &format!("; at {now} remove {names:?}");
                    remove(&p, &names, now, &o)
                }
                2 => {
                    let l = active[rng.random_range(0..active.len())];
                    fresh += 1;
                    let mut c = l.identity();
                    c.id = format!("r{fresh}");
                    log += &format!("; at {now} replace {} by {}", l.id, c.id);
                    replace(&p, std::slice::from_ref(&l.id), &[c], now, &o)
                }
                _ => {
                    let mut q = p.clone();
                    let retain = Duration::from_secs(rng.random_range(0..900));
                    log += &format!("; at {now} cleanup");
                    cleanup(&mut q, now, retain);
                    Ok(q)
                }
            };
            match result {
                Ok(q) => {
                    validate(&q).unwrap_or_else(|e| panic!("{log}: {e}"));
                    assert_no_ownership_gap(&q, now, &log);
                    p = q;
                    applied += 1;
                }
                Err(e @ (PlacementError::Invalid(_) | PlacementError::Decode(_))) => panic!("{log}: {e}"),
                Err(e) => {
                    let refusal = e.to_string();
                    assert!(
                        refusal.contains("too few") || refusal.contains("removing every shard set"),
                        "{log}: {refusal}"
                    );
                }
            }
        }
        assert_settled(p, &log);
    }
    assert!(applied > 800, "{applied}");
}
