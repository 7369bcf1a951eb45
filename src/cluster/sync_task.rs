//! The task that keeps a shard set's `sync_id`s in etcd and this node's cores in step with
//! them (control thread, beside the agent). Every quarter second: the leader writes its idle
//! shards' markers when they change (`sync_ids::SyncRecord`); a follower reads them, sends its
//! cores those whose flush times it has followed (`SetLeaderSyncs`: an identical copy takes
//! the leader's marker), tells the agent which of its shards carry the leader's marker (those
//! are synced, and can lead at once), and recovers the others from the leader
//! (`peer_recovery`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sheaf_shard_runtime::{Commander, LeaderSyncs, ShardCommand, ShardSync};
use tokio::sync::watch;

use super::etcd::{Keys, Store};
use super::peer_recovery::{PeerRecovery, RecoveryView};
use super::state::SyncView;
use super::store::ClusterStore;
use super::sync_ids::SyncRecord;

const INTERVAL: Duration = Duration::from_millis(250);

pub(crate) struct SyncTask {
    pub store: watch::Receiver<Option<Store>>,
    pub keys: Keys,
    pub cores: Commander,
    pub view: watch::Receiver<SyncView>,
    /// The shards synced with the leader or recovered from it (for the agent).
    pub recovery_view: Arc<watch::Sender<RecoveryView>>,
    /// This node's host id and admin address, written in the record while it leads.
    pub host_id: String,
    pub admin: Option<String>,
    pub recovery: PeerRecovery,
    /// True once the cores have loaded their checkpoints (recovery waits for it).
    pub loaded: watch::Receiver<bool>,
}

impl SyncTask {
    pub(crate) async fn run(mut self) {
        let mut written: Option<SyncRecord> = None;
        let mut last = SyncRecord::default();
        let mut sent = LeaderSyncs::default();
        loop {
            tokio::time::sleep(INTERVAL).await;
            let Some(store) = self.store.borrow().clone() else { continue };
            let view = self.view.borrow().clone();
            let Some(set) = view.shard_set else { continue };
            let key = self.keys.sync_ids(set);
            let stats = self.cores.collect_all(|reply| ShardCommand::ShardStats { reply }).await;
            let stats: Vec<_> = stats.into_iter().flatten().collect();
            let mut resolutions: Vec<i64> = stats.iter().flat_map(|s| s.flushed.iter().map(|f| f.0)).collect();
            resolutions.sort_unstable();
            resolutions.dedup();
            let mine: BTreeMap<u32, ShardSync> =
                stats.into_iter().filter_map(|s| Some((s.activity.shard, s.activity.sync?))).collect();
            if view.leading {
                let me = (self.host_id.as_str(), self.admin.as_deref());
                let record = SyncRecord::of_leader(&last, &view.shards, &mine, &view.times, me);
                // A leader that lost its lease meanwhile leaves the key to its successor.
                if written.as_ref() != Some(&record) && self.view.borrow().leading {
                    match store.put(&key, record.encode()).await {
                        Ok(()) => written = Some(record.clone()),
                        Err(e) => tracing::warn!(error = %e, "sync_ids not written"),
                    }
                }
                last = record;
                let mut recovery = self.recovery_view.borrow().clone();
                self.recovery.abandon(&mut recovery);
                self.recovery_view.send_if_modified(|v| {
                    let changed = *v != recovery;
                    *v = recovery;
                    changed
                });
                continue;
            }
            (written, last) = (None, SyncRecord::default());
            let record = match store.get(&key).await {
                Ok(v) => match v.value.as_deref().map(SyncRecord::decode).transpose() {
                    Ok(r) => r.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(error = %e, "sync_ids in etcd cannot be read");
                        continue;
                    }
                },
                Err(_) => continue,
            };
            let syncs = record.for_follower(&view.times);
            if syncs != sent {
                let shared = Arc::new(syncs.clone());
                self.cores.send_all(|| ShardCommand::SetLeaderSyncs(shared.clone()));
                sent = syncs;
            }
            let mut recovery = self.recovery_view.borrow().clone();
            recovery.synced.extend(record.synced_here(&mine));
            let now = sheaf_shard_core::time::now_nanos();
            if !*self.loaded.borrow() {
                continue;
            }
            self.recovery.step(&view.shards, &record, &resolutions, &mut recovery, now).await;
            self.recovery_view.send_if_modified(|v| {
                let changed = *v != recovery;
                *v = recovery;
                changed
            });
        }
    }
}
