//! Keeps one key's latest value flowing to the node agent: read it, then watch it from the
//! revision of that read; on any error (etcd down, compaction) read it again after a backoff.
//! Each value read or changed reaches the receiver as a [`Versioned`] (value `None`: absent).
//! A tokio task on the control thread; only the agent holds the receiver.

use std::time::Duration;

use tokio::sync::mpsc;

use super::store::{Backoff, ClusterStore, StoreError, Versioned};

/// Spawns the watcher; it ends when the receiver is dropped.
pub fn spawn<S: ClusterStore>(store: S, key: String) -> mpsc::Receiver<Versioned> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if tx.is_closed() {
                return;
            }
            match follow(&store, &key, &tx).await {
                Ok(()) => return,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::debug!(%key, error = %e, ?delay, "etcd watch interrupted; reading again");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
    rx
}

/// Ok once the receiver is gone; Err when the read or the watch broke.
async fn follow<S: ClusterStore>(store: &S, key: &str, tx: &mpsc::Sender<Versioned>) -> Result<(), StoreError> {
    let current = store.get(key).await?;
    let mut revision = current.mod_revision;
    let mut changes = store.watch(key, current.read_at).await?;
    if tx.send(current).await.is_err() {
        return Ok(());
    }
    loop {
        let change = tokio::select! {
            c = changes.next() => c.ok_or(StoreError::Interrupted("the watch ended"))??,
            _ = tx.closed() => return Ok(()),
        };
        if change.mod_revision <= revision {
            continue;
        }
        revision = change.mod_revision;
        if tx.send(change).await.is_err() {
            return Ok(());
        }
    }
}
