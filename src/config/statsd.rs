//! The `statsd:` section: the StatsD listeners (UDP, TCP, Unix datagram socket). Read at start,
//! on the main thread, into the settings the shard cores get; the cores read only that copy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid, require_at_least_one};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Statsd {
    pub udp: StatsdUdp,
    pub tcp: StatsdTcp,
    pub unix: StatsdUnix,
    /// Longest line accepted, in bytes.
    pub max_line_size: usize,
}

impl Default for Statsd {
    fn default() -> Self {
        Self {
            udp: StatsdUdp::default(),
            tcp: StatsdTcp::default(),
            unix: StatsdUnix::default(),
            max_line_size: 64 * 1024,
        }
    }
}

impl Statsd {
    /// `max_line_size` and `tcp.max_connections` are at least 1.
    pub(super) fn validate_sizes(&self) -> Result<(), ConfigError> {
        require_at_least_one(&[
            ("statsd.max_line_size", self.max_line_size),
            ("statsd.tcp.max_connections", self.tcp.max_connections),
        ])
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdUdp {
    pub enabled: bool,
    pub listen_address: SocketAddr,
    /// SO_RCVBUF per core's socket; capped by net.core.rmem_max unless sheaf has
    /// CAP_NET_ADMIN (root does), with which it sets the size past the cap.
    pub recv_buffer_bytes: usize,
    /// How the kernel spreads datagrams over the cores' sockets.
    pub distribute_by: UdpDistribution,
    /// After a drain that emptied the socket with fewer than 32 datagrams, the core waits up
    /// to this long before it looks again, so that the datagrams arriving meanwhile (held in
    /// the socket's buffer) come in one wake-up instead of many: the wait starts at 250 µs,
    /// doubles while the buffer stays under an eighth full and halves when it passes half;
    /// 0 looks again at once.
    pub small_read_pause: Dur,
}

/// `statsd.udp.distribute_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdpDistribution {
    /// The kernel's hash of the sender's address and port: one sender's datagrams stick to
    /// one core, so a few busy senders can leave cores idle.
    #[default]
    Flow,
    /// The core pinned to the CPU that received the datagram (the NIC queue's interrupt, or on
    /// loopback the sender's CPU); for hosts whose NIC queues are steered to the shard cores.
    Cpu,
}

impl Default for StatsdUdp {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: ([127, 0, 0, 1], 8125).into(),
            recv_buffer_bytes: 32 << 20,
            distribute_by: UdpDistribution::Flow,
            small_read_pause: Dur(Duration::from_millis(20)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdTcp {
    pub enabled: bool,
    pub listen_address: SocketAddr,
    /// After a read that returned less than half of the 64 KiB read size, the connection
    /// waits this long before reading again, so that the lines arriving meanwhile come in
    /// one read and one wake-up of its core instead of many; 0 reads again at once.
    pub small_read_pause: Dur,
    /// StatsD TCP connections served at once on this node; one more is closed as soon as it
    /// is accepted (counted, `connection_limit`).
    pub max_connections: usize,
    /// A connection on which nothing arrives for this long is closed (counted,
    /// `read_timeout`); 0s: never.
    pub read_timeout: Dur,
    /// Bytes each shard core may hold, over all its StatsD TCP connections, for lines longer
    /// than fit the 128 KiB read buffer each connection has (only with a `max_line_size`
    /// above 64 KiB); a connection whose line would go over it is closed (counted,
    /// `buffer_budget`).
    pub max_buffered_bytes_per_core: usize,
}

impl Default for StatsdTcp {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: ([127, 0, 0, 1], 8125).into(),
            small_read_pause: Dur(Duration::from_micros(500)),
            max_connections: 4096,
            read_timeout: Dur(Duration::from_secs(120)),
            max_buffered_bytes_per_core: 64 << 20,
        }
    }
}

/// `statsd.unix`: StatsD datagrams on a Unix socket (DogStatsD-style), one socket that every
/// shard core drains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdUnix {
    /// The socket's path; unset (the default) means no Unix socket. A socket file left
    /// there by an earlier run is replaced; sheaf removes the file when it stops.
    pub path: Option<PathBuf>,
    /// As `statsd.udp.small_read_pause`; skipped while `net.unix.max_dgram_qlen` is below
    /// 128 (so shallow a queue would fill during the pause).
    pub small_read_pause: Dur,
}

impl Default for StatsdUnix {
    fn default() -> Self {
        Self { path: None, small_read_pause: Dur(Duration::from_micros(500)) }
    }
}

impl StatsdUnix {
    /// A path, when given, fits a socket address.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.path {
            // sockaddr_un's sun_path is 108 bytes, with its terminating NUL.
            if path.as_os_str().is_empty() || path.as_os_str().len() > 107 {
                return Err(invalid("statsd.unix.path", "must be a path of 1 to 107 bytes"));
            }
        }
        Ok(())
    }
}
