//! The watcher thread of a topic sink (`sheaf-topic-N`): its own tokio current-thread runtime
//! and etcd connection, so the sink thread stays on blocking sockets and the shard cores never
//! see etcd. It reads and watches the topic, then the placement of each of its consumer
//! services, and sends the sink a new [`Routes`] each time they change. It ends once the sink
//! drops its receiver.
//!
//! A topic that disappears or stops decoding leaves the last routes in force (logged); a
//! consumer placement that is missing or unusable leaves that service without owners, so its
//! messages wait (until their TTL) for one to appear.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::routes::{self, PlacementLayout, Routes};
use super::{model, topic_key};
use crate::cluster::etcd::{Endpoints, Store};
use crate::cluster::store::{Backoff, Versioned};
use crate::cluster::watch;

/// What the watcher follows.
#[derive(Clone)]
pub struct WatchSpec {
    pub endpoints: Endpoints,
    /// The topic's environment (the cluster's etcd environment).
    pub environment: String,
    pub topic: String,
    pub layout: PlacementLayout,
}

/// Starts the watcher thread (pinned to `cpu` when given, the control thread's CPU); routes
/// arrive on the receiver, newest last.
pub fn spawn(spec: WatchSpec, name: String, cpu: Option<usize>) -> std::io::Result<flume::Receiver<Arc<Routes>>> {
    let (tx, rx) = flume::unbounded();
    std::thread::Builder::new().name(name).spawn(move || {
        if let Some(cpu) = cpu
            && let Err(e) = crate::host_checks::pin_current_thread(cpu)
        {
            tracing::warn!(cpu, error = %e, "could not pin a topic watcher thread");
        }
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "topic watcher: cannot start its runtime");
                return;
            }
        };
        runtime.block_on(follow(spec, tx));
    })?;
    Ok(rx)
}

async fn follow(spec: WatchSpec, tx: flume::Sender<Arc<Routes>>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let store = loop {
        match Store::connect(&spec.endpoints).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(topic = %spec.topic, error = %e, "topic watcher cannot reach etcd; retrying");
                if tx.is_disconnected() {
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    let key = topic_key(&spec.environment, &spec.topic);
    let mut topic_changes = watch::spawn(store.clone(), key.clone());
    let (placement_tx, mut placement_changes) = mpsc::channel::<(String, Versioned)>(64);
    let mut watched: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    let mut placements: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut topic = None;
    let mut last: Option<Routes> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            change = topic_changes.recv() => {
                let Some(change) = change else { return };
                match change.value.as_deref().map(model::decode) {
                    None => tracing::warn!(%key, "the topic is absent; keeping its last routes"),
                    Some(Err(e)) => tracing::error!(%key, error = %e, "the topic does not decode; keeping its last routes"),
                    Some(Ok(t)) => {
                        let needed = routes::placement_keys(&t, &spec.layout);
                        watched.retain(|k, task| {
                            let keep = needed.contains(k);
                            if !keep {
                                task.abort();
                                placements.remove(k);
                            }
                            keep
                        });
                        for k in needed {
                            if !watched.contains_key(&k) {
                                watched.insert(k.clone(), forward(store.clone(), k, placement_tx.clone()));
                            }
                        }
                        topic = Some(t);
                    }
                }
            }
            Some((k, change)) = placement_changes.recv() => {
                if watched.contains_key(&k) {
                    placements.insert(k, change.value);
                }
            }
            _ = tick.tick() => {
                if tx.is_disconnected() {
                    return;
                }
                continue;
            }
        }
        let Some(t) = &topic else { continue };
        let next = routes::build(t, &placements, &spec.layout);
        if last.as_ref() != Some(&next) {
            for s in &next.services {
                if let Err(why) = &s.owners {
                    tracing::warn!(topic = %next.topic, service = %s.key.name, %why, "consumer service has no owners yet");
                }
            }
            if tx.send(Arc::new(next.clone())).is_err() {
                return;
            }
            last = Some(next);
        }
    }
}

/// Follows one placement key into the watcher's channel.
fn forward(store: Store, key: String, to: mpsc::Sender<(String, Versioned)>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = watch::spawn(store, key.clone());
        while let Some(change) = changes.recv().await {
            if to.send((key.clone(), change)).await.is_err() {
                return;
            }
        }
    })
}
