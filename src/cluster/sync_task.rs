//! The task that keeps a shard set's `sync_id`s in etcd and this node's cores in step with
//! them (control thread, beside the agent). Every quarter second: the leader writes its idle
//! shards' markers when they change (`sync_ids::SyncRecord`); a follower reads them, sends its
//! cores those whose flush times it has followed (`SetLeaderSyncs`: an identical copy takes
//! the leader's marker), and tells the agent which of its shards carry the leader's marker:
//! those are synced, and can lead at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sheaf_shard_runtime::{Commander, LeaderSyncs, ShardCommand, ShardSync};
use tokio::sync::watch;

use super::etcd::{Keys, Store};
use super::state::SyncView;
use super::store::ClusterStore;
use super::sync_ids::SyncRecord;

const INTERVAL: Duration = Duration::from_millis(250);

pub(crate) struct SyncTask {
    pub store: watch::Receiver<Option<Store>>,
    pub keys: Keys,
    pub cores: Commander,
    pub view: watch::Receiver<SyncView>,
    /// The shards found synced with the leader (the agent adds them to its own set).
    pub synced: Arc<watch::Sender<BTreeSet<u32>>>,
}

impl SyncTask {
    pub(crate) async fn run(self) {
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
            let mine: BTreeMap<u32, ShardSync> =
                stats.into_iter().flatten().filter_map(|s| Some((s.activity.shard, s.activity.sync?))).collect();
            if view.leading {
                let record = SyncRecord::of_leader(&last, &view.shards, &mine, &view.times);
                // A leader that lost its lease meanwhile leaves the key to its successor.
                if written.as_ref() != Some(&record) && self.view.borrow().leading {
                    match store.put(&key, record.encode()).await {
                        Ok(()) => written = Some(record.clone()),
                        Err(e) => tracing::warn!(error = %e, "sync_ids not written"),
                    }
                }
                last = record;
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
            let here = record.synced_here(&mine);
            self.synced.send_if_modified(|s| {
                let before = s.len();
                s.extend(here);
                s.len() != before
            });
        }
    }
}
