//! Peer recovery (follower, control thread, driven by `sync_task`): a replica that starts as
//! a follower recovers every shard that is not synced with the leader from the leader's
//! checkpoint of it (whether it restarted, is new, or replaces another instance: what it
//! missed, only the leader has). Per shard: it notes `from` (it receives every value of
//! the shard from now on), waits until the windows before the cut after `from` have ended
//! (plus half the flush delay, for values in flight), fetches the leader's checkpoint over
//! the admin API (`GET /api/v1/shards/{id}/checkpoint`, with the admin token), and has the
//! owning core merge it at the cut (`ShardCommand::RecoverShard`): the leader's windows
//! before the cut, its own from it, so that no value counts twice. Once merged the shard can
//! lead. A failed fetch is tried again a second later (from the leader of the moment).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sheaf_shard_core::checkpoint::cut_of;
use sheaf_shard_runtime::{Commander, ShardCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sync_ids::SyncRecord;

/// Largest checkpoint a fetch takes.
const MAX_FILE: u64 = 4 << 30;
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY_NANOS: i64 = 1_000_000_000;

/// Where each shard to recover stands; shared with the agent for `/status` and `canLead`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryView {
    /// Shards whose `sync_id` is the leader's (they hold the same state).
    pub synced: BTreeSet<u32>,
    /// Shards merged with the leader's checkpoint.
    pub recovered: BTreeSet<u32>,
    /// Shards being recovered, and from whom.
    pub recovering: BTreeMap<u32, String>,
    /// Shards this node set out to recover at start.
    pub to_recover: usize,
}

#[derive(Debug, Clone)]
struct Pending {
    from: i64,
    /// Not before this (the windows before the cut have ended).
    at: i64,
}

pub(crate) struct PeerRecovery {
    pub(crate) token: Option<String>,
    pub(crate) owners: Arc<[u16]>,
    pub(crate) cores: Commander,
    /// Half the flush delay: how long values may still be in flight after a window ends.
    pub(crate) margin_nanos: i64,
    started: bool,
    pending: BTreeMap<u32, Pending>,
}

impl PeerRecovery {
    pub(crate) fn new(token: Option<String>, owners: Arc<[u16]>, cores: Commander, flush_delay: Duration) -> Self {
        let margin_nanos = (flush_delay / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)).as_nanos() as i64;
        Self { token, owners, cores, margin_nanos, started: false, pending: BTreeMap::new() }
    }

    /// Follower, every tick: decides once (leader known) which shards to recover, then
    /// recovers each once its cut allows. `resolutions`: those the cores aggregate.
    pub(crate) async fn step(
        &mut self,
        shards: &[u32],
        record: &SyncRecord,
        resolutions: &[i64],
        view: &mut RecoveryView,
        now: i64,
    ) {
        let Some(peer) = record.admin.clone() else { return };
        if !self.started {
            self.started = true;
            let at = resolutions.iter().map(|&r| cut_of(r, now)).max().unwrap_or(now) + self.margin_nanos;
            for &shard in shards.iter().filter(|s| !view.synced.contains(s)) {
                self.pending.insert(shard, Pending { from: now, at });
            }
            view.to_recover = self.pending.len();
            tracing::info!(shards = self.pending.len(), leader = %record.leader, "recovering the shards not synced from the leader");
        }
        let due: Vec<u32> = self.pending.iter().filter(|(_, p)| p.at <= now).map(|(s, _)| *s).collect();
        for shard in self.pending.keys() {
            view.recovering.insert(*shard, record.leader.clone());
        }
        for shard in due {
            let Some(p) = self.pending.get(&shard).cloned() else { continue };
            if view.synced.contains(&shard) {
                self.pending.remove(&shard);
                view.recovering.remove(&shard);
                continue;
            }
            match self.recover(shard, &peer, p.from).await {
                Ok(series) => {
                    tracing::info!(shard, series, leader = %record.leader, "shard recovered from the leader");
                    self.pending.remove(&shard);
                    view.recovering.remove(&shard);
                    view.recovered.insert(shard);
                }
                Err(e) => {
                    tracing::warn!(shard, leader = %record.leader, error = %e, "shard recovery failed; trying again");
                    if let Some(p) = self.pending.get_mut(&shard) {
                        p.at = now + RETRY_NANOS;
                    }
                }
            }
        }
    }

    /// This node leads now: what was not recovered stays as it is (there is no one to recover
    /// it from).
    pub(crate) fn abandon(&mut self, view: &mut RecoveryView) {
        self.started = true;
        if !self.pending.is_empty() {
            let shards: Vec<u32> = self.pending.keys().copied().collect();
            tracing::warn!(?shards, "leading before these shards were recovered from the old leader");
            self.pending.clear();
        }
        view.recovering.clear();
    }

    /// Fetches the leader's checkpoint of `shard` and has its core merge it.
    async fn recover(&self, shard: u32, peer: &str, from: i64) -> Result<usize, String> {
        let file = fetch(peer, &format!("/api/v1/shards/{shard}/checkpoint"), self.token.as_deref()).await?;
        let core = self.owners.get(shard as usize).copied().ok_or("no such shard")?;
        let (reply, rx) = flume::bounded(1);
        let cmd = ShardCommand::RecoverShard { shard, file: Arc::new(file), from, reply };
        if !self.cores.send_to(usize::from(core), cmd) {
            return Err("core gone".into());
        }
        rx.recv_async().await.map_err(|_| "core gone".to_string())?
    }
}

/// `GET path` on a peer's admin API (plain HTTP/1.0); the body of a 200.
async fn fetch(peer: &str, path: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(peer).await.map_err(|e| e.to_string())?;
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {peer}\r\n{auth}\r\n");
        s.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.take(MAX_FILE).read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    };
    let out = tokio::time::timeout(FETCH_TIMEOUT, get).await.map_err(|_| "timed out".to_string())??;
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP response")?;
    let head = String::from_utf8_lossy(&out[..head_end]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let body = String::from_utf8_lossy(&out[head_end + 4..]);
        return Err(format!("{peer} answered {status}: {body}"));
    }
    Ok(out[head_end + 4..].to_vec())
}
