//! Keeps one etcd key's latest value flowing to the control thread: read it, then watch it
//! from the next revision; on any error (etcd down, compaction) read it again after a backoff.
//! Each value read or written reaches the receiver as a [`Versioned`] (value `None`: absent).

use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;

use super::etcd::{Backoff, Store, Versioned};

/// Spawns the watcher; it ends when the receiver is dropped.
pub fn spawn(store: Store, key: String) -> mpsc::Receiver<Versioned> {
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

async fn follow(store: &Store, key: &str, tx: &mpsc::Sender<Versioned>) -> Result<(), String> {
    let current = store.get(key).await.map_err(|e| e.to_string())?;
    let mut revision = current.mod_revision;
    if tx.send(current).await.is_err() {
        return Ok(());
    }
    let mut client = store.client();
    // Start after what was just read (or anywhere, for an absent key: from "now").
    let options =
        if revision > 0 { WatchOptions::new().with_start_revision(revision + 1) } else { WatchOptions::new() };
    let mut stream = client.watch(key, Some(options)).await.map_err(|e| e.to_string())?;
    loop {
        let resp = tokio::select! {
            r = stream.message() => r.map_err(|e| e.to_string())?.ok_or("watch stream ended")?,
            _ = tx.closed() => return Ok(()),
        };
        if resp.canceled() {
            return Err("watch canceled".into());
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            if kv.mod_revision() <= revision {
                continue;
            }
            revision = kv.mod_revision();
            let value = match event.event_type() {
                EventType::Put => {
                    Versioned { value: Some(kv.value().to_vec()), mod_revision: revision, version: kv.version() }
                }
                EventType::Delete => Versioned { value: None, mod_revision: revision, version: 0 },
            };
            if tx.send(value).await.is_err() {
                return Ok(());
            }
        }
    }
}
