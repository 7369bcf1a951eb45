//! The errors of the pool's public API (returned on the control thread).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a core could not start reading one of its ingest sockets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error(
        "{what} port {addr} is held by another process (joining its SO_REUSEPORT group would split its traffic with this one): {source}"
    )]
    PortTaken { what: &'static str, addr: SocketAddr, source: io::Error },
    #[error("m3msg listen on {addr}: {source}")]
    M3msg { addr: SocketAddr, source: io::Error },
    #[error("statsd tcp listen on {addr}: {source}")]
    StatsdTcp { addr: SocketAddr, source: io::Error },
    #[error("statsd udp bind on {addr}: {source}")]
    StatsdUdp { addr: SocketAddr, source: io::Error },
    #[error("statsd unix socket {}: {source}", path.display())]
    StatsdUnix { path: PathBuf, source: io::Error },
}

/// What went wrong starting, commanding or stopping the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    #[error("no cores configured")]
    NoCores,
    #[error("starting the executor for cpu {cpu}: {source}")]
    Spawn { cpu: usize, source: io::Error },
    #[error("binding ingest on core {core}: {source}")]
    Bind { core: usize, source: BindError },
    #[error("core {0} stopped answering")]
    CoreGone(usize),
}
