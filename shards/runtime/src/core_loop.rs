//! One shard core: its context (`CoreCtx`, shared by the core's own tasks through `Rc`,
//! never by another thread) and its command loop.
//!
//! Tasks on a core: the command loop; one accept loop per TCP ingest port and one receive
//! loop per UDP port; one task per connection; one drain task per peer core; the flush
//! loop; the stats publisher. They interleave only at `.await`s and never hold a
//! `RefCell` borrow across one.
//!
//! Shutdown, in order: (1) `StopIngest`: close the stop semaphore (accept and UDP loops
//! leave), shut down the read side of every connection so each task reads to EOF,
//! dispatches and acks what it decoded, and ends; (2) `FinalFlush`, once every core has
//! done (1): wait until every batch peers sent has been taken in (the `HandoffLedger`),
//! flush, queue on the sinks; (3) `Exit`.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{ConnectedReceiver, SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use glommio::sync::Semaphore;
use sheaf_shard_core::time::now_nanos;
use sheaf_shard_core::{CoreAggregator, Published, SampleBatch};

use crate::cluster::{FlushRole, FollowerFlush, Routes};
use crate::command::{BoundAddrs, ShardCommand};
use crate::config::PoolConfig;
use crate::handoff::{HandoffLedger, PeerLink, PeerSender, Returns};
use crate::ingest::spread::{Adoption, ConnectionSlot, ConnectionSpread, Listener};
use crate::ingest::statsd::{DatagramSocket, DrainPolicy};
use crate::ingest::unix_socket::SharedUnixSocket;
use crate::stats::CoreStats;
use crate::{flush_loop, ingest};

/// What a core thread is started with.
pub(crate) struct CoreSetup {
    pub(crate) index: usize,
    pub(crate) cpu: usize,
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) commands: flume::Receiver<ShardCommand>,
    pub(crate) published: Arc<Published<CoreStats>>,
    pub(crate) ledger: Arc<HandoffLedger>,
    pub(crate) senders: Vec<PeerLink<SharedSender<SampleBatch>>>,
    pub(crate) receivers: Vec<PeerLink<SharedReceiver<SampleBatch>>>,
    pub(crate) spread: Arc<ConnectionSpread>,
    /// Connections other cores accepted and handed to this one.
    pub(crate) adoptions: flume::Receiver<Adoption>,
}

pub(crate) struct CoreCtx {
    pub(crate) index: usize,
    pub(crate) cores: usize,
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) aggregator: RefCell<CoreAggregator>,
    pub(crate) stats: RefCell<CoreStats>,
    pub(crate) published: Arc<Published<CoreStats>>,
    pub(crate) owners: RefCell<Arc<[u16]>>,
    pub(crate) ledger: Arc<HandoffLedger>,
    peers: RefCell<Vec<Option<Rc<PeerSender>>>>,
    /// The channels other cores hand this one batches on, once connected (see
    /// `take_in_handed_batches`).
    inbound: RefCell<Vec<InboundPeer>>,
    /// Never has permits; closing it wakes every task waiting in `stopped`.
    stop: Semaphore,
    stopping: Cell<bool>,
    /// A periodic flush round is between `begin_flush` and its last push to the sinks.
    pub(crate) flush_in_progress: Cell<bool>,
    /// Whether flush rounds emit or discard (always `Leader` on a single node).
    pub(crate) role: Cell<FlushRole>,
    /// Set by the first cluster command: leader rounds are then reported for flush times.
    pub(crate) cluster_mode: Cell<bool>,
    pub(crate) follower: RefCell<Arc<FollowerFlush>>,
    /// Which shards this node owns and where the others go (cluster mode).
    pub(crate) routes: RefCell<Option<Arc<Routes>>>,
    /// One forwarder per peer of the current routes (same index as `Routes::peers`).
    pub(crate) forwarders: RefCell<Vec<Rc<ingest::forward::Forwarder>>>,
    /// Sequence number of the last batch this core queued on the sinks.
    pub(crate) last_seq: Cell<u64>,
    connections: RefCell<hashbrown::HashMap<u64, RawFd>>,
    next_connection: Cell<u64>,
    active_tasks: Cell<usize>,
    spread: Arc<ConnectionSpread>,
    adoptions: flume::Receiver<Adoption>,
}

impl CoreCtx {
    pub(crate) fn peer(&self, core: usize) -> Option<Rc<PeerSender>> {
        self.peers.borrow().get(core).cloned().flatten()
    }

    /// Resolves once ingest is being stopped.
    pub(crate) async fn stopped(&self) {
        let _ = self.stop.acquire(1).await;
    }

    /// Sleeps for `d`, or less if ingest is stopped meanwhile; true if it was.
    pub(crate) async fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let slept = async {
            glommio::timer::sleep(d).await;
            false
        };
        let stopped = async {
            self.stopped().await;
            true
        };
        futures_lite::future::or(slept, stopped).await
    }

    fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    pub(crate) fn publish_stats(&self) {
        let mut snapshot = self.stats.borrow().clone();
        let agg = self.aggregator.borrow();
        snapshot.series = agg.series_count() as u64;
        snapshot.windows_held = agg.windows_held();
        snapshot.aggregation = agg.counters.clone();
        snapshot.open_connections = self.connections.borrow().len() as u64;
        self.published.publish(snapshot);
    }
}

/// Counts a task as active while it lives, and deregisters its connection.
struct TaskGuard {
    ctx: Rc<CoreCtx>,
    connection: Option<u64>,
}

impl TaskGuard {
    fn new(ctx: &Rc<CoreCtx>, fd: Option<RawFd>) -> Self {
        ctx.active_tasks.set(ctx.active_tasks.get() + 1);
        let connection = fd.map(|fd| {
            let id = ctx.next_connection.get();
            ctx.next_connection.set(id + 1);
            ctx.connections.borrow_mut().insert(id, fd);
            id
        });
        Self { ctx: ctx.clone(), connection }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.ctx.active_tasks.set(self.ctx.active_tasks.get() - 1);
        if let Some(id) = self.connection {
            self.ctx.connections.borrow_mut().remove(&id);
        }
    }
}

pub(crate) async fn run_core(setup: CoreSetup) {
    let config = setup.config.clone();
    let cores = config.cpus.len();
    let default_owners: Arc<[u16]> = (0..config.num_shards).map(|s| (s as usize % cores) as u16).collect();
    let ctx = Rc::new(CoreCtx {
        index: setup.index,
        cores,
        aggregator: RefCell::new(CoreAggregator::new(config.aggregator.clone(), config.num_shards)),
        stats: RefCell::new(CoreStats::new(setup.index, setup.cpu, cores)),
        published: setup.published,
        owners: RefCell::new(default_owners),
        ledger: setup.ledger,
        peers: RefCell::new((0..cores).map(|_| None).collect()),
        stop: Semaphore::new(0),
        stopping: Cell::new(false),
        flush_in_progress: Cell::new(false),
        role: Cell::new(FlushRole::Leader),
        cluster_mode: Cell::new(false),
        follower: RefCell::default(),
        routes: RefCell::new(None),
        last_seq: Cell::new(0),
        forwarders: RefCell::default(),
        inbound: RefCell::default(),
        connections: RefCell::default(),
        next_connection: Cell::new(0),
        active_tasks: Cell::new(0),
        spread: setup.spread,
        adoptions: setup.adoptions,
        config,
    });
    // Receivers first, as tasks: a sender's connect waits for its receiver's.
    for link in setup.receivers {
        glommio::spawn_local(drain_peer(ctx.clone(), link.peer, link.channel, link.returns)).detach();
    }
    let batch_values = ctx.config.handoff_batch_values;
    for link in setup.senders {
        let connected = link.channel.connect().await;
        ctx.peers.borrow_mut()[link.peer] = Some(Rc::new(PeerSender::new(connected, link.returns, batch_values)));
    }
    glommio::spawn_local(flush_loop::run(ctx.clone())).detach();
    glommio::spawn_local(publish_loop(ctx.clone())).detach();

    while let Ok(cmd) = setup.commands.recv_async().await {
        tracing::debug!(core = ctx.index, %cmd, "command");
        match cmd {
            ShardCommand::SetShardOwners(owners) => *ctx.owners.borrow_mut() = owners,
            ShardCommand::SetShardWindows(windows) => {
                ctx.cluster_mode.set(true);
                let mut agg = ctx.aggregator.borrow_mut();
                for (shard, w) in windows.iter().enumerate() {
                    agg.set_shard_window(shard as u32, *w);
                }
            }
            ShardCommand::SetRoutes(routes) => {
                ctx.cluster_mode.set(true);
                // Keep the forwarder (and its unacked frames) of a peer that stays.
                let old = std::mem::take(&mut *ctx.forwarders.borrow_mut());
                let forwarders = routes
                    .peers
                    .iter()
                    .map(|p| match old.iter().find(|f| f.peer == *p) {
                        Some(f) => f.clone(),
                        None => ingest::forward::Forwarder::start(ctx.clone(), *p),
                    })
                    .collect();
                *ctx.forwarders.borrow_mut() = forwarders;
                *ctx.routes.borrow_mut() = Some(routes);
            }
            ShardCommand::SetFollowerFlush(follower) => *ctx.follower.borrow_mut() = follower,
            ShardCommand::SetRole { role, reply } => {
                ctx.cluster_mode.set(true);
                flush_loop::set_role(&ctx, role).await;
                let _ = reply.send(());
            }
            ShardCommand::StartIngest { bind, unix, reply } => {
                let _ = reply.send(start_ingest(&ctx, &bind, unix.as_deref()));
            }
            ShardCommand::StopIngest { reply } => {
                stop_ingest(&ctx).await;
                let _ = reply.send(());
            }
            ShardCommand::FinalFlush { include_open, reply } => {
                flush_loop::final_flush(&ctx, include_open).await;
                let _ = reply.send(());
            }
            ShardCommand::Exit => break,
        }
    }
    ctx.publish_stats();
    // Dropping the senders ends the peers' drain tasks.
    ctx.peers.borrow_mut().clear();
}

/// One peer's channel into this core.
#[derive(Clone)]
struct InboundPeer {
    from: usize,
    channel: Rc<ConnectedReceiver<SampleBatch>>,
    returns: Returns,
}

impl InboundPeer {
    /// Applies one handed-in batch and sends it back to be filled again.
    fn take_in(&self, ctx: &CoreCtx, mut batch: SampleBatch) {
        ctx.aggregator.borrow_mut().apply(&batch, now_nanos());
        ctx.stats.borrow_mut().handoff_batches_received[self.from] += 1;
        batch.clear();
        // Back to the core that filled it; dropped if that queue is full.
        let _ = self.returns.push(batch);
    }
}

/// Takes in one peer's batches whenever this core would otherwise be idle.
async fn drain_peer(ctx: Rc<CoreCtx>, from: usize, rx: SharedReceiver<SampleBatch>, returns: Returns) {
    let inbound = InboundPeer { from, channel: Rc::new(rx.connect().await), returns };
    ctx.inbound.borrow_mut().push(inbound.clone());
    while let Some(batch) = inbound.channel.recv().await {
        inbound.take_in(&ctx, batch);
        glommio::yield_if_needed().await;
    }
}

/// Applies, from the ingest path itself, every batch other cores have handed this one so
/// far; true if there was one.
///
/// `drain_peer` alone is not enough under load: glommio runs it only once the ingest task
/// that keeps this core busy waits, and notices a peer's send only when it polls for events,
/// so two loaded cores ended up waiting on each other's full channels (the `scaling` bench:
/// ~1.0–1.16× one core's throughput with 2 cores; 1.46–1.90× with this, called after each
/// dispatch and before waiting for room). A batch is popped only when the sender's ledger
/// says one is there, so the poll never finds the channel empty and never leaves a waker
/// behind; and only the batches sent before the call, so that a peer that keeps sending
/// cannot hold this core here.
pub(crate) async fn take_in_handed_batches(ctx: &CoreCtx) -> bool {
    let mut took = false;
    let peers = ctx.inbound.borrow().len();
    for i in 0..peers {
        let Some(inbound) = ctx.inbound.borrow().get(i).cloned() else { break };
        let sent = ctx.ledger.sent(inbound.from, ctx.index);
        while sent > ctx.stats.borrow().handoff_batches_received[inbound.from] {
            let Some(Some(batch)) = futures_lite::future::poll_once(inbound.channel.recv()).await else { break };
            inbound.take_in(ctx, batch);
            took = true;
        }
    }
    took
}

async fn publish_loop(ctx: Rc<CoreCtx>) {
    loop {
        ctx.publish_stats();
        glommio::timer::sleep(ctx.config.stats_interval).await;
    }
}

fn start_ingest(ctx: &Rc<CoreCtx>, bind: &BoundAddrs, unix: Option<&SharedUnixSocket>) -> Result<BoundAddrs, String> {
    let mut bound = BoundAddrs::default();
    if bind.m3msg.is_some() || bind.statsd_tcp.is_some() {
        glommio::spawn_local(adopt_loop(ctx.clone())).detach();
    }
    if let Some(addr) = bind.m3msg {
        let listener = TcpListener::bind(addr).map_err(|e| format!("m3msg listen on {addr}: {e}"))?;
        bound.m3msg = listener.local_addr().ok();
        glommio::spawn_local(accept_loop(ctx.clone(), listener, Listener::M3msg)).detach();
    }
    if let Some(addr) = bind.statsd_tcp {
        let listener = TcpListener::bind(addr).map_err(|e| format!("statsd tcp listen on {addr}: {e}"))?;
        bound.statsd_tcp = listener.local_addr().ok();
        glommio::spawn_local(accept_loop(ctx.clone(), listener, Listener::StatsdTcp)).detach();
    }
    if let Some(addr) = bind.statsd_udp {
        let socket =
            bind_udp(addr, ctx.config.ingest.udp_recv_buffer).map_err(|e| format!("statsd udp bind on {addr}: {e}"))?;
        bound.statsd_udp = socket.local_addr().ok();
        // Core 0 binds first, so its socket founds the group (see `ingest::udp_spread`).
        if ctx.config.ingest.udp_by_cpu && ctx.index == 0 {
            match ingest::udp_spread::attach_by_cpu(socket.as_raw_fd(), &ctx.config.cpus) {
                Ok(()) => {
                    tracing::info!(cpus = ?ctx.config.cpus, "statsd udp datagrams go to the core of the receiving cpu")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "statsd udp: could not attach the by-cpu program; datagrams are spread by flow hash")
                }
            }
        }
        let guard = TaskGuard::new(ctx, None);
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let _guard = guard;
            let policy = DrainPolicy::udp(&ctx);
            ingest::statsd::serve_datagrams(ctx, DatagramSocket::Udp(socket), policy).await;
        })
        .detach();
    }
    if let Some(shared) = unix {
        let handle = shared.attach().map_err(|e| format!("statsd unix socket {}: {e}", shared.path().display()))?;
        bound.statsd_unix = Some(shared.path().to_owned());
        let policy = DrainPolicy::unix(ctx, shared.queue_depth());
        let guard = TaskGuard::new(ctx, None);
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let _guard = guard;
            ingest::statsd::serve_datagrams(ctx, DatagramSocket::Unix(handle), policy).await;
        })
        .detach();
    }
    Ok(bound)
}

fn bind_udp(addr: std::net::SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
        tracing::warn!(error = %e, recv_buffer, "could not set the statsd udp receive buffer");
    }
    // The kernel reports twice what it granted (the other half is its own bookkeeping).
    let granted = || socket.recv_buffer_size().unwrap_or(0) / 2;
    // Above net.core.rmem_max only SO_RCVBUFFORCE gets the size, and only with CAP_NET_ADMIN.
    if granted() < recv_buffer && force_recv_buffer(socket.as_raw_fd(), recv_buffer).is_ok() {
        tracing::info!(recv_buffer, "statsd udp receive buffer set above net.core.rmem_max (CAP_NET_ADMIN)");
    }
    if granted() < recv_buffer {
        tracing::warn!(
            asked = recv_buffer,
            granted = granted(),
            "statsd udp receive buffer capped (raise net.core.rmem_max, or give sheaf CAP_NET_ADMIN)"
        );
    }
    socket.bind(&addr.into())?;
    let fd = socket.into_raw_fd();
    // `into_raw_fd` released the ownership of this freshly created, bound UDP socket.
    // SAFETY: `fd` is an open UDP socket nobody else owns; `UdpSocket` takes it and closes it.
    Ok(unsafe { UdpSocket::from_raw_fd(fd) })
}

/// `SO_RCVBUFFORCE`: the receive buffer size without the `net.core.rmem_max` cap.
fn force_recv_buffer(fd: RawFd, bytes: usize) -> std::io::Result<()> {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // `size` lives across the call and its length is passed with it.
    // SAFETY: `fd` is an open socket owned by the caller; setsockopt only reads `size`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Accepts connections on this core's listener; serves each here, or hands it to the core
/// that serves the fewest (see `ingest::spread`).
async fn accept_loop(ctx: Rc<CoreCtx>, listener: TcpListener, kind: Listener) {
    let _guard = TaskGuard::new(&ctx, None);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.shared_accept().await) }, async {
            ctx.stopped().await;
            None
        })
        .await;
        let stream = match accepted {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
            None => break,
        };
        if ctx.is_stopping() {
            // Binding it gives the socket an owner, which closes it.
            drop(stream.bind_to_executor());
            break;
        }
        let slot = ctx.spread.place(ctx.index);
        if slot.core() == ctx.index {
            serve(&ctx, stream.bind_to_executor(), kind, slot);
            continue;
        }
        if let Err(back) = ctx.spread.hand_over(Adoption { stream, kind, slot }) {
            // That core is gone (only at shutdown): serve it here after all.
            let slot = ctx.spread.reserve(ctx.index);
            drop(back.slot);
            serve(&ctx, back.stream.bind_to_executor(), kind, slot);
        }
    }
}

/// Serves the connections other cores hand to this one, until ingest stops.
async fn adopt_loop(ctx: Rc<CoreCtx>) {
    let _guard = TaskGuard::new(&ctx, None);
    loop {
        let next = futures_lite::future::or(async { ctx.adoptions.recv_async().await.ok() }, async {
            ctx.stopped().await;
            None
        })
        .await;
        let Some(adoption) = next else { break };
        let stream = adoption.stream.bind_to_executor();
        if ctx.is_stopping() {
            break;
        }
        serve(&ctx, stream, adoption.kind, adoption.slot);
    }
    // Connections handed over while ingest stopped are closed (their producers resend).
    while let Ok(adoption) = ctx.adoptions.try_recv() {
        drop(adoption.stream.bind_to_executor());
    }
}

/// Serves one connection on this core; `slot` counts it here while it lives.
fn serve(ctx: &Rc<CoreCtx>, stream: TcpStream, kind: Listener, slot: ConnectionSlot) {
    let _ = stream.set_nodelay(true);
    let guard = TaskGuard::new(ctx, Some(stream.as_raw_fd()));
    let ctx = ctx.clone();
    glommio::spawn_local(async move {
        let _guard = guard;
        let _slot = slot;
        match kind {
            Listener::M3msg => ingest::m3msg::serve(ctx, stream).await,
            Listener::StatsdTcp => ingest::statsd::serve_tcp(ctx, stream).await,
        }
    })
    .detach();
}

async fn stop_ingest(ctx: &Rc<CoreCtx>) {
    ctx.stopping.set(true);
    ctx.stop.close();
    for fd in ctx.connections.borrow().values() {
        // A connection's fd is in the registry only while its task, which owns the stream, is
        // alive: the stream is dropped when the serve future completes and the guard removes
        // the fd in that same poll, with no await in between; this runs on the same thread.
        // SAFETY: so `fd` is open and is that stream's socket; shutdown(2) only ends reads.
        unsafe {
            libc::shutdown(*fd, libc::SHUT_RD);
        }
    }
    let started = Instant::now();
    while ctx.active_tasks.get() > 0 {
        if started.elapsed() > Duration::from_secs(30) {
            tracing::warn!(core = ctx.index, tasks = ctx.active_tasks.get(), "ingest tasks did not stop in 30s");
            break;
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}
