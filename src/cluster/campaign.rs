//! When a node takes part in its shard set's election, and whether it could lead now. Pure
//! functions of the placement, the shard set's flush times and the clock; the node agent
//! (control thread) re-evaluates them at every check and placement change.
//!
//! Campaign gating follows m3aggregator's election manager:
//! - on while any of its shards is active (`cutover ≤ now < cutoff − 30s`), or it owns none;
//! - off (resigning if it leads) when it is not in the placement, when none of its shards has
//!   cut over yet, or when all are cut off and either the flush times have reached every cutoff
//!   or another instance of the set takes its shards over at that cutoff (a replace);
//! - otherwise unchanged.
//!
//! `can_lead` is stricter than m3's (its issue 2824): it is judged per shard, and a shard that
//! was cut over to this node before the node started counts only once the leader's flush times
//! cover the window the node started in.

use super::flush_times::ShardSetTimes;
use std::collections::BTreeSet;

use super::placement::{Instance, Placement, Shard, ShardState};

/// Shards stop counting as active this long before their cutoff, as in m3.
const CUTOFF_MARGIN_NANOS: i64 = 30_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Campaign {
    /// Campaign (start if not running).
    On,
    /// Leave the election (resign first if leading), for the reason given.
    Off(&'static str),
    /// Keep whatever is running.
    Keep,
}

/// Whether `host_id` should campaign in its shard set's election at `now`.
pub fn decide(placement: &Placement, host_id: &str, flushed: &ShardSetTimes, now: i64) -> Campaign {
    let Some(me) = placement.instance(host_id) else { return Campaign::Off("not in the placement") };
    if me.shards.is_empty() {
        return Campaign::On;
    }
    if me.shards.iter().any(|s| s.cutover() <= now && now < s.cutoff().saturating_sub(CUTOFF_MARGIN_NANOS)) {
        return Campaign::On;
    }
    if me.shards.iter().all(|s| s.cutover() > now) {
        return Campaign::Off("no shard has cut over yet");
    }
    if me.shards.iter().all(|s| s.cutoff() <= now) {
        let flushed_to_cutoff =
            me.shards.iter().all(|s| oldest_flushed(flushed, s.id).is_some_and(|t| t >= s.cutoff()));
        if flushed_to_cutoff {
            return Campaign::Off("every shard is cut off and flushed");
        }
        if is_replaced(placement, me) {
            return Campaign::Off("every shard is cut off and handed to a replacement");
        }
    }
    Campaign::Keep
}

/// A replacement: another instance of the same shard set whose shards are all initializing
/// with cutover at `me`'s cutoff.
fn is_replaced(placement: &Placement, me: &Instance) -> bool {
    let cutoff = me.shards.iter().map(|s| s.cutoff()).max();
    placement.instances.values().any(|i| {
        i.id != me.id
            && i.shard_set_id == me.shard_set_id
            && !i.shards.is_empty()
            && i.shards.iter().all(|s| s.state == ShardState::Initializing && Some(s.cutover()) == cutoff)
    })
}

/// The oldest standard flush time of `shard` over its resolutions (None: never flushed).
fn oldest_flushed(flushed: &ShardSetTimes, shard: u32) -> Option<i64> {
    let times = flushed.0.by_shard.get(&shard).filter(|t| !t.tombstoned)?;
    times.standard_by_resolution.values().min().copied()
}

/// Whether `me` holds in memory everything its shard set's leader has not emitted yet, so that
/// leading now would lose nothing: every shard is [`shard_ready`] or `synced` (its `sync_id`
/// is the leader's: it holds the same state). No flush times at all (a new cluster) counts as
/// covered, as in m3 (#4169).
pub fn can_lead(me: &Instance, flushed: &ShardSetTimes, started_nanos: i64, synced: &BTreeSet<u32>) -> bool {
    if flushed.0.by_shard.is_empty() {
        return true;
    }
    me.shards.iter().all(|s| synced.contains(&s.id) || shard_ready(s, flushed, started_nanos))
}

/// Whether this node holds everything of `s` the leader has not emitted: either it cut over to
/// this node after the node started (it has seen every write from then on), or the leader's
/// flush times cover the window the node started in, at every resolution.
pub fn shard_ready(s: &Shard, flushed: &ShardSetTimes, started_nanos: i64) -> bool {
    if s.cutover() >= started_nanos {
        return true;
    }
    let Some(times) = flushed.0.by_shard.get(&s.id).filter(|t| !t.tombstoned) else { return false };
    !times.standard_by_resolution.is_empty()
        && times.standard_by_resolution.iter().all(|(&resolution, &t)| {
            let window_end = if resolution > 0 {
                started_nanos.div_euclid(resolution).saturating_add(1).saturating_mul(resolution)
            } else {
                started_nanos
            };
            t >= window_end
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const T: i64 = 1_000 * 60 * S;

    fn placement(shards: Vec<Shard>, extra: Option<Instance>) -> Placement {
        let mut me = Instance::new("me", "a", 100);
        me.shard_set_id = 1;
        me.shards = shards;
        let mut p = Placement {
            num_shards: 4,
            replication_factor: 2,
            instances: Default::default(),
            max_shard_set_id: 2,
            cutover_time: 0,
        };
        p.instances.insert(me.id.clone(), me);
        if let Some(i) = extra {
            p.instances.insert(i.id.clone(), i);
        }
        p
    }

    fn shard(id: u32, state: ShardState, cutover: i64, cutoff: i64) -> Shard {
        Shard { id, state, source_id: String::new(), cutover_nanos: cutover, cutoff_nanos: cutoff }
    }

    fn flushed(shard: u32, resolution: i64, t: i64) -> ShardSetTimes {
        let mut times = ShardSetTimes::default();
        times.advance(shard, resolution, t, i64::MIN);
        times
    }

    #[test]
    fn gating_follows_the_shards_cutover_and_cutoff() {
        let none = ShardSetTimes::default();
        let p = placement(vec![shard(0, ShardState::Available, 0, 0)], None);
        assert_eq!(decide(&p, "me", &none, T), Campaign::On);
        assert_eq!(decide(&p, "stranger", &none, T), Campaign::Off("not in the placement"));
        assert_eq!(decide(&placement(vec![], None), "me", &none, T), Campaign::On);
        // A new shard set before its cutover stays out of the election.
        let new = placement(vec![shard(0, ShardState::Initializing, T + 10 * S, 0)], None);
        assert!(matches!(decide(&new, "me", &none, T), Campaign::Off(_)));
        assert_eq!(decide(&new, "me", &none, T + 10 * S), Campaign::On);
        // A leaving one: on until 30s before the cutoff, then unchanged until flushed past it.
        let leaving = placement(vec![shard(0, ShardState::Leaving, 0, T)], None);
        assert_eq!(decide(&leaving, "me", &none, T - 31 * S), Campaign::On);
        assert_eq!(decide(&leaving, "me", &none, T - 29 * S), Campaign::Keep);
        assert_eq!(decide(&leaving, "me", &flushed(0, S, T - S), T + S), Campaign::Keep);
        assert!(matches!(decide(&leaving, "me", &flushed(0, S, T), T + S), Campaign::Off(_)));
    }

    #[test]
    fn a_replaced_instance_leaves_once_cut_off() {
        let mut new = Instance::new("new", "a", 100);
        new.shard_set_id = 1;
        new.shards = vec![shard(0, ShardState::Initializing, T, 0)];
        let p = placement(vec![shard(0, ShardState::Leaving, 0, T)], Some(new.clone()));
        let none = ShardSetTimes::default();
        assert_eq!(decide(&p, "me", &none, T - S), Campaign::Keep);
        assert!(matches!(decide(&p, "me", &none, T), Campaign::Off(_)));
        // Another set taking the shard over is not a replacement.
        new.shard_set_id = 2;
        let p = placement(vec![shard(0, ShardState::Leaving, 0, T)], Some(new));
        assert_eq!(decide(&p, "me", &none, T), Campaign::Keep);
    }

    #[test]
    fn can_lead_is_judged_per_shard() {
        let started = T + 5 * S;
        let none = BTreeSet::new();
        let mut me = Instance::new("me", "a", 100);
        me.shards = vec![shard(0, ShardState::Available, 0, 0), shard(1, ShardState::Initializing, T + 60 * S, 0)];
        assert!(can_lead(&me, &ShardSetTimes::default(), started, &none));
        // Shard 0 existed before the start: the window holding `started` must be flushed.
        assert!(!can_lead(&me, &flushed(0, 10 * S, T), started, &none));
        assert!(can_lead(&me, &flushed(0, 10 * S, T + 10 * S), started, &none));
        // Shard 1 cut over after the start: nothing needed for it. Moved in before the start
        // (#2824): it needs flush times too.
        me.shards[1].cutover_nanos = T;
        assert!(!can_lead(&me, &flushed(0, 10 * S, T + 10 * S), started, &none));
        let mut both = flushed(0, 10 * S, T + 10 * S);
        both.advance(1, 10 * S, T + 10 * S, i64::MIN);
        assert!(can_lead(&me, &both, started, &none));
        // A shard whose sync_id is the leader's holds what the leader holds: ready at once.
        let only_zero = flushed(0, 10 * S, T + 10 * S);
        assert!(!can_lead(&me, &only_zero, started, &none));
        assert!(can_lead(&me, &only_zero, started, &[1].into()));
        assert!(can_lead(&me, &flushed(0, 10 * S, T), started, &[0, 1].into()));
    }
}
