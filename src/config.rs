//! The YAML config of `sheaf run --config FILE`. Keys follow m3aggregator's config (in
//! snake_case) where the concept is the same; `tuning/config-template.yaml` documents each.
//! Unknown keys and invalid values are refused at start with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sheaf_shard_core::StoragePolicy;
use sheaf_shard_core::policy::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// A duration written as `10s`, `5m`, `250ms`, `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let nanos = parse_duration(&s).map_err(serde::de::Error::custom)?;
        if nanos < 0 {
            return Err(serde::de::Error::custom(format!("negative duration {s:?}")));
        }
        Ok(Dur(Duration::from_nanos(nanos as u64)))
    }
}

/// `cores: all` or `cores: [0, 1, 5]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    #[default]
    All,
    List(Vec<usize>),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<usize>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Cores::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("expected `all` or a list of cpu ids, got {w:?}"))),
            Raw::List(l) => Ok(Cores::List(l)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub logging: Logging,
    /// CPUs that run a shard executor each: `all` or a list of CPU ids.
    pub cores: Cores,
    /// Pin each executor to its CPU. Off, the list only sets how many executors run.
    pub pin_cores: bool,
    /// CPU for the control thread and the sink threads (unset: they float).
    pub control_cpu: Option<usize>,
    /// Aggregation shards: `murmur3_32(id) % num_shards`.
    pub num_shards: u32,
    pub http: Http,
    pub m3msg: M3msg,
    pub statsd: Statsd,
    pub aggregator: Aggregator,
    pub data_plane: DataPlane,
    /// This node's instance id in the placement (M3's `hostID`); when unset, read from the
    /// environment variable named by `host_id_env`.
    pub host_id: Option<String>,
    pub host_id_env: String,
    /// Cluster mode on etcd; absent: the embedded single node.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            logging: Logging::default(),
            cores: Cores::All,
            pin_cores: true,
            control_cpu: None,
            num_shards: 64,
            http: Http::default(),
            m3msg: M3msg::default(),
            statsd: Statsd::default(),
            aggregator: Aggregator::default(),
            data_plane: DataPlane::default(),
            host_id: None,
            host_id_env: "SHEAF_HOST_ID".into(),
            cluster: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `sheaf=debug`.
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Admin API: `/health`, `/status`, `/metrics`.
    pub listen_address: SocketAddr,
}

impl Default for Http {
    fn default() -> Self {
        Self { listen_address: ([127, 0, 0, 1], 6001).into() }
    }
}

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
    /// After a read that returned less than half of the 64 KiB read size, the connection
    /// waits this long before reading again, so that the bytes arriving meanwhile come in
    /// one read and one wake-up of its core instead of many; 0 reads again at once.
    pub small_read_pause: Dur,
    /// At most this many message ids per `Ack` frame (16384 ids ≈ 400 KiB, well under the
    /// 4 MiB frame limit of a stock M3 producer).
    pub max_acks_per_frame: usize,
}

impl Default for M3msgServer {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: ([127, 0, 0, 1], 6000).into(),
            max_frame_size: 4 << 20,
            ack_interval: Dur(Duration::from_millis(200)),
            ack_delay: Dur(Duration::from_millis(5)),
            small_read_pause: Dur(Duration::from_micros(500)),
            max_acks_per_frame: 16384,
        }
    }
}

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
    /// After a drain that emptied the socket with fewer than 32 datagrams, the core waits
    /// this long before it looks again, so that the datagrams arriving meanwhile (held in
    /// the socket's buffer) come in one wake-up instead of many; 0 looks again at once.
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
            small_read_pause: Dur(Duration::from_micros(500)),
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
}

impl Default for StatsdTcp {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: ([127, 0, 0, 1], 8125).into(),
            small_read_pause: Dur(Duration::from_micros(500)),
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aggregator {
    pub metric_prefix: String,
    pub counter_prefix: String,
    pub timer_prefix: String,
    pub gauge_prefix: String,
    /// Policies applied to every untimed metric whose metadata names none.
    pub default_storage_policies: Vec<String>,
    pub discard_nan_aggregated_values: bool,
    pub buffer_duration_for_future_timed_metric: Dur,
    pub buffer_duration_for_past_timed_metric: Dur,
    /// A series with no write and no open window for this long is forgotten.
    pub entry_ttl: Dur,
    pub flush_manager: FlushManager,
    pub flush: Flush,
    /// At shutdown, also emit windows that have not ended yet (a single node has no
    /// replica to emit them later).
    pub shutdown_flush_open_windows: bool,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self {
            metric_prefix: String::new(),
            counter_prefix: String::new(),
            timer_prefix: String::new(),
            gauge_prefix: String::new(),
            default_storage_policies: vec!["10s:2d".into()],
            discard_nan_aggregated_values: true,
            buffer_duration_for_future_timed_metric: Dur(Duration::from_secs(60)),
            buffer_duration_for_past_timed_metric: Dur(Duration::from_secs(60)),
            entry_ttl: Dur(Duration::from_secs(3600)),
            flush_manager: FlushManager::default(),
            flush: Flush::default(),
            shutdown_flush_open_windows: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushManager {
    pub jitter_enabled: bool,
    /// First row with flush_interval ≥ the resolution gives the offset's upper bound.
    pub max_jitters: Vec<MaxJitter>,
}

impl Default for FlushManager {
    fn default() -> Self {
        let row = |secs, pct| MaxJitter { flush_interval: Dur(Duration::from_secs(secs)), max_jitter_percent: pct };
        Self {
            jitter_enabled: true,
            max_jitters: vec![row(5, 1.0), row(10, 0.5), row(60, 0.5), row(600, 0.5), row(3600, 0.25)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxJitter {
    pub flush_interval: Dur,
    pub max_jitter_percent: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flush {
    pub handlers: Vec<Handler>,
}

impl Default for Flush {
    fn default() -> Self {
        Self { handlers: vec![Handler::Json(JsonHandler::default())] }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Handler {
    /// One JSON object per aggregated value, one per line.
    Json(JsonHandler),
    /// `AggregatedMetric` over m3msg to a TCP endpoint, kept until acknowledged.
    M3msg(M3msgHandler),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonHandler {
    /// `-` for stdout, else a file appended to.
    pub path: String,
}

impl Default for JsonHandler {
    fn default() -> Self {
        Self { path: "-".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct M3msgHandler {
    pub endpoint: String,
    /// A message not acknowledged within this time is dropped and counted.
    pub message_ttl: Dur,
    /// An unacknowledged message is sent again after this long.
    pub retry_interval: Dur,
    /// Messages held unacknowledged at most; beyond, new values are dropped and counted.
    pub max_buffered_messages: usize,
    /// Shards of the output topic: message shard = murmur3(id) % num_shards.
    pub num_shards: u32,
    /// How long shutdown waits for outstanding acks.
    pub drain_timeout: Dur,
}

impl Default for M3msgHandler {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            message_ttl: Dur(Duration::from_secs(300)),
            retry_interval: Dur(Duration::from_secs(5)),
            max_buffered_messages: 1 << 20,
            num_shards: 64,
            drain_timeout: Dur(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPlane {
    /// Values per cross-core batch before it is sent mid-read.
    pub handoff_batch_values: usize,
    /// Batches in flight per pair of cores; full means the sender stops reading. Each pair
    /// can hold twice this many (queued, and emptied on their way back) of ~90 KB each.
    pub handoff_queue_batches: usize,
    /// How long UDP values for another core may wait to fill a batch before they are handed
    /// off (0s: after every burst).
    pub handoff_linger: Dur,
    /// Values per batch handed from a flush to the sinks.
    pub flush_batch_values: usize,
    /// Batches queued per sink.
    pub sink_queue_batches: usize,
    /// How long a flush waits on a full sink before dropping (counted).
    pub sink_enqueue_timeout: Dur,
    /// How long shutdown waits for the sinks to write out what is queued.
    pub sink_drain_timeout: Dur,
    /// How often each core publishes its stats.
    pub stats_interval: Dur,
    /// How long an idle shard core spins before it sleeps (0s: sleep at once).
    pub spin_before_park: Dur,
    /// Bytes of io_uring registered (locked) buffer memory per shard core (glommio's
    /// `io_memory`, whose own default is 10 MiB). sheaf does no file I/O through it, and
    /// socket reads fall back to ordinary buffers, so a small pool saves resident memory and
    /// RLIMIT_MEMLOCK. glommio rounds it up to at least 64 KiB.
    pub io_memory_bytes: usize,
}

impl Default for DataPlane {
    fn default() -> Self {
        Self {
            handoff_batch_values: 1024,
            handoff_queue_batches: 64,
            handoff_linger: Dur(Duration::from_millis(1)),
            flush_batch_values: 4096,
            sink_queue_batches: 4096,
            sink_enqueue_timeout: Dur(Duration::from_secs(5)),
            sink_drain_timeout: Dur(Duration::from_secs(30)),
            stats_interval: Dur(Duration::from_millis(500)),
            spin_before_park: Dur(Duration::ZERO),
            io_memory_bytes: 1 << 20,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?
        };
        config.validate()?;
        Ok(config)
    }

    /// The instance id: `host_id`, else the variable `host_id_env` names.
    pub fn resolved_host_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = &self.host_id {
            return Ok(id.clone());
        }
        match std::env::var(&self.host_id_env) {
            Ok(id) if !id.is_empty() => Ok(id),
            _ => Err(invalid("host_id", format!("not set, and ${} is empty or unset", self.host_id_env))),
        }
    }

    /// Checks what serde cannot: ranges, policies, cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cluster) = &self.cluster {
            self.resolved_host_id()?;
            if cluster.etcd.endpoints.is_empty() {
                return Err(invalid("cluster.etcd.endpoints", "needs at least one endpoint"));
            }
            if cluster.election.ttl.0 < Duration::from_secs(1) {
                return Err(invalid("cluster.election.ttl", "must be at least 1s"));
            }
        }
        if self.num_shards == 0 || self.num_shards > u32::from(u16::MAX) {
            return Err(invalid("num_shards", "must be between 1 and 65535"));
        }
        if let Cores::List(l) = &self.cores {
            if l.is_empty() {
                return Err(invalid("cores", "must name at least one cpu, or be `all`"));
            }
            let mut sorted = l.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != l.len() {
                return Err(invalid("cores", "lists a cpu twice"));
            }
        }
        if let Some(c) = self.control_cpu
            && !online_cpus().contains(&c)
        {
            return Err(invalid("control_cpu", format!("cpu {c} is not available to this process")));
        }
        self.storage_policies()?;
        for (i, row) in self.aggregator.flush_manager.max_jitters.iter().enumerate() {
            if !(0.0..=1.0).contains(&row.max_jitter_percent) {
                return Err(invalid(
                    format!("aggregator.flush_manager.max_jitters[{i}].max_jitter_percent"),
                    "must be between 0.0 and 1.0",
                ));
            }
        }
        if self.aggregator.flush.handlers.is_empty() {
            return Err(invalid("aggregator.flush.handlers", "needs at least one handler"));
        }
        for (i, h) in self.aggregator.flush.handlers.iter().enumerate() {
            if let Handler::M3msg(m) = h {
                let key = format!("aggregator.flush.handlers[{i}].m3msg");
                if m.endpoint.is_empty() {
                    return Err(invalid(format!("{key}.endpoint"), "is required (host:port)"));
                }
                if m.num_shards == 0 {
                    return Err(invalid(format!("{key}.num_shards"), "must be at least 1"));
                }
                if m.max_buffered_messages == 0 {
                    return Err(invalid(format!("{key}.max_buffered_messages"), "must be at least 1"));
                }
                for (field, d) in [("message_ttl", m.message_ttl), ("retry_interval", m.retry_interval)] {
                    if d.0.is_zero() {
                        return Err(invalid(format!("{key}.{field}"), "must be longer than 0s"));
                    }
                }
            }
        }
        if self.data_plane.stats_interval.0.is_zero() {
            return Err(invalid("data_plane.stats_interval", "must be longer than 0s"));
        }
        let dp = &self.data_plane;
        for (key, v) in [
            ("data_plane.handoff_batch_values", dp.handoff_batch_values),
            ("data_plane.handoff_queue_batches", dp.handoff_queue_batches),
            ("data_plane.flush_batch_values", dp.flush_batch_values),
            ("data_plane.sink_queue_batches", dp.sink_queue_batches),
            ("statsd.max_line_size", self.statsd.max_line_size),
            ("m3msg.server.max_frame_size", self.m3msg.server.max_frame_size),
            ("m3msg.server.max_acks_per_frame", self.m3msg.server.max_acks_per_frame),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if let Some(path) = &self.statsd.unix.path {
            // sockaddr_un's sun_path is 108 bytes, with its terminating NUL.
            if path.as_os_str().is_empty() || path.as_os_str().len() > 107 {
                return Err(invalid("statsd.unix.path", "must be a path of 1 to 107 bytes"));
            }
        }
        Ok(())
    }

    pub fn storage_policies(&self) -> Result<Vec<StoragePolicy>, ConfigError> {
        let policies = &self.aggregator.default_storage_policies;
        if policies.is_empty() {
            return Err(invalid("aggregator.default_storage_policies", "needs at least one policy, e.g. 10s:2d"));
        }
        let mut out = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            let policy: StoragePolicy = p.parse().map_err(|e: sheaf_shard_core::PolicyError| {
                invalid(format!("aggregator.default_storage_policies[{i}]"), e.to_string())
            })?;
            if out.contains(&policy) {
                return Err(invalid(
                    format!("aggregator.default_storage_policies[{i}]"),
                    format!("{p} is listed twice"),
                ));
            }
            out.push(policy);
        }
        Ok(out)
    }

    /// The CPU ids that run shard executors.
    pub fn cpus(&self) -> Result<Vec<usize>, ConfigError> {
        let online = online_cpus();
        match &self.cores {
            Cores::All => Ok(online),
            Cores::List(l) => {
                if self.pin_cores
                    && let Some(cpu) = l.iter().find(|c| !online.contains(c))
                {
                    return Err(invalid(
                        "cores",
                        format!(
                            "cpu {cpu} is not available to this process (available: {online:?}); set pin_cores: false to run unpinned"
                        ),
                    ));
                }
                Ok(l.clone())
            }
        }
    }
}

/// CPUs this process may run on (its affinity mask).
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills; size matches the type.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; `set` is valid for writes of its own size.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: CPU_ISSET only reads the mask filled above.
    (0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_embedded_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.num_shards, 64);
        assert_eq!(c.http.listen_address.to_string(), "127.0.0.1:6001");
        assert_eq!(c.m3msg.server.listen_address.to_string(), "127.0.0.1:6000");
        assert_eq!(c.statsd.udp.listen_address.to_string(), "127.0.0.1:8125");
        assert_eq!(c.storage_policies().unwrap()[0].to_string(), "10s:2d");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::parse("num_shardz: 3\n").unwrap_err().to_string();
        assert!(e.contains("num_shardz"), "{e}");
        let e = Config::parse("aggregator:\n  default_storage_policies: [\"10s\"]\n").unwrap_err().to_string();
        assert!(e.contains("aggregator.default_storage_policies[0]"), "{e}");
        let e = Config::parse("aggregator:\n  entry_ttl: 5parsecs\n").unwrap_err().to_string();
        assert!(e.contains("entry_ttl") || e.contains("5parsecs"), "{e}");
        let e = Config::parse("cores: some\n").unwrap_err().to_string();
        assert!(e.contains("all"), "{e}");
        let e = Config::parse("aggregator:\n  flush:\n    handlers:\n      - m3msg: {}\n").unwrap_err().to_string();
        assert!(e.contains("aggregator.flush.handlers[0].m3msg.endpoint"), "{e}");
        let long = "x".repeat(108);
        for bad in ["\"\"", long.as_str()] {
            let e = Config::parse(&format!("statsd: {{unix: {{path: {bad}}}}}\n")).unwrap_err().to_string();
            assert!(e.contains("statsd.unix.path"), "{e}");
        }
    }

    #[test]
    fn the_tuning_examples_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 4);
    }

    #[test]
    fn a_full_config_parses() {
        let text = r#"
cores: [0, 1]
pin_cores: false
num_shards: 16
http: {listen_address: "127.0.0.1:7001"}
m3msg: {server: {listen_address: "127.0.0.1:7000", max_frame_size: 1048576, ack_interval: 100ms}}
statsd: {udp: {listen_address: "127.0.0.1:9125", small_read_pause: 0s}, tcp: {enabled: false}, max_line_size: 1024}
aggregator:
  default_storage_policies: ["10s:2d", "1m:40d"]
  flush_manager:
    max_jitters: [{flush_interval: 10s, max_jitter_percent: 0.5}]
  flush:
    handlers:
      - json: {path: "-"}
      - m3msg: {endpoint: "127.0.0.1:9000", message_ttl: 5m}
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.cores, Cores::List(vec![0, 1]));
        assert_eq!(c.aggregator.flush.handlers.len(), 2);
        assert!(!c.statsd.tcp.enabled);
        assert_eq!(c.statsd.udp.small_read_pause.0, Duration::ZERO);
        assert_eq!(Config::parse("").unwrap().statsd.udp.small_read_pause.0, Duration::from_micros(500));
        assert_eq!(Config::parse("").unwrap().statsd.unix.path, None, "no Unix socket unless asked for");
        let unix = Config::parse("statsd: {unix: {path: /run/sheaf/statsd.sock, small_read_pause: 1ms}}\n").unwrap();
        assert_eq!(unix.statsd.unix.path.as_deref(), Some(Path::new("/run/sheaf/statsd.sock")));
        assert_eq!(unix.statsd.unix.small_read_pause.0, Duration::from_millis(1));
    }
}
