//! StatsD over a Unix datagram socket (DogStatsD-style `statsd.unix.path`): one socket at one
//! path, shared by every core.
//!
//! A Unix socket has no `SO_REUSEPORT` group, so the pool binds it once on the control
//! thread ([`SharedUnixSocket::bind`]) and every core waits on the same socket through its own
//! glommio handle ([`SharedUnixSocket::attach`]). Each core drains it with `recvmmsg`; the
//! kernel hands each datagram to exactly one of them, so a core that is busier simply takes
//! fewer, and the load spreads over the cores by itself, whatever the number of senders.
//!
//! Unlike UDP, a full Unix datagram queue pushes back on the sender (a blocking `send` waits,
//! a non-blocking one gets `EAGAIN`) instead of dropping in the kernel. Its depth is the
//! sysctl `net.unix.max_dgram_qlen`, read when the socket is created (10 on a stock kernel;
//! `sheaf` warns at start when it is below 512).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram as StdUnixDatagram;
use std::path::{Path, PathBuf};

/// Where the kernel's per-socket datagram queue depth is set.
pub const MAX_DGRAM_QLEN_SYSCTL: &str = "/proc/sys/net/unix/max_dgram_qlen";

/// Below this queue depth a core does not pause after a small drain (`small_read_pause`):
/// the queue would fill during the pause and push back on, or make drop, the senders.
pub const MIN_QUEUE_FOR_PAUSE: usize = 128;

/// The bound socket every core reads; owned by the pool, which removes its path at stop.
#[derive(Debug)]
pub struct SharedUnixSocket {
    socket: StdUnixDatagram,
    path: PathBuf,
    /// `net.unix.max_dgram_qlen` when the socket was made: the most datagrams it queues.
    queue_depth: Option<usize>,
}

impl SharedUnixSocket {
    /// Binds `path`. A socket file left there by a process that is gone is removed first; a
    /// path where a live process still receives, or that is not a socket, is an error.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket"));
            }
            let probe = StdUnixDatagram::unbound()?;
            match probe.connect(path) {
                Ok(()) => {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process receives on this socket"));
                }
                // Nobody is bound there any more: a stale file from an earlier run.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)?,
                Err(e) => return Err(e),
            }
        }
        let queue_depth = max_dgram_qlen();
        let socket = StdUnixDatagram::bind(path)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket, path: path.to_owned(), queue_depth })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The most datagrams the socket queues (the sysctl when it was made), if readable.
    pub fn queue_depth(&self) -> Option<usize> {
        self.queue_depth
    }

    /// A handle on this socket for the calling core's executor.
    pub(crate) fn attach(&self) -> io::Result<CoreHandle> {
        CoreHandle::new(self.socket.as_raw_fd())
    }

    /// The first step of a stop: from now on a send to the socket fails (`EPIPE`) instead of
    /// queueing, while what is queued stays for the cores' last drain; and the path goes, so
    /// that a new sender finds nobody there.
    pub fn stop_receiving(&self) {
        if let Err(e) = self.socket.shutdown(std::net::Shutdown::Read) {
            tracing::warn!(error = %e, "statsd unix socket: shutdown of reads failed");
        }
        self.remove_path();
    }

    /// Removes the socket's path.
    fn remove_path(&self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the statsd unix socket");
        }
    }
}

/// One core's handle on the shared socket: a descriptor of its own for the same socket, and
/// a way to sleep on the core's io_uring until a datagram is queued.
///
/// glommio's `UnixDatagram` can neither adopt a descriptor nor show its own, so the wait goes
/// through its `UnixStream` over the duplicated descriptor, used for one thing only: a
/// 1-byte `MSG_PEEK` (`recv(2)` peeks the same on a datagram socket). The datagrams are
/// taken with `recvmmsg` on [`CoreHandle::fd`]. A peek that returns 0 bytes (an empty
/// datagram, or reads shut down at stop) makes glommio's stream take the socket as ended
/// and answer every later peek at once, so the handle is then made anew.
pub(crate) struct CoreHandle {
    shared: RawFd,
    /// The duplicated descriptor, owned (and closed) by `waiter`.
    own: RawFd,
    waiter: glommio::net::UnixStream,
}

impl CoreHandle {
    fn new(shared: RawFd) -> io::Result<Self> {
        // SAFETY: `shared` is the pool's open socket, alive while any core reads it.
        let own = unsafe { libc::fcntl(shared, libc::F_DUPFD_CLOEXEC, 0) };
        if own < 0 {
            return Err(io::Error::last_os_error());
        }
        // `own` was just made by F_DUPFD_CLOEXEC and is owned by nobody else; the stream
        // takes it and closes it when dropped (the shared socket stays open through `shared`).
        // SAFETY: as above.
        let waiter = unsafe { glommio::net::UnixStream::from_raw_fd(own) };
        Ok(Self { shared, own, waiter })
    }

    /// This core's descriptor for the socket.
    pub(crate) fn fd(&self) -> RawFd {
        self.own
    }

    /// Waits until a datagram is queued (it stays queued).
    pub(crate) async fn readable(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        let peeked = self.waiter.peek(&mut probe).await.map_err(io::Error::from)?;
        if peeked == 0 {
            *self = Self::new(self.shared)?;
        }
        Ok(())
    }
}

/// `net.unix.max_dgram_qlen`, if readable.
pub fn max_dgram_qlen() -> Option<usize> {
    std::fs::read_to_string(MAX_DGRAM_QLEN_SYSCTL).ok().and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sheaf-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
        let path = temp_path("stale");
        drop(StdUnixDatagram::bind(&path).unwrap());
        assert!(path.exists(), "the dropped socket leaves its file behind");
        let shared = SharedUnixSocket::bind(&path).expect("a stale file is removed");
        let err = SharedUnixSocket::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        shared.stop_receiving();
        assert!(!path.exists());
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let path = temp_path("file");
        std::fs::write(&path, b"keep me").unwrap();
        let err = SharedUnixSocket::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_file(&path).unwrap();
    }

    /// Two cores' handles read the one socket: every datagram comes out of one of them once.
    #[test]
    fn handles_on_two_executors_share_the_datagrams() {
        let path = temp_path("share");
        let shared = std::sync::Arc::new(SharedUnixSocket::bind(&path).unwrap());
        let sender = StdUnixDatagram::unbound().unwrap();
        // A stock kernel queues at most 10 datagrams (net.unix.max_dgram_qlen).
        for i in 0..8u32 {
            sender.send_to(format!("d{i}").as_bytes(), &path).unwrap();
        }
        let take = |shared: std::sync::Arc<SharedUnixSocket>, most: usize| {
            std::thread::spawn(move || {
                glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .spawn(move || async move {
                        let mut handle = shared.attach().unwrap();
                        let mut got = Vec::new();
                        let mut buf = [0u8; 16];
                        while got.len() < most {
                            handle.readable().await.unwrap();
                            // SAFETY: `buf` is writable for its length; the fd is open.
                            let n = unsafe {
                                libc::recv(handle.fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                            };
                            got.push(String::from_utf8(buf[..n as usize].to_vec()).unwrap());
                        }
                        got
                    })
                    .unwrap()
                    .join()
                    .unwrap()
            })
        };
        let first = take(shared.clone(), 4).join().unwrap();
        let second = take(shared.clone(), 4).join().unwrap();
        let all: Vec<String> = first.into_iter().chain(second).collect();
        let want: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
        assert_eq!(all, want);
        shared.stop_receiving();
    }

    /// An empty datagram wakes the core once, like any other; afterwards the handle waits
    /// again instead of answering every peek at once.
    #[test]
    fn after_an_empty_datagram_the_handle_still_sleeps_until_the_next() {
        let path = temp_path("empty");
        let shared = std::sync::Arc::new(SharedUnixSocket::bind(&path).unwrap());
        let sender = StdUnixDatagram::unbound().unwrap();
        sender.send_to(b"", &path).unwrap();
        let inner = shared.clone();
        let (woke_for_nothing, woke_for_data) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let mut handle = inner.attach().unwrap();
                let mut buf = [0u8; 16];
                handle.readable().await.unwrap();
                // SAFETY: `buf` is writable for its length; the fd is open.
                let n = unsafe { libc::recv(handle.fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
                assert_eq!(n, 0, "the empty datagram");
                let idle = futures_lite::future::or(async { handle.readable().await.map(|()| true) }, async {
                    glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                    Ok(false)
                });
                let woke_for_nothing = idle.await.unwrap();
                sender.send_to(b"x", inner.path()).unwrap();
                handle.readable().await.unwrap();
                // SAFETY: as above.
                let n = unsafe { libc::recv(handle.fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
                (woke_for_nothing, n == 1 && buf[0] == b'x')
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!woke_for_nothing, "an empty queue must not look readable");
        assert!(woke_for_data);
        shared.stop_receiving();
    }

    /// At stop, a sender learns at once that nothing more is taken, and what was queued
    /// before stays readable.
    #[test]
    fn after_stop_receiving_sends_fail_and_the_queue_is_kept() {
        let path = temp_path("stop");
        let shared = SharedUnixSocket::bind(&path).unwrap();
        let sender = StdUnixDatagram::unbound().unwrap();
        sender.connect(&path).unwrap();
        sender.send(b"queued").unwrap();
        shared.stop_receiving();
        assert_eq!(sender.send(b"late").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let mut buf = [0u8; 16];
        let n = shared.socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"queued");
        assert_eq!(shared.socket.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
