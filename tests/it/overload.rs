//! Overload through the real sockets: StatsD UDP and m3msg offered at about twice what sheaf
//! takes in on this machine, for 30 s, then normal load. Anonymous resident memory stays
//! within the bound the config implies; every value sent is accounted for (taken in, in a
//! datagram the kernel dropped at a full UDP socket, or refused at the series limit, each
//! counted); every m3msg message is acked exactly once; and what was taken in, during the
//! overload and in the normal load after it, comes out of the flush exactly.
//!
//! Rates depend on the machine (a 1-CPU or busy box may not reach twice): they are printed,
//! never asserted. Only the accounting and the memory bound are.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use prost::Message as _;
use sheaf_proto::frame::next_frame;
use sheaf_proto::msgpb;

use crate::harness::{Launch, Sheaf, totals, wait_until};
use crate::m3msg_ingest::{counter, message, read_acks};

/// Every StatsD datagram the test sends carries this many lines of one value each, so a
/// datagram the kernel drops is this many values.
const LINES_PER_DATAGRAM: u64 = 20;
/// Series the overload writes, per protocol (besides the new ones of `NEW_SERIES_EVERY`).
const OVERLOAD_SERIES: u64 = 1000;
/// Series the normal load after the overload writes, per protocol; created before it.
const RECOVERY_SERIES: u64 = 100;
/// Values the normal load sends, per protocol.
const RECOVERY_VALUES: u64 = 5000;
/// `aggregator.max_series`: room for the bounded series, then the new ones fill it.
const MAX_SERIES: u64 = 6000;
const CALIBRATION: Duration = Duration::from_secs(3);
const OVERLOAD: Duration = Duration::from_secs(30);
const UDP_SENDERS: usize = 2;
const M3MSG_CONNECTIONS: u64 = 4;
/// One m3msg message in this many is for a series never seen before, so the series limit
/// is reached and keeps refusing values during the overload.
const NEW_SERIES_EVERY: u64 = 8;
/// m3msg messages per write.
const MESSAGES_PER_WRITE: u64 = 256;
/// Generous: draining what the sockets queued takes a few seconds on a loaded 1-CPU box.
const SETTLE: Duration = Duration::from_secs(120);

const MIB: u64 = 1 << 20;
/// How far sheaf's anonymous resident memory (its heap and stacks: all that load can grow)
/// may rise above its level after the warm-up, with the test's config (`Run::start`): what
/// each bound in it implies, rounded up.
/// - series: `max_series` 6000 × 1 KiB (a counter series takes ~250 B in a release build,
///   `bench/results/2026-11-21-summary.md`; here ids are longer and the build unoptimised)
///   = 6 MiB;
/// - hand-off: cores × (cores − 1) × (`handoff_queue_batches` 64 + 8 kept for reuse)
///   × ~70 KB = 10 MiB;
/// - streams: 5 m3msg connections × 2 × 128 KiB read buffers, plus each core's budget for
///   larger frames and lines (2 cores × (1 MiB m3msg + 1 MiB StatsD TCP)) = 6 MiB;
/// - sinks: `sink_queue_batches` 16 × `flush_batch_values` 4096 × ~128 B = 8 MiB;
/// - headroom = 32 MiB (with `data_plane.detect_stalls`, off here, glommio's stall detector
///   would keep the debug info it parsed for its first backtrace: 25–64 MiB seen);
/// - allocator slack (pages a thread freed, kept for its reuse; fragmentation) = 48 MiB.
///
/// Measured here: ~64 MiB. Not counted: the UDP receive buffers (`recv_buffer_bytes`, 4 MiB
/// per core), kernel memory outside the process; and file-backed pages (the executable),
/// bounded by its size, which the kernel can drop. Unbounded, a queue here would grow by
/// gigabytes in 30 s of overload.
const ANON_GROWTH_BOUND: u64 = 112 * MIB;

#[test]
fn twice_the_sustainable_rate_for_30s_stays_bounded_counted_and_exact() {
    let mut run = Run::start();
    run.warm_up();
    let capacity = run.calibrate();
    let overload = run.overload(capacity);
    run.normal_load();
    run.check_output(&overload);
}

/// The sheaf under test, what was sent to it, and what was seen of it.
struct Run {
    sheaf: Sheaf,
    /// `softnet_drops` at the start.
    softnet_before: u64,
    /// The socket of the warm-up and the normal load.
    udp: UdpSocket,
    /// StatsD datagrams sent, all phases.
    udp_datagrams: u64,
    /// m3msg values sent (and acked), all phases.
    m3msg_values: u64,
    /// What the flush must say of each series of the normal load.
    recovery: BTreeMap<String, f64>,
    /// Anonymous resident memory after the warm-up, and the highest seen since.
    baseline: Resident,
    peak_anon: u64,
}

/// What the overload's m3msg producers sent, and how many values the series limit refused.
struct Overload {
    m3msg: Vec<M3msgTally>,
    series_limit_refused: f64,
}

impl Run {
    fn start() -> Self {
        let softnet_before = softnet_drops();
        let max_series = format!("  max_series: {MAX_SERIES}\n");
        let sheaf = Sheaf::launch(
            "overload",
            Launch {
                aggregator: &max_series,
                m3msg_server: ", max_frame_size: 65536, max_buffered_bytes_per_core: 1048576",
                statsd_tcp: ", max_buffered_bytes_per_core: 1048576",
                statsd_udp: ", recv_buffer_bytes: 4194304",
                top: "data_plane: {sink_queue_batches: 16}",
                ..Launch::default()
            },
        );
        let baseline = Resident::of(sheaf.pid());
        Self {
            sheaf,
            softnet_before,
            udp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            udp_datagrams: 0,
            m3msg_values: 0,
            recovery: BTreeMap::new(),
            peak_anon: baseline.anon,
            baseline,
        }
    }

    /// Creates the series of the normal load (before the series limit fills up), one value
    /// each, and takes the baseline of resident memory.
    fn warm_up(&mut self) {
        for first in (0..RECOVERY_SERIES).step_by(LINES_PER_DATAGRAM as usize) {
            let lines = (first..first + LINES_PER_DATAGRAM).map(|i| (format!("recovery.udp.{i:03}"), 1));
            self.send_recovery_datagram(lines);
        }
        let mut warm = TcpStream::connect(self.sheaf.m3msg).unwrap();
        for i in 0..RECOVERY_SERIES {
            let id = format!("recovery.m3msg.{i:03}");
            warm.write_all(&message(i, counter(&id, 1))).unwrap();
            self.recovery.insert(id, 1.0);
        }
        assert_eq!(read_acks(&mut warm, RECOVERY_SERIES as usize).len(), RECOVERY_SERIES as usize);
        self.m3msg_values += RECOVERY_SERIES;
        self.sheaf.wait_metric("sheaf_values_applied_total", &[], 2.0 * RECOVERY_SERIES as f64);
        self.baseline = Resident::of(self.sheaf.pid());
        self.peak_anon = self.baseline.anon;
    }

    /// Sends one datagram of the normal load, and adds its values to what the flush must say.
    fn send_recovery_datagram(&mut self, lines: impl Iterator<Item = (String, u64)>) {
        let recovery = &mut self.recovery;
        let lines = lines.inspect(|(id, v)| *recovery.entry(id.clone()).or_default() += *v as f64);
        self.udp.send_to(&datagram(lines), self.sheaf.statsd).unwrap();
        self.udp_datagrams += 1;
    }

    /// Samples resident memory every 100 ms until `until`.
    fn watch_memory_until(&mut self, until: Instant) {
        while Instant::now() < until {
            self.peak_anon = self.peak_anon.max(Resident::of(self.sheaf.pid()).anon);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// What sheaf takes in when one sender offers all it can: the values of that sender's
    /// datagrams it took in, over the time the sender sent (the published counters may lag by
    /// seconds on a busy box, so they are read only once they add up). What the socket had
    /// queued at the end counts too: the capacity is overestimated, if anything.
    fn calibrate(&mut self) -> f64 {
        let before = self.udp_accounted();
        let started = Instant::now();
        let blaster = UdpBlaster::start(1, self.sheaf.statsd);
        self.watch_memory_until(started + CALIBRATION);
        self.udp_datagrams += blaster.stop();
        let sent_secs = started.elapsed().as_secs_f64();
        let after = self.udp_accounted();
        let dropped = after.dropped - before.dropped;
        let capacity = (after.ingested - before.ingested) / sent_secs;
        eprintln!(
            "overload: calibration: sheaf took in {capacity:.0} StatsD values/s from one sender; {dropped} datagrams \
             dropped by the kernel{}",
            if dropped == 0.0 { " (none: the sender, not sheaf, set this rate)" } else { "" }
        );
        capacity
    }

    /// UDP senders and m3msg producers, all as fast as they can, for `OVERLOAD`; then waits
    /// until sheaf has drained, checks the accounting and the memory bound.
    fn overload(&mut self, capacity: f64) -> Overload {
        let sheaf = &self.sheaf;
        let ingested_before = sheaf.metric("sheaf_ingested_values_total", &[]);
        let started = Instant::now();
        let blasters = UdpBlaster::start(UDP_SENDERS, sheaf.statsd);
        let producers: Vec<M3msgProducer> =
            (0..M3MSG_CONNECTIONS).map(|c| M3msgProducer::start(sheaf.m3msg, c)).collect();
        self.watch_memory_until(started + OVERLOAD);
        for p in &producers {
            p.stop.store(true, Relaxed);
        }
        let datagrams = blasters.stop();
        let secs = started.elapsed().as_secs_f64();
        let m3msg: Vec<M3msgTally> = producers.into_iter().map(M3msgProducer::finish).collect();
        let m3msg_values: u64 = m3msg.iter().map(|t| t.messages).sum();
        self.udp_datagrams += datagrams;
        self.m3msg_values += m3msg_values;

        // Drained: every value is accounted for, and every value taken in has been applied
        // or refused by its owning core.
        self.udp_accounted();
        self.m3msg_accounted();
        let sheaf = &self.sheaf;
        let ingested = sheaf.metric("sheaf_ingested_values_total", &[]);
        let settled = || {
            sheaf.metric("sheaf_values_applied_total", &[])
                + sheaf.metric("sheaf_rejected_values_total", &[("reason", "series_limit")])
        };
        let diag = || format!("{} of {ingested}", settled());
        wait_until("every value taken in is applied or refused", SETTLE, || settled() >= ingested, diag);
        assert_eq!(settled(), ingested, "values applied + refused at the series limit = values taken in");

        let offered = (datagrams * LINES_PER_DATAGRAM + m3msg_values) as f64 / secs;
        let (achieved, ratio) = ((ingested - ingested_before) / secs, offered / capacity);
        eprintln!(
            "overload: {}offered {offered:.0} values/s = {ratio:.2}× the calibrated {capacity:.0}/s for {secs:.0} s; \
             took in {achieved:.0}/s (offered / taken in: {:.2}×)",
            if ratio < 2.0 { "NOT 2× (the senders could not reach it on this box): " } else { "" },
            offered / achieved,
        );
        self.check_memory();
        let sheaf = &self.sheaf;
        let series = sheaf.metric("sheaf_series", &[]);
        assert!(series <= MAX_SERIES as f64, "{series} series held, over max_series");
        let series_limit_refused = sheaf.metric("sheaf_rejected_values_total", &[("reason", "series_limit")]);
        let new_values: u64 = m3msg.iter().map(|t| t.new_values).sum();
        if new_values > MAX_SERIES {
            assert!(series_limit_refused > 0.0, "{new_values} new series sent, none refused at max_series");
        }
        Overload { m3msg, series_limit_refused }
    }

    /// The peak of anonymous resident memory over the run so far, against the bound.
    fn check_memory(&mut self) {
        let now = Resident::of(self.sheaf.pid());
        self.peak_anon = self.peak_anon.max(now.anon);
        let bound = self.baseline.anon + ANON_GROWTH_BOUND;
        eprintln!(
            "overload: anonymous resident memory {} MiB after warm-up, peak {} MiB (bound {} MiB); all resident: \
             peak {} MiB, file-backed now {} MiB",
            self.baseline.anon / MIB,
            self.peak_anon / MIB,
            bound / MIB,
            now.peak / MIB,
            now.file / MIB
        );
        assert!(self.peak_anon <= bound, "anonymous resident memory {} MiB", self.peak_anon / MIB);
    }

    /// Normal load on the series created at the warm-up, paced (5,000 values per protocol
    /// over about 2 s), on both protocols: all of it is taken in.
    fn normal_load(&mut self) {
        let dropped_before = self.udp_accounted().dropped;
        let mut value = (1..=7).cycle();
        let (mut m3msg, mut seq) = (TcpStream::connect(self.sheaf.m3msg).unwrap(), 0);
        for burst in 0..RECOVERY_VALUES / LINES_PER_DATAGRAM {
            let first = burst * LINES_PER_DATAGRAM;
            let lines: Vec<(String, u64)> = (first..first + LINES_PER_DATAGRAM)
                .map(|i| (format!("recovery.udp.{:03}", i % RECOVERY_SERIES), value.next().unwrap()))
                .collect();
            self.send_recovery_datagram(lines.into_iter());
            let mut writes = Vec::new();
            for i in first..first + LINES_PER_DATAGRAM {
                let (id, v) = (format!("recovery.m3msg.{:03}", i % RECOVERY_SERIES), value.next().unwrap());
                *self.recovery.get_mut(&id).unwrap() += v as f64;
                writes.extend(message(seq, counter(&id, v as i64)));
                seq += 1;
            }
            m3msg.write_all(&writes).unwrap();
            thread::sleep(Duration::from_millis(8));
        }
        assert_eq!(read_acks(&mut m3msg, RECOVERY_VALUES as usize).len(), RECOVERY_VALUES as usize);
        self.m3msg_values += RECOVERY_VALUES;
        let after = self.udp_accounted();
        assert_eq!(after.dropped, dropped_before, "the kernel dropped datagrams of the normal load after the overload");
        self.m3msg_accounted();
    }

    /// Stops sheaf and checks its flushed output: the normal load exactly, and every value
    /// taken in during the overload (no window twice: `totals` checks it).
    fn check_output(self, overload: &Overload) {
        let udp_taken = self.udp_accounted().ingested;
        let sink_dropped = self.sheaf.metric("sheaf_sink_dropped_values_total", &[]);
        assert_eq!(sink_dropped, 0.0, "a sink dropped flushed values");
        let out = totals(&self.sheaf.stop());
        let sum_of = |prefix: &str| -> f64 {
            out.iter().filter(|((id, agg), _)| id.starts_with(prefix) && agg == "sum").map(|(_, v)| v).sum()
        };
        for (id, want) in &self.recovery {
            assert_eq!(out.get(&(id.clone(), "sum".into())), Some(want), "normal load after the overload: {id}");
        }
        let udp_overload_taken = udp_taken - (RECOVERY_SERIES + RECOVERY_VALUES) as f64;
        assert_eq!(sum_of("overload.udp."), udp_overload_taken, "StatsD values taken in during the overload");
        let bounded: f64 = overload.m3msg.iter().map(|t| t.bounded_sum).sum();
        assert_eq!(sum_of("overload.m3msg.series."), bounded, "m3msg values of the bounded series");
        let new_values: u64 = overload.m3msg.iter().map(|t| t.new_values).sum();
        let new_taken = new_values as f64 - overload.series_limit_refused;
        assert_eq!(sum_of("overload.m3msg.new."), new_taken, "m3msg values of new series, less those refused");
    }

    /// Every m3msg value sent (and acked) is counted as taken in; none is rejected.
    fn m3msg_accounted(&self) {
        let sent = self.m3msg_values as f64;
        self.sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], sent);
        assert_eq!(self.sheaf.metric("sheaf_ingested_values_total", &[("protocol", "m3msg")]), sent);
        assert_eq!(self.sheaf.metric("sheaf_rejected_values_total", &[("protocol", "m3msg")]), 0.0);
    }

    fn udp_accounted(&self) -> UdpAccount {
        wait_udp_accounted(&self.sheaf, self.udp_datagrams, self.softnet_before)
    }
}

/// A datagram of `LINES_PER_DATAGRAM` StatsD counter lines.
fn datagram(lines: impl Iterator<Item = (String, u64)>) -> Vec<u8> {
    let text: Vec<String> = lines.map(|(id, v)| format!("{id}:{v}|c")).collect();
    assert_eq!(text.len() as u64, LINES_PER_DATAGRAM);
    text.join("\n").into_bytes()
}

/// The overload's StatsD datagrams: every one of the `OVERLOAD_SERIES` counters once, value 1,
/// lines of ~40 bytes.
fn overload_datagrams() -> Vec<Vec<u8>> {
    (0..OVERLOAD_SERIES)
        .step_by(LINES_PER_DATAGRAM as usize)
        .map(|first| {
            datagram((first..first + LINES_PER_DATAGRAM).map(|i| (format!("overload.udp.counter.series.{i:04}"), 1)))
        })
        .collect()
}

/// StatsD UDP senders, each its own socket (its own flow, so the kernel may spread them over
/// the cores), sending the overload's datagrams round and round as fast as they can.
struct UdpBlaster {
    stop: Arc<AtomicBool>,
    senders: Vec<JoinHandle<u64>>,
}

impl UdpBlaster {
    fn start(senders: usize, to: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let datagrams = Arc::new(overload_datagrams());
        let senders = (0..senders)
            .map(|_| {
                let (stop, datagrams) = (stop.clone(), datagrams.clone());
                thread::spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let mut sent = 0u64;
                    while !stop.load(Relaxed) {
                        for d in datagrams.iter() {
                            // A send the kernel refuses (ENOBUFS) sent nothing.
                            if socket.send_to(d, to).is_ok() {
                                sent += 1;
                            }
                        }
                    }
                    sent
                })
            })
            .collect();
        Self { stop, senders }
    }

    /// Stops the senders; returns the datagrams they sent.
    fn stop(self) -> u64 {
        self.stop.store(true, Relaxed);
        self.senders.into_iter().map(|s| s.join().unwrap()).sum()
    }
}

/// What one m3msg producer sent.
#[derive(Default)]
struct M3msgTally {
    messages: u64,
    /// Sum of the values sent for the `OVERLOAD_SERIES` bounded series.
    bounded_sum: f64,
    /// Values (1 each) sent for series never seen before.
    new_values: u64,
    bounded_messages: u64,
}

/// One m3msg connection: a writer pushing counters as fast as TCP lets it, one value per
/// message, and a reader taking the acks.
struct M3msgProducer {
    stop: Arc<AtomicBool>,
    writer: JoinHandle<M3msgTally>,
    reader: JoinHandle<Vec<u64>>,
}

impl M3msgProducer {
    fn start(to: SocketAddr, connection: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut stream = TcpStream::connect(to).unwrap();
        stream.set_write_timeout(Some(SETTLE)).unwrap();
        let mut acks_in = stream.try_clone().unwrap();
        let reader = thread::spawn(move || acks_until_closed(&mut acks_in));
        let stopped = stop.clone();
        let writer = thread::spawn(move || {
            let mut tally = M3msgTally::default();
            let mut write = Vec::new();
            while !stopped.load(Relaxed) {
                write.clear();
                for _ in 0..MESSAGES_PER_WRITE {
                    let seq = tally.messages;
                    let metric = if seq % NEW_SERIES_EVERY == NEW_SERIES_EVERY - 1 {
                        tally.new_values += 1;
                        counter(&format!("overload.m3msg.new.{connection}.{seq}"), 1)
                    } else {
                        let value = seq % 5 + 1;
                        tally.bounded_sum += value as f64;
                        tally.bounded_messages += 1;
                        let id = format!("overload.m3msg.series.{:04}", tally.bounded_messages % OVERLOAD_SERIES);
                        counter(&id, value as i64)
                    };
                    write.extend(message(seq, metric));
                    tally.messages += 1;
                }
                // Blocks while sheaf is behind (TCP backpressure): nothing is dropped here.
                stream.write_all(&write).expect("sheaf takes m3msg under overload");
            }
            stream.shutdown(Shutdown::Write).unwrap();
            tally
        });
        Self { stop, writer, reader }
    }

    /// Waits for the writer (stopped by `stop`) and for sheaf to ack everything and close;
    /// checks that every message was acked exactly once.
    fn finish(self) -> M3msgTally {
        let tally = self.writer.join().unwrap();
        let mut acked = self.reader.join().unwrap();
        acked.sort_unstable();
        let once: Vec<u64> = (0..tally.messages).collect();
        assert!(acked == once, "{} acks for {} messages, not each once", acked.len(), tally.messages);
        tally
    }
}

/// Every message id acked on `stream`, in order of arrival, until sheaf closes it.
fn acks_until_closed(stream: &mut TcpStream) -> Vec<u64> {
    stream.set_read_timeout(Some(SETTLE)).unwrap();
    let (mut acked, mut buf, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 65536]);
    loop {
        let n = stream.read(&mut chunk).unwrap_or_else(|e| panic!("reading acks: {e}"));
        if n == 0 {
            assert!(buf.is_empty(), "a partial ack frame at close");
            return acked;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut off = 0;
        while let Some((payload, used)) = next_frame(&buf[off..], 1 << 24).unwrap() {
            acked.extend(msgpb::Ack::decode(payload).unwrap().metadata.iter().map(|m| m.id));
            off += used;
        }
        buf.drain(..off);
    }
}

/// StatsD UDP counters once they account for every value sent.
#[derive(Debug)]
struct UdpAccount {
    ingested: f64,
    dropped: f64,
}

/// Waits until the StatsD UDP values taken in, rejected, and in datagrams the kernel dropped
/// add up to the values in `datagrams` sent; asserts they add up exactly (but for drops before
/// any socket, which only the host counts: `softnet_drops` was `softnet_before` at the start).
fn wait_udp_accounted(sheaf: &Sheaf, datagrams: u64, softnet_before: u64) -> UdpAccount {
    let sent = (datagrams * LINES_PER_DATAGRAM) as f64;
    let read = || {
        let ingested = sheaf.metric("sheaf_ingested_values_total", &[("protocol", "statsd_udp")]);
        let rejected = sheaf.metric("sheaf_rejected_values_total", &[("protocol", "statsd_udp")]);
        let dropped = sheaf.metric("sheaf_udp_dropped_datagrams_total", &[]);
        (ingested, rejected, dropped, ingested + rejected + dropped * LINES_PER_DATAGRAM as f64)
    };
    // Loopback may also drop a datagram before it reaches any socket (a CPU's backlog full),
    // which no socket counts; the host does, in /proc/net/softnet_stat. So the wait also
    // ends once the counters stand still for 5 s with that many such drops since the start.
    let unseen = |total: f64| (sent - total) / LINES_PER_DATAGRAM as f64;
    let host_drops = || softnet_drops().saturating_sub(softnet_before) as f64;
    let diag = || format!("{:?} of {sent} sent; host backlog drops {}", read(), host_drops());
    let mut last = (read().3, Instant::now());
    let settled = || {
        let total = read().3;
        if total != last.0 {
            last = (total, Instant::now());
        }
        total >= sent || (last.1.elapsed() > Duration::from_secs(5) && unseen(total) <= host_drops())
    };
    wait_until("StatsD values taken in, rejected or dropped add up to those sent", SETTLE, settled, diag);
    let (ingested, rejected, dropped, total) = read();
    let what = format!("StatsD UDP: {ingested} taken in + {rejected} rejected + {dropped} datagrams dropped");
    assert!(total <= sent, "{what}: more than the {sent} sent");
    if total < sent {
        assert!(unseen(total) <= host_drops(), "{what}: {} datagrams of {datagrams} unaccounted", unseen(total));
        eprintln!(
            "overload: {} datagrams lost before any socket (host backlog drops: {})",
            unseen(total),
            host_drops()
        );
    }
    assert_eq!(rejected, 0.0, "every line sent is valid");
    UdpAccount { ingested, dropped }
}

/// Packets the kernel dropped before any socket (a CPU's backlog full), on every CPU.
fn softnet_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    text.lines().filter_map(|l| l.split_whitespace().nth(1)).filter_map(|c| u64::from_str_radix(c, 16).ok()).sum()
}

/// A process's resident memory, from `/proc/PID/status`, in bytes.
struct Resident {
    /// Anonymous pages: heap, stacks.
    anon: u64,
    /// Pages of mapped files: the executable, its debug info.
    file: u64,
    /// The peak of all resident pages since start (`VmHWM`).
    peak: u64,
}

impl Resident {
    fn of(pid: i32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.split(':').next() == Some(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        Self { anon: field("RssAnon"), file: field("RssFile"), peak: field("VmHWM") }
    }
}
