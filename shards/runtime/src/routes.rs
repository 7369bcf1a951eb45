//! `Routes`: which shards this node aggregates and which peer nodes get the others (cluster
//! mode).
//!
//! Built on the control thread from the placement and handed to every core in
//! `ShardCommand::SetRoutes`, shared read-only (`Arc`); a core's routers and forwarders read
//! it, nobody writes it after it is sent.

use std::net::SocketAddr;

/// Another node values may be forwarded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its instance id in the placement.
    pub id: String,
    /// Its m3msg endpoint as the placement has it (`host:port`).
    pub endpoint: String,
    /// The endpoint resolved; None while it does not resolve (values for it are kept in its
    /// forwarder's buffer meanwhile, and the control thread keeps trying).
    pub addr: Option<SocketAddr>,
}

/// Where values of each shard go besides (or instead of) this node's cores.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// The other nodes values may be forwarded to.
    pub peers: Vec<Peer>,
    /// Index = shard id: whether this node owns the shard (aggregates it).
    pub local: Vec<bool>,
    /// Index = shard id: the other nodes (indexes into `peers`) that own the shard.
    pub remote: Vec<Vec<u16>>,
}

impl Routes {
    pub fn is_local(&self, shard: u32) -> bool {
        self.local.get(shard as usize).copied().unwrap_or(false)
    }

    pub fn remote(&self, shard: u32) -> &[u16] {
        self.remote.get(shard as usize).map_or(&[], Vec::as_slice)
    }

    /// The peers whose endpoint has not resolved.
    pub fn unresolved(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| p.addr.is_none())
    }
}
