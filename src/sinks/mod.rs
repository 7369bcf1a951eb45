//! Sinks: the threads that take flushed batches off their `SinkQueue` and write them out.
//! Each sink runs on its own thread, so a slow or dead destination only fills its queue;
//! the cores never wait on it for longer than `sink_enqueue_timeout`, and ingest never.

mod aggregated;
mod json;
mod m3msg;
mod sink_metrics;
mod topic;

use std::sync::Arc;
use std::thread::JoinHandle;

use sheaf_shard_runtime::{FlushBatchPool, SinkQueue};

pub use sink_metrics::{ConsumerMetrics, SinkMetrics};

use crate::config::{Config, Handler};

pub struct Sink {
    pub kind: &'static str,
    pub queue: Arc<SinkQueue>,
    pub metrics: Arc<SinkMetrics>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Lets the sink drain what is queued and waits for its thread, at most until `deadline`:
    /// a sink stuck on a dead destination (a blocked pipe, say) must not hang shutdown. What
    /// it still held is reported.
    pub fn close_and_join(&mut self, deadline: std::time::Instant) {
        self.queue.close();
        let Some(t) = self.thread.take() else { return };
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if !t.is_finished() {
            use std::sync::atomic::Ordering::Relaxed;
            tracing::error!(
                sink = self.queue.name(),
                backlog_values = self.queue.backlog_values.load(Relaxed),
                "sink did not drain before the shutdown deadline; exiting without it"
            );
            return;
        }
        if t.join().is_err() {
            tracing::error!(sink = self.queue.name(), "sink thread panicked");
        }
    }
}

/// Starts one thread per configured handler.
pub fn start(config: &Config, batches: Arc<FlushBatchPool>) -> anyhow::Result<Vec<Sink>> {
    let mut sinks = Vec::new();
    for (i, handler) in config.aggregator.flush.handlers.iter().enumerate() {
        let queue = SinkQueue::new(
            format!("{}-{i}", kind_of(handler)),
            config.data_plane.sink_queue_batches,
            config.cpus()?.len(),
        );
        let metrics = Arc::new(SinkMetrics::default());
        let (q, m, pool) = (queue.clone(), metrics.clone(), batches.clone());
        let control_cpu = config.control_cpu;
        let pin = move || {
            if let Some(cpu) = control_cpu
                && let Err(e) = crate::host_checks::pin_current_thread(cpu)
            {
                tracing::warn!(cpu, error = %e, "could not pin a sink thread");
            }
        };
        let thread = match handler {
            Handler::Json(h) => {
                let out = json::open(&h.path)?;
                std::thread::Builder::new().name(format!("sheaf-sink-{i}")).spawn(move || {
                    pin();
                    json::run(q, m, pool, out)
                })?
            }
            Handler::M3msg(h) => {
                let h = h.clone();
                if let Some(topic) = &h.topic {
                    let routes = watch_topic(config, &h, topic, i)?;
                    std::thread::Builder::new().name(format!("sheaf-sink-{i}")).spawn(move || {
                        pin();
                        topic::run(q, m, pool, h, routes)
                    })?
                } else {
                    std::thread::Builder::new().name(format!("sheaf-sink-{i}")).spawn(move || {
                        pin();
                        m3msg::run(q, m, pool, h)
                    })?
                }
            }
        };
        sinks.push(Sink { kind: kind_of(handler), queue, metrics, thread: Some(thread) });
    }
    Ok(sinks)
}

fn kind_of(h: &Handler) -> &'static str {
    match h {
        Handler::Json(_) => "json",
        Handler::M3msg(_) => "m3msg",
    }
}

/// Starts the watcher thread of handler `i`'s topic (its own etcd client, from `cluster.etcd`).
fn watch_topic(
    config: &Config,
    handler: &crate::config::M3msgHandler,
    topic: &str,
    i: usize,
) -> anyhow::Result<flume::Receiver<Arc<crate::topic::routes::Routes>>> {
    use anyhow::Context;
    let cluster = config.cluster.as_ref().with_context(|| {
        format!("aggregator.flush.handlers[{i}].m3msg.topic needs cluster mode (a `cluster:` section)")
    })?;
    let spec = crate::topic::watcher::WatchSpec {
        endpoints: crate::cluster::etcd::Endpoints::from_config(&cluster.etcd)?,
        environment: cluster.etcd.environment.clone(),
        topic: topic.to_string(),
        layout: crate::topic::routes::PlacementLayout {
            namespace: handler.placement_namespace.clone(),
            staged: handler.placement_is_staged,
        },
    };
    Ok(crate::topic::watcher::spawn(spec, format!("sheaf-topic-{i}"), config.control_cpu)?)
}
