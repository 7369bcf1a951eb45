//! Boot: config → logging → sinks → control thread (which starts the cores) → wait →
//! ordered shutdown. The edge of the program, so errors are `anyhow` here.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sheaf_shard_core::{AggregatorOptions, Naming};
use sheaf_shard_runtime::{
    CheckpointConfig, FlushBatchPool, FlushReports, FlushSchedule, IngestConfig, PoolConfig, PoolServices, StreamLimits,
};

use crate::admin::SinkView;
use crate::config::Config;
use crate::{control, host_checks, sinks};

pub fn check_config(path: &Path, explain: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let cpus = config.cpus()?;
    let form = if config.m3_notes.is_some() { "m3aggregator config" } else { "sheaf config" };
    println!("{}: ok, {form} ({} shard cores, {} shards)", path.display(), cpus.len(), config.num_shards);
    if explain {
        match &config.m3_notes {
            Some(notes) => print!("{}", crate::config::m3::explain(notes)),
            None => println!("(sheaf's own keys: each means what tuning/config-template.yaml says)"),
        }
    }
    Ok(())
}

pub fn run(path: Option<&Path>, discard_checkpoints: bool) -> anyhow::Result<()> {
    let config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    init_logging(&config.logging.level)?;
    if let Some(notes) = &config.m3_notes {
        let ignored = crate::config::m3::ignored_keys(notes);
        tracing::info!(
            keys = notes.len(),
            "read an m3aggregator config; `sheaf check-config --explain` shows each key"
        );
        if !ignored.is_empty() {
            tracing::warn!(
                "m3aggregator keys accepted but not applied (Go internals or mechanisms sheaf does not have): {}",
                ignored.join(", ")
            );
        }
    }
    let credentials = control::Credentials::load(&config)?;
    let pool_config = pool_config(&config)?;
    if let Some(dir) = &config.data_dir {
        let scan = sheaf_shard_runtime::prepare_data_dir(dir, config.num_shards, discard_checkpoints)?;
        tracing::info!(
            data_dir = %dir.display(),
            checkpoints = scan.checkpoints,
            discarded = scan.discarded,
            interval = ?config.checkpoint.interval.0,
            "shard checkpoints"
        );
    } else if discard_checkpoints {
        tracing::warn!("--discard-checkpoints without data_dir: nothing to discard");
    }
    for w in host_checks::warnings(&config, &pool_config.cpus) {
        tracing::warn!("{w}");
    }
    let sink_drain = config.data_plane.sink_drain_timeout.0;
    // Emptied batches wait here per core: twice what a round may have queued ahead
    // (`data_plane.flush_ahead_batches`), at least 4 (each ~220 KB at 4096 values and 20-byte
    // ids). A round waiting for its sinks takes them back every millisecond and reuses them,
    // so a round allocates only what is in flight at once; between rounds the pool keeps
    // what it holds, not a large round's whole backlog.
    let kept = (2 * config.data_plane.flush_ahead_batches).max(4);
    let flush_batches = FlushBatchPool::new(pool_config.cpus.len(), kept);
    let mut sinks = sinks::start(&config, flush_batches.clone())?;
    let services = PoolServices {
        sinks: sinks.iter().map(|s| s.queue.clone()).collect(),
        flush_reports: Arc::new(FlushReports::new(4096)),
        flush_batches,
        release_memory: Some(crate::allocator::release_freed_memory),
    };
    let views = sinks
        .iter()
        .map(|s| SinkView {
            name: s.queue.name().to_string(),
            kind: s.kind,
            queue: s.queue.clone(),
            metrics: s.metrics.clone(),
        })
        .collect();
    let control = std::thread::Builder::new()
        .name("sheaf-control".into())
        .spawn(move || {
            if let Some(cpu) = config.control_cpu
                && let Err(e) = host_checks::pin_current_thread(cpu)
            {
                tracing::warn!(cpu, error = %e, "could not pin the control thread");
            }
            control::run(config, credentials, pool_config, services, views)
        })
        .context("starting the control thread")?;
    let result = control.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
    // The cores have flushed into the sinks; let them drain.
    let deadline = std::time::Instant::now() + sink_drain;
    for sink in &mut sinks {
        sink.close_and_join(deadline);
    }
    if result.is_ok() {
        tracing::info!("sheaf stopped");
    }
    result
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .with_context(|| format!("logging.level: invalid filter {filter:?}"))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    Ok(())
}

fn pool_config(config: &Config) -> anyhow::Result<PoolConfig> {
    let agg = &config.aggregator;
    let opt = |enabled: bool, addr| enabled.then_some(addr);
    let cpus = config.cpus()?;
    let cores = cpus.len().max(1);
    Ok(PoolConfig {
        cpus,
        pin: config.pin_cores,
        num_shards: config.num_shards,
        aggregator: AggregatorOptions {
            default_policies: config.storage_policies()?,
            discard_nan: agg.discard_nan_aggregated_values,
            timed_buffer_past: agg.buffer_duration_for_past_timed_metric.0.as_nanos() as i64,
            timed_buffer_future: agg.buffer_duration_for_future_timed_metric.0.as_nanos() as i64,
            entry_ttl: agg.entry_ttl.0.as_nanos() as i64,
            min_resolution: agg.min_storage_resolution.0.as_nanos() as i64,
            max_series_per_core: agg.max_series.div_ceil(cores),
            // Replication 1 until a placement says otherwise (cluster mode).
            rate_limits: agg.rate_limits.for_cores(config.num_shards, 1),
            naming: Arc::new(Naming {
                metric_prefix: agg.metric_prefix.clone(),
                counter_prefix: agg.counter_prefix.clone(),
                timer_prefix: agg.timer_prefix.clone(),
                gauge_prefix: agg.gauge_prefix.clone(),
            }),
            forwarding_max_const_delay: agg.forwarding.max_const_delay.map_or(0, |d| d.0.as_nanos() as i64),
        },
        ingest: IngestConfig {
            m3msg: opt(config.m3msg.server.enabled, config.m3msg.server.listen_address),
            statsd_udp: opt(config.statsd.udp.enabled, config.statsd.udp.listen_address),
            statsd_tcp: opt(config.statsd.tcp.enabled, config.statsd.tcp.listen_address),
            statsd_unix: config.statsd.unix.path.clone(),
            max_frame_size: config.m3msg.server.max_frame_size,
            max_line_size: config.statsd.max_line_size,
            udp_recv_buffer: config.statsd.udp.recv_buffer_bytes,
            udp_by_cpu: config.statsd.udp.distribute_by == crate::config::UdpDistribution::Cpu,
            udp_small_read_pause: config.statsd.udp.small_read_pause.0,
            tcp_small_read_pause: config.statsd.tcp.small_read_pause.0,
            unix_small_read_pause: config.statsd.unix.small_read_pause.0,
            ack_interval: config.m3msg.server.ack_interval.0,
            ack_delay: config.m3msg.server.ack_delay.0,
            small_read_pause: config.m3msg.server.small_read_pause.0,
            max_acks_per_frame: config.m3msg.server.max_acks_per_frame,
            m3msg_limits: StreamLimits {
                max_connections: config.m3msg.server.max_connections,
                read_timeout: Some(config.m3msg.server.read_timeout.0).filter(|d| !d.is_zero()),
                max_buffered_bytes_per_core: config.m3msg.server.max_buffered_bytes_per_core,
            },
            statsd_tcp_limits: StreamLimits {
                max_connections: config.statsd.tcp.max_connections,
                read_timeout: Some(config.statsd.tcp.read_timeout.0).filter(|d| !d.is_zero()),
                max_buffered_bytes_per_core: config.statsd.tcp.max_buffered_bytes_per_core,
            },
        },
        flush: FlushSchedule {
            max_jitters: agg
                .flush_manager
                .max_jitters
                .iter()
                .map(|r| (r.flush_interval.0, r.max_jitter_percent))
                .collect(),
            jitter_enabled: agg.flush_manager.jitter_enabled,
            seed: rand::random(),
            min_offset: config.cluster.as_ref().map_or(std::time::Duration::ZERO, |c| c.flush_delay.0),
        },
        handoff_batch_values: config.data_plane.handoff_batch_values,
        handoff_queue_batches: config.data_plane.handoff_queue_batches,
        handoff_linger: config.data_plane.handoff_linger.0,
        handoff_tick: config.data_plane.handoff_tick.0,
        flush_batch_values: config.data_plane.flush_batch_values,
        sink_enqueue_timeout: config.data_plane.sink_enqueue_timeout.0,
        flush_ahead_batches: config.data_plane.flush_ahead_batches,
        detect_stalls: config.data_plane.detect_stalls,
        forward_max_buffered_values: config.cluster.as_ref().map_or(1 << 20, |c| c.forward_max_buffered_messages),
        unowned_hold: config.cluster.as_ref().map_or(std::time::Duration::ZERO, |c| c.unowned_hold.0),
        unowned_hold_max_values: config.cluster.as_ref().map_or(0, |c| c.unowned_hold_max_values),
        stats_interval: config.data_plane.stats_interval.0,
        spin_before_park: Some(config.data_plane.spin_before_park.0).filter(|d| !d.is_zero()),
        io_memory_bytes: config.data_plane.io_memory_bytes,
        checkpoint: config
            .data_dir
            .as_ref()
            .map(|dir| CheckpointConfig { dir: dir.clone(), interval: config.checkpoint.interval.0 }),
        idle_shard_after: config.idle_shard_after.0,
    })
}
