//! What a placement means for this node: each shard's cutover/cutoff window on the cores, the
//! routes (which shards are aggregated here, which are forwarded to which peer), the shards it
//! owns and the members of its shard set. Pure functions of the placement and the config (but
//! [`resolve`], the DNS lookups of peer endpoints); the node agent (control thread) calls them
//! at each placement and sends the results to the cores.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sheaf_shard_core::ShardWindow;
use sheaf_shard_runtime::{Peer, Routes};

use super::placement::{Instance, Placement};
use crate::config::ClusterConfig;

/// What the placement assigns this node.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    pub windows: Arc<[ShardWindow]>,
    pub routes: Routes,
    /// Its shard set (None: not in the placement).
    pub shard_set: Option<u32>,
    /// Every shard it holds, leaving ones included.
    pub owned: Vec<u32>,
    /// The instance ids of its shard set, itself included.
    pub members: Vec<String>,
}

impl Assignment {
    pub fn of(p: &Placement, config: &ClusterConfig, host_id: &str, num_shards: u32) -> Self {
        let me = p.instance(host_id);
        let members = match me {
            Some(m) => {
                p.instances.values().filter(|i| i.shard_set_id == m.shard_set_id).map(|i| i.id.clone()).collect()
            }
            None => Vec::new(),
        };
        Self {
            windows: shard_windows(config, num_shards, me),
            routes: routes(p, host_id, num_shards),
            shard_set: me.map(|m| m.shard_set_id),
            owned: me.map(|m| m.shards.iter().map(|s| s.id).collect()).unwrap_or_default(),
            members,
        }
    }
}

/// Before the first placement: no shard is written or emitted, and none is closed (the
/// checkpoints loaded at start wait for the placement).
pub fn before_placement(num_shards: u32) -> Arc<[ShardWindow]> {
    (0..num_shards).map(|_| ShardWindow::PENDING).collect()
}

/// Per shard: closed unless `me` holds it; else writable from `buffer_before_cutover` before
/// its cutover to `buffer_after_cutoff` after its cutoff (0 meaning since always / never).
fn shard_windows(config: &ClusterConfig, num_shards: u32, me: Option<&Instance>) -> Arc<[ShardWindow]> {
    let before = config.buffer_before_cutover.0.as_nanos() as i64;
    let after = config.buffer_after_cutoff.0.as_nanos() as i64;
    (0..num_shards)
        .map(|id| match me.and_then(|m| m.shard(id)) {
            None => ShardWindow::CLOSED,
            Some(s) => {
                let cutover = if s.cutover_nanos == 0 { i64::MIN } else { s.cutover_nanos };
                let cutoff = if s.cutoff_nanos == 0 { i64::MAX } else { s.cutoff_nanos };
                ShardWindow {
                    accept_from: cutover.saturating_sub(before),
                    accept_until: cutoff.saturating_add(after),
                    cutover,
                    cutoff,
                }
            }
        })
        .collect()
}

/// Local: the shards `host_id` holds. Remote: for each shard, every other instance holding
/// it. An endpoint that is an IP address and port is used as it is; a host name is left for
/// the agent to resolve ([`resolve`]), its peer without an address meanwhile.
fn routes(p: &Placement, host_id: &str, num_shards: u32) -> Routes {
    let mut peers: Vec<Peer> = Vec::new();
    let mut peer_index = HashMap::new();
    for i in p.instances.values().filter(|i| i.id != host_id) {
        peer_index.insert(i.id.clone(), peers.len() as u16);
        peers.push(Peer { id: i.id.clone(), endpoint: i.endpoint.clone(), addr: i.endpoint.parse().ok() });
    }
    let mut local = vec![false; num_shards as usize];
    let mut remote = vec![Vec::new(); num_shards as usize];
    for i in p.instances.values() {
        for s in &i.shards {
            let Some(slot) = local.get_mut(s.id as usize) else { continue };
            if i.id == host_id {
                *slot = true;
            } else if let Some(&peer) = peer_index.get(&i.id) {
                remote[s.id as usize].push(peer);
            }
        }
    }
    Routes { peers, local, remote }
}

/// Resolves the endpoints of `routes`' peers that have no address, all at once, for at most
/// `timeout`; returns the routes with every address found filled in, or None if none was.
pub async fn resolve(routes: &Routes, timeout: Duration) -> Option<Routes> {
    let mut lookups = tokio::task::JoinSet::new();
    for (index, peer) in routes.peers.iter().enumerate().filter(|(_, p)| p.addr.is_none()) {
        let endpoint = peer.endpoint.clone();
        lookups.spawn(async move { (index, tokio::net::lookup_host(endpoint).await) });
    }
    let mut found = routes.clone();
    let mut any = false;
    let collect = async {
        while let Some(Ok((index, lookup))) = lookups.join_next().await {
            let peer = &mut found.peers[index];
            match lookup {
                Ok(mut addrs) => peer.addr = addrs.next(),
                Err(e) => {
                    tracing::debug!(instance = %peer.id, endpoint = %peer.endpoint, error = %e, "peer endpoint does not resolve")
                }
            }
            if let Some(addr) = peer.addr {
                any = true;
                tracing::info!(instance = %peer.id, endpoint = %peer.endpoint, %addr, "peer endpoint resolved");
            }
        }
    };
    // Lookups still running at the deadline are dropped with the set; they count as failed.
    let _ = tokio::time::timeout(timeout, collect).await;
    any.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, endpoint: &str) -> Peer {
        Peer { id: id.into(), endpoint: endpoint.into(), addr: endpoint.parse().ok() }
    }

    #[tokio::test]
    async fn resolve_fills_in_what_resolves_and_leaves_the_rest_for_the_next_try() {
        let routes = Routes {
            peers: vec![
                peer("ip", "127.0.0.1:9001"),
                peer("name", "localhost:9002"),
                peer("ghost", "nosuchhost.invalid:1"),
            ],
            local: vec![true],
            remote: vec![vec![0, 1, 2]],
        };
        assert_eq!(routes.unresolved().count(), 2, "an IP endpoint needs no lookup");
        let found = resolve(&routes, Duration::from_secs(5)).await.expect("localhost resolves");
        assert_eq!(found.peers[1].addr.map(|a| a.port()), Some(9002));
        let left: Vec<&str> = found.unresolved().map(|p| p.id.as_str()).collect();
        assert_eq!(left, ["ghost"]);
        assert!(resolve(&found, Duration::from_secs(5)).await.is_none(), "nothing more resolves");
    }
}
