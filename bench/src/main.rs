//! `sheaf-load`: drives a running sheaf over loopback with StatsD (UDP, TCP or a Unix
//! datagram socket) or m3msg (TCP) traffic, then reports what was sent, what sheaf says it ingested, the CPU it spent, and
//! (given the json sink's output file) whether every counter increment came out again.
//!
//! See bench/README.md for how to run it against `sheaf run`.

mod admin;
mod loss;
mod m3msg;
mod procfs;
mod send_plan;
mod statsd;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use send_plan::{SendPlan, Totals};
use serde_json::{Value, json};
use sheaf_bench::workload::{Mix, SeriesSpace};

/// How sheaf names its shard-core threads (`sheaf-core-<index>`).
const SHARD_CORE_THREADS: &str = "sheaf-core-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    Statsd,
    M3msg,
}

/// `--statsd-transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Udp,
    Tcp,
    Unix,
}

#[derive(Debug, Parser)]
#[command(
    name = "sheaf-load",
    version,
    about = "load generator for sheaf (StatsD over UDP, TCP or a Unix socket; m3msg over TCP)"
)]
struct Cli {
    /// Which protocol to send.
    #[arg(long, value_enum, default_value = "statsd")]
    protocol: Proto,
    /// sheaf's StatsD UDP address.
    #[arg(long, default_value = "127.0.0.1:8125")]
    statsd_udp: SocketAddr,
    /// StatsD over UDP datagrams (to --statsd-udp), over TCP connections (to --statsd-tcp,
    /// one per --connections, the same payloads of whole lines) or over a Unix datagram
    /// socket (to --statsd-unix; sends block while sheaf's queue is full).
    #[arg(long, value_enum, default_value = "udp")]
    statsd_transport: Transport,
    /// sheaf's StatsD TCP address.
    #[arg(long, default_value = "127.0.0.1:8125")]
    statsd_tcp: SocketAddr,
    /// sheaf's StatsD Unix datagram socket (`statsd.unix.path`), for `--statsd-transport unix`.
    #[arg(long, default_value = "/tmp/sheaf-statsd.sock")]
    statsd_unix: PathBuf,
    /// sheaf's m3msg address.
    #[arg(long, default_value = "127.0.0.1:6000")]
    m3msg: SocketAddr,
    /// sheaf's admin HTTP address (`/metrics` is read before and after the run).
    #[arg(long, default_value = "127.0.0.1:6001")]
    admin: SocketAddr,
    /// Distinct series, split over counters, gauges and timers by --mix.
    #[arg(long, default_value_t = 100_000)]
    series: u64,
    /// Percentages of counters, gauges and timers.
    #[arg(long, default_value = "60,20,20")]
    mix: Mix,
    /// Values per second over all senders; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// m3msg: TCP connections, one writer and one ack-reader thread each.
    /// StatsD: UDP sender sockets, one thread each.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// StatsD lines per datagram (a datagram is cut earlier to stay within --datagram-bytes).
    #[arg(long, default_value_t = 87)]
    lines_per_datagram: usize,
    /// StatsD: the most bytes of one datagram (or TCP write). 1400 fits an Ethernet MTU; on
    /// a Unix socket DogStatsD clients send up to 8192.
    #[arg(long, default_value_t = sheaf_bench::workload::MAX_DATAGRAM_BYTES)]
    datagram_bytes: usize,
    /// m3msg: values per BATCH_TIMER message (1 = one value per timer message).
    #[arg(long, default_value_t = 1)]
    timer_batch: usize,
    /// m3msg: shards of the topic (message shard = murmur3(id) % this).
    #[arg(long, default_value_t = 64)]
    num_shards: u32,
    /// Encode each sender's share of the series once before sending (m3msg frames, StatsD
    /// datagrams), then send those bytes over and over (m3msg: only `sent_at_nanos` is
    /// rewritten). The sender then costs a copy per message or a send per datagram instead
    /// of an encode, so that on a small host it leaves sheaf more CPU. Gauge and timer
    /// values repeat from one pass to the next.
    #[arg(long)]
    replay: bool,
    /// Pad series ids with zeros before the index to at least this many bytes (0: no padding).
    #[arg(long, default_value_t = 0)]
    id_len: usize,
    /// m3msg: how long to wait after sending for the outstanding acks.
    #[arg(long, default_value_t = 10.0)]
    ack_timeout: f64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// The JSON-lines file sheaf's json sink writes; enables the counter loss check.
    #[arg(long)]
    flush_output: Option<PathBuf>,
    /// Seconds to wait at most, after sending, for the last windows to be flushed to
    /// --flush-output (the check stops early once every counter increment is seen).
    #[arg(long, default_value_t = 12.0)]
    settle: f64,
    /// Seconds to send before the measured run, not counted, so that every series exists
    /// when measuring starts (steady state rather than series creation). Not with
    /// --flush-output: the warm-up's counters would share windows with the measured ones.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// sheaf's process id: report its CPU time and values per CPU-second.
    #[arg(long)]
    pid: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(cli.series > 0, "--series must be at least 1");
    anyhow::ensure!(cli.lines_per_datagram > 0, "--lines-per-datagram must be at least 1");
    anyhow::ensure!(
        (64..=65_507).contains(&cli.datagram_bytes),
        "--datagram-bytes must be 64 to 65507 (the largest UDP payload)"
    );
    anyhow::ensure!(cli.duration > 0.0, "--duration must be positive");
    let space = SeriesSpace::new(cli.series, cli.mix);
    sheaf_bench::workload::set_min_id_len(cli.id_len);

    anyhow::ensure!(
        cli.warmup >= 0.0 && !(cli.warmup > 0.0 && cli.flush_output.is_some()),
        "--warmup must be 0 or more, and cannot be combined with --flush-output"
    );
    if cli.warmup > 0.0 {
        eprintln!("sheaf-load: warming up for {} s (not measured)", cli.warmup);
        let (_, errors) = send(&cli, space, cli.warmup, &Arc::new(Totals::default()), false)?;
        anyhow::ensure!(errors.is_empty(), "warm-up failed: {}", errors.join("; "));
        // Let sheaf apply what is queued before the measured run starts.
        std::thread::sleep(Duration::from_secs(1));
    }
    let admin_before = admin::scrape(cli.admin);
    if let Err(e) = &admin_before {
        eprintln!("sheaf-load: warning: admin {}: {e:#} (no ingest numbers)", cli.admin);
    }
    let flush_offset = cli.flush_output.as_ref().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let udp_before = procfs::udp_counters();
    let sheaf_cpu_before = cli.pid.map(procfs::cpu_seconds).transpose()?;
    let cores_cpu_before = cli.pid.and_then(|pid| procfs::threads_cpu_seconds(pid, SHARD_CORE_THREADS));
    let self_cpu_before = procfs::self_cpu_seconds();

    let totals = Arc::new(Totals::default());
    let (send_elapsed, sender_errors) = send(&cli, space, cli.duration, &totals, true)?;
    for e in &sender_errors {
        eprintln!("sheaf-load: sender: {e}");
    }

    // Let sheaf drain what is queued and publish its stats (every 500 ms by default).
    let (admin_after, drain_s) = match &admin_before {
        Ok(before) => wait_for_ingest(cli.admin, before, totals.values.load(Relaxed)),
        Err(_) => (None, 0.0),
    };
    let sheaf_cpu_after = cli.pid.map(procfs::cpu_seconds).transpose()?;
    let cores_cpu_after = cli.pid.and_then(|pid| procfs::threads_cpu_seconds(pid, SHARD_CORE_THREADS));
    let self_cpu_after = procfs::self_cpu_seconds();
    let udp_after = procfs::udp_counters();

    let values = totals.values.load(Relaxed);
    let counter_values = totals.counter_values.load(Relaxed);
    let mut report = json!({
        "tool": "sheaf-load",
        "machine": procfs::machine(),
        "params": {
            "protocol": format!("{:?}", cli.protocol).to_lowercase(),
            "target": match cli.protocol {
                Proto::M3msg => cli.m3msg.to_string(),
                Proto::Statsd => statsd_target(&cli).to_string(),
            },
            "transport": match (cli.protocol, cli.statsd_transport) {
                (Proto::Statsd, Transport::Udp) => "udp",
                (Proto::Statsd, Transport::Unix) => "unix",
                (Proto::Statsd, Transport::Tcp) | (Proto::M3msg, _) => "tcp",
            },
            "series": space.total(),
            "series_per_kind": { "counters": space.per_kind[0], "gauges": space.per_kind[1], "timers": space.per_kind[2] },
            "mix": cli.mix.to_string(),
            "rate": cli.rate,
            "duration_s": cli.duration,
            "warmup_s": cli.warmup,
            "connections": cli.connections,
            "lines_per_datagram": cli.lines_per_datagram,
            "datagram_bytes": cli.datagram_bytes,
            "timer_batch": cli.timer_batch,
            "replay": cli.replay,
            "id_len": cli.id_len,
        },
        "sent": {
            "values": values,
            "counter_values": counter_values,
            (match cli.protocol { Proto::Statsd => "datagrams", Proto::M3msg => "messages" }): totals.units.load(Relaxed),
            "bytes": totals.bytes.load(Relaxed),
            "send_errors": totals.send_errors.load(Relaxed),
            "elapsed_s": send_elapsed,
            "values_per_s": values as f64 / send_elapsed,
            "sender_errors": sender_errors,
        },
    });
    if cli.protocol == Proto::M3msg {
        let acked = totals.acked.load(Relaxed);
        let messages = totals.units.load(Relaxed);
        report["acked"] = json!({
            "messages": acked,
            "unacked": messages.saturating_sub(acked),
            "latency_ms": m3msg::ack_latency_report(&totals),
            "ack_frames": totals.ack_frames.load(Relaxed),
            "max_ack_frame_bytes": totals.max_ack_frame_bytes.load(Relaxed),
            "max_ack_metadata": totals.max_ack_metadata.load(Relaxed),
            "ack_frames_over_4mib": totals.ack_frames_over_4mib.load(Relaxed),
        });
    }
    if let (Some(b), Some(a)) = (udp_before, udp_after) {
        report["udp_kernel"] = json!({
            "rcvbuf_errors": a.rcvbuf_errors.saturating_sub(b.rcvbuf_errors),
            "in_errors": a.in_errors.saturating_sub(b.in_errors),
            "sndbuf_errors": a.sndbuf_errors.saturating_sub(b.sndbuf_errors),
        });
    }
    let mut ingested = None;
    if let (Ok(before), Some(after)) = (&admin_before, &admin_after) {
        let delta = |f: fn(&admin::Snapshot) -> f64| f(after) - f(before);
        let ingested_values = delta(|s| s.ingested);
        ingested = Some(ingested_values);
        report["sheaf"] = json!({
            "ingested_values": ingested_values,
            "rejected_values": delta(|s| s.rejected),
            "values_applied": delta(|s| s.applied),
            "ingest_values_per_s": ingested_values / send_elapsed,
            "ingested_over_sent": if values > 0 { ingested_values / values as f64 } else { 0.0 },
            "drain_after_send_s": drain_s,
            "sink_dropped_values": delta(|s| s.sink_dropped),
        });
    }
    if let (Some(b), Some(a)) = (sheaf_cpu_before, sheaf_cpu_after) {
        let cpu = a - b;
        let per_cpu = ingested.unwrap_or(values as f64) / cpu.max(1e-9);
        report["cpu"] = json!({
            "sheaf_cpu_s": cpu,
            "sheaf_cores_busy": cpu / (send_elapsed + drain_s),
            "values_per_cpu_s": per_cpu,
            "values_counted": if ingested.is_some() { "sheaf ingested" } else { "sent" },
        });
        // The shard cores alone (the "per shard core"), without the sink, control
        // and forwarder threads.
        if let (Some(b), Some(a)) = (cores_cpu_before, cores_cpu_after) {
            let cores_cpu = a - b;
            report["cpu"]["shard_cores_cpu_s"] = json!(cores_cpu);
            report["cpu"]["values_per_shard_core_cpu_s"] =
                json!(ingested.unwrap_or(values as f64) / cores_cpu.max(1e-9));
        }
    }
    if let (Some(b), Some(a)) = (self_cpu_before, self_cpu_after) {
        report["loadgen_cpu_s"] = json!(a - b);
    }
    if let (Some(path), Some(offset)) = (&cli.flush_output, flush_offset) {
        let check = loss::check(path, offset, counter_values, Duration::from_secs_f64(cli.settle))?;
        report["loss"] = check;
    }

    print_summary(&report);
    if let Some(path) = &cli.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// Sends for `seconds` with `cli`'s protocol and rate, counting into `totals`; returns the
/// seconds spent sending and the errors of the sender threads.
fn send(
    cli: &Cli,
    space: SeriesSpace,
    seconds: f64,
    totals: &Arc<Totals>,
    show_progress: bool,
) -> anyhow::Result<(f64, Vec<String>)> {
    let start = Instant::now();
    let duration = Duration::from_secs_f64(seconds);
    let plan = SendPlan {
        mix: cli.mix,
        space,
        threads: cli.connections,
        rate_per_thread: cli.rate as f64 / cli.connections as f64,
        deadline: start + duration,
        totals: totals.clone(),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let progress = if show_progress { progress_bar(seconds) } else { ProgressBar::hidden() };
    let senders = match cli.protocol {
        Proto::Statsd => statsd::start(
            &statsd_target(cli),
            statsd::DatagramShape { lines: cli.lines_per_datagram, max_bytes: cli.datagram_bytes },
            cli.replay,
            &plan,
        )?,
        Proto::M3msg => m3msg::start(
            cli.m3msg,
            m3msg::Options {
                timer_batch: cli.timer_batch.max(1),
                num_shards: cli.num_shards,
                ack_timeout: Duration::from_secs_f64(cli.ack_timeout),
                replay: cli.replay,
            },
            &plan,
        )?,
    };
    while Instant::now() < plan.deadline && !senders.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        let elapsed = start.elapsed().as_secs_f64();
        let values = totals.values.load(Relaxed);
        progress.set_position(elapsed.min(seconds) as u64);
        progress.set_message(format!("{values} values, {:.0}/s", values as f64 / elapsed.max(1e-9)));
    }
    let send_elapsed = start.elapsed().min(duration).as_secs_f64();
    progress.set_message("waiting for senders (and acks)");
    let mut sender_errors = Vec::new();
    for h in senders {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => sender_errors.push(format!("{e:#}")),
            Err(_) => sender_errors.push("sender thread panicked".into()),
        }
    }
    progress.finish_and_clear();
    Ok((send_elapsed, sender_errors))
}

fn statsd_target(cli: &Cli) -> statsd::Target {
    match cli.statsd_transport {
        Transport::Udp => statsd::Target::Udp(cli.statsd_udp),
        Transport::Tcp => statsd::Target::Tcp(cli.statsd_tcp),
        Transport::Unix => statsd::Target::Unix(cli.statsd_unix.clone()),
    }
}

fn progress_bar(duration: f64) -> ProgressBar {
    let bar = ProgressBar::new(duration.ceil() as u64);
    if std::io::stderr().is_terminal() {
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len}s {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Reads `/metrics` until sheaf's ingested count stops moving (or has reached what was
/// sent); returns the last snapshot and how long after the end of sending that took.
fn wait_for_ingest(addr: SocketAddr, before: &admin::Snapshot, sent: u64) -> (Option<admin::Snapshot>, f64) {
    let t0 = Instant::now();
    let mut last: Option<admin::Snapshot> = None;
    let mut unchanged = 0;
    while t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(now) = admin::scrape(addr) else {
            continue;
        };
        let done = now.ingested - before.ingested >= sent as f64;
        unchanged = match &last {
            Some(l) if l.ingested == now.ingested => unchanged + 1,
            _ => 0,
        };
        last = Some(now);
        // Stats are published every stats_interval (500 ms by default): two unchanged reads
        // 300 ms apart span more than one publication.
        if done || unchanged >= 2 {
            break;
        }
    }
    (last, t0.elapsed().as_secs_f64())
}

fn print_summary(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let sent = &r["sent"];
    println!(
        "sent      {:.0} values ({:.0} counter increments) in {:.2}s = {:.0} values/s, {} send errors",
        f(&sent["values"]),
        f(&sent["counter_values"]),
        f(&sent["elapsed_s"]),
        f(&sent["values_per_s"]),
        sent["send_errors"]
    );
    if !r["acked"].is_null() {
        let a = &r["acked"];
        println!("acked     {} messages ({} unacked), ack latency ms {}", a["messages"], a["unacked"], a["latency_ms"]);
        println!(
            "acks      {} frames, largest {} bytes / {} entries, {} over the 4 MiB an M3 producer accepts",
            a["ack_frames"], a["max_ack_frame_bytes"], a["max_ack_metadata"], a["ack_frames_over_4mib"]
        );
    }
    if !r["sheaf"].is_null() {
        let s = &r["sheaf"];
        println!(
            "sheaf     ingested {:.0} values ({:.0}/s over the send time, {:.4} of sent), rejected {:.0}, drained {:.1}s after send",
            f(&s["ingested_values"]),
            f(&s["ingest_values_per_s"]),
            f(&s["ingested_over_sent"]),
            f(&s["rejected_values"]),
            f(&s["drain_after_send_s"])
        );
    }
    if !r["udp_kernel"].is_null() {
        println!("kernel    udp {}", r["udp_kernel"]);
    }
    if !r["cpu"].is_null() {
        let c = &r["cpu"];
        println!(
            "cpu       sheaf {:.2} CPU-s ({:.2} cores busy), {:.0} values per CPU-second; load generator {:.2} CPU-s",
            f(&c["sheaf_cpu_s"]),
            f(&c["sheaf_cores_busy"]),
            f(&c["values_per_cpu_s"]),
            f(&r["loadgen_cpu_s"])
        );
        if !c["shard_cores_cpu_s"].is_null() {
            println!(
                "          shard cores alone {:.2} CPU-s, {:.0} values per shard-core CPU-second",
                f(&c["shard_cores_cpu_s"]),
                f(&c["values_per_shard_core_cpu_s"])
            );
        }
    }
    if !r["loss"].is_null() {
        let l = &r["loss"];
        println!(
            "loss      counters: sent {:.0}, flushed sum {:.0} (policy {}), loss {:.4}%",
            f(&l["counter_values_sent"]),
            f(&l["flushed_counter_sum"]),
            l["policy"],
            f(&l["loss_pct"])
        );
    }
    let m = &r["machine"];
    println!(
        "machine   {} cpus ({} for sheaf-load), {}, kernel {}",
        m["cpus_in_cpuinfo"], m["nproc"], m["cpu_model"], m["kernel"]
    );
}
