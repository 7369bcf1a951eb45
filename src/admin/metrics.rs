//! Self-metrics in the Prometheus text exposition format.
//!
//! Written by hand rather than through prometheus-client: every value is a snapshot the
//! cores already published (or a sink atomic), so there is nothing to register or update,
//! only text to format.

use std::sync::atomic::Ordering::Relaxed;

use sheaf_shard_runtime::{ConnectionRefusal, CoreStats, Protocol};

use super::exposition::Out;
use super::state::AdminState;

/// Hand-off batches in flight into each core.
pub(super) fn queue_depths(cores: &[CoreStats]) -> Vec<u64> {
    (0..cores.len())
        .map(|to| {
            cores
                .iter()
                .filter(|c| c.core != to)
                .map(|from| {
                    let sent = from.handoff_batches_sent.get(to).copied().unwrap_or(0);
                    let received = cores[to].handoff_batches_received.get(from.core).copied().unwrap_or(0);
                    sent.saturating_sub(received)
                })
                .sum()
        })
        .collect()
}

/// The write rate limits in effect (the same on every core; core 0's, as it published them).
fn rate_limit_gauges(o: &mut Out, cores: &[CoreStats]) {
    let Some(limits) = cores.first().map(|c| c.rate_limits) else { return };
    for (name, help, value) in [
        (
            "sheaf_rate_limit_values_per_series_per_second",
            "Values one series may take per second (aggregator.rate_limits; 0: no limit).",
            f64::from(limits.values_per_series_per_second),
        ),
        (
            "sheaf_rate_limit_new_series_per_shard_per_second",
            "New series one shard may create per second: the cluster-wide limit / (shards x replicas), rounded up (0: no limit).",
            f64::from(limits.new_series_per_shard_per_second),
        ),
        (
            "sheaf_rate_limit_new_series_warmup_seconds",
            "How long after a shard's first series the new-series limit is not applied.",
            limits.new_series_warmup as f64 / 1e9,
        ),
    ] {
        o.family(name, "gauge", help);
        o.sample(name, &[], value);
    }
}

pub(super) fn render(state: &AdminState) -> String {
    let cores = state.stats.read();
    let mut o = Out(String::with_capacity(8192));
    o.family("sheaf_ingested_values_total", "counter", "Values decoded off this core's sockets.");
    for c in &cores {
        for p in Protocol::ALL {
            o.sample(
                "sheaf_ingested_values_total",
                &[("core", &c.core.to_string()), ("protocol", p.name())],
                c.ingested[p as usize],
            );
        }
    }
    o.family("sheaf_rejected_values_total", "counter", "Frames, messages or lines rejected, by reason.");
    for c in &cores {
        for r in &c.rejected {
            o.sample(
                "sheaf_rejected_values_total",
                &[("core", &c.core.to_string()), ("protocol", r.protocol.name()), ("reason", r.reason)],
                r.count,
            );
        }
        let a = &c.aggregation;
        for (reason, n) in [
            ("timed_too_late", a.timed_too_late),
            ("id_too_long", a.id_too_long),
            ("series_over_shard_limit", a.series_over_shard_limit),
            ("series_limit", a.series_limit_refused),
            ("timed_too_early", a.timed_too_early),
            ("metadata_over_core_limits", a.metadata_rejected),
            ("value_rate_limit", a.value_rate_limited),
            ("new_series_rate_limit", a.new_series_rate_limited),
            ("dropped_by_rule", a.dropped_by_rule),
            ("no_storage_policy", a.no_storage_policy),
            ("rollup_remote_unsupported", c.rollup_remote_unsupported),
        ] {
            o.sample(
                "sheaf_rejected_values_total",
                &[("core", &c.core.to_string()), ("protocol", "any"), ("reason", reason)],
                n,
            );
        }
    }
    o.family(
        "sheaf_rule_matched_series_total",
        "counter",
        "Series created without metadata that the rules mapped or dropped.",
    );
    for c in &cores {
        let a = &c.aggregation;
        for (result, n) in [("mapped", a.series_mapped_by_rule), ("dropped", a.series_dropped_by_rule)] {
            o.sample("sheaf_rule_matched_series_total", &[("core", &c.core.to_string()), ("result", result)], n);
        }
    }
    o.per_core(
        "sheaf_rollup_values_total",
        "counter",
        "Flushed values forwarded to a rolled-up series instead of emitted.",
        &cores,
        |c| c.aggregation.values_rolled_up as f64,
    );
    o.per_core(
        "sheaf_rollup_forwarded_samples_total",
        "counter",
        "Forwarded samples (one source shard's values for one window of a rolled-up series) routed by this core's flushes.",
        &cores,
        |c| c.rollup_forwarded as f64,
    );
    o.per_core(
        "sheaf_rollup_type_unsupported_series_total",
        "counter",
        "Timer and set series a rollup rule matched: their rollups are left out (not supported).",
        &cores,
        |c| c.aggregation.rollup_type_unsupported as f64,
    );
    o.per_core(
        "sheaf_rollup_target_unknown_windows_total",
        "counter",
        "Windows of a rolled-up element whose series' metadata changed since, its rollup target no longer known: dropped.",
        &cores,
        |c| c.aggregation.rollup_target_unknown as f64,
    );
    o.family(
        "sheaf_forwarded_windows_total",
        "counter",
        "Forwarded values per window of a rolled-up series: taken in, or dropped as a (source, version) already taken in or as too late.",
    );
    for c in &cores {
        let a = &c.aggregation;
        for (result, n) in [
            ("accepted", a.forwarded_accepted),
            ("duplicate", a.forwarded_duplicate),
            ("too_late", a.forwarded_too_late),
        ] {
            o.sample("sheaf_forwarded_windows_total", &[("core", &c.core.to_string()), ("result", result)], n);
        }
    }
    o.per_core(
        "sheaf_handoff_values_total",
        "counter",
        "Values this core decoded and handed to the core owning their shard.",
        &cores,
        |c| c.handed_off_values as f64,
    );
    let depths = queue_depths(&cores);
    o.per_core(
        "sheaf_handoff_queue_depth_batches",
        "gauge",
        "Hand-off batches sent to this core and not yet applied.",
        &cores,
        |c| depths[c.core] as f64,
    );
    o.per_core("sheaf_series", "gauge", "Series held by this core.", &cores, |c| c.series as f64);
    o.per_core(
        "sheaf_series_limit",
        "gauge",
        "Series this core may hold: its share of aggregator.max_series (0: no limit).",
        &cores,
        |c| c.series_limit as f64,
    );
    rate_limit_gauges(&mut o, &cores);
    o.per_core("sheaf_windows_held", "gauge", "Aggregation windows held in memory.", &cores, |c| c.windows_held as f64);
    o.per_core("sheaf_series_created_total", "counter", "Series created.", &cores, |c| {
        c.aggregation.series_created as f64
    });
    o.per_core("sheaf_series_expired_total", "counter", "Series forgotten after entry_ttl.", &cores, |c| {
        c.aggregation.series_expired as f64
    });
    o.per_core("sheaf_values_applied_total", "counter", "Values aggregated by the owning core.", &cores, |c| {
        c.aggregation.values_applied as f64
    });
    o.per_core("sheaf_windows_flushed_total", "counter", "Windows flushed.", &cores, |c| {
        c.aggregation.windows_flushed as f64
    });
    o.per_core("sheaf_values_flushed_total", "counter", "Aggregated values emitted.", &cores, |c| {
        c.aggregation.values_flushed as f64
    });
    o.per_core("sheaf_nan_discarded_total", "counter", "NaN and infinite aggregated values discarded.", &cores, |c| {
        c.aggregation.nan_discarded as f64
    });
    o.per_core(
        "sheaf_passthrough_values_total",
        "counter",
        "Passthrough points (TIMED_METRIC_WITH_STORAGE_POLICY) accepted to be written out unchanged.",
        &cores,
        |c| c.aggregation.passthrough_values as f64,
    );
    o.family("sheaf_passthrough_dropped_values_total", "counter", "Passthrough points dropped, by reason.");
    for c in &cores {
        let core = c.core.to_string();
        let labels = [("core", core.as_str()), ("reason", "follower")];
        o.sample("sheaf_passthrough_dropped_values_total", &labels, c.aggregation.passthrough_follower_dropped);
    }
    o.per_core("sheaf_flush_rounds_total", "counter", "Flush rounds run.", &cores, |c| c.flush_rounds as f64);
    o.per_core("sheaf_flush_schedules", "gauge", "Resolutions this core runs flush rounds for.", &cores, |c| {
        c.flush_schedules as f64
    });
    o.per_core(
        "sheaf_storage_policies",
        "gauge",
        "Storage policies this core holds: the defaults and those some series uses.",
        &cores,
        |c| c.storage_policies as f64,
    );
    o.per_core(
        "sheaf_storage_policies_pruned_total",
        "counter",
        "Storage policies dropped, with their flush schedule, once no series used them.",
        &cores,
        |c| c.aggregation.policies_pruned as f64,
    );
    o.per_core(
        "sheaf_rollup_targets_pruned_total",
        "counter",
        "Rollup targets dropped once no metadata of the core named them.",
        &cores,
        |c| c.aggregation.rollup_targets_pruned as f64,
    );
    o.per_core("sheaf_flush_duration_seconds", "gauge", "Duration of the last flush round.", &cores, |c| {
        c.last_flush_duration_ns as f64 / 1e9
    });
    o.per_core("sheaf_flush_duration_seconds_total", "counter", "Time spent flushing.", &cores, |c| {
        c.flush_duration_ns_total as f64 / 1e9
    });
    o.per_core(
        "sheaf_flush_lag_seconds",
        "gauge",
        "How long after its scheduled time the last round finished queuing.",
        &cores,
        |c| c.last_flush_lag_ns as f64 / 1e9,
    );
    cluster_metrics(&mut o, &cores, state);
    super::checkpoint::metrics(&mut o, state, &cores);
    o.per_core("sheaf_m3msg_acked_messages_total", "counter", "m3msg messages acknowledged.", &cores, |c| {
        c.acked_messages as f64
    });
    o.per_core("sheaf_open_connections", "gauge", "Open ingest connections.", &cores, |c| c.open_connections as f64);
    o.family(
        "sheaf_refused_connections_total",
        "counter",
        "Ingest connections a core closed itself: over max_connections at accept, read_timeout, buffer_budget.",
    );
    for c in &cores {
        for p in [Protocol::M3msg, Protocol::StatsdTcp] {
            for reason in ConnectionRefusal::ALL {
                o.sample(
                    "sheaf_refused_connections_total",
                    &[("core", &c.core.to_string()), ("protocol", p.name()), ("reason", reason.name())],
                    c.refused_connections[p as usize][reason as usize],
                );
            }
        }
    }
    o.per_core(
        "sheaf_udp_dropped_datagrams_total",
        "counter",
        "StatsD datagrams the kernel dropped at this core's UDP socket (receive buffer full).",
        &cores,
        |c| c.udp_dropped_datagrams as f64,
    );

    o.family("sheaf_sink_backlog_values", "gauge", "Values queued for a sink and not yet taken.");
    for s in &state.sinks {
        o.sample("sheaf_sink_backlog_values", &[("sink", &s.name)], s.queue.backlog_values.load(Relaxed));
    }
    o.family("sheaf_sink_queued_values_total", "counter", "Values the cores queued for a sink.");
    for s in &state.sinks {
        o.sample("sheaf_sink_queued_values_total", &[("sink", &s.name)], s.queue.queued_values.load(Relaxed));
    }
    o.family("sheaf_sink_connected", "gauge", "1 while a network sink holds a connection to its endpoint.");
    for s in state.sinks.iter().filter(|s| s.kind == "m3msg") {
        o.sample("sheaf_sink_connected", &[("sink", &s.name)], s.metrics.connected.load(Relaxed));
    }
    o.family("sheaf_sink_unacked_messages", "gauge", "Messages a sink holds until acknowledged.");
    for s in &state.sinks {
        o.sample("sheaf_sink_unacked_messages", &[("sink", &s.name)], s.metrics.unacked_messages.load(Relaxed));
    }
    o.family("sheaf_sink_written_values_total", "counter", "Values a sink wrote out.");
    for s in &state.sinks {
        o.sample("sheaf_sink_written_values_total", &[("sink", &s.name)], s.metrics.written_values.load(Relaxed));
    }
    o.family("sheaf_sink_acked_values_total", "counter", "Values a sink's consumer acknowledged.");
    for s in &state.sinks {
        o.sample("sheaf_sink_acked_values_total", &[("sink", &s.name)], s.metrics.acked_values.load(Relaxed));
    }
    o.family("sheaf_sink_retried_messages_total", "counter", "Messages sent again for want of an ack.");
    for s in &state.sinks {
        o.sample("sheaf_sink_retried_messages_total", &[("sink", &s.name)], s.metrics.retried_messages.load(Relaxed));
    }
    o.family("sheaf_sink_dropped_values_total", "counter", "Values a sink could not take, by reason.");
    for s in &state.sinks {
        for (reason, n) in [
            ("queue_full", s.queue.dropped_values.load(Relaxed)),
            ("buffer_overflow", s.metrics.overflow_values.load(Relaxed)),
            ("ttl_expired", s.metrics.expired_messages.load(Relaxed)),
            ("write_error", s.metrics.write_errors.load(Relaxed)),
        ] {
            o.sample("sheaf_sink_dropped_values_total", &[("sink", &s.name), ("reason", reason)], n);
        }
    }
    topic_consumers(&mut o, state);
    let rss = resident_bytes();
    let series: u64 = cores.iter().map(|c| c.series).sum();
    o.family("sheaf_resident_bytes", "gauge", "Resident memory of the process.");
    o.sample("sheaf_resident_bytes", &[], rss);
    o.family(
        "sheaf_resident_bytes_per_series",
        "gauge",
        "Resident memory divided by the series held (0 with no series).",
    );
    o.sample("sheaf_resident_bytes_per_series", &[], if series == 0 { 0.0 } else { rss as f64 / series as f64 });
    o.family("sheaf_uptime_seconds", "gauge", "Seconds since start.");
    o.sample("sheaf_uptime_seconds", &[], state.started.elapsed().as_secs_f64());
    o.family(
        "sheaf_admin_auth_failures_total",
        "counter",
        "Admin mutations refused: no token (401) or a wrong one (403).",
    );
    o.sample("sheaf_admin_auth_failures_total", &[("reason", "missing_token")], state.auth.missing_token.load(Relaxed));
    o.sample("sheaf_admin_auth_failures_total", &[("reason", "wrong_token")], state.auth.wrong_token.load(Relaxed));
    o.family("sheaf_admin_auth_enabled", "gauge", "1 when admin mutations need a token.");
    o.sample("sheaf_admin_auth_enabled", &[], u8::from(state.auth.enabled()));
    o.0
}

/// Cluster mode: forwarding, roles and discards per core, and the agent's election and
/// flush-time state (zero or absent on a single node).
fn cluster_metrics(o: &mut Out, cores: &[CoreStats], state: &AdminState) {
    o.per_core(
        "sheaf_forwarded_values_total",
        "counter",
        "Values sent to peer nodes owning their shard.",
        cores,
        |c| c.forwarded_values as f64,
    );
    o.family(
        "sheaf_forward_dropped_values_total",
        "counter",
        "Values given up on past the forwarding buffer: the peer stayed unreachable, or its endpoint did not resolve.",
    );
    for c in cores {
        let core = c.core.to_string();
        let dropped = [("unreachable", c.forward_dropped_values), ("unresolved", c.forward_unresolved_dropped_values)];
        for (reason, values) in dropped {
            o.sample("sheaf_forward_dropped_values_total", &[("core", &core), ("reason", reason)], values as f64);
        }
    }
    o.per_core(
        "sheaf_unowned_values_total",
        "counter",
        "Values for shards no node owns, given up on after cluster.unowned_hold (or beyond its limit).",
        cores,
        |c| c.unowned_values as f64,
    );
    o.per_core(
        "sheaf_unowned_held_values_total",
        "counter",
        "Values held for a placement that routes them (a peer's placement was newer than this node's).",
        cores,
        |c| c.unowned_held_values as f64,
    );
    o.per_core("sheaf_leader", "gauge", "1 while this core's flush rounds emit.", cores, |c| {
        f64::from(u8::from(c.leader))
    });
    o.per_core("sheaf_follower_rounds_total", "counter", "Flush rounds run as a follower.", cores, |c| {
        c.follower_rounds as f64
    });
    o.per_core(
        "sheaf_forced_flush_rounds_total",
        "counter",
        "Follower rounds in forced flush mode (no flush-time update for max_buffer_size).",
        cores,
        |c| c.forced_flush_rounds as f64,
    );
    o.per_core(
        "sheaf_windows_discarded_total",
        "counter",
        "Windows dropped unemitted: emitted by the leader, outside the shard's cutover/cutoff, forced flush.",
        cores,
        |c| c.aggregation.windows_discarded as f64,
    );
    o.per_core(
        "sheaf_shard_not_writable_total",
        "counter",
        "Values for a shard outside its writable range [cutover - before, cutoff + after).",
        cores,
        |c| c.aggregation.shard_not_writable as f64,
    );
    o.per_core("sheaf_shards_closed_total", "counter", "Cut-off shards closed and freed.", cores, |c| {
        c.aggregation.shards_closed as f64
    });
    if let Some(options) = &state.runtime_options {
        let name = "sheaf_runtime_options_invalid_total";
        o.family(name, "counter", "Values of the runtime options key in etcd that did not parse (the limits stayed).");
        o.sample(name, &[], options.invalid_values.load(Relaxed));
    }
    let Some(cluster) = &state.cluster else { return };
    let status = cluster.status_view();
    let number = |key: &str| status[key].as_u64().unwrap_or(0);
    o.family("sheaf_cluster_etcd_connected", "gauge", "1 while etcd answers (the last request's outcome).");
    o.sample("sheaf_cluster_etcd_connected", &[], u8::from(status["etcd"] == "connected"));
    o.family("sheaf_cluster_etcd_request_failures_total", "counter", "etcd requests failed or left unanswered.");
    o.sample("sheaf_cluster_etcd_request_failures_total", &[], number("etcdRequestFailures"));
    o.family("sheaf_cluster_election_state", "gauge", "1 for this node's election state in its shard set.");
    for s in ["leader", "follower", "pendingFollower"] {
        o.sample("sheaf_cluster_election_state", &[("state", s)], u8::from(status["electionState"] == s));
    }
    o.family("sheaf_cluster_can_lead", "gauge", "1 if this node could lead without losing a window.");
    o.sample("sheaf_cluster_can_lead", &[], u8::from(status["canLead"] == true));
    let forced = status["shardSets"].as_array().is_some_and(|a| a.iter().any(|s| s["forcedFlush"] == true));
    o.family("sheaf_cluster_forced_flush", "gauge", "1 while in forced flush mode.");
    o.sample("sheaf_cluster_forced_flush", &[], u8::from(forced));
    o.family("sheaf_cluster_forced_flush_entered_total", "counter", "Times forced flush mode was entered.");
    o.sample("sheaf_cluster_forced_flush_entered_total", &[], number("forcedFlushEntered"));
    o.family("sheaf_cluster_flush_times_persisted_total", "counter", "Flush-time writes to etcd.");
    o.sample("sheaf_cluster_flush_times_persisted_total", &[], number("flushTimesPersisted"));
    o.family("sheaf_cluster_flush_times_persist_failures_total", "counter", "Failed flush-time writes to etcd.");
    o.sample("sheaf_cluster_flush_times_persist_failures_total", &[], number("flushTimesPersistFailures"));
}

/// Resident set size from /proc/self/statm (pages × page size); 0 if unreadable.
pub(super) fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// A topic sink's counters per consumer instance (`endpoint=""`: messages no instance owns yet).
fn topic_consumers(o: &mut Out, state: &AdminState) {
    type Field = fn(&crate::sinks::ConsumerMetrics) -> &std::sync::atomic::AtomicU64;
    let families: [(&str, &str, &str, Field); 6] = [
        (
            "sheaf_topic_consumer_sent_messages_total",
            "counter",
            "Messages written to a topic consumer instance, retries included.",
            |c| &c.sent,
        ),
        (
            "sheaf_topic_consumer_acked_messages_total",
            "counter",
            "Messages a topic consumer instance acknowledged.",
            |c| &c.acked,
        ),
        (
            "sheaf_topic_consumer_retried_messages_total",
            "counter",
            "Messages sent again to a topic consumer instance for want of an ack.",
            |c| &c.retried,
        ),
        (
            "sheaf_topic_consumer_dropped_messages_total",
            "counter",
            "Messages dropped after their consumer service's messageTtlNanos.",
            |c| &c.dropped_ttl,
        ),
        (
            "sheaf_topic_consumer_queued_messages",
            "gauge",
            "Messages held for a topic consumer instance until acknowledged.",
            |c| &c.queued,
        ),
        (
            "sheaf_topic_consumer_connected",
            "gauge",
            "1 while the topic sink holds a connection to the consumer instance.",
            |c| &c.connected,
        ),
    ];
    for (name, kind, help, field) in families {
        o.family(name, kind, help);
        for s in &state.sinks {
            s.metrics.consumers.read(|consumers| {
                for c in consumers {
                    let labels =
                        [("sink", s.name.as_str()), ("service", c.service.as_str()), ("endpoint", c.endpoint.as_str())];
                    o.sample(name, &labels, field(c).load(Relaxed));
                }
            });
        }
    }
}
