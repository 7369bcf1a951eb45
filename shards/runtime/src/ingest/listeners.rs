//! The ingest sockets of one core: binding them when ingest starts, and the loops that
//! accept connections (or adopt those another core accepted) and start a task per
//! connection or datagram socket. Runs on its shard core, in its `ingest` queue.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream, UdpSocket};

use super::IngestContext;
use super::spread::{Adoption, ConnectionSlot, Listener};
use super::statsd::{self, DatagramSocket, DrainPolicy};
use super::unix_socket::SharedUnixSocket;
use super::{m3msg, udp_spread};
use crate::command::BoundAddrs;
use crate::error::BindError;
use crate::stats::ConnectionRefusal;

/// Binds the ingest sockets `bind` names on this core (SO_REUSEPORT: the first core
/// resolves port 0, the others bind the port it got) and starts reading them; returns what
/// was bound.
pub(crate) fn start(
    ctx: &Rc<IngestContext>,
    bind: &BoundAddrs,
    unix: Option<&SharedUnixSocket>,
) -> Result<BoundAddrs, BindError> {
    let config = &ctx.state.config;
    let mut bound = BoundAddrs::default();
    spawn(ctx, super::reroute::run(ctx.router.clone(), ctx.lifecycle.clone()));
    if bind.m3msg.is_some() || bind.statsd_tcp.is_some() {
        spawn(ctx, adopt_loop(ctx.clone()));
    }
    if let Some(addr) = bind.m3msg {
        let listener = bind_tcp(addr).map_err(|source| BindError::M3msg { addr, source })?;
        bound.m3msg = listener.local_addr().ok();
        spawn(ctx, accept_loop(ctx.clone(), listener, Listener::M3msg));
    }
    if let Some(addr) = bind.statsd_tcp {
        let listener = bind_tcp(addr).map_err(|source| BindError::StatsdTcp { addr, source })?;
        bound.statsd_tcp = listener.local_addr().ok();
        spawn(ctx, accept_loop(ctx.clone(), listener, Listener::StatsdTcp));
    }
    if let Some(addr) = bind.statsd_udp {
        let socket =
            bind_udp(addr, config.ingest.udp_recv_buffer).map_err(|source| BindError::StatsdUdp { addr, source })?;
        bound.statsd_udp = socket.local_addr().ok();
        // Core 0 binds first, so its socket founds the group (see `udp_spread`).
        if config.ingest.udp_by_cpu && ctx.state.index == 0 {
            match udp_spread::attach_by_cpu(socket.as_raw_fd(), &config.cpus) {
                Ok(()) => {
                    tracing::info!(cpus = ?config.cpus, "statsd udp datagrams go to the core of the receiving cpu")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "statsd udp: could not attach the by-cpu program; datagrams are spread by flow hash")
                }
            }
        }
        let policy = DrainPolicy::udp(config);
        let drops = ctx.state.watch_udp_drops(socket.as_raw_fd());
        spawn(ctx, statsd::serve_datagrams(ctx.clone(), DatagramSocket::Udp { _drops: drops, socket }, policy));
    }
    if let Some(shared) = unix {
        let handle =
            shared.attach().map_err(|source| BindError::StatsdUnix { path: shared.path().to_owned(), source })?;
        bound.statsd_unix = Some(shared.path().to_owned());
        let policy = DrainPolicy::unix(config, shared.queue_depth());
        spawn(ctx, statsd::serve_datagrams(ctx.clone(), DatagramSocket::Unix(handle), policy));
    }
    Ok(bound)
}

/// Spawns an ingest task (counted by the lifecycle) into the ingest queue.
fn spawn(ctx: &IngestContext, task: impl std::future::Future<Output = ()> + 'static) {
    ctx.lifecycle.spawn(ctx.queues.ingest, task);
}

/// A TCP listener in the port's SO_REUSEPORT group, with SO_REUSEADDR too: the connections it
/// accepts inherit it, so that those left in TIME_WAIT when this process exits do not keep a
/// restart from binding the port (or its start-up probe from finding it free) for a minute.
fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::IntoRawFd;

    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let fd = socket.into_raw_fd();
    // The listener takes sole ownership of the socket released above.
    // SAFETY: `fd` is the bound, listening TCP socket just released by `socket`.
    Ok(unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) })
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
async fn accept_loop(ctx: Rc<IngestContext>, listener: TcpListener, kind: Listener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.shared_accept().await) }, async {
            ctx.lifecycle.stopped().await;
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
        if ctx.lifecycle.is_stopping() {
            // Binding it gives the socket an owner, which closes it.
            drop(stream.bind_to_executor());
            break;
        }
        let here = ctx.state.index;
        let Ok(slot) = ctx.spread.place(here, kind) else {
            // Over the protocol's max_connections: closed at once (binding it gives the
            // socket an owner, which closes it), counted here.
            drop(stream.bind_to_executor());
            ctx.refused(kind.protocol(), ConnectionRefusal::ConnectionLimit);
            tracing::debug!(protocol = kind.protocol().name(), "connection over max_connections closed");
            continue;
        };
        if slot.core() == here {
            serve(&ctx, stream.bind_to_executor(), kind, slot);
            continue;
        }
        if let Err(mut back) = ctx.spread.hand_over(Adoption { stream, kind, slot }) {
            // That core is gone (only at shutdown): serve it here after all.
            back.slot.move_to(here);
            serve(&ctx, back.stream.bind_to_executor(), kind, back.slot);
        }
    }
}

/// Serves the connections other cores hand to this one, until ingest stops.
async fn adopt_loop(ctx: Rc<IngestContext>) {
    loop {
        let next = futures_lite::future::or(async { ctx.adoptions.recv_async().await.ok() }, async {
            ctx.lifecycle.stopped().await;
            None
        })
        .await;
        let Some(adoption) = next else { break };
        let stream = adoption.stream.bind_to_executor();
        if ctx.lifecycle.is_stopping() {
            break;
        }
        serve(&ctx, stream, adoption.kind, adoption.slot);
    }
    // Connections handed over while ingest stopped are closed (their producers resend).
    while let Ok(adoption) = ctx.adoptions.try_recv() {
        drop(adoption.stream.bind_to_executor());
    }
}

/// Serves one connection on this core; `slot` counts it here while it lives. A connection
/// that arrives once ingest is stopping is closed (its producer resends).
fn serve(ctx: &Rc<IngestContext>, stream: TcpStream, kind: Listener, slot: ConnectionSlot) {
    let _ = stream.set_nodelay(true);
    // Dropped when the task ends, in the poll that drops the stream: see `register_connection`.
    let registered = ctx.lifecycle.register_connection(stream.as_raw_fd());
    let task_ctx = ctx.clone();
    spawn(ctx, async move {
        let _registered = registered;
        let _slot = slot;
        match kind {
            Listener::M3msg => m3msg::serve(task_ctx, stream).await,
            Listener::StatsdTcp => statsd::serve_tcp(task_ctx, stream).await,
        }
    });
}
