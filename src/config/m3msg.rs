//! The `m3msg:` section: the m3msg ingest server. Read at start, on the main thread, into the
//! settings the shard cores get; the cores read only that copy.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid, require_at_least_one};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct M3msg {
    pub server: M3msgServer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct M3msgServer {
    pub enabled: bool,
    pub listen_address: SocketAddr,
    /// Largest frame accepted, in bytes (M3's default is 4 MiB).
    pub max_frame_size: usize,
    /// Acks go out at least this often while messages arrive (M3's consumer: 200 ms).
    pub ack_interval: Dur,
    /// How long an ack may wait for the acks of later reads to join its frame; 0 sends the
    /// acks of each read right after it. Fewer, larger frames cost both ends less: on
    /// loopback each frame is a send plus the kernel's delivery of it, on the shard core.
    pub ack_delay: Dur,
    /// After a read that emptied the socket, the connection waits for the next instant on
    /// this grid (shared by every connection and core) before it reads again, so that the
    /// bytes arriving meanwhile come in one read and one wake-up of its core instead of many
    /// (TCP's flow control holds the sender meanwhile; nothing is lost); 0 reads again at once.
    pub small_read_pause: Dur,
    /// At most this many message ids per `Ack` frame (16384 ids ≈ 400 KiB, well under the
    /// 4 MiB frame limit of a stock M3 producer).
    pub max_acks_per_frame: usize,
    /// m3msg connections served at once on this node; one more is closed as soon as it is
    /// accepted (counted, `connection_limit`).
    pub max_connections: usize,
    /// A connection on which nothing arrives for this long is closed (counted,
    /// `read_timeout`; a frame it had begun is counted as rejected); 0s: never.
    pub read_timeout: Dur,
    /// Bytes each shard core may hold, over all its m3msg connections, for frames larger than
    /// the 128 KiB read buffer each connection has; a connection whose frame would go over
    /// it is closed (counted, `buffer_budget`). At least `max_frame_size`.
    pub max_buffered_bytes_per_core: usize,
}

impl Default for M3msgServer {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: ([127, 0, 0, 1], 6000).into(),
            max_frame_size: 4 << 20,
            ack_interval: Dur(Duration::from_millis(200)),
            ack_delay: Dur(Duration::from_millis(50)),
            small_read_pause: Dur(Duration::from_millis(50)),
            max_acks_per_frame: 16384,
            max_connections: 4096,
            read_timeout: Dur(Duration::from_secs(120)),
            max_buffered_bytes_per_core: 64 << 20,
        }
    }
}

impl M3msgServer {
    /// Sizes and limits are at least 1, and the buffered-bytes budget holds a largest frame.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require_at_least_one(&[
            ("m3msg.server.max_frame_size", self.max_frame_size),
            ("m3msg.server.max_acks_per_frame", self.max_acks_per_frame),
            ("m3msg.server.max_connections", self.max_connections),
        ])?;
        if self.max_buffered_bytes_per_core < self.max_frame_size {
            return Err(invalid(
                "m3msg.server.max_buffered_bytes_per_core",
                format!("must be at least max_frame_size ({})", self.max_frame_size),
            ));
        }
        Ok(())
    }
}
