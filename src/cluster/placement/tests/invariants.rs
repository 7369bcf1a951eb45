//! Tests of the placement's accessors, and of the invariant checker: each broken placement is
//! refused with what is wrong.

use super::{err_text, two_sets};
use crate::cluster::placement::invariants::validate;
use crate::cluster::placement::model::{Placement, Shard};

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

#[test]
fn accessors() {
    let p = two_sets();
    assert!(p.instance("nope").is_none());
    let a1 = p.instance("a1").unwrap();
    assert_eq!(a1.shard(5), Some(&Shard::available(5)));
    assert_eq!(a1.shard(40), None);
    let mut s = Shard::available(1);
    assert_eq!(s.cutoff(), i64::MAX);
    assert_eq!(s.cutover(), 0);
    s.cutover_nanos = 10;
    s.cutoff_nanos = 20;
    assert_eq!((s.cutover(), s.cutoff()), (10, 20));
}
