//! Tests of the placement: each operation and each refusal, the JSON and proto forms, and
//! randomized properties (seeded, so a failure names a reproducible case).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sheaf_proto::placementpb as pb;

use super::*;

const MIN: i64 = NANOS_PER_MINUTE;
/// 2023-11-14T22:13:20Z plus 30.5 s: not on a minute boundary.
const NOW: i64 = 1_700_000_000_000_000_000 + 30_500_000_000;
const FAR_FUTURE: i64 = i64::MAX / 2;

fn opts() -> Options {
    Options::new(Duration::from_secs(60))
}

fn inst(id: &str, group: &str, weight: u32) -> Instance {
    Instance::new(id, group, weight)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn err_text<T: std::fmt::Debug>(r: Result<T, PlacementError>) -> String {
    r.unwrap_err().to_string()
}

/// Two shard sets of two: {a1, b1} and {a2, b2}, 64 shards.
fn two_sets() -> Placement {
    init(
        64,
        2,
        &[inst("a1", "rack-a", 100), inst("a2", "rack-a", 100), inst("b1", "rack-b", 100), inst("b2", "rack-b", 100)],
    )
    .unwrap()
}

/// Owned (non-LEAVING) shard ids per active shard set.
fn owned_by_set(p: &Placement) -> BTreeMap<u32, BTreeSet<u32>> {
    let mut sets: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for i in p.instances.values().filter(|i| !i.is_leaving()) {
        sets.entry(i.shard_set_id).or_default().extend(i.owned_shard_ids());
    }
    sets
}

fn owner_set_of(p: &Placement) -> BTreeMap<u32, u32> {
    owned_by_set(p).into_iter().flat_map(|(set, shards)| shards.into_iter().map(move |s| (s, set))).collect()
}

#[test]
fn next_cutover_is_the_next_whole_minute_after_the_warmup() {
    let base = 100 * MIN;
    assert_eq!(
        next_cutover(base + 30 * 1_000_000_000, Duration::from_secs(60), Duration::from_secs(60)),
        base + 2 * MIN
    );
    // Exactly on a boundary: strictly after.
    assert_eq!(next_cutover(base, Duration::from_secs(60), Duration::from_secs(60)), base + 2 * MIN);
    assert_eq!(next_cutover(base, Duration::ZERO, Duration::from_secs(60)), base + MIN);
    assert_eq!(next_cutover(-1, Duration::ZERO, Duration::from_secs(60)), 0);
    assert_eq!(next_cutover(i64::MAX - 5, Duration::from_secs(3600), Duration::from_secs(60)), i64::MAX);
    // A shorter alignment (tests): the next multiple of it.
    let ten = Duration::from_secs(10);
    assert_eq!(next_cutover(base + 1, Duration::ZERO, ten), base + 10 * 1_000_000_000);
    assert_eq!(next_cutover(base + 1, ten, ten), base + 20 * 1_000_000_000);
}

#[test]
fn init_groups_by_isolation_group_and_spreads_shards() {
    let p = two_sets();
    assert_eq!(p.num_shards, 64);
    assert_eq!(p.replication_factor, 2);
    assert_eq!(p.max_shard_set_id, 2);
    assert_eq!(p.cutover_time, 0);
    let sets = p.shard_sets();
    let members: Vec<Vec<&str>> = sets.values().map(|v| v.iter().map(|i| i.id.as_str()).collect()).collect();
    assert_eq!(members, vec![vec!["a1", "b1"], vec!["a2", "b2"]]);
    let a1 = p.instance("a1").unwrap();
    assert_eq!(a1.shards, (0..32).map(Shard::available).collect::<Vec<_>>());
    assert_eq!(p.instance("b1").unwrap().shards, a1.shards);
    assert_eq!(p.instance("a2").unwrap().shards, (32..64).map(Shard::available).collect::<Vec<_>>());
    assert!(a1.shards.iter().all(|s| s.cutover_nanos == 0 && s.cutoff_nanos == 0 && s.cutoff() == i64::MAX));
    validate(&p).unwrap();
}

#[test]
fn init_spreads_shards_by_weight_with_largest_remainders() {
    let p = init(
        64,
        1,
        &[inst("x", "g", 100), inst("y", "g", 300), inst("z", "g", 200)], // quotas 10.67, 32, 21.33
    )
    .unwrap();
    let counts: BTreeMap<&str, usize> = p.instances.values().map(|i| (i.id.as_str(), i.shards.len())).collect();
    assert_eq!(counts, BTreeMap::from([("x", 11), ("y", 32), ("z", 21)]));
    // Sets are numbered by weight class (ascending), then isolation group and id.
    assert_eq!(p.instance("x").unwrap().shard_set_id, 1);
    assert_eq!(p.instance("z").unwrap().shard_set_id, 2);
    assert_eq!(p.instance("y").unwrap().shard_set_id, 3);
}

#[test]
fn init_gives_every_set_a_shard_when_it_can() {
    // Quotas 3.96 and 0.04: the light set still gets one shard.
    let p = init(4, 1, &[inst("big", "g", 99), inst("small", "g", 1)]).unwrap();
    assert_eq!(p.instance("big").unwrap().shards.len(), 3);
    assert_eq!(p.instance("small").unwrap().shards.len(), 1);
}

#[test]
fn init_refusals_say_why() {
    let two = [inst("a", "rack-a", 1), inst("b", "rack-b", 1)];
    assert_eq!(err_text(init(0, 2, &two)), "num_shards must be at least 1");
    assert_eq!(err_text(init(70_000, 2, &two)), "num_shards 70000 is above the supported maximum 65536");
    assert_eq!(err_text(init(8, 0, &two)), "replication_factor must be at least 1");
    assert_eq!(err_text(init(8, 2, &[])), "no instances given");
    assert_eq!(err_text(init(8, 1, &[inst("", "g", 1)])), "an instance has an empty id");
    assert_eq!(err_text(init(8, 1, &[inst("a", "g", 1), inst("a", "h", 1)])), "instance a is listed twice");
    assert_eq!(err_text(init(8, 1, &[inst("a", "g", 0)])), "instance a has weight 0; weights must be at least 1");
    assert_eq!(
        err_text(init(8, 2, &[inst("a", "rack-a", 1), inst("b", "rack-b", 1), inst("c", "rack-c", 1)])),
        "cannot form shard sets: 3 instances is not a multiple of the replication factor 2"
    );
    assert_eq!(
        err_text(init(8, 2, &[inst("a", "rack-a", 1), inst("b", "rack-a", 1)])),
        "cannot form shard sets: replication factor 2 needs 2 isolation groups, instances span 1"
    );
    assert_eq!(
        err_text(init(8, 2, &[inst("a", "rack-a", 100), inst("b", "rack-b", 200)])),
        "cannot form shard sets: the instances of weight 100 number 1, not a multiple of the replication factor 2 \
         (the instances of a shard set must have equal weight)"
    );
    assert_eq!(
        err_text(init(
            8,
            2,
            &[inst("a1", "rack-a", 1), inst("a2", "rack-a", 1), inst("a3", "rack-a", 1), inst("b1", "rack-b", 1)]
        )),
        "cannot form shard sets: isolation group \"rack-a\" holds 3 of the 4 instances of weight 1, which form 2 \
         shard set(s); the 2 instances of a shard set must be in distinct isolation groups"
    );
    assert_eq!(
        err_text(init(1, 1, &[inst("a", "g", 1), inst("b", "g", 1)])),
        "1 shards are too few for 2 shard sets with these weights: every shard set needs at least one shard, and \
         none may get more than one above its weight-proportional share"
    );
    assert!(matches!(init(1, 1, &[inst("a", "g", 1), inst("b", "g", 1)]), Err(PlacementError::Refused(_))));
}

#[test]
fn add_moves_the_fewest_shards_and_stages_them() {
    let p = two_sets();
    let t = opts().cutover(NOW);
    assert_eq!(t % MIN, 0);
    let q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    validate(&q).unwrap();
    assert_eq!(q.max_shard_set_id, 3);
    assert_eq!(q.cutover_time, t);
    let sets = owned_by_set(&q);
    let counts: Vec<usize> = sets.values().map(BTreeSet::len).collect();
    assert_eq!(counts, vec![22, 21, 21]); // quota 21.33 each; ties go to the lower set id
    // Set 1 gives its 10 highest shards, set 2 its 11 highest.
    let moved: Vec<u32> = (22..32).chain(53..64).collect();
    assert_eq!(sets[&3].iter().copied().collect::<Vec<_>>(), moved);
    for &shard in &moved {
        let from = if shard < 32 { ["a1", "b1"] } else { ["a2", "b2"] };
        for (giver, receiver) in from.iter().zip(["c1", "c2"]) {
            let g = q.instance(giver).unwrap().shard(shard).unwrap();
            assert_eq!((g.state, g.cutoff_nanos), (ShardState::Leaving, t), "{giver} {shard}");
            let r = q.instance(receiver).unwrap().shard(shard).unwrap();
            assert_eq!(r.state, ShardState::Initializing);
            assert_eq!(r.cutover_nanos, t);
            assert_eq!(r.cutoff_nanos, 0);
            assert_eq!(r.source_id, *giver, "same isolation group");
        }
    }
    let owners = q.owners_of(22);
    assert_eq!(owners.owners.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
    assert_eq!(owners.leaving.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a1", "b1"]);
    // The original is untouched.
    assert_eq!(p, two_sets());
}

#[test]
fn cleanup_promotes_at_cutover_and_drops_after_cutoff_plus_retention() {
    let p = two_sets();
    let t = opts().cutover(NOW);
    let mut q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let retain = Duration::from_secs(600);
    assert!(!cleanup(&mut q, t - 1, retain));
    assert!(cleanup(&mut q, t, retain));
    validate(&q).unwrap();
    assert!(q.instance("c1").unwrap().shards.iter().all(|s| s.state == ShardState::Available && s.cutover_nanos == t));
    assert_eq!(q.instance("a1").unwrap().shard(31).unwrap().state, ShardState::Leaving);
    assert!(!cleanup(&mut q, t + 10 * MIN - 1, retain));
    assert!(cleanup(&mut q, t + 10 * MIN, retain));
    assert!(q.instance("a1").unwrap().shard(31).is_none());
    assert_eq!(q.instance("a1").unwrap().shards.len(), 22);
    assert!(!cleanup(&mut q, FAR_FUTURE, retain));
    validate(&q).unwrap();
}

#[test]
fn add_refusals_say_why() {
    let p = two_sets();
    assert_eq!(err_text(add(&p, &[], NOW, &opts())), "no instances given");
    assert_eq!(
        err_text(add(&p, &[inst("a1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts())),
        "instance a1 is already in the placement"
    );
    assert!(matches!(
        add(&p, &[inst("a1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()),
        Err(PlacementError::DuplicateInstance(_))
    ));
    assert_eq!(
        err_text(add(&p, &[inst("c1", "rack-a", 100)], NOW, &opts())),
        "cannot form shard sets: 1 instances is not a multiple of the replication factor 2; add whole shard sets, \
         or use replace to swap single instances"
    );
    assert_eq!(
        err_text(add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-a", 100)], NOW, &opts())),
        "cannot form shard sets: replication factor 2 needs 2 isolation groups, instances span 1; add whole shard \
         sets, or use replace to swap single instances"
    );
    assert_eq!(
        err_text(add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 50)], NOW, &opts())),
        "cannot form shard sets: the instances of weight 50 number 1, not a multiple of the replication factor 2 \
         (the instances of a shard set must have equal weight); add whole shard sets, or use replace to swap single \
         instances"
    );
    let tiny = init(2, 1, &[inst("a", "g", 1), inst("b", "g", 1)]).unwrap();
    assert!(
        err_text(add(&tiny, &[inst("c", "g", 1)], NOW, &opts())).starts_with("2 shards are too few for 3 shard sets")
    );
}

#[test]
fn remove_hands_a_whole_set_over_and_keeps_it_until_cleanup() {
    let p = two_sets();
    let p = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let mut p2 = p.clone();
    cleanup(&mut p2, FAR_FUTURE, Duration::ZERO);
    let now = NOW + 60 * MIN;
    let t = opts().cutover(now);
    let q = remove(&p2, &ids(&["c2", "c1"]), now, &opts()).unwrap();
    validate(&q).unwrap();
    assert_eq!(q.cutover_time, t);
    let sets = owned_by_set(&q);
    assert_eq!(sets.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(sets.values().map(BTreeSet::len).collect::<Vec<_>>(), [32, 32]);
    let c1 = q.instance("c1").unwrap();
    assert!(c1.is_leaving());
    assert_eq!(c1.shards.len(), 21);
    for s in &c1.shards {
        assert_eq!((s.state, s.cutoff_nanos), (ShardState::Leaving, t));
        let receiver = q.owners_of(s.id).owners;
        assert_eq!(receiver.len(), 2);
        for r in receiver {
            let rs = r.shard(s.id).unwrap();
            assert_eq!((rs.state, rs.cutover_nanos), (ShardState::Initializing, t));
            assert_eq!(rs.source_id, if r.isolation_group == "rack-a" { "c1" } else { "c2" });
        }
    }
    // The removed set keeps its shard set id (and its election) until its shards are cut off.
    assert_eq!(q.shard_sets()[&3].len(), 2);
    let mut q = q;
    assert!(cleanup(&mut q, t + MIN, Duration::from_secs(60)));
    assert!(q.instance("c1").is_none() && q.instance("c2").is_none());
    validate(&q).unwrap();
    assert_eq!(q.max_shard_set_id, 3, "shard set ids are not reused");
}

#[test]
fn remove_refusals_say_why() {
    let p = two_sets();
    assert_eq!(err_text(remove(&p, &[], NOW, &opts())), "no instance ids given");
    assert_eq!(
        err_text(remove(&p, &ids(&["a1"]), NOW, &opts())),
        "instance a1 shares shard set 1 with b1, which is not being removed; remove whole shard sets, or use \
         replace to swap a single instance"
    );
    assert_eq!(
        err_text(remove(&p, &ids(&["a1", "b1", "a2", "b2"]), NOW, &opts())),
        "removing every shard set would leave no instance to own the 64 shards"
    );
    assert_eq!(err_text(remove(&p, &ids(&["zz"]), NOW, &opts())), "instance zz is not in the placement");
    assert!(matches!(remove(&p, &ids(&["zz"]), NOW, &opts()), Err(PlacementError::UnknownInstance(_))));
    assert_eq!(err_text(remove(&p, &ids(&["a1", "a1"]), NOW, &opts())), "instance a1 is listed twice");
    let q = remove(&p, &ids(&["a2", "b2"]), NOW, &opts()).unwrap();
    assert_eq!(err_text(remove(&q, &ids(&["a2", "b2"]), NOW, &opts())), "instance a2 is already leaving the placement");
    // Quotas 1.82, 1.82, 0.18, 0.18 are fine; without "m" the big set's floor of 3.33 plus one
    // shard for each light set needs 5.
    let four = init(4, 1, &[inst("big", "g", 10), inst("m", "g", 10), inst("t1", "g", 1), inst("t2", "g", 1)]).unwrap();
    assert!(err_text(remove(&four, &ids(&["m"]), NOW, &opts())).starts_with("4 shards are too few for 3 shard sets"));
}

#[test]
fn replace_swaps_one_instance_within_its_set() {
    let p = two_sets();
    let t = opts().cutover(NOW);
    let mut c = inst("a1-new", "rack-a", 100);
    c.endpoint = "10.0.0.9:6000".into();
    let q = replace(&p, &ids(&["a1"]), &[c], NOW, &opts()).unwrap();
    validate(&q).unwrap();
    assert_eq!(q.cutover_time, t);
    let new = q.instance("a1-new").unwrap();
    assert_eq!(new.shard_set_id, 1);
    assert_eq!(new.endpoint, "10.0.0.9:6000");
    assert_eq!(new.shards.len(), 32);
    for s in &new.shards {
        assert_eq!((s.state, s.cutover_nanos, s.source_id.as_str()), (ShardState::Initializing, t, "a1"));
    }
    let old = q.instance("a1").unwrap();
    assert!(old.is_leaving());
    assert!(old.shards.iter().all(|s| s.cutoff_nanos == t));
    assert_eq!(q.shard_sets()[&1].len(), 3);
    assert_eq!(q.instance("b1").unwrap(), p.instance("b1").unwrap());
    let mut q = q;
    cleanup(&mut q, FAR_FUTURE, Duration::ZERO);
    assert!(q.instance("a1").is_none());
    assert!(q.instance("a1-new").unwrap().shards.iter().all(|s| s.state == ShardState::Available));
    validate(&q).unwrap();
}

#[test]
fn replace_refusals_say_why() {
    let p = two_sets();
    let c = |id: &str, group: &str, w: u32| vec![inst(id, group, w)];
    assert_eq!(err_text(replace(&p, &[], &[], NOW, &opts())), "no leaving instance ids given");
    assert_eq!(
        err_text(replace(&p, &ids(&["a1", "b1"]), &c("n", "rack-a", 100), NOW, &opts())),
        "2 leaving instances but 1 candidates; replace pairs them one to one"
    );
    assert_eq!(
        err_text(replace(&p, &ids(&["zz"]), &c("n", "rack-a", 100), NOW, &opts())),
        "instance zz is not in the placement"
    );
    assert_eq!(
        err_text(replace(&p, &ids(&["a1"]), &c("b2", "rack-a", 100), NOW, &opts())),
        "instance b2 is already in the placement"
    );
    assert_eq!(
        err_text(replace(&p, &ids(&["a1"]), &c("n", "rack-a", 0), NOW, &opts())),
        "instance n has weight 0; weights must be at least 1"
    );
    assert_eq!(
        err_text(replace(&p, &ids(&["a1"]), &c("n", "rack-a", 200), NOW, &opts())),
        "candidate n has weight 200 but a1, which it replaces in shard set 1, has weight 100; the instances of a \
         shard set must have equal weight"
    );
    assert_eq!(
        err_text(replace(&p, &ids(&["a1"]), &c("n", "rack-b", 100), NOW, &opts())),
        "shard set 1 would hold n and b1 both in isolation group \"rack-b\"; the instances of a shard set must be \
         in distinct isolation groups"
    );
    // Both members at once, into new isolation groups, is fine.
    let q = replace(&p, &ids(&["a1", "b1"]), &[inst("x", "rack-x", 100), inst("y", "rack-y", 100)], NOW, &opts());
    validate(&q.unwrap()).unwrap();
    let q = replace(&p, &ids(&["a1"]), &c("n", "rack-a", 100), NOW, &opts()).unwrap();
    assert_eq!(
        err_text(replace(&q, &ids(&["a1"]), &c("m", "rack-a", 100), NOW, &opts())),
        "instance a1 is already leaving the placement"
    );
}

#[test]
fn a_shard_moving_back_is_owned_again_not_restaged() {
    // Add set 2, then remove it before cleanup: its shards go back to set 1, which still holds
    // them as LEAVING and simply owns them again.
    let p = init(8, 1, &[inst("a", "g", 1)]).unwrap();
    let q = add(&p, &[inst("b", "g", 1)], NOW, &opts()).unwrap();
    assert_eq!(q.instance("b").unwrap().shards.len(), 4);
    let r = remove(&q, &ids(&["b"]), NOW + MIN, &opts()).unwrap();
    validate(&r).unwrap();
    let a = r.instance("a").unwrap();
    assert_eq!(a.shards, (0..8).map(Shard::available).collect::<Vec<_>>());
    let b = r.instance("b").unwrap();
    assert!(b.is_leaving());
    let t2 = opts().cutover(NOW + MIN);
    assert!(b.shards.iter().all(|s| s.cutover_nanos == opts().cutover(NOW) && s.cutoff_nanos == t2));
}

#[test]
fn a_shorter_warmup_never_cuts_over_before_a_pending_cutover() {
    let p = init(4, 1, &[inst("a", "g", 1)]).unwrap();
    let long = Options::new(Duration::from_secs(3600));
    let q = add(&p, &[inst("b", "g", 1)], NOW, &long).unwrap();
    let t_long = long.cutover(NOW);
    let short = Options::new(Duration::ZERO);
    let r = replace(&q, &ids(&["b"]), &[inst("c", "g", 1)], NOW, &short).unwrap();
    validate(&r).unwrap();
    for s in &r.instance("c").unwrap().shards {
        assert_eq!(s.cutover_nanos, t_long);
        assert_eq!(r.instance("b").unwrap().shard(s.id).unwrap().cutoff_nanos, t_long);
    }
}

#[test]
fn accessors() {
    let p = two_sets();
    assert!(p.instance("nope").is_none());
    let a1 = p.instance("a1").unwrap();
    assert_eq!(a1.shard(5), Some(&Shard::available(5)));
    assert_eq!(a1.shard(40), None);
    let o = p.owners_of(40);
    assert_eq!(o.owners.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a2", "b2"]);
    assert!(o.leaving.is_empty());
    assert!(p.owners_of(64).owners.is_empty());
    let mut s = Shard::available(1);
    assert_eq!(s.cutoff(), i64::MAX);
    assert!(s.is_active_at(0) && s.is_active_at(i64::MAX - 1) && !s.is_active_at(-1));
    assert_eq!(s.cutover(), 0);
    s.cutover_nanos = 10;
    s.cutoff_nanos = 20;
    assert!(!s.is_active_at(9) && s.is_active_at(10) && s.is_active_at(19) && !s.is_active_at(20));
    assert_eq!(ShardState::Leaving.as_str(), "LEAVING");
}

#[test]
fn validate_catches_broken_placements() {
    let base = two_sets();
    let check = |f: &dyn Fn(&mut Placement), want: &str| {
        let mut p = base.clone();
        f(&mut p);
        assert_eq!(err_text(validate(&p)), format!("invalid placement: {want}"));
    };
    check(
        &|p| p.instances.get_mut("a1").unwrap().shards.retain(|s| s.id != 3),
        "instances a1 and b1 of shard set 1 own different shards",
    );
    check(
        &|p| {
            for id in ["a1", "b1"] {
                p.instances.get_mut(id).unwrap().shards.retain(|s| s.id != 3);
            }
        },
        "shard 3 has no owner",
    );
    check(
        &|p| {
            for id in ["a2", "b2"] {
                p.instances.get_mut(id).unwrap().put_shard(Shard::available(3));
            }
        },
        "shard 3 is owned by shard sets 1 and 2",
    );
    check(
        &|p| p.instances.get_mut("a1").unwrap().shards.push(Shard::available(64)),
        "instance a1 holds shard 64, but the placement has 64 shards",
    );
    check(
        &|p| p.instances.get_mut("a1").unwrap().shards.insert(1, Shard::available(0)),
        "instance a1 lists shard 0 twice or out of order",
    );
    check(
        &|p| p.instances.get_mut("b1").unwrap().isolation_group = "rack-a".into(),
        "shard set 1 has a1 and b1 both in isolation group \"rack-a\"",
    );
    check(&|p| p.instances.get_mut("b1").unwrap().weight = 7, "shard set 1 mixes weights 100 (a1) and 7 (b1)");
    check(
        &|p| p.instances.get_mut("b1").unwrap().shard_set_id = 3,
        "instance b1 has shard set id 3, outside 1..=2 (max_shard_set_id)",
    );
    check(
        &|p| {
            p.instances.remove("b1");
        },
        "shard set 1 has 1 active instances (a1), the replication factor is 2",
    );
    check(
        &|p| {
            let i = p.instances.remove("b1").unwrap();
            p.instances.insert("x".into(), i);
        },
        "instance \"b1\" is stored under the key \"x\"",
    );
    check(&|p| p.num_shards = 0, "num_shards must be at least 1");
}

const INIT_EXAMPLE: &str = r#"{"num_shards":64,"replication_factor":2,"instances":[
    {"id":"a:6000","isolation_group":"rack-a","zone":"embedded","weight":100,"endpoint":"127.0.0.1:6000",
     "hostname":"a","port":6000},
    {"id":"b:6000","isolation_group":"rack-b","zone":"embedded","weight":100,"endpoint":"127.0.0.1:6001",
     "hostname":"b","port":6001}
  ],"option_override":{"foo":1}}"#;

#[test]
fn json_init_example_round_trips() {
    let req: InitRequest = json::parse_request(INIT_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(req.num_shards, 64);
    assert_eq!(req.replication_factor, 2);
    assert_eq!(req.instances[0].endpoint, "127.0.0.1:6000");
    let p = req.apply().unwrap();
    let resp = to_response_json(&p, 7);
    assert_eq!(resp["version"], 7);
    let pl = &resp["placement"];
    assert_eq!(pl["replicaFactor"], 2);
    assert_eq!(pl["numShards"], 64);
    assert_eq!(pl["isSharded"], true);
    assert_eq!(pl["isMirrored"], true);
    assert_eq!(pl["cutoverTime"], "0");
    assert_eq!(pl["maxShardSetId"], 1);
    let a = &pl["instances"]["a:6000"];
    assert_eq!(a["id"], "a:6000");
    assert_eq!(a["isolationGroup"], "rack-a");
    assert_eq!(a["zone"], "embedded");
    assert_eq!(a["weight"], 100);
    assert_eq!(a["endpoint"], "127.0.0.1:6000");
    assert_eq!(a["hostname"], "a");
    assert_eq!(a["port"], 6000);
    assert_eq!(a["shardSetId"], 1);
    assert_eq!(a["shards"].as_array().unwrap().len(), 64);
    assert_eq!(
        a["shards"][0],
        json!({"id":0,"state":"AVAILABLE","sourceId":"","cutoverNanos":"0","cutoffNanos":"0","redirectToShardId":null})
    );
    assert_eq!(placement_from_json(pl).unwrap(), p);
    // Through text too, as a client would.
    let text = serde_json::to_string(&resp).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(placement_from_json(&back["placement"]).unwrap(), p);
}

#[test]
fn json_round_trips_staged_shards() {
    let p = two_sets();
    let q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let v = placement_to_json(&q);
    let t = opts().cutover(NOW);
    let s = &v["instances"]["c1"]["shards"][0];
    assert_eq!(s["state"], "INITIALIZING");
    assert_eq!(s["sourceId"], "a1");
    assert_eq!(s["cutoverNanos"], t.to_string());
    assert_eq!(v["instances"]["a1"]["shards"][31]["state"], "LEAVING");
    assert_eq!(v["instances"]["a1"]["shards"][31]["cutoffNanos"], t.to_string());
    assert_eq!(v["cutoverTime"], t.to_string());
    assert_eq!(placement_from_json(&v).unwrap(), q);
}

#[test]
fn json_requests_accept_m3coordinator_spellings() {
    let req: InitRequest = json::parse_request(
        br#"{"numShards":"8","replicationFactor":1,
             "instances":[{"id":"a","isolationGroup":"g","weight":"3","port":"9"}]}"#,
    )
    .unwrap();
    assert_eq!((req.num_shards, req.replication_factor), (8, 1));
    assert_eq!(
        req.instances[0],
        InstanceRequest { id: "a".into(), isolation_group: "g".into(), weight: 3, port: 9, ..Default::default() }
    );
    let add: AddRequest = json::parse_request(
        br#"{"instances":[{"id":"b","isolation_group":"g","weight":3,"shard_set_id":9}],"force":true}"#,
    )
    .unwrap();
    assert_eq!(add.instances()[0], Instance::new("b", "g", 3));
    let r: RemoveRequest = json::parse_request(br#"{"instance_ids":["a","b"]}"#).unwrap();
    assert_eq!(r.instance_ids, ids(&["a", "b"]));
    let r: RemoveRequest = json::parse_request(br#"{"instanceIds":["a"]}"#).unwrap();
    assert_eq!(r.instance_ids, ids(&["a"]));
    let r: ReplaceRequest = json::parse_request(
        br#"{"leavingInstanceIDs":["a"],"candidates":[{"id":"c","isolation_group":"g","weight":3}]}"#,
    )
    .unwrap();
    assert_eq!(r.leaving_instance_ids, ids(&["a"]));
    assert_eq!(r.candidates()[0].id, "c");
    let r: ReplaceRequest = json::parse_request(br#"{"leaving_instance_ids":["a"],"candidates":[]}"#).unwrap();
    assert_eq!(r.leaving_instance_ids, ids(&["a"]));
    // The whole flow through the request types.
    let p = req.apply().unwrap();
    let p = add.apply(&p, NOW, &opts()).unwrap();
    let p = ReplaceRequest {
        leaving_instance_ids: ids(&["a"]),
        candidates: vec![InstanceRequest {
            id: "c".into(),
            isolation_group: "h".into(),
            weight: 3,
            ..Default::default()
        }],
    }
    .apply(&p, NOW, &opts())
    .unwrap();
    let p = RemoveRequest { instance_ids: ids(&["b"]) }.apply(&p, NOW, &opts()).unwrap();
    validate(&p).unwrap();
    let e = json::parse_request::<InitRequest>(br#"{"num_shards":-1}"#).unwrap_err().to_string();
    assert!(e.starts_with("invalid request body: -1 is out of range"), "{e}");
    let e = json::parse_request::<InitRequest>(b"{").unwrap_err().to_string();
    assert!(e.starts_with("invalid request body: "), "{e}");
}

#[test]
fn json_placement_reading_refuses_what_proto_reading_refuses() {
    let p = two_sets();
    let mut v = placement_to_json(&p);
    v["isMirrored"] = json!(false);
    assert_eq!(
        err_text(placement_from_json(&v)),
        "unmirrored placements are not supported: sheaf runs mirrored aggregator placements only"
    );
    let mut v = placement_to_json(&p);
    v["instances"]["a1"]["shards"][0]["state"] = json!("GONE");
    assert!(err_text(placement_from_json(&v)).contains("unknown shard state \"GONE\""));
    let mut v = placement_to_json(&p);
    v["instances"]["a1"]["shards"][0]["state"] = json!(1);
    v["instances"]["a1"]["shards"][0]["cutoverNanos"] = json!(0);
    assert_eq!(placement_from_json(&v).unwrap(), p);
    v["instances"]["a1"]["shards"][0]["redirectToShardId"] = json!(5);
    assert_eq!(
        err_text(placement_from_json(&v)),
        "shard 0 of instance a1 redirects to shard 5: shard redirects are not supported"
    );
    let mut v = placement_to_json(&p);
    v["numShards"] = json!(63);
    assert_eq!(
        err_text(placement_from_json(&v)),
        "invalid placement: instance a2 holds shard 63, but the placement has 63 shards"
    );
}

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

// ---- randomized properties ----------------------------------------------------------------

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
        let receivers: Vec<&Instance> = after.owners_of(*shard).owners;
        if prev == set && receivers.iter().all(|r| before.instance(&r.id).is_some()) {
            for r in receivers {
                assert_eq!(r.shard(*shard), before.instance(&r.id).unwrap().shard(*shard), "{case}: shard {shard}");
            }
            continue;
        }
        moved += usize::from(prev != set);
        let givers: Vec<&Instance> = after.owners_of(*shard).leaving;
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
        let o = Options::new(Duration::from_secs(rng.random_range(0..600)));
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
        let o = p.owners_of(shard);
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
            let o = Options::new(Duration::from_secs([0, 60, 600, 3600][rng.random_range(0..4)]));
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
