//! One etcd election per shard set (m3's `_ld/{env}/{service}/shardset/{id}/lock`): the
//! candidate value is this node's instance id, bound to a lease with the configured TTL.
//!
//! States: `Leader` (won, lease alive), `Follower` (another member of the shard set leads),
//! `PendingFollower` (campaigning, the leader not yet confirmed as a member of this shard
//! set). A leader whose lease it cannot renew for a TTL steps down at once: etcd has let the
//! lease (and the leadership) go by then, and two emitting leaders must not overlap.
//! Runs as a task on the control thread over any [`ClusterStore`]; the node agent (same
//! thread) reads the state and the observed leader from watch channels and sends it requests.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::store::{Backoff, ClusterStore, LeaseId, StoreError};
use crate::config::ElectionConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ElectionState {
    Leader,
    Follower,
    PendingFollower,
}

/// What the node agent holds of a running election.
pub struct Election {
    pub state: watch::Receiver<ElectionState>,
    /// The current leader's instance id, as last observed.
    pub leader: watch::Receiver<Option<String>>,
    requests: mpsc::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

/// A request to the campaign task: give leadership up (and campaign again after
/// `recampaign_delay`), or leave the election for good.
struct Stop {
    done: oneshot::Sender<()>,
    for_good: bool,
}

impl Election {
    /// Starts campaigning for `name` as `host_id`; `members` is the shard set's instance ids
    /// in the current placement.
    pub fn start<S: ClusterStore>(
        store: S,
        name: String,
        host_id: String,
        config: ElectionConfig,
        members: watch::Receiver<Vec<String>>,
    ) -> Self {
        let (state_tx, state) = watch::channel(ElectionState::PendingFollower);
        let (leader_tx, leader) = watch::channel(None);
        let (requests, requests_rx) = mpsc::channel(4);
        let task = tokio::spawn(
            Campaign { store, name, host_id, config, members, state: state_tx, leader: leader_tx }.run(requests_rx),
        );
        Self { state, leader, requests, task }
    }

    /// Gives leadership up (if held) and returns once this node is no longer leader.
    pub async fn resign(&self) {
        self.request(false).await;
    }

    /// Leaves the election: a held leadership is resigned and the lease revoked, so neither
    /// the lock nor a queued candidacy outlives this node's place in the shard set (a stale
    /// candidate key would be handed the lock and leave the set without an emitting leader).
    pub async fn stop(self) {
        let stopped = tokio::time::timeout(Duration::from_secs(5), self.request(true)).await;
        if stopped.is_err() {
            tracing::warn!("the election did not stop in time; its lease expires after the TTL");
        }
        self.task.abort();
    }

    async fn request(&self, for_good: bool) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Stop { done, for_good }).await.is_ok() {
            let _ = wait.await;
        }
    }
}

struct Campaign<S> {
    store: S,
    name: String,
    host_id: String,
    config: ElectionConfig,
    members: watch::Receiver<Vec<String>>,
    state: watch::Sender<ElectionState>,
    leader: watch::Sender<Option<String>>,
}

enum Outcome {
    LeaseLost,
    /// Resigned (or left the election, `for_good`); the lease is revoked by then.
    Resigned(Stop),
    Error(StoreError),
}

impl<S: ClusterStore> Campaign<S> {
    async fn run(mut self, mut requests: mpsc::Receiver<Stop>) {
        let mut backoff = Backoff::new(self.config.campaign_initial_backoff.0, self.config.campaign_max_backoff.0);
        loop {
            self.set(ElectionState::PendingFollower);
            let outcome = self.one_term(&mut requests).await;
            let pause = match outcome {
                Outcome::LeaseLost => {
                    tracing::warn!(election = %self.name, "election lease lost; campaigning again");
                    backoff.reset();
                    Duration::ZERO
                }
                Outcome::Resigned(stop) => {
                    self.set(ElectionState::PendingFollower);
                    let _ = stop.done.send(());
                    if stop.for_good {
                        return;
                    }
                    // Let another replica win before campaigning again.
                    backoff.reset();
                    self.config.recampaign_delay.0
                }
                Outcome::Error(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(election = %self.name, error = %e, ?delay, "election error; retrying");
                    delay
                }
            };
            // Answer requests meanwhile; nothing is held now, so leaving is immediate.
            let until = tokio::time::Instant::now() + pause;
            while let Ok(Some(stop)) = tokio::time::timeout_at(until, requests.recv()).await {
                let _ = stop.done.send(());
                if stop.for_good {
                    return;
                }
            }
        }
    }

    fn set(&self, state: ElectionState) {
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// One lease: campaign until elected, lead until the lease is lost or we resign.
    async fn one_term(&mut self, requests: &mut mpsc::Receiver<Stop>) -> Outcome {
        let lease = match self.store.grant_lease(self.config.ttl.0).await {
            Ok(l) => l,
            Err(e) => return Outcome::Error(e),
        };
        let (lost_tx, mut lost) = oneshot::channel();
        // Stops renewing when this term ends, however it ends (the task aborted included).
        let keeper = AbortOnDrop(tokio::spawn(keep_alive(self.store.clone(), lease, self.config.ttl.0, lost_tx)));
        let outcome = self.campaign_and_lead(lease, requests, &mut lost).await;
        drop(keeper);
        if !matches!(outcome, Outcome::LeaseLost) {
            // Let the candidate key go now rather than after a TTL.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.store.revoke_lease(lease)).await;
        }
        outcome
    }

    async fn campaign_and_lead(
        &mut self,
        lease: LeaseId,
        requests: &mut mpsc::Receiver<Stop>,
        lost: &mut oneshot::Receiver<()>,
    ) -> Outcome {
        let (store, name, host_id) = (self.store.clone(), self.name.clone(), self.host_id.clone());
        let campaign = async move { store.campaign(&name, &host_id, lease).await };
        tokio::pin!(campaign);
        // At least twice per TTL, and at most once a second.
        let mut observe = tokio::time::interval((self.config.ttl.0 / 2).min(Duration::from_secs(1)));
        let leadership = loop {
            tokio::select! {
                won = &mut campaign => match won {
                    Ok(leadership) => break leadership,
                    Err(e) => return Outcome::Error(e),
                },
                _ = &mut *lost => return Outcome::LeaseLost,
                Some(stop) = requests.recv() => {
                    // Not leading: a resign has nothing to give up; leaving withdraws the candidacy.
                    if stop.for_good {
                        return Outcome::Resigned(stop);
                    }
                    let _ = stop.done.send(());
                }
                _ = observe.tick() => self.observe_leader().await,
            }
        };
        self.leader.send_replace(Some(self.host_id.clone()));
        self.set(ElectionState::Leader);
        tracing::info!(election = %self.name, "elected leader");
        tokio::select! {
            _ = &mut *lost => {
                self.set(ElectionState::PendingFollower);
                Outcome::LeaseLost
            }
            Some(stop) = requests.recv() => {
                self.set(ElectionState::PendingFollower);
                let resigned = tokio::time::timeout(self.config.resign_timeout.0, self.store.resign(leadership)).await;
                if !matches!(resigned, Ok(Ok(_))) {
                    tracing::warn!(election = %self.name, "resign did not reach etcd; revoking the lease");
                }
                tracing::info!(election = %self.name, "resigned");
                Outcome::Resigned(stop)
            }
        }
    }

    /// While campaigning: a leader that is another member of this shard set makes us a
    /// follower; anything else (no leader, a stranger) leaves us pending.
    async fn observe_leader(&self) {
        let leader = match tokio::time::timeout(Duration::from_secs(2), self.store.leader(&self.name)).await {
            Ok(Ok(leader)) => leader,
            _ => None,
        };
        let confirmed = leader.as_ref().is_some_and(|l| *l != self.host_id && self.members.borrow().contains(l));
        self.leader.send_replace(leader);
        self.set(if confirmed { ElectionState::Follower } else { ElectionState::PendingFollower });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews `lease` every TTL/3; signals `lost` once no renewal succeeded for a whole TTL, or
/// the store says the lease is gone.
async fn keep_alive<S: ClusterStore>(store: S, lease: LeaseId, ttl: Duration, lost: oneshot::Sender<()>) {
    let mut last_ok = Instant::now();
    let every = (ttl / 3).max(Duration::from_millis(200));
    loop {
        if last_ok.elapsed() >= ttl {
            let _ = lost.send(());
            return;
        }
        match tokio::time::timeout(every, store.renew_lease(lease)).await {
            Ok(Ok(true)) => last_ok = Instant::now(),
            Ok(Ok(false)) => {
                // The store has already let the lease go.
                let _ = lost.send(());
                return;
            }
            _ => {}
        }
        tokio::time::sleep(every).await;
    }
}
