//! `UdpDrops`: the datagrams the kernel dropped at this core's StatsD UDP socket because its
//! receive buffer was full. The socket's own drop counter (`SO_MEMINFO`, `SK_MEMINFO_DROPS`:
//! one per socket, so each core of the `SO_REUSEPORT` group sees only its own) is read each
//! time the core publishes its stats, and once more when the socket closes; nothing is added
//! to the receive path.
//!
//! Lives in its core's `CoreState`; only that core touches it.

use std::cell::Cell;
use std::os::fd::RawFd;

#[derive(Default)]
pub(crate) struct UdpDrops {
    /// The socket watched, while its read loop holds it open (see `CoreState::watch_udp_drops`).
    fd: Cell<Option<RawFd>>,
    /// The kernel's counter at the last reading (a u32 that wraps).
    last: Cell<u32>,
    total: Cell<u64>,
}

impl UdpDrops {
    /// Starts watching `fd`, a freshly bound socket (whose counter starts at 0).
    pub(super) fn watch(&self, fd: RawFd) {
        self.fd.set(Some(fd));
        self.last.set(0);
    }

    /// Reads the counter one last time and stops watching; the total stays.
    pub(super) fn unwatch(&self) {
        self.read();
        self.fd.set(None);
    }

    /// Every datagram dropped at the sockets watched so far, read now.
    pub(super) fn total(&self) -> u64 {
        self.read();
        self.total.get()
    }

    fn read(&self) {
        let Some(fd) = self.fd.get() else { return };
        let Some(now) = socket_drops(fd) else { return };
        let added = now.wrapping_sub(self.last.get());
        self.last.set(now);
        self.total.set(self.total.get() + u64::from(added));
    }
}

/// The socket's drop counter, or `None` where the kernel does not report it (before 4.6).
fn socket_drops(fd: RawFd) -> Option<u32> {
    const VARS: usize = 9;
    let mut info = [0u32; VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    let out = info.as_mut_ptr().cast();
    // `fd` is an open socket: the watch ends before its read loop closes it.
    // SAFETY: `info` and `len` outlive the call; getsockopt writes at most `len` bytes to `info`.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, out, &raw mut len) };
    let drops = libc::SK_MEMINFO_DROPS as usize;
    let written = len as usize / std::mem::size_of::<u32>();
    (rc == 0 && drops < written.min(VARS)).then(|| info[drops])
}

#[cfg(test)]
mod tests {
    use super::UdpDrops;
    use std::os::fd::AsRawFd;

    /// A socket whose receive buffer overflows: the kernel's drops are counted, and kept
    /// once the socket is no longer watched.
    #[test]
    fn counts_what_the_kernel_dropped_at_a_full_socket() {
        let rx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        rx.set_recv_buffer_size(4096).unwrap();
        rx.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let to = rx.local_addr().unwrap().as_socket().unwrap();
        let drops = UdpDrops::default();
        drops.watch(rx.as_raw_fd());
        assert_eq!(drops.total(), 0);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..2000 {
            tx.send_to(&[b'x'; 512], to).unwrap();
        }
        let dropped = drops.total();
        assert!(dropped > 0 && dropped < 2000, "{dropped} of 2000 dropped");
        drops.unwatch();
        drop(rx);
        assert_eq!(drops.total(), dropped);
    }
}
