//! The agent's transitions, one table row each: a setup (the events that bring the agent to
//! its initial state), the events under test, and every command to the cores, store read and
//! write and election move they cause, in order, plus `/status` fields checked on the way or
//! at the end. The agent's state machine runs against the in-memory store; a recorder stands
//! in for the cores and the election task (a row says what the election reports).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sheaf_shard_core::ForwardedUntil;
use sheaf_shard_runtime::FlushReport;

use super::election::ElectionState::{self, Follower, Leader, PendingFollower};
use super::flush_times::ShardSetTimes;
use super::health::EtcdHealth;
use super::memory::{MemoryEtcd, MemoryStore};
use super::placement::{self, Placement};
use super::state::{AgentState, Effect, Execute, Input, Now};
use super::store::{ClusterStore, Versioned};
use super::testing::{self, S, SHARDS, T0, add, describe, init, remove, replace, settings};
use super::tracked::Tracked;

const PLACEMENT: &str = "/placement/e/s";
const FLUSH_TIMES: &str = "_kv/e/shardset/1/flush";

/// What happens to the agent.
#[derive(Clone)]
enum Ev {
    Connected,
    /// An operator writes this placement; the agent's watch delivers it.
    Placement(Placement),
    PlacementDeleted,
    /// The set's leader (another node) persists these (shard, seconds after T0) times (forwarded: 1s less).
    LeaderWrote(&'static [(u32, i64)]),
    /// The election task reports this state.
    Election(ElectionState),
    /// A core finished a leader round of 1s windows up to T0 + `standard` seconds (forwarded
    /// ones a second earlier, as `L(r, 1) = r`), its batches numbered up to `seq`.
    Report {
        core: usize,
        standard: i64,
        seq: u64,
    },
    /// Every sink has written every core's batches up to `seq`.
    Written(u64),
    /// Only sink `sink` has written core `core`'s batches up to `seq`.
    SinkWrote {
        sink: usize,
        core: usize,
        seq: u64,
    },
    Wait(Duration),
    Tick,
    /// This node loses etcd (the server goes on), or gets it back.
    Cut,
    Restore,
    Resign,
    Shutdown,
    /// Asserts a `/status` field here (JSON pointer into the agent's `cluster` view).
    Check(&'static str, Value),
}

use Ev::*;

struct Row {
    name: &'static str,
    host: &'static str,
    setup: Vec<Ev>,
    events: Vec<Ev>,
    expect: &'static [&'static str],
    status: Vec<(&'static str, Value)>,
}

/// Stands in for the agent's I/O: carries the effects out against the in-memory store and
/// writes each down.
struct Rig {
    /// The agent's connection, each request's outcome recorded in `health`.
    store: Tracked<MemoryStore>,
    health: Arc<EtcdHealth>,
    /// Another node's connection: the operator's and the other leader's writes.
    other: MemoryStore,
    started: Instant,
    elapsed: Duration,
    /// Reports the cores pushed and the agent has not taken yet.
    queued: Vec<FlushReport>,
    /// The election task's state, as the agent's I/O reads it before each persist.
    election: ElectionState,
    trace: Vec<String>,
}

impl Execute for Rig {
    fn now(&self) -> Now {
        Now { at: self.started + self.elapsed, wall_nanos: T0 + self.elapsed.as_nanos() as i64 }
    }

    async fn execute(&mut self, state: &mut AgentState, effect: Effect) -> Option<Input> {
        let line = match effect {
            Effect::Cores(command) => describe(&command),
            Effect::WatchPlacement => "watch placement".into(),
            Effect::WatchFlushTimes(key) => format!("watch {}", key.as_deref().unwrap_or("no flush times")),
            Effect::Members(members) => format!("members {}", members.join(" ")).trim_end().into(),
            Effect::StartElection(name) => format!("campaign {name}"),
            Effect::StopElection => {
                self.election = PendingFollower;
                "leave election".into()
            }
            Effect::ResignElection => {
                self.election = PendingFollower;
                self.trace.push("resign".into());
                return Some(Input::Election(PendingFollower));
            }
            Effect::ReadFlushTimes(key) => {
                self.trace.push(format!("read {key}"));
                return Some(Input::PromotionRead(self.store.get(&key).await));
            }
            Effect::DiscardReports => {
                self.queued.clear();
                "discard reports".into()
            }
            Effect::DrainEmitted => {
                state.collect(std::mem::take(&mut self.queued));
                self.trace.push("drain".into());
                return Some(Input::Drained);
            }
            Effect::Persist { key, value } => {
                let retries = state.settings().config.flush_times_persist_retries;
                let (line, answer) = self.persist(&key, value, retries).await;
                self.trace.push(line);
                return Some(answer);
            }
        };
        self.trace.push(line);
        None
    }
}

impl Rig {
    async fn persist(&self, key: &str, value: Vec<u8>, retries: u32) -> (String, Input) {
        if self.election != Leader {
            return ("put skipped: not leader".into(), Input::Persisted { failures: 0, written: false });
        }
        let times = ShardSetTimes::decode(&value).unwrap().to_runtime(SHARDS);
        let mut failures = 0;
        for _ in 0..=retries {
            match self.store.put(key, value.clone()).await {
                Ok(()) => {
                    return (
                        format!("put {key} {}", testing::flush_times(&times)),
                        Input::Persisted { failures, written: true },
                    );
                }
                Err(_) => failures += 1,
            }
        }
        (format!("put failed ×{failures}"), Input::Persisted { failures, written: false })
    }

    /// The agent's `/status` view now.
    fn status(&self, state: &AgentState) -> Value {
        state.status(self.now().at, None, self.health.describe())
    }

    /// What the agent's watch on `key` delivers now (nothing while it cannot reach etcd).
    async fn delivered(&self, key: &str) -> Option<Versioned> {
        self.store.get(key).await.ok()
    }
}

/// Applies `ev`; Err says which `Check` failed.
async fn apply(state: &mut AgentState, rig: &mut Rig, ev: Ev) -> Result<(), String> {
    match ev {
        Connected => {
            rig.health.record(true);
            state.step(rig, Input::Connected).await;
        }
        Placement(p) => {
            rig.other.put(PLACEMENT, placement::encode_snapshots(&p)).await.unwrap();
            if let Some(v) = rig.delivered(PLACEMENT).await {
                state.step(rig, Input::Placement(v)).await;
            }
        }
        PlacementDeleted => {
            let absent = Versioned { value: None, mod_revision: 0, version: 0, read_at: 0 };
            state.step(rig, Input::Placement(absent)).await;
        }
        LeaderWrote(times) => {
            let mut t = ShardSetTimes::default();
            for &(shard, secs) in times {
                t.advance(shard, S, T0 + secs * S, i64::MIN);
                t.advance_forwarded(shard, S, &[ForwardedUntil { times: 1, until: T0 + (secs - 1) * S }]);
            }
            rig.other.put(FLUSH_TIMES, t.encode()).await.unwrap();
            if let Some(v) = rig.delivered(FLUSH_TIMES).await {
                state.step(rig, Input::FlushTimes(v)).await;
            }
        }
        Election(s) => {
            rig.election = s;
            state.step(rig, Input::Election(s)).await;
        }
        Report { core, standard, seq } => {
            let (standard, forwarded) =
                (T0 + standard * S, vec![ForwardedUntil { times: 1, until: T0 + standard * S - S }]);
            rig.queued.push(FlushReport { core, resolution: S, standard, timed: i64::MIN, forwarded, seq })
        }
        Written(seq) => {
            for sink in &state.settings().sinks {
                (0..2).for_each(|core| sink.mark_written(core, seq));
            }
        }
        SinkWrote { sink, core, seq } => state.settings().sinks[sink].mark_written(core, seq),
        Wait(d) => rig.elapsed += d,
        Tick => {
            let reports = std::mem::take(&mut rig.queued);
            state.step(rig, Input::Tick(reports)).await;
        }
        Cut => rig.store.inner().cut(),
        Restore => rig.store.inner().restore(),
        Resign => state.step(rig, Input::Resign).await,
        Shutdown => state.step(rig, Input::Shutdown).await,
        Check(pointer, want) => return check(&rig.status(state), pointer, &want),
    }
    Ok(())
}

fn check(status: &Value, pointer: &str, want: &Value) -> Result<(), String> {
    match status.pointer(pointer) {
        Some(got) if got == want => Ok(()),
        got => Err(format!("{pointer} is {got:?}, want {want} in {status}")),
    }
}

/// Runs one row; Err says how it went wrong.
async fn run(row: Row) -> Result<(), String> {
    let etcd = MemoryEtcd::new();
    let health = EtcdHealth::new();
    let mut rig = Rig {
        store: Tracked::new(etcd.client(), health.clone()),
        health,
        other: etcd.client(),
        started: Instant::now(),
        elapsed: Duration::ZERO,
        queued: Vec::new(),
        election: PendingFollower,
        trace: Vec::new(),
    };
    let mut state = AgentState::new(settings(row.host), rig.started);
    for ev in row.setup {
        apply(&mut state, &mut rig, ev).await.map_err(|e| format!("setup: {e}"))?;
    }
    rig.trace.clear();
    for ev in row.events {
        apply(&mut state, &mut rig, ev).await.map_err(|e| format!("{e}\nso far: {:#?}", rig.trace))?;
    }
    if rig.trace != row.expect {
        return Err(format!("got {:#?}\nwant {:#?}", rig.trace, row.expect));
    }
    let status = rig.status(&state);
    row.status.iter().try_for_each(|(pointer, want)| check(&status, pointer, want))
}

fn ab() -> Placement {
    init(SHARDS, &["a", "b"])
}

/// a and b (shard set 1) and c and d (shard set 2).
fn abcd() -> Placement {
    init(SHARDS, &["a", "b", "c", "d"])
}

fn follower() -> Vec<Ev> {
    vec![Connected, Placement(ab()), Election(Follower)]
}

fn leader() -> Vec<Ev> {
    vec![Connected, Placement(ab()), Election(Leader)]
}

fn leader_of(p: Placement) -> Vec<Ev> {
    vec![Connected, Placement(p), Election(Leader)]
}

fn row(name: &'static str, setup: Vec<Ev>, events: Vec<Ev>, expect: &'static [&'static str]) -> Row {
    Row { name, host: "a", setup, events, expect, status: Vec::new() }
}

impl Row {
    fn on(mut self, host: &'static str) -> Self {
        self.host = host;
        self
    }

    fn status(mut self, pointer: &'static str, want: Value) -> Self {
        self.status.push((pointer, want));
        self
    }
}

const PUT_0_2: &str = "put _kv/e/shardset/1/flush 0@30s/f1@29s 2@30s/f1@29s";

fn rows() -> Vec<Row> {
    vec![
        row(
            "a placement: windows and routes to the cores, then the set's flush times and election",
            vec![],
            vec![Connected, Placement(ab())],
            &[
                "watch placement",
                "windows 0, 1, 2, 3",
                "routes here 0 1 2 3; :9002 has 0 1 2 3",
                "members a b",
                "watch _kv/e/shardset/1/flush",
                "campaign _ld/e/s/shardset/1/lock",
            ],
        )
        .status("/placementVersion", json!(1))
        .status("/shardSets/0/shardSetId", json!(1))
        .status("/electionState", json!("pendingFollower"))
        .status("/canLead", json!(true)),
        row(
            "promotion: the old leader's times go to the cores before they lead",
            [follower(), vec![LeaderWrote(&[(0, 20), (1, 20), (2, 20), (3, 20)])]].concat(),
            vec![Election(Leader)],
            &[
                "read _kv/e/shardset/1/flush",
                "follower flush 0@20s/f1@19s 1@20s/f1@19s 2@20s/f1@19s 3@20s/f1@19s",
                "discard reports",
                "role leader",
            ],
        )
        .status("/electionState", json!("leader")),
        row(
            "promotion with no flush times yet: lead from none",
            follower(),
            vec![Election(Leader)],
            &["read _kv/e/shardset/1/flush", "follower flush none", "discard reports", "role leader"],
        ),
        row(
            "promotion without etcd: the read fails, resign rather than lead",
            follower(),
            vec![Cut, Election(Leader)],
            &["read _kv/e/shardset/1/flush", "resign"],
        )
        .status("/electionState", json!("pendingFollower")),
        row(
            "promotion: reports the cores queued as followers say nothing",
            follower(),
            vec![Report { core: 0, standard: 30, seq: 1 }, Written(1), Election(Leader), Tick],
            &["read _kv/e/shardset/1/flush", "follower flush none", "discard reports", "role leader"],
        )
        .status("/flushTimesPersisted", json!(0)),
        row(
            "leader: its own flush times coming back through the watch stay off the cores",
            leader(),
            vec![LeaderWrote(&[(0, 20)])],
            &[],
        ),
        row(
            "lease lost: the leader stops emitting at once",
            leader(),
            vec![Election(PendingFollower)],
            &["role follower"],
        )
        .status("/electionState", json!("pendingFollower")),
        row("another member leads: leader to follower", leader(), vec![Election(Follower)], &["role follower"]),
        row(
            "leader: a round every sink wrote moves its core's shards' times, persisted",
            leader(),
            vec![Report { core: 0, standard: 30, seq: 1 }, Written(1), Tick],
            &[PUT_0_2],
        )
        .status("/flushTimesPersisted", json!(1))
        .status("/pendingFlushReports", json!(0)),
        row(
            "leader: a round waits until every sink wrote it",
            leader(),
            vec![
                Report { core: 0, standard: 30, seq: 1 },
                SinkWrote { sink: 0, core: 0, seq: 1 },
                Tick,
                Check("/pendingFlushReports", json!(1)),
                SinkWrote { sink: 1, core: 0, seq: 1 },
                Tick,
            ],
            &[PUT_0_2],
        )
        .status("/pendingFlushReports", json!(0)),
        row(
            "leader: failed writes are counted and tried again at the next check",
            leader(),
            vec![
                Report { core: 0, standard: 30, seq: 1 },
                Written(1),
                Cut,
                Tick,
                Check("/etcd", json!("unreachable")),
                Restore,
                Tick,
            ],
            &["put failed ×2", PUT_0_2],
        )
        .status("/flushTimesPersistFailures", json!(2))
        .status("/flushTimesPersisted", json!(1))
        .status("/etcd", json!("connected")),
        row(
            "etcd lost as leader: writes fail, the lease runs out, emitting stops; back, it follows",
            leader(),
            vec![
                Cut,
                Report { core: 0, standard: 30, seq: 1 },
                Written(1),
                Tick,
                Election(PendingFollower),
                Tick,
                Restore,
                Election(Follower),
                LeaderWrote(&[(0, 40), (2, 40)]),
            ],
            &["put failed ×2", "role follower", "follower flush 0@40s/f1@39s 2@40s/f1@39s"],
        )
        .status("/electionState", json!("follower")),
        row(
            "follower: each flush-time update goes to the cores",
            follower(),
            vec![LeaderWrote(&[(0, 20)])],
            &["follower flush 0@20s/f1@19s"],
        )
        .status("/shardSets/0/lastFlushTimesUpdateMsAgo", json!(0)),
        row(
            "follower: no update for max_buffer_size switches to forced flush, once",
            follower(),
            vec![
                Wait(Duration::from_millis(4_999)),
                Tick,
                Check("/shardSets/0/forcedFlush", json!(false)),
                Wait(Duration::from_millis(1)),
                Tick,
                Tick,
            ],
            &["follower flush none forced 5s"],
        )
        .status("/shardSets/0/forcedFlush", json!(true))
        .status("/forcedFlushEntered", json!(1)),
        row(
            "forced flush ends at the next update",
            [follower(), vec![Wait(Duration::from_secs(5)), Tick]].concat(),
            vec![LeaderWrote(&[(0, 20)])],
            &["follower flush 0@20s/f1@19s"],
        )
        .status("/shardSets/0/forcedFlush", json!(false))
        .status("/forcedFlushEntered", json!(1)),
        row(
            "etcd lost as follower: unreachable at the first failed read, forced flush after \
             max_buffer_size; back, the next update ends it",
            follower(),
            vec![
                Check("/etcd", json!("connected")),
                Cut,
                LeaderWrote(&[(0, 10)]),
                Check("/etcd", json!("unreachable")),
                Election(PendingFollower),
                Wait(Duration::from_secs(5)),
                Tick,
                Restore,
                Election(Follower),
                LeaderWrote(&[(0, 20)]),
            ],
            &["follower flush none forced 5s", "follower flush 0@20s/f1@19s"],
        )
        .status("/shardSets/0/forcedFlush", json!(false))
        .status("/etcd", json!("connected")),
        row(
            "resign as leader: stop emitting, persist what was emitted, then resign",
            leader(),
            vec![Report { core: 0, standard: 30, seq: 1 }, Written(1), Resign],
            &["role follower", "drain", PUT_0_2, "resign"],
        )
        .status("/electionState", json!("pendingFollower")),
        row("resign as follower: only resign", follower(), vec![Resign], &["resign"]),
        row(
            "shutdown as leader: persist the final flush, then leave the election",
            leader(),
            vec![Report { core: 0, standard: 30, seq: 1 }, Written(1), Shutdown],
            &["drain", PUT_0_2, "leave election"],
        ),
        row(
            "shards handed to a new set: writable until cutoff + buffer, forwarded to their new owners",
            follower(),
            vec![Placement(add(&ab(), &["c", "d"]))],
            &[
                "windows 0, 1, 2 until 60s (writes ..70s), 3 until 60s (writes ..70s)",
                "routes here 0 1 2 3; :9002 has 0 1 2 3; :9003 has 2 3; :9004 has 2 3",
                "members a b",
            ],
        ),
        row(
            "the new set: shards open from cutover - buffer, no campaign until they cut over",
            vec![Connected],
            vec![
                Placement(add(&ab(), &["c", "d"])),
                Check("/canLead", json!(false)),
                Wait(Duration::from_secs(60)),
                Tick,
            ],
            &[
                "windows 2 from 60s (writes 50s..), 3 from 60s (writes 50s..)",
                "routes here 2 3; :9001 has 0 1 2 3; :9002 has 0 1 2 3; :9004 has 2 3",
                "members c d",
                "watch _kv/e/shardset/2/flush",
                "campaign _ld/e/s/shardset/2/lock",
                // Nobody has led the new set yet: no flush times for max_buffer_size either.
                "follower flush none forced 5s",
            ],
        )
        .on("c"),
        row(
            "all shards cut off and flushed to the cutoff: the old set's leader leaves",
            leader_of(abcd()),
            vec![
                Placement(remove(&abcd(), &["a", "b"])),
                Report { core: 0, standard: 60, seq: 1 },
                Report { core: 1, standard: 60, seq: 1 },
                Written(1),
                Wait(Duration::from_secs(61)),
                Tick,
                Tick,
            ],
            &[
                "windows 0 until 60s (writes ..70s), 1 until 60s (writes ..70s)",
                "routes here 0 1; :9002 has 0 1; :9003 has 0 1 2 3; :9004 has 0 1 2 3",
                "members a b",
                "role follower",
                "drain",
                "put _kv/e/shardset/1/flush 0@60s/f1@59s 1@60s/f1@59s",
                "leave election",
            ],
        ),
        row(
            "replaced: at the cutoff the leader stops emitting, persists its last round, then leaves",
            leader(),
            vec![
                Placement(replace(&ab(), "a", "c")),
                Wait(Duration::from_secs(59)),
                Tick,
                Wait(Duration::from_secs(1)),
                // The last round before the cutoff, written by the sinks just before the check.
                Report { core: 0, standard: 60, seq: 1 },
                Written(1),
                Tick,
            ],
            &[
                "windows 0 until 60s (writes ..70s), 1 until 60s (writes ..70s), 2 until 60s (writes ..70s), 3 until 60s (writes ..70s)",
                "routes here 0 1 2 3; :9002 has 0 1 2 3; :9003 has 0 1 2 3",
                "members a b c",
                "role follower",
                "drain",
                "put _kv/e/shardset/1/flush 0@60s/f1@59s 2@60s/f1@59s",
                "leave election",
            ],
        ),
        row(
            "removed from the placement: the old set's times persisted, election left, times unwatched",
            leader(),
            vec![Report { core: 0, standard: 30, seq: 1 }, Written(1), Placement(init(SHARDS, &["c", "d"]))],
            &[
                "windows none",
                "routes here none; :9003 has 0 1 2 3; :9004 has 0 1 2 3",
                "members",
                "role follower",
                "drain",
                PUT_0_2,
                "leave election",
                "watch no flush times",
            ],
        )
        .status("/shardSets", json!([])),
        row("a placement for another shard count is ignored", follower(), vec![Placement(init(8, &["a", "b"]))], &[])
            .status("/placementVersion", json!(1))
            .status("/placementError", json!("placement has 8 shards, this node's num_shards is 4")),
        row(
            "placement deleted: kept until the next check, which leaves the election",
            leader(),
            vec![PlacementDeleted, Check("/placementError", json!("no placement in etcd yet")), Tick],
            &["role follower", "drain", "leave election"],
        ),
    ]
}

#[tokio::test]
async fn agent_transitions() {
    let mut failed = Vec::new();
    for row in rows() {
        let name = row.name;
        if let Err(e) = run(row).await {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} rows failed:\n\n{}", failed.len(), failed.join("\n\n"));
}
