//! What the agent knows of its shards' recovery: which are synced (their `sync_id` is the
//! leader's, as `sync_task` found), what `sync_task` needs of the agent (`SyncView`), and the
//! per-shard recovery state of `/status`. Same owner as [`AgentState`]: the agent task.

use std::collections::BTreeSet;

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

    /// The shards found synced with the leader since this node started (they stay so: every
    /// write since reached this node too).
    pub fn add_synced(&mut self, synced: &BTreeSet<u32>) {
        self.synced.extend(synced.iter().copied());
    }

    pub(super) fn synced(&self) -> &BTreeSet<u32> {
        &self.synced
    }

    /// `/status`'s `shardRecovery`: per shard of this node, `synced` (its `sync_id` is the
    /// leader's), `ready` (it has seen everything the leader has not emitted), or `waiting`
    /// (for the leader's flush times to cover the window this node started in).
    pub(super) fn shard_recovery(&self) -> Value {
        let me = self.placed.placement.as_ref().and_then(|(p, _)| p.instance(&self.settings.host_id));
        let Some(me) = me else { return json!([]) };
        let times = &self.follower.times;
        let shards: Vec<Value> = me
            .shards
            .iter()
            .map(|s| {
                let state = if self.synced.contains(&s.id) {
                    "synced"
                } else if times.0.by_shard.is_empty() || campaign::shard_ready(s, times, self.settings.started_nanos) {
                    "ready"
                } else {
                    "waiting"
                };
                json!({"shard": s.id, "state": state})
            })
            .collect();
        shards.into()
    }
}
