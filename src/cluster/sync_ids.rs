//! The `sync_id`s of a shard set's idle shards in etcd, beside its flush times: the leader
//! writes `_kv/{env}/sheaf/shardset/{id}/sync` (JSON, M3's `ShardSetFlushTimes` untouched);
//! a follower reads it, hands its cores the markers whose flush times it has followed (an
//! identical copy adopts them), and counts a shard whose own marker equals the leader's as
//! synced: it holds what the leader holds, so it can lead at once. Pure; the task that reads
//! and writes is `sync_task.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sheaf_shard_runtime::{LeaderSyncs, ShardSync};

use super::flush_times::ShardSetTimes;

/// One idle shard as the leader published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEntry {
    pub sync_id: String,
    /// The digest of the shard's state (series, windows, transformation states).
    pub digest: u64,
    /// The leader's standard flush times of the shard when it went idle (resolution → end).
    pub flush: BTreeMap<i64, i64>,
}

/// The value of the sync key: who leads, where its admin API answers (peer recovery), and
/// shard id → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    #[serde(default)]
    pub leader: String,
    #[serde(default)]
    pub admin: Option<String>,
    pub shards: BTreeMap<u32, SyncEntry>,
}

impl SyncRecord {
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The leader's record: each of `shards` that its cores hold idle (`synced`), with the
    /// flush times it had when it went idle (kept from `previous` while the marker is the same,
    /// so that the record changes only when a marker does).
    pub fn of_leader(
        previous: &Self,
        shards: &[u32],
        synced: &BTreeMap<u32, ShardSync>,
        times: &ShardSetTimes,
        (leader, admin): (&str, Option<&str>),
    ) -> Self {
        let mut out = Self { leader: leader.to_string(), admin: admin.map(str::to_string), ..Self::default() };
        for shard in shards {
            let Some(sync) = synced.get(shard) else { continue };
            let entry = match previous.shards.get(shard) {
                Some(e) if *e.sync_id == *sync.sync_id => e.clone(),
                _ => SyncEntry {
                    sync_id: sync.sync_id.to_string(),
                    digest: sync.digest,
                    flush: times
                        .0
                        .by_shard
                        .get(shard)
                        .map(|t| t.standard_by_resolution.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                },
            };
            out.shards.insert(*shard, entry);
        }
        out
    }

    /// A follower's view: the markers of the shards whose flush times (as the follower has
    /// followed them) have reached the entry's, for its cores to adopt.
    pub fn for_follower(&self, followed: &ShardSetTimes) -> LeaderSyncs {
        let mut out = LeaderSyncs::default();
        for (shard, e) in &self.shards {
            let times = followed.0.by_shard.get(shard).filter(|t| !t.tombstoned);
            let reached = e.flush.iter().all(|(r, end)| {
                times.and_then(|t| t.standard_by_resolution.get(r)).is_some_and(|followed| followed >= end)
            });
            if reached {
                out.0.insert(*shard, ShardSync { sync_id: e.sync_id.as_str().into(), digest: e.digest });
            }
        }
        out
    }

    /// The shards whose marker on this node (`mine`) is the leader's.
    pub fn synced_here(&self, mine: &BTreeMap<u32, ShardSync>) -> BTreeSet<u32> {
        let same = |(shard, e): (&u32, &SyncEntry)| mine.get(shard).is_some_and(|m| *m.sync_id == *e.sync_id);
        self.shards.iter().filter(|&kv| same(kv)).map(|(s, _)| *s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(id: &str, digest: u64) -> ShardSync {
        ShardSync { sync_id: id.into(), digest }
    }

    #[test]
    fn the_leader_keeps_an_entry_while_its_marker_stays_and_the_follower_waits_for_its_flush_times() {
        let mut times = ShardSetTimes::default();
        times.advance(1, 10, 100, i64::MIN);
        let synced: BTreeMap<u32, ShardSync> = [(1, sync("a", 7)), (5, sync("b", 8))].into();
        let first = SyncRecord::of_leader(&SyncRecord::default(), &[1, 2], &synced, &times, ("a", None));
        assert_eq!(first.shards.keys().copied().collect::<Vec<_>>(), vec![1], "only the leader's own shards");
        assert_eq!(first.shards[&1].flush, [(10, 100)].into());
        times.advance(1, 10, 200, i64::MIN);
        assert_eq!(
            SyncRecord::of_leader(&first, &[1, 2], &synced, &times, ("a", None)),
            first,
            "times moving do not rewrite it"
        );
        let back = SyncRecord::decode(&first.encode()).unwrap();
        assert_eq!(back, first);
        let mut followed = ShardSetTimes::default();
        assert!(back.for_follower(&followed).0.is_empty(), "not yet followed that far");
        followed.advance(1, 10, 100, i64::MIN);
        assert_eq!(back.for_follower(&followed).0[&1], sync("a", 7));
        let mine: BTreeMap<u32, ShardSync> = [(1, sync("a", 7))].into();
        assert_eq!(back.synced_here(&mine), [1].into());
        let differs: BTreeMap<u32, ShardSync> = [(1, sync("c", 7))].into();
        assert!(back.synced_here(&differs).is_empty());
    }
}
