//! Tests of the operations (init, add, remove, replace, cleanup): what each moves and stages,
//! and why each refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    FAR_FUTURE, MIN, NOW, err_text, ids, inst, minute_aligned, opts, owned_by_set, owners_of, shard_sets, two_sets,
};
use crate::cluster::placement::PlacementError;
use crate::cluster::placement::cutover::next_cutover;
use crate::cluster::placement::invariants::validate;
use crate::cluster::placement::model::{Shard, ShardState};
use crate::cluster::placement::operations::{add, cleanup, init, remove, replace};

#[test]
fn next_cutover_is_the_next_aligned_time_after_the_warmup() {
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
    let sets = shard_sets(&p);
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
    let owners = owners_of(&q, 22);
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
        let receiver = owners_of(&q, s.id).owners;
        assert_eq!(receiver.len(), 2);
        for r in receiver {
            let rs = r.shard(s.id).unwrap();
            assert_eq!((rs.state, rs.cutover_nanos), (ShardState::Initializing, t));
            assert_eq!(rs.source_id, if r.isolation_group == "rack-a" { "c1" } else { "c2" });
        }
    }
    // The removed set keeps its shard set id (and its election) until its shards are cut off.
    assert_eq!(shard_sets(&q)[&3].len(), 2);
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
    assert_eq!(shard_sets(&q)[&1].len(), 3);
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
    let long = minute_aligned(Duration::from_secs(3600));
    let q = add(&p, &[inst("b", "g", 1)], NOW, &long).unwrap();
    let t_long = long.cutover(NOW);
    let short = minute_aligned(Duration::ZERO);
    let r = replace(&q, &ids(&["b"]), &[inst("c", "g", 1)], NOW, &short).unwrap();
    validate(&r).unwrap();
    for s in &r.instance("c").unwrap().shards {
        assert_eq!(s.cutover_nanos, t_long);
        assert_eq!(r.instance("b").unwrap().shard(s.id).unwrap().cutoff_nanos, t_long);
    }
}
