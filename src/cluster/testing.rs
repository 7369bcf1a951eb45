//! Test helpers for the agent's tests: a clock origin, placements, the agent's settings, and
//! one-line descriptions of core commands and flush times that test rows compare against.
//! Tests only; they run on the test's tokio runtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sheaf_shard_core::ShardWindow;
use sheaf_shard_runtime::{FlushRole, FlushTimes, SinkQueue};

use super::cores::{CoreCommand, Cores};
use super::etcd::Keys;
use super::placement::{self, Instance, Options, Placement};
use super::state::Settings;
use crate::config::Dur;
use crate::config::{ClusterConfig, ElectionConfig};

pub const S: i64 = 1_000_000_000;
/// The wall clock when a test starts: a whole minute, so cutovers land on T0 + 60s.
pub const T0: i64 = 28_333_334 * 60 * S;
pub const SHARDS: u32 = 4;

/// The config of every agent test: short buffers, one persist retry, a 5s silence before
/// forced flush, and elections quick enough for real-time tests.
pub fn config() -> ClusterConfig {
    let mut c = ClusterConfig { service: "s".into(), ..ClusterConfig::default() };
    c.etcd.environment = "e".into();
    c.max_buffer_size = Dur(Duration::from_secs(5));
    c.buffer_before_cutover = Dur(Duration::from_secs(10));
    c.buffer_after_cutoff = Dur(Duration::from_secs(10));
    c.flush_times_persist_retries = 1;
    c.check_interval = Dur(Duration::from_millis(20));
    c.election = ElectionConfig {
        ttl: Dur(Duration::from_secs(1)),
        campaign_initial_backoff: Dur(Duration::from_millis(50)),
        campaign_max_backoff: Dur(Duration::from_millis(200)),
        resign_timeout: Dur(Duration::from_secs(2)),
        recampaign_delay: Dur(Duration::from_millis(300)),
    };
    c
}

/// Settings for node `host_id`: two cores (even shards on core 0, odd on core 1), two sinks.
pub fn settings(host_id: &str) -> Settings {
    let config = config();
    Settings {
        keys: Keys { environment: config.etcd.environment.clone(), service: config.service.clone() },
        config,
        host_id: host_id.into(),
        num_shards: SHARDS,
        owners: (0..SHARDS).map(|s| (s % 2) as u16).collect(),
        sinks: vec![SinkQueue::new("one", 4, 2), SinkQueue::new("two", 4, 2)],
        started_nanos: T0,
    }
}

/// Instance `id` (a, b, c, …) in rack `r{n}` at 127.0.0.1:900{n}, n = 1 for a.
pub fn instance(id: &str) -> Instance {
    let n = id.as_bytes()[0] - b'a' + 1;
    let rack = if n % 2 == 1 { "r1" } else { "r2" };
    Instance { endpoint: format!("127.0.0.1:900{n}"), ..Instance::new(id, rack, 100) }
}

fn instances(ids: &[&str]) -> Vec<Instance> {
    ids.iter().map(|id| instance(id)).collect()
}

/// A new placement of `ids` in shard sets of two.
pub fn init(num_shards: u32, ids: &[&str]) -> Placement {
    placement::init(num_shards, 2, &instances(ids)).unwrap()
}

fn options() -> Options {
    Options { warmup: Duration::ZERO, alignment: Duration::from_secs(60) }
}

/// `p` with `ids` added at T0 (their shards cut over at T0 + 60s).
pub fn add(p: &Placement, ids: &[&str]) -> Placement {
    placement::add(p, &instances(ids), T0, &options()).unwrap()
}

/// `p` with `ids` removed at T0 (their shards cut off at T0 + 60s).
pub fn remove(p: &Placement, ids: &[&str]) -> Placement {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    placement::remove(p, &ids, T0, &options()).unwrap()
}

/// `p` with `old` replaced by `new` at T0.
pub fn replace(p: &Placement, old: &str, new: &str) -> Placement {
    placement::replace(p, &[old.to_string()], &[instance(new)], T0, &options()).unwrap()
}

/// An instant relative to T0, in whole seconds.
fn at(t: i64) -> String {
    format!("{}s", (t - T0) / S)
}

fn ids(ids: impl IntoIterator<Item = usize>) -> String {
    let all: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    if all.is_empty() { "none".into() } else { all.join(" ") }
}

/// One line per command, e.g. `windows 0 1 2 until 60s (writes ..70s)`, `role leader`.
pub fn describe(command: &CoreCommand) -> String {
    match command {
        CoreCommand::Role(FlushRole::Leader) => "role leader".into(),
        CoreCommand::Role(FlushRole::Follower) => "role follower".into(),
        CoreCommand::Windows(w) => format!("windows {}", windows(w)),
        CoreCommand::Routes(r) => {
            let here = ids(r.local.iter().enumerate().filter(|(_, l)| **l).map(|(i, _)| i));
            let mut line = format!("routes here {here}");
            for (p, peer) in r.peers.iter().enumerate() {
                let shards = r.remote.iter().enumerate().filter(|(_, peers)| peers.contains(&(p as u16)));
                let at = peer.addr.map_or_else(|| peer.endpoint.clone(), |a| format!(":{}", a.port()));
                line += &format!("; {at} has {}", ids(shards.map(|(i, _)| i)));
            }
            line
        }
        CoreCommand::FollowerFlush(f) => {
            let forced = f.forced_horizon.map(|h| format!(" forced {}s", h / S)).unwrap_or_default();
            format!("follower flush {}{forced}", flush_times(&f.times))
        }
        CoreCommand::RateLimits(l) => format!(
            "rate limits {}/series/s, {} new series/shard/s",
            l.values_per_series_per_second, l.new_series_per_shard_per_second
        ),
    }
}

fn windows(w: &[ShardWindow]) -> String {
    let mut parts = Vec::new();
    for (id, w) in w.iter().enumerate().filter(|(_, w)| **w != ShardWindow::CLOSED && **w != ShardWindow::PENDING) {
        let mut part = id.to_string();
        if w.cutover != i64::MIN {
            part += &format!(" from {} (writes {}..)", at(w.cutover), at(w.accept_from));
        }
        if w.cutoff != i64::MAX {
            part += &format!(" until {} (writes ..{})", at(w.cutoff), at(w.accept_until));
        }
        parts.push(part);
    }
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

/// `0@20s 2@20s/f1@19s`: per shard, the standard flush time of its first resolution, and its
/// forwarded ones per forward count.
pub fn flush_times(t: &FlushTimes) -> String {
    let shard = |s: u32, r: &sheaf_shard_runtime::ResolutionFlushed| {
        let forwarded: String = r.forwarded.iter().map(|f| format!("/f{}@{}", f.times, at(f.until))).collect();
        format!("{s}@{}{forwarded}", at(r.standard))
    };
    let parts: Vec<String> =
        (0..t.by_shard.len() as u32).filter_map(|s| t.of(s).first().map(|r| shard(s, r))).collect();
    if parts.is_empty() { "none".into() } else { parts.join(" ") }
}

/// Cores that write down what they are told.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Cores for Recorder {
    async fn apply(&self, command: CoreCommand) {
        self.0.lock().unwrap().push(describe(&command));
    }
}
