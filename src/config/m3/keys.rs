//! What becomes of each key of an m3aggregator config: the table [`rule_for`] reads. Paths are
//! M3's, dotted, with `[]` for a list index; a rule on `a.*` covers every key under `a`.
//! Pure data; read by the translation on the main thread.

/// How a value is converted on its way to sheaf's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conv {
    /// Copied as it is.
    Same,
    /// A Go duration (`4.95s`, `1m30s`, or an integer of nanoseconds).
    Duration,
    /// An integer of seconds (M3's `ttlSeconds`).
    Seconds,
}

/// A section the translation reads as a whole, with its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    /// `aggregator.hostID`: where the instance id comes from.
    HostId,
    /// `kvClient.etcd.etcdClusters`: the endpoints of the zone the client uses.
    EtcdClusters,
    /// `aggregator.flush.handlers[]`: one flush handler.
    FlushHandler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Becomes sheaf's key (a `[]` in it takes the same index as in M3's path).
    To(&'static str, Conv),
    /// Accepted and not applied, for the reason given: it tunes Go internals (object pools,
    /// worker counts) or a mechanism sheaf does not have. Listed once in a warning.
    Ignore(&'static str),
    /// Accepted when the value is one of those listed (what sheaf does); refused otherwise,
    /// with the reason.
    Expect(&'static [&'static str], &'static str),
    /// Read by the translation's own code.
    Read(Section),
}

const POOL: &str = "a Go object pool; sheaf's cores reuse their own buffers";
const RETRIER: &str = "a Go retry policy; sheaf's control thread has its own backoff";
const OWN_METRICS: &str = "sheaf's own metrics have fixed sheaf_* names and types";
const KV_SCOPE: &str = "sheaf reads every etcd key in kvClient.etcd's environment";

/// The rule for M3's key `path` (indices written `[]`), if sheaf knows the key.
pub(super) fn rule_for(path: &str) -> Option<Rule> {
    use Conv::*;
    use Rule::*;
    let rule = match path {
        "logging.level" => To("logging.level", Same),
        "logging.encoding" => Ignore("sheaf logs lines of text to stderr"),

        "metrics.scope.*" | "metrics.sanitization" | "metrics.samplingRate" | "metrics.extended" => Ignore(OWN_METRICS),
        "metrics.prometheus.onError" | "metrics.prometheus.timerType" => Ignore(OWN_METRICS),
        "metrics.prometheus.handlerPath" => {
            Expect(&["/metrics"], "sheaf serves its own metrics at /metrics on both HTTP listeners")
        }
        "metrics.prometheus.listenAddress" => To("metrics.listen_address", Same),

        "m3msg.server.listenAddress" => To("m3msg.server.listen_address", Same),
        "m3msg.server.retry.*" => Ignore("the Go accept loop's retry; sheaf's cores accept without one"),
        "m3msg.server.keepAliveEnabled" | "m3msg.server.keepAlivePeriod" => {
            Ignore("idle m3msg connections are closed after m3msg.server.read_timeout instead")
        }
        "m3msg.consumer.messagePool.*" | "m3msg.consumer.connectionWriteBufferSize" => Ignore(POOL),
        "m3msg.consumer.connectionReadBufferSize" => Ignore(POOL),
        "m3msg.consumer.ackFlushInterval" => To("m3msg.server.ack_interval", Duration),
        "m3msg.consumer.ackBufferSize" => To("m3msg.server.max_acks_per_frame", Same),

        "http.listenAddress" => To("http.listen_address", Same),
        "http.readTimeout" => To("http.header_read_timeout", Duration),
        "http.writeTimeout" => Ignore("sheaf's admin answers are small and written at once"),

        "kvClient.etcd.env" => To("cluster.etcd.environment", Same),
        "kvClient.etcd.zone" => Ignore("the zone picks the etcdClusters entry; etcd keys carry no zone"),
        "kvClient.etcd.service" => To("cluster.service", Same),
        "kvClient.etcd.cacheDir" => Ignore("sheaf keeps no on-disk copy of etcd values; it waits for etcd"),
        "kvClient.etcd.etcdClusters" => Read(Section::EtcdClusters),

        "runtimeOptions.kvConfig.*" => Ignore(KV_SCOPE),
        "runtimeOptions.writeValuesPerMetricLimitPerSecond" => {
            To("aggregator.rate_limits.values_per_series_per_second", Same)
        }
        "runtimeOptions.writeNewMetricLimitClusterPerSecond" => {
            To("aggregator.rate_limits.new_series_per_second", Same)
        }
        "runtimeOptions.writeNewMetricNoLimitWarmupDuration" => {
            To("aggregator.rate_limits.new_series_warmup", Duration)
        }
        "runtimeOptions.writeValuesPerMetricLimitPerSecondKey"
        | "runtimeOptions.writeNewMetricLimitClusterPerSecondKey" => {
            Ignore("sheaf watches one key for its runtime options: _kv/{env}/{service}/runtime-options")
        }

        "aggregator.hostID" => Read(Section::HostId),
        "aggregator.instanceID.type" => Expect(&["host_id"], "sheaf's instance id is the host id"),
        "aggregator.verboseErrors" => Ignore("sheaf's errors always name the key and the reason"),
        "aggregator.metricPrefix" => To("aggregator.metric_prefix", Same),
        "aggregator.counterPrefix" => To("aggregator.counter_prefix", Same),
        "aggregator.timerPrefix" => To("aggregator.timer_prefix", Same),
        "aggregator.gaugePrefix" => To("aggregator.gauge_prefix", Same),
        "aggregator.aggregationTypes.counterTransformFnType" | "aggregator.aggregationTypes.gaugeTransformFnType" => {
            Expect(&["empty"], "sheaf names a counter's and a gauge's default aggregation without a suffix")
        }
        "aggregator.aggregationTypes.timerTransformFnType" => {
            Expect(&["suffix"], "sheaf names every timer aggregation with its suffix (.p99, .mean, ...)")
        }
        "aggregator.aggregationTypes.aggregationTypesPool.*" | "aggregator.aggregationTypes.quantilesPool.*" => {
            Ignore(POOL)
        }
        "aggregator.stream.eps" => Expect(&["0.001"], "sheaf's timer quantile stream has eps 0.001"),
        "aggregator.stream.capacity" => Expect(&["32"], "sheaf's timer quantile stream has capacity 32"),
        "aggregator.stream.streamPool.*" | "aggregator.stream.samplePool.*" | "aggregator.stream.floatsPool.*" => {
            Ignore(POOL)
        }
        "aggregator.client.*" => Ignore(
            "sheaf forwards rollups straight to the instances of its placement, as the aggregator_ingest consumers are",
        ),
        "aggregator.placementManager.kvConfig.namespace" => {
            Expect(&["/placement"], "sheaf reads the placement at /placement/{env}/{service}")
        }
        "aggregator.placementManager.kvConfig.environment" | "aggregator.placementManager.kvConfig.zone" => {
            Ignore(KV_SCOPE)
        }
        "aggregator.placementManager.placementWatcher.key" => To("cluster.service", Same),
        "aggregator.placementManager.placementWatcher.initWatchTimeout" => {
            Ignore("sheaf starts without a placement and takes shards when the watch delivers one")
        }
        "aggregator.hashType" | "aggregator.flush.handlers[].dynamicBackend.hashType" => {
            Expect(&["murmur32"], "sheaf shards ids with murmur3 32-bit, as M3's default")
        }
        "aggregator.bufferDurationBeforeShardCutover" => To("cluster.buffer_before_cutover", Duration),
        "aggregator.bufferDurationAfterShardCutoff" => To("cluster.buffer_after_cutoff", Duration),
        "aggregator.bufferDurationForFutureTimedMetric" => {
            To("aggregator.buffer_duration_for_future_timed_metric", Duration)
        }
        "aggregator.bufferDurationForPastTimedMetric" => {
            To("aggregator.buffer_duration_for_past_timed_metric", Duration)
        }
        "aggregator.resignTimeout" => To("cluster.election.resign_timeout", Duration),
        "aggregator.flushTimesManager.kvConfig.*" => Ignore(KV_SCOPE),
        "aggregator.flushTimesManager.flushTimesKeyFmt" => {
            Expect(&["shardset/%d/flush"], "sheaf keeps flush times at _kv/{env}/shardset/{id}/flush")
        }
        "aggregator.flushTimesManager.flushTimesPersistRetrier.maxRetries" => {
            To("cluster.flush_times_persist_retries", Same)
        }
        "aggregator.flushTimesManager.flushTimesPersistRetrier.*" => Ignore(RETRIER),
        "aggregator.electionManager.election.ttlSeconds" => To("cluster.election.ttl", Seconds),
        "aggregator.electionManager.election.leaderTimeout" => {
            Ignore("sheaf learns the leader from the election's watch, without a wait")
        }
        "aggregator.electionManager.election.resignTimeout" => To("cluster.election.resign_timeout", Duration),
        "aggregator.electionManager.serviceID.name" => To("cluster.service", Same),
        "aggregator.electionManager.serviceID.environment" => To("cluster.etcd.environment", Same),
        "aggregator.electionManager.serviceID.zone" => Ignore(KV_SCOPE),
        "aggregator.electionManager.electionKeyFmt" => {
            Expect(&["shardset/%d/lock"], "sheaf campaigns at _ld/{env}/{service}/shardset/{id}/lock")
        }
        "aggregator.electionManager.campaignRetrier.initialBackoff" => {
            To("cluster.election.campaign_initial_backoff", Duration)
        }
        "aggregator.electionManager.campaignRetrier.maxBackoff" => {
            To("cluster.election.campaign_max_backoff", Duration)
        }
        "aggregator.electionManager.campaignRetrier.*"
        | "aggregator.electionManager.changeRetrier.*"
        | "aggregator.electionManager.resignRetrier.*" => Ignore(RETRIER),
        "aggregator.electionManager.campaignStateCheckInterval" => To("cluster.check_interval", Duration),
        "aggregator.electionManager.shardCutoffCheckOffset" => {
            Ignore("sheaf checks cutoffs on every cluster.check_interval")
        }
        "aggregator.flushManager.checkEvery" => {
            Ignore("sheaf schedules each flush round at its own time instead of polling")
        }
        "aggregator.flushManager.jitterEnabled" => To("aggregator.flush_manager.jitter_enabled", Same),
        "aggregator.flushManager.maxJitters[].flushInterval" => {
            To("aggregator.flush_manager.max_jitters[].flush_interval", Duration)
        }
        "aggregator.flushManager.maxJitters[].maxJitterPercent" => {
            To("aggregator.flush_manager.max_jitters[].max_jitter_percent", Same)
        }
        "aggregator.flushManager.numWorkersPerCPU" => Ignore("sheaf flushes on the core that owns each shard"),
        "aggregator.flushManager.flushTimesPersistEvery" => {
            Ignore("sheaf's leader persists flush times after every flush round")
        }
        "aggregator.flushManager.maxBufferSize" => To("cluster.max_buffer_size", Duration),
        "aggregator.flushManager.forcedFlushWindowSize" => To("cluster.forced_flush_window_size", Duration),
        "aggregator.flush.handlers[]" => Read(Section::FlushHandler),
        "aggregator.passthrough.enabled" => {
            Expect(&["true"], "sheaf's leader always writes passthrough metrics out, as M3 does when enabled")
        }
        "aggregator.forwarding.maxConstDelay" => To("aggregator.forwarding.max_const_delay", Duration),
        "aggregator.entryTTL" => To("aggregator.entry_ttl", Duration),
        "aggregator.entryCheckInterval" => Ignore("sheaf expires idle series during the flush of their shard"),
        "aggregator.maxTimerBatchSizePerWrite" => Ignore("it bounds how long Go holds a lock; sheaf's cores take none"),
        "aggregator.defaultStoragePolicies" => To("aggregator.default_storage_policies", Same),
        "aggregator.maxNumCachedSourceSets" => Ignore("sheaf keeps the sources of every open forwarded window"),
        "aggregator.discardNaNAggregatedValues" => To("aggregator.discard_nan_aggregated_values", Same),
        "aggregator.entryPool.*"
        | "aggregator.counterElemPool.*"
        | "aggregator.timerElemPool.*"
        | "aggregator.gaugeElemPool.*"
        | "aggregator.bufferedEncoderPool.*"
        | "aggregator.byteBufferPool.*" => Ignore(POOL),
        _ => return None,
    };
    Some(rule)
}

/// Every path the table names, for telling a known section from an unknown key.
pub(super) const SECTIONS: &[&str] = &[
    "logging",
    "metrics",
    "metrics.scope",
    "metrics.prometheus",
    "m3msg",
    "m3msg.server",
    "m3msg.consumer",
    "http",
    "kvClient",
    "kvClient.etcd",
    "runtimeOptions",
    "aggregator",
    "aggregator.instanceID",
    "aggregator.aggregationTypes",
    "aggregator.stream",
    "aggregator.placementManager",
    "aggregator.placementManager.kvConfig",
    "aggregator.placementManager.placementWatcher",
    "aggregator.flushTimesManager",
    "aggregator.flushTimesManager.flushTimesPersistRetrier",
    "aggregator.electionManager",
    "aggregator.electionManager.election",
    "aggregator.electionManager.serviceID",
    "aggregator.flushManager",
    "aggregator.flushManager.maxJitters",
    "aggregator.flushManager.maxJitters[]",
    "aggregator.flush",
    "aggregator.flush.handlers",
    "aggregator.passthrough",
    "aggregator.forwarding",
];
