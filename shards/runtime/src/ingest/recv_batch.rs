//! `RecvBatch`: takes every datagram already queued on a UDP socket with one `recvmmsg`
//! (non-blocking), so that a core which woke up for one datagram drains the rest of a burst
//! without an io_uring round trip per datagram. The first datagram of a burst is still
//! awaited through glommio, so an idle core sleeps.
//!
//! #[PerformanceCriticalPath]: buffers are allocated once per socket.

use std::os::fd::RawFd;

/// Datagrams per `recvmmsg` call.
pub(crate) const SLOTS: usize = 32;
/// Largest datagram kept whole (a UDP payload is at most 65,507 bytes).
const SLOT_BYTES: usize = 65_536;
/// Slots start this far apart: a few cache lines more than `SLOT_BYTES`. With a stride of
/// exactly 64 KiB every datagram would start in the same cache set, and a burst of 32
/// datagrams of ~1.4 KB would evict itself from L1 and L2 before it is decoded.
const SLOT_STRIDE: usize = SLOT_BYTES + 25 * 64;

pub(crate) struct RecvBatch {
    buffers: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        let mut buffers = vec![0u8; SLOTS * SLOT_STRIDE];
        let iovecs: Vec<libc::iovec> = buffers
            .chunks_mut(SLOT_STRIDE)
            .map(|slot| libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: SLOT_BYTES })
            .collect();
        // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid (empty) value.
        let headers = (0..SLOTS).map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() }).collect();
        Self { buffers, iovecs, headers, received: 0 }
    }

    /// Reads up to 32 queued datagrams without waiting; returns how many (0 when none is
    /// queued or on error).
    pub(crate) fn drain(&mut self, fd: RawFd) -> usize {
        for (header, iov) in self.headers.iter_mut().zip(self.iovecs.iter_mut()) {
            header.msg_hdr.msg_name = std::ptr::null_mut();
            header.msg_hdr.msg_namelen = 0;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // `headers` holds SLOTS initialised mmsghdrs, each pointing at one iovec of `iovecs`,
        // which points at a distinct SLOT_BYTES region of `buffers` (the regions start
        // SLOT_STRIDE apart); MSG_DONTWAIT makes the call return at once when nothing is queued.
        // SAFETY: all three arrays live in `self` and are not moved or borrowed during the call.
        let n = unsafe {
            libc::recvmmsg(fd, self.headers.as_mut_ptr(), SLOTS as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        self.received = usize::try_from(n).unwrap_or(0);
        self.received
    }

    /// The datagrams of the last `drain`.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.headers[..self.received].iter().enumerate().map(|(i, h)| {
            let len = (h.msg_len as usize).min(SLOT_BYTES);
            &self.buffers[i * SLOT_STRIDE..i * SLOT_STRIDE + len]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn drains_queued_datagrams_in_order_and_returns_zero_when_empty() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.drain(rx.as_raw_fd()), 0);
        for i in 0..40u32 {
            tx.send_to(format!("d{i}").as_bytes(), rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut got = Vec::new();
        while batch.drain(rx.as_raw_fd()) > 0 {
            got.extend(batch.datagrams().map(|d| String::from_utf8(d.to_vec()).unwrap()));
        }
        let want: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
        assert_eq!(got, want);
    }
}
