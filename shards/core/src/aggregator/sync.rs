//! Idle shards and their synced-flush marker. A shard with no write for a while and no
//! window held is idle: it gets a `sync_id` (given by the runtime: generated on a leader or
//! single node, the leader's on a follower whose copy is the same) and the digest of its
//! state, goes into its checkpoint with them, and flush rounds pass it by. The next value
//! that reaches it makes it active again (`ShardSlot::touch`). Same core as
//! [`CoreAggregator`]; split from `aggregator.rs` by concept.

use super::CoreAggregator;
use crate::checkpoint::{ShardCheckpoint, state_digest};
use crate::time::UnixNanos;

/// The marker of an idle shard: its `sync_id` and the digest of the state it was given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSync {
    pub sync_id: Box<str>,
    pub digest: u64,
}

/// What a node reports of one shard it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardActivity {
    pub shard: u32,
    /// Arrival time of the last value (or of the load); 0 for none.
    pub last_write: UnixNanos,
    pub sync: Option<ShardSync>,
    pub series: usize,
    /// Windows held as of the shard's last flush or discard.
    pub windows: u64,
    /// Bytes the shard's series map has allocated.
    pub resident_bytes: usize,
}

/// Why a shard cannot be synced now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefused {
    #[error("shard not held")]
    NotHeld,
    /// Values not yet flushed: windows open or waiting for their flush.
    #[error("pending operations")]
    Pending { windows: u64 },
}

impl CoreAggregator {
    /// The shards this core holds, with their activity.
    pub fn shard_activity(&self) -> Vec<ShardActivity> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.held)
            .map(|(i, slot)| ShardActivity {
                shard: i as u32,
                last_write: slot.last_write,
                sync: slot.sync.clone(),
                series: slot.map.len(),
                windows: self.windows_held[i],
                resident_bytes: slot.map.resident_bytes(),
            })
            .collect()
    }

    /// The marker of `shard`, if it is idle.
    pub fn shard_sync(&self, shard: u32) -> Option<&ShardSync> {
        self.shards.get(shard as usize)?.sync.as_ref()
    }

    /// Held shards without a marker and without a write since `before`: those that may go idle.
    pub fn idle_candidates(&self, before: UnixNanos) -> Vec<u32> {
        let slots = self.shards.iter().enumerate();
        slots.filter(|(_, s)| s.held && s.sync.is_none() && s.last_write <= before).map(|(i, _)| i as u32).collect()
    }

    /// The shards a flush round visits at `now`: those held, but idle ones only once their
    /// series may have expired (the expiry changes the state, so the marker then goes).
    pub fn shards_to_flush(&self, now: UnixNanos) -> Vec<u32> {
        let ttl = self.options.entry_ttl;
        let slots = self.shards.iter().enumerate();
        slots
            .filter(|(_, s)| s.held && (s.sync.is_none() || now.saturating_sub(s.last_write) >= ttl))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The checkpoint of `shard` and the digest of its state, if the shard holds no window
    /// (its values all flushed); it is not marked (see `set_shard_sync`).
    pub fn sync_checkpoint(&self, shard: u32) -> Result<(ShardCheckpoint, u64), SyncRefused> {
        let ck = self.checkpoint_shard(shard).ok_or(SyncRefused::NotHeld)?;
        let windows: usize = ck.series.iter().flat_map(|s| &s.elems).map(|e| e.windows.len()).sum();
        if windows > 0 {
            return Err(SyncRefused::Pending { windows: windows as u64 });
        }
        let digest = state_digest(&ck);
        Ok((ck, digest))
    }

    /// Marks `shard` idle with `sync` (or active, with `None`).
    pub fn set_shard_sync(&mut self, shard: u32, sync: Option<ShardSync>) {
        if let Some(slot) = self.shards.get_mut(shard as usize) {
            slot.sync = sync;
        }
    }
}
