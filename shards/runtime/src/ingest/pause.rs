//! `AdaptivePause`: how long a core leaves its datagram socket alone after a wake-up that
//! emptied it. One per receive loop, on the loop's shard core.
//!
//! Every wake-up costs the core a park and an unpark (an io_uring wait, a timer, on a VM
//! several exits) whether it brings three datagrams or three hundred, so at moderate rates
//! the cost per line is set by how often the core wakes, not by the lines. The pause lets the
//! socket's buffer gather datagrams meanwhile: it starts short, doubles after every wake-up
//! that found the buffer under an eighth full, up to the configured most, and halves after
//! one that found it more than half full, so that a socket with a small buffer (no
//! `CAP_NET_ADMIN`, a low `net.core.rmem_max`) is never left to overflow. Under full load
//! the drains never run dry and the loop does not pause at all.

use std::time::Duration;

/// The first pause, and the shortest the control goes down to.
const SHORTEST: Duration = Duration::from_micros(250);

/// What a queued datagram costs the socket's buffer beyond its payload (the kernel charges a
/// buffer its skbs' true size; ~700–900 bytes per datagram on loopback and common NICs).
const PER_DATAGRAM_OVERHEAD: usize = 1024;

#[derive(Debug, Clone)]
pub(crate) struct AdaptivePause {
    current: Duration,
    longest: Duration,
    /// The socket's receive buffer, as the kernel counts it (`SO_RCVBUF`'s value).
    buffer_bytes: usize,
}

impl AdaptivePause {
    /// A pause of at most `longest` before a socket whose buffer holds `buffer_bytes`.
    pub(crate) fn new(longest: Duration, buffer_bytes: usize) -> Self {
        Self { current: SHORTEST.min(longest), longest, buffer_bytes: buffer_bytes.max(1) }
    }

    /// The same pause every time (a socket whose fill level says nothing, e.g. one that all
    /// cores drain).
    pub(crate) fn fixed(pause: Duration) -> Self {
        Self { current: pause, longest: pause, buffer_bytes: usize::MAX }
    }

    /// After a wake-up that emptied the socket, having taken `datagrams` of `bytes` in all:
    /// the pause before the next look.
    pub(crate) fn after_small_wake(&mut self, datagrams: usize, bytes: usize) -> Duration {
        if self.buffer_bytes == usize::MAX {
            return self.current;
        }
        let queued = bytes.saturating_add(datagrams.saturating_mul(PER_DATAGRAM_OVERHEAD));
        if queued.saturating_mul(2) > self.buffer_bytes {
            self.current = (self.current / 2).max(SHORTEST).min(self.longest);
        } else if queued.saturating_mul(8) < self.buffer_bytes {
            self.current = (self.current * 2).min(self.longest);
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grows_to_the_longest_while_the_buffer_stays_nearly_empty() {
        let mut p = AdaptivePause::new(10 * MS, 32 << 20);
        let pauses: Vec<Duration> = (0..8).map(|_| p.after_small_wake(3, 4200)).collect();
        assert_eq!(pauses[0], Duration::from_micros(500));
        assert_eq!(*pauses.last().unwrap(), 10 * MS);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn halves_when_a_wake_found_the_buffer_more_than_half_full_and_holds_in_between() {
        let mut p = AdaptivePause::new(10 * MS, 400_000);
        for _ in 0..8 {
            p.after_small_wake(1, 100);
        }
        assert_eq!(p.after_small_wake(150, 150 * 1400), 5 * MS);
        assert_eq!(p.after_small_wake(150, 150 * 1400), Duration::from_micros(2500));
        // Between an eighth and a half: the pause stays.
        assert_eq!(p.after_small_wake(40, 40 * 1400), Duration::from_micros(2500));
        for _ in 0..20 {
            p.after_small_wake(1000, 1000 * 1400);
        }
        assert_eq!(p.after_small_wake(1000, 1000 * 1400), SHORTEST);
    }

    #[test]
    fn never_exceeds_a_longest_below_the_shortest_and_a_fixed_pause_stays() {
        let mut p = AdaptivePause::new(Duration::from_micros(100), 32 << 20);
        assert_eq!(p.after_small_wake(0, 0), Duration::from_micros(100));
        assert_eq!(p.after_small_wake(10_000, 1 << 30), Duration::from_micros(100));
        let mut f = AdaptivePause::fixed(Duration::from_micros(500));
        assert_eq!(f.after_small_wake(10_000, 1 << 30), Duration::from_micros(500));
        let mut zero = AdaptivePause::new(Duration::ZERO, 32 << 20);
        assert_eq!(zero.after_small_wake(1, 1), Duration::ZERO);
    }
}
