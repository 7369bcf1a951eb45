//! `ShardPool`: starts one executor per configured CPU, wires the hand-off channels between
//! every pair, and is the control plane's only handle on the cores (commands in, published
//! stats out). Like Seastar's `sharded<T>`: start, invoke on all, stop.
//!
//! Owned by the control thread; `Commander` and `StatsReader` are cheap clones of its two
//! directions that any thread may hold.

use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use sheaf_shard_core::Published;

use crate::command::{BoundAddrs, FinalPhase, ShardCommand};
use crate::config::PoolConfig;
use crate::core::StallWarning;
use crate::core_main::{CoreSetup, run_core};
use crate::error::{BindError, PoolError};
use crate::handoff;
use crate::ingest::ConnectionSpread;
use crate::ingest::unix_socket::SharedUnixSocket;
use crate::services::PoolServices;
use crate::stats::{CheckpointStats, CoreStats};

/// Reads every core's latest published stats; cheap to clone, usable from any thread.
#[derive(Clone, Debug)]
pub struct StatsReader(Vec<Arc<Published<CoreStats>>>);

impl StatsReader {
    pub fn read(&self) -> Vec<CoreStats> {
        self.0.iter().map(|p| p.read(|s| s.clone())).collect()
    }
}

/// Sends commands to the cores; cheap to clone. A dead core is skipped (logged by the pool).
#[derive(Clone)]
pub struct Commander {
    commands: Vec<flume::Sender<ShardCommand>>,
}

impl Commander {
    /// Sends `make()` to every core, in core order.
    pub fn send_all(&self, make: impl Fn() -> ShardCommand) {
        for (core, tx) in self.commands.iter().enumerate() {
            if tx.send(make()).is_err() {
                tracing::warn!(core, "core gone; command not delivered");
            }
        }
    }

    /// Sends `cmd` to one core; false if that core is gone.
    pub fn send_to(&self, core: usize, cmd: ShardCommand) -> bool {
        self.commands.get(core).is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Sends `make(reply)` to every core and gathers the replies, in core order (a core gone
    /// gives none).
    pub async fn collect_all<T>(&self, make: impl Fn(flume::Sender<T>) -> ShardCommand) -> Vec<T> {
        let mut replies = Vec::new();
        for tx in &self.commands {
            let (reply, rx) = flume::bounded(1);
            if tx.send(make(reply)).is_ok() {
                replies.push(rx);
            }
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            if let Ok(v) = rx.recv_async().await {
                out.push(v);
            }
        }
        out
    }

    /// Sends `make(reply)` to every core and waits for each reply.
    pub async fn invoke_all(&self, make: impl Fn(flume::Sender<()>) -> ShardCommand) {
        let mut replies = Vec::new();
        for tx in &self.commands {
            let (reply, rx) = flume::bounded(1);
            if tx.send(make(reply)).is_ok() {
                replies.push(rx);
            }
        }
        for rx in replies {
            let _ = rx.recv_async().await;
        }
    }
}

pub struct ShardPool {
    config: Arc<PoolConfig>,
    commands: Vec<flume::Sender<ShardCommand>>,
    published: Vec<Arc<Published<CoreStats>>>,
    owners: Arc<[u16]>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The StatsD Unix socket, once ingest started with one; its path is removed at stop.
    unix: std::sync::OnceLock<Arc<SharedUnixSocket>>,
}

impl ShardPool {
    /// Starts the executors, wired to `services`; ingest starts with
    /// [`ShardPool::start_ingest`].
    pub fn start(config: PoolConfig, services: PoolServices) -> Result<Self, PoolError> {
        let cores = config.cpus.len();
        if cores == 0 {
            return Err(PoolError::NoCores);
        }
        let config = Arc::new(config);
        let services = Arc::new(services);
        let links = handoff::wire(cores, config.handoff_queue_batches);
        let limits = (&config.ingest.m3msg_limits, &config.ingest.statsd_tcp_limits);
        let (spread, adoptions) = ConnectionSpread::new(cores, limits.0.max_connections, limits.1.max_connections);
        // The initial shard map: shard s on core s mod cores. Sent as the first command.
        let owners: Arc<[u16]> = (0..config.num_shards).map(|s| (s as usize % cores) as u16).collect();
        let mut pool = Self {
            config: config.clone(),
            commands: Vec::new(),
            published: Vec::new(),
            owners: owners.clone(),
            threads: Vec::new(),
            unix: std::sync::OnceLock::new(),
        };
        for (index, (links, adoptions)) in links.into_iter().zip(adoptions).enumerate() {
            let cpu = config.cpus[index];
            let (tx, rx) = flume::unbounded();
            let published = Arc::new(Published::new(CoreStats::new(index, cpu, cores)));
            let setup = CoreSetup {
                index,
                cpu,
                config: config.clone(),
                services: services.clone(),
                commands: rx,
                published: published.clone(),
                links,
                spread: spread.clone(),
                adoptions,
            };
            let placement = if config.pin { Placement::Fixed(cpu) } else { Placement::Unbound };
            let mut builder = LocalExecutorBuilder::new(placement)
                .name(&format!("sheaf-core-{index}"))
                .io_memory(config.io_memory_bytes)
                // The checkpoint writes (fsync included) run there: off the core's CPU.
                .blocking_thread_pool_placement(PoolPlacement::Unbound(1));
            if let Some(spin) = config.spin_before_park {
                builder = builder.spin_before_park(spin);
            }
            if config.detect_stalls {
                builder = builder.detect_stalls(Some(Box::new(StallWarning)));
            }
            let handle =
                builder.spawn(move || run_core(setup)).map_err(|e| PoolError::Spawn { cpu, source: e.into() })?;
            tx.send(ShardCommand::SetShardOwners(owners.clone())).map_err(|_| PoolError::CoreGone(index))?;
            pool.commands.push(tx);
            pool.published.push(published);
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    pub fn cores(&self) -> usize {
        self.commands.len()
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// A handle that sends commands to every core (for the control thread's cluster agent).
    pub fn commander(&self) -> Commander {
        Commander { commands: self.commands.clone() }
    }

    /// Sends one command to core `core`.
    pub fn send(&self, core: usize, cmd: ShardCommand) -> Result<(), PoolError> {
        self.commands[core].send(cmd).map_err(|_| PoolError::CoreGone(core))
    }

    /// Binds the ingest sockets on every core; returns the addresses bound.
    pub async fn start_ingest(&self) -> Result<BoundAddrs, PoolError> {
        let ingest = &self.config.ingest;
        let mut bind = BoundAddrs {
            m3msg: ingest.m3msg,
            statsd_udp: ingest.statsd_udp,
            statsd_tcp: ingest.statsd_tcp,
            statsd_unix: ingest.statsd_unix.clone(),
        };
        refuse_taken_ports(&bind).map_err(|source| PoolError::Bind { core: 0, source })?;
        // One Unix socket for all cores: bound here, read by each.
        let unix = match &ingest.statsd_unix {
            Some(path) => {
                let socket = SharedUnixSocket::bind(path).map_err(|source| PoolError::Bind {
                    core: 0,
                    source: BindError::StatsdUnix { path: path.clone(), source },
                })?;
                Some(self.unix.get_or_init(|| Arc::new(socket)).clone())
            }
            None => None,
        };
        for core in 0..self.cores() {
            let (tx, rx) = flume::bounded(1);
            self.send(core, ShardCommand::StartIngest { bind: bind.clone(), unix: unix.clone(), reply: tx })?;
            let bound = rx.recv_async().await.map_err(|_| PoolError::CoreGone(core))?;
            let bound = bound.map_err(|source| PoolError::Bind { core, source })?;
            // Port 0 resolves on the first core; the rest join its port.
            bind = bound;
        }
        Ok(bind)
    }

    /// Sends a command built by `make` to every core and waits for every reply. A core that
    /// is gone does not stop the others: the first such core is reported at the end.
    async fn invoke_on_all<F>(&self, make: F) -> Result<(), PoolError>
    where
        F: Fn(flume::Sender<()>) -> ShardCommand,
    {
        let mut replies = Vec::new();
        let mut gone = None;
        for core in 0..self.cores() {
            let (tx, rx) = flume::bounded(1);
            match self.send(core, make(tx)) {
                Ok(()) => replies.push((core, rx)),
                Err(e) => {
                    gone.get_or_insert(e);
                }
            }
        }
        for (core, rx) in replies {
            if rx.recv_async().await.is_err() {
                gone.get_or_insert(PoolError::CoreGone(core));
            }
        }
        gone.map_or(Ok(()), Err)
    }

    /// With `data_dir`: every core loads the checkpoints of the shards it owns; returns what
    /// each loaded (in core order). Call before [`ShardPool::start_ingest`].
    pub async fn load_checkpoints(&self) -> Result<Vec<CheckpointStats>, PoolError> {
        let mut replies = Vec::new();
        for core in 0..self.cores() {
            let (reply, rx) = flume::bounded(1);
            self.send(core, ShardCommand::LoadCheckpoints { owners: self.owners.clone(), reply })?;
            replies.push((core, rx));
        }
        let mut loaded = Vec::new();
        for (core, rx) in replies {
            loaded.push(rx.recv_async().await.map_err(|_| PoolError::CoreGone(core))?);
        }
        Ok(loaded)
    }

    /// The latest published stats of every core.
    pub fn stats(&self) -> Vec<CoreStats> {
        self.stats_reader().read()
    }

    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(self.published.clone())
    }

    /// Which core owns each shard.
    pub fn shard_owners(&self) -> Arc<[u16]> {
        self.owners.clone()
    }

    /// Stops ingest everywhere, flushes (open windows too with `include_open`), with
    /// `data_dir` writes every shard's checkpoint, and joins the executors. Sinks are drained by their owner afterwards.
    /// A core that died (a panic) is reported, but the others still stop, flush and join, so
    /// their windows are not lost.
    pub async fn stop(self, include_open: bool) -> Result<(), PoolError> {
        // Before the cores stop: a sender is refused from here on, so that the cores' last
        // drain of the Unix socket leaves nothing a sender was told had been taken.
        if let Some(unix) = self.unix.get() {
            unix.stop_receiving();
        }
        let stopped = self.invoke_on_all(|reply| ShardCommand::StopIngest { reply }).await;
        // Source windows on every core first: what they roll up is then waiting in the
        // hand-off of the core owning the rolled-up series when that core flushes it.
        let mut flushed = Ok(());
        for phase in FinalPhase::all() {
            let done = self.invoke_on_all(|reply| ShardCommand::FinalFlush { include_open, phase, reply }).await;
            flushed = flushed.and(done);
        }
        // With `data_dir`: the open windows (and what was not due) go to disk, not out.
        if self.config.checkpoint.is_some() {
            let written = self.invoke_on_all(|reply| ShardCommand::Checkpoint { reply }).await;
            flushed = flushed.and(written);
        }
        for core in 0..self.cores() {
            let _ = self.send(core, ShardCommand::Exit);
        }
        for (core, t) in self.threads.into_iter().enumerate() {
            if let Err(e) = t.join() {
                tracing::error!(core, error = %e, "core executor ended with an error");
            }
        }
        stopped.and(flushed)
    }
}

/// Refuses an ingest port another process holds. The cores bind with SO_REUSEPORT, which
/// would let this process join the other's sockets and have the kernel split the traffic
/// between the two. A probe bound without SO_REUSEPORT fails on such a port; it is closed
/// at once (a listener with no connection leaves no TIME_WAIT). Port 0 is never taken.
fn refuse_taken_ports(bind: &BoundAddrs) -> Result<(), BindError> {
    let used = |addr: Option<std::net::SocketAddr>| addr.filter(|a| a.port() != 0);
    for (what, addr) in [("m3msg", bind.m3msg), ("statsd tcp", bind.statsd_tcp)] {
        if let Some(addr) = used(addr) {
            std::net::TcpListener::bind(addr).map_err(|source| BindError::PortTaken { what, addr, source })?;
        }
    }
    if let Some(addr) = used(bind.statsd_udp) {
        std::net::UdpSocket::bind(addr).map_err(|source| BindError::PortTaken { what: "statsd udp", addr, source })?;
    }
    Ok(())
}
