//! What the agent knows of its shards' recovery: which are synced (their `sync_id` is the
//! leader's, as `sync_task` found), what `sync_task` needs of the agent (`SyncView`), and the
//! per-shard recovery state of `/status`. Same owner as [`AgentState`]: the agent task.

use std::collections::BTreeSet;

pub use crate::cluster::peer_recovery::RecoveryView;

use serde_json::{Value, json};

use super::AgentState;
use crate::cluster::campaign;
use crate::cluster::election::ElectionState;
use crate::cluster::flush_times::ShardSetTimes;

/// What `sync_task` needs of the agent after each step: the shard set, whether this node
/// leads it (and emits), its shards, and the flush times (the leader's own, or those followed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncView {
    pub shard_set: Option<u32>,
    pub leading: bool,
    pub shards: Vec<u32>,
    pub times: ShardSetTimes,
}

impl AgentState {
    pub fn sync_view(&self) -> SyncView {
        let leading = self.candidacy.state == ElectionState::Leader && self.candidacy.emitting;
        if leading {
            SyncView {
                shard_set: self.leader.shard_set,
                leading,
                shards: self.leader.shards.clone(),
                times: self.leader.times.clone(),
            }
        } else {
            SyncView {
                shard_set: self.placed.shard_set,
                leading,
                shards: self.placed.owned.clone(),
                times: self.follower.times.clone(),
            }
        }
    }

    /// What `sync_task` found: the shards synced with the leader since this node started (they
    /// stay so: every write since reached this node too), and those recovered from it.
    pub fn set_recovery(&mut self, view: RecoveryView) {
        self.recovery = view;
    }

    /// The shards that hold what the leader holds: synced or recovered.
    pub(super) fn caught_up(&self) -> BTreeSet<u32> {
        self.recovery.synced.union(&self.recovery.recovered).copied().collect()
    }

    /// `/status`'s `shardRecovery`: per shard of this node, `synced` (its `sync_id` is the
    /// leader's), `recovering from <leader>`, `ready` (recovered from the leader, or it has
    /// seen everything the leader has not emitted), or `waiting` (for the leader's flush times
    /// to cover the window this node started in).
    pub(super) fn shard_recovery(&self) -> Value {
        let me = self.placed.placement.as_ref().and_then(|(p, _)| p.instance(&self.settings.host_id));
        let Some(me) = me else { return json!([]) };
        let (times, r) = (&self.follower.times, &self.recovery);
        let shards: Vec<Value> = me
            .shards
            .iter()
            .map(|s| {
                let state = if r.synced.contains(&s.id) {
                    "synced".to_string()
                } else if let Some(peer) = r.recovering.get(&s.id) {
                    format!("recovering from {peer}")
                } else if r.recovered.contains(&s.id)
                    || times.0.by_shard.is_empty()
                    || campaign::shard_ready(s, times, self.settings.started_nanos)
                {
                    "ready".to_string()
                } else {
                    "waiting".to_string()
                };
                json!({"shard": s.id, "state": state})
            })
            .collect();
        shards.into()
    }

    /// `/status`'s `recovery`: how far the peer recovery this node set out on has come.
    pub(super) fn recovery_progress(&self) -> Value {
        let r = &self.recovery;
        json!({
            "toRecover": r.to_recover,
            "recovered": r.recovered.len(),
            "recovering": r.recovering.len(),
            "synced": r.synced.len(),
        })
    }
}
