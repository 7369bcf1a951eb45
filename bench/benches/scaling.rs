//! How sheaf's user-space m3msg path scales from one shard core to several, with no load
//! generator and no kernel on the CPUs: each core decodes its own stream of framed messages
//! (its share of the series, as one connection per core would bring them), routes each
//! value to the core owning its shard, applies its own values at once and hands the others
//! over in batches of up to 1024 through glommio's lock-free shared channels (one per
//! ordered pair of cores, emptied batches returned through a crossbeam `ArrayQueue`), as the
//! runtime does. The runtime's types are crate-private, so the pipeline is rebuilt here from
//! the public crates, like `handoff`.
//!
//! Measuring scaling end to end needs a load generator with CPUs of its own. This bench
//! leaves out the generator and the kernel, so that it needs only as many CPUs as shard
//! cores and shows whether the data plane itself (decode, hand-off, apply) scales. Each core
//! is pinned to its CPU (`Placement::Fixed`), its aggregator holds every series it owns
//! before the timing (so that the timing measures applying values, not creating series),
//! and the time runs from a barrier after set-up to the last core's end.
//!
//! `cargo bench -p sheaf-bench --bench scaling -- [--series N] [--passes P] [--cores 1,2]
//! [--drain inline|task] [--no-handoff] [--rounds R]` prints messages per second for each
//! core count and the ratio to one core (with `--rounds`, each round runs every core count
//! again, and the median ratio ends the table), and on stderr where each core's time went.
//! `--drain inline` (the default) takes in hand-offs as the runtime does; `--drain task`
//! takes them in only through a drain task per peer, to show what the runtime's way is
//! worth; `--no-handoff` lets each core keep the series of its own stream, the bound that
//! shared-nothing decode and aggregation could reach. Results are in `bench/README.md`.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use glommio::channels::shared_channel::{self, ConnectedReceiver, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};
use sheaf_bench::m3msg_path::{ByOwner, FrameDecoder};
use sheaf_bench::workload::{Generator, M3msgEncoder, Mix, SeriesSpace, default_staged_metadatas};
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, SampleBatch};

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;
const NOW: i64 = 1_700_000_000_000_000_000;
/// Messages decoded between hand-offs (one 64 KiB read brings about 1300).
const MESSAGES_PER_READ: usize = 1024;
/// The runtime's hand-off batch and queue sizes (`data_plane.handoff_*` defaults).
const BATCH: usize = 1024;
const QUEUE: usize = 64;

/// Core `core` of `cores`' stream: its share of the series, each once, as frames.
fn stream(series: u64, cores: usize, core: usize) -> Vec<u8> {
    let mix = Mix::default();
    let mut generator = Generator::new(mix, SeriesSpace::new(series, mix), core as u64, cores as u64);
    let mut encoder = M3msgEncoder::new(default_staged_metadatas(), SHARDS);
    let mut out = Vec::new();
    for seq in 0..series.div_ceil(cores as u64) {
        let s = generator.next_sample();
        encoder.encode(&s, &[], seq + 1, NOW as u64, &mut out);
    }
    out
}

/// How a core takes in the batches other cores hand it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drain {
    /// Only a task per peer channel: glommio runs it only when the decoding task waits, and
    /// a full channel makes the sender wait for room. The comparison for `Inline`.
    Task,
    /// As the runtime does: that task, and also a take-in from the decoding loop after each
    /// read and whenever a peer's channel is full (popping only what the peer's sent counter
    /// says is there); it waits for room only when there is nothing to take in.
    Inline,
}

/// One peer's channel into a core, with the count of batches sent on it (written by the
/// sender after each successful send, like the runtime's `HandoffLedger`).
struct Inbound {
    channel: Rc<ConnectedReceiver<SampleBatch>>,
    sent: Arc<AtomicU64>,
    taken: Cell<u64>,
    back: Arc<ArrayQueue<SampleBatch>>,
}

impl Inbound {
    fn take_in(&self, agg: &RefCell<CoreAggregator>, mut batch: SampleBatch) {
        agg.borrow_mut().apply(&batch, NOW);
        self.taken.set(self.taken.get() + 1);
        batch.clear();
        // As the runtime does: dropped if the queue is full.
        let _ = self.back.push(batch);
    }
}

/// Applies every batch peers have sent so far; true if there was one.
async fn take_in_sent(inbound: &[Rc<Inbound>], agg: &RefCell<CoreAggregator>) -> bool {
    let mut took = false;
    for peer in inbound {
        while peer.sent.load(Ordering::Acquire) > peer.taken.get() {
            let Some(Some(batch)) = futures_lite::future::poll_once(peer.channel.recv()).await else { break };
            peer.take_in(agg, batch);
            took = true;
        }
    }
    took
}

/// A core's sending end to one peer, with that pair's sent counter.
type Outbound = (SharedSender<SampleBatch>, Arc<AtomicU64>);
/// A core's receiving end from one peer: the peer, the channel, that pair's sent counter.
type InboundEnd = (usize, SharedReceiver<SampleBatch>, Arc<AtomicU64>);

/// What one core reports: when its timed work started and ended, the values it applied
/// during it, and where its time went.
struct CoreRun {
    /// `start` on `CLOCK_MONOTONIC`, the clock of `perf record -k CLOCK_MONOTONIC`.
    start_monotonic: f64,
    end_monotonic: f64,
    start: Instant,
    end: Instant,
    applied: u64,
    cpu_ms: u64,
    decode: Duration,
    waiting_to_send: Duration,
}

/// Runs `cores` pinned cores over `passes` passes of their streams; returns the wall time
/// from the first core's start to the last core's end and the values applied in it.
fn run(
    cores: usize,
    series: u64,
    passes: usize,
    drain: Drain,
    handoff: bool,
    streams: &[Arc<Vec<u8>>],
) -> (Duration, u64) {
    // For each ordered pair of cores: a channel, a sent counter, and the emptied batches on
    // their way back (`returns[from][to]`).
    let mut senders: Vec<Vec<Option<Outbound>>> = (0..cores).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<InboundEnd>> = (0..cores).map(|_| Vec::new()).collect();
    let returns: Vec<Vec<Arc<ArrayQueue<SampleBatch>>>> =
        (0..cores).map(|_| (0..cores).map(|_| Arc::new(ArrayQueue::new(QUEUE + 4))).collect()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for (to, inbound) in receivers.iter_mut().enumerate() {
            if from == to {
                row.push(None);
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(QUEUE);
            let sent = Arc::new(AtomicU64::new(0));
            row.push(Some((tx, sent.clone())));
            inbound.push((from, rx, sent));
        }
    }
    let barrier = Arc::new(Barrier::new(cores));
    let mut handles = Vec::new();
    for (core, (txs, rxs)) in senders.into_iter().zip(receivers).enumerate() {
        let streams = streams.to_vec();
        let barrier = barrier.clone();
        let returns = returns.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("scaling-{core}"))
            .spawn(move || async move {
                let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
                let agg = Rc::new(RefCell::new(CoreAggregator::new(options, SHARDS)));
                let mut decoder = FrameDecoder::new(SHARDS, NOW);
                // Without hand-off each core keeps the series of its own stream: the bound
                // that shared-nothing decoding and aggregation could reach.
                let owner = |shard: u32| if handoff { shard as usize % cores } else { core };
                // Every series this core owns exists before the timing.
                let mut warm = vec![SampleBatch::with_capacity(BATCH), SampleBatch::with_capacity(BATCH)];
                let warm_streams = if handoff { &streams[..] } else { &streams[core..=core] };
                for s in warm_streams {
                    let mut at = 0;
                    while at < s.len() {
                        let mine = |shard| usize::from(owner(shard) != core);
                        let mut router = ByOwner { owner: mine, batches: &mut warm };
                        at += decoder.decode(&s[at..], MESSAGES_PER_READ, &mut router);
                        agg.borrow_mut().apply(&warm[0], NOW);
                        warm[0].clear();
                        warm[1].clear();
                    }
                }
                let warm_applied = agg.borrow().counters.values_applied;
                // Receivers first, each connected in its own task, so that no connect waits
                // on another; each keeps a drain task, as in the runtime.
                let mut connecting = Vec::new();
                for (from, rx, sent) in rxs {
                    let back = returns[from][core].clone();
                    connecting.push(glommio::spawn_local(async move {
                        Rc::new(Inbound { channel: Rc::new(rx.connect().await), sent, taken: Cell::new(0), back })
                    }));
                }
                let mut out = Vec::new();
                for tx in txs {
                    out.push(match tx {
                        Some((tx, sent)) => Some((tx.connect().await, sent)),
                        None => None,
                    });
                }
                let mut inbound = Vec::new();
                let mut draining = Vec::new();
                for c in connecting {
                    let peer = c.await;
                    let (peer2, agg2) = (peer.clone(), agg.clone());
                    draining.push(glommio::spawn_local(async move {
                        while let Some(batch) = peer2.channel.recv().await {
                            peer2.take_in(&agg2, batch);
                            glommio::yield_if_needed().await;
                        }
                    }));
                    inbound.push(peer);
                }
                let mut batches: Vec<SampleBatch> = (0..cores).map(|_| SampleBatch::with_capacity(BATCH)).collect();
                let stream = &streams[core];
                barrier.wait();
                let (mut decode_time, mut waiting_to_send) = (Duration::ZERO, Duration::ZERO);
                let ticks = thread_ticks();
                let start_monotonic = monotonic_secs();
                let start = Instant::now();
                for _ in 0..passes {
                    let mut at = 0;
                    while at < stream.len() {
                        let t = Instant::now();
                        let mut router = ByOwner { owner, batches: &mut batches };
                        at += decoder.decode(&stream[at..], MESSAGES_PER_READ, &mut router);
                        decode_time += t.elapsed();
                        for (to, tx) in out.iter().enumerate() {
                            if batches[to].is_empty() {
                                continue;
                            }
                            let Some((tx, sent)) = tx else {
                                agg.borrow_mut().apply(&batches[to], NOW);
                                batches[to].clear();
                                continue;
                            };
                            let fresh = returns[core][to].pop().unwrap_or_else(|| SampleBatch::with_capacity(BATCH));
                            let mut batch = std::mem::replace(&mut batches[to], fresh);
                            let t = Instant::now();
                            loop {
                                if drain == Drain::Inline {
                                    match tx.try_send(batch) {
                                        Ok(()) => break,
                                        Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(b))) => {
                                            batch = b
                                        }
                                        Err(_) => panic!("core {to} stopped receiving"),
                                    }
                                    if take_in_sent(&inbound, &agg).await {
                                        continue;
                                    }
                                }
                                assert!(tx.send(batch).await.is_ok(), "core {to} stopped receiving");
                                break;
                            }
                            sent.fetch_add(1, Ordering::Release);
                            waiting_to_send += t.elapsed();
                        }
                        if drain == Drain::Inline {
                            take_in_sent(&inbound, &agg).await;
                        }
                        glommio::yield_if_needed().await;
                    }
                }
                drop(out);
                for d in draining {
                    d.await;
                }
                let end = Instant::now();
                let end_monotonic = monotonic_secs();
                let applied = agg.borrow().counters.values_applied - warm_applied;
                black_box(agg.borrow().series_count());
                let cpu_ms = (thread_ticks() - ticks) * 10;
                CoreRun {
                    start_monotonic,
                    end_monotonic,
                    start,
                    end,
                    applied,
                    cpu_ms,
                    decode: decode_time,
                    waiting_to_send,
                }
            })
            .expect("executor");
        handles.push(handle);
    }
    let runs: Vec<CoreRun> = handles.into_iter().map(|h| h.join().expect("core")).collect();
    for (core, r) in runs.iter().enumerate() {
        eprintln!(
            "  core {core}: {:.0} ms, cpu {} ms, decoding {:.0} ms, waiting to hand off {:.0} ms (with what it took in meanwhile)",
            (r.end - r.start).as_secs_f64() * 1e3,
            r.cpu_ms,
            r.decode.as_secs_f64() * 1e3,
            r.waiting_to_send.as_secs_f64() * 1e3
        );
    }
    // For `perf/scaling-profile.sh`, which keeps only the samples taken in this window.
    eprintln!(
        "  timed window (CLOCK_MONOTONIC s): {:.6} {:.6}",
        runs.iter().map(|r| r.start_monotonic).fold(f64::INFINITY, f64::min),
        runs.iter().map(|r| r.end_monotonic).fold(0.0, f64::max)
    );
    let start = runs.iter().map(|r| r.start).min().expect("a core");
    let end = runs.iter().map(|r| r.end).max().expect("a core");
    let applied = runs.iter().map(|r| r.applied).sum();
    assert_eq!(applied, series.div_ceil(cores as u64) * cores as u64 * passes as u64, "every value applied once");
    (end - start, applied)
}

/// Seconds on `CLOCK_MONOTONIC` (what `Instant` reads, but as a number that `perf script`'s
/// timestamps can be compared with).
fn monotonic_secs() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// This thread's user + system CPU time, in clock ticks (100 per second on Linux).
fn thread_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let series: u64 = arg("--series", 1_000_000);
    let passes: usize = arg("--passes", 10);
    let drain = match arg("--drain", "inline".to_string()).as_str() {
        "task" => Drain::Task,
        _ => Drain::Inline,
    };
    let handoff = !std::env::args().any(|a| a == "--no-handoff");
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores: Vec<usize> = arg("--cores", format!("1,{}", cpus.min(2)))
        .split(',')
        .filter_map(|c| c.parse().ok())
        .filter(|&c| c >= 1 && c <= cpus)
        .collect();
    let rounds: usize = arg("--rounds", 1).max(1);
    println!(
        "scaling: m3msg user-space path, {series} series, {passes} passes, drain {drain:?}, hand-off {handoff}, cores {cores:?} of {cpus} CPUs, {rounds} round(s)"
    );
    let streams: Vec<Vec<Arc<Vec<u8>>>> =
        cores.iter().map(|&n| (0..n).map(|c| Arc::new(stream(series, n, c))).collect()).collect();
    // Each round runs every core count once, one after another, so that a ratio compares runs
    // a few seconds apart: on a shared host the speed of a CPU drifts by more than the
    // difference being measured, and the steal time (CPU the hypervisor gave to others while
    // this guest wanted it) is printed beside each run to tell a disturbed one.
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cores.len()];
    for round in 1..=rounds {
        let mut base = None;
        for (i, &n) in cores.iter().enumerate() {
            let stolen = host_steal_ms();
            let (elapsed, applied) = run(n, series, passes, drain, handoff, &streams[i]);
            let stolen = host_steal_ms().saturating_sub(stolen);
            let rate = applied as f64 / elapsed.as_secs_f64();
            let one = *base.get_or_insert(rate);
            ratios[i].push(rate / one);
            println!(
                "round {round}, cores {n}: {:.2} M msgs/s ({applied} values in {:.2} s), {:.2} x one core, {stolen} ms stolen",
                rate / 1e6,
                elapsed.as_secs_f64(),
                rate / one
            );
        }
    }
    if rounds > 1 {
        for (&n, r) in cores.iter().zip(&mut ratios) {
            r.sort_by(f64::total_cmp);
            let median = if r.len() % 2 == 1 { r[r.len() / 2] } else { (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0 };
            println!(
                "cores {n}: median {median:.2} x one core over {rounds} rounds (lowest {:.2}, highest {:.2})",
                r[0],
                r[r.len() - 1]
            );
        }
    }
}

/// Steal time of the whole guest so far (the `cpu` line of `/proc/stat`), in milliseconds; 0
/// where the kernel does not report it.
fn host_steal_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    cpu.split_whitespace().nth(8).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) * 10
}
