//! `Mailbox`: the batches one core hands one peer (crossbeam's lock-free `ArrayQueue`), and
//! the rule for when the peer must be woken for them.
//!
//! A push does not wake the receiving core by itself: the sender rings the receiver's
//! doorbell (a glommio shared channel, whose send wakes a sleeping executor) only when the
//! receiver asked for a ring because it found the mailbox empty (`arm`), or when the mailbox
//! is half full. While batches keep coming the receiver instead looks at the mailbox on its
//! own wake-up grid, so that a core wakes once per tick for all of a peer's batches rather
//! than once per batch (glommio's own channel wakes the peer on every push and every pop).
//!
//! No ring is lost: `arm` stores the flag and then looks at the queue, `push` puts the item
//! in the queue and then takes the flag, all sequentially consistent, so either the receiver
//! sees the item or the sender sees the flag. Checked under shuttle in `shuttle_tests`.
//!
//! Shared (`Arc`) by the two cores of one ordered pair; the sender pushes and closes, the
//! receiver pops and arms.

use crate::sync::{AtomicBool, BoundedQueue, Ordering};

pub(crate) struct Mailbox<T> {
    items: BoundedQueue<T>,
    capacity: usize,
    /// The receiver found the mailbox empty and waits for a ring on the next push.
    armed: AtomicBool,
    /// The sender is gone: nothing more will come.
    closed: AtomicBool,
    /// The receiver is gone (its executor stopped): nothing pushed would be taken in.
    receiver_gone: AtomicBool,
}

impl<T> Mailbox<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: BoundedQueue::new(capacity),
            capacity,
            armed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            receiver_gone: AtomicBool::new(false),
        }
    }

    /// Sender: puts `item` in. `Ok(true)`: ring the receiver (it waits for a ring, or the
    /// mailbox is half full and should not wait for the receiver's next tick); `Err`: full.
    pub(crate) fn push(&self, item: T) -> Result<bool, T> {
        self.items.push(item)?;
        let waiting = self.armed.swap(false, Ordering::SeqCst);
        Ok(waiting || self.items.len() * 2 >= self.capacity)
    }

    /// Receiver: takes the oldest item.
    pub(crate) fn pop(&self) -> Option<T> {
        self.items.pop()
    }

    /// Receiver, about to wait for a ring: true if it may wait (the mailbox is empty and the
    /// sender is there); false if it must look again first.
    pub(crate) fn arm(&self) -> bool {
        self.armed.store(true, Ordering::SeqCst);
        if !self.items.is_empty() || self.is_closed() {
            self.armed.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Sender, going away: the receiver must be rung once more to see it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Receiver, going away without taking in the rest (its executor stopped).
    pub(crate) fn receiver_left(&self) {
        self.receiver_gone.store(true, Ordering::SeqCst);
    }

    pub(crate) fn receiver_gone(&self) -> bool {
        self.receiver_gone.load(Ordering::SeqCst)
    }

    /// Closed and emptied: the receiver has everything it will ever get.
    pub(crate) fn is_finished(&self) -> bool {
        self.is_closed() && self.items.is_empty()
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    #[test]
    fn rings_when_armed_or_half_full_and_not_otherwise() {
        let m = Mailbox::new(4);
        assert_eq!(m.push(1), Ok(false), "nobody waits, a quarter full");
        assert_eq!(m.push(2), Ok(true), "half full");
        assert_eq!((m.pop(), m.pop(), m.pop()), (Some(1), Some(2), None));
        assert!(m.arm(), "empty: the receiver may wait");
        assert_eq!(m.push(3), Ok(true), "the receiver waits");
        assert!(!m.arm(), "not empty: look again first");
        assert_eq!(m.pop(), Some(3));
        assert_eq!(m.push(4), Ok(false), "arming found an item, so it did not stay armed");
        for i in 5..8 {
            let _ = m.push(i);
        }
        assert_eq!(m.push(8), Err(8), "full");
        assert!(!m.is_finished());
        m.close();
        assert!(!m.arm() && !m.is_finished(), "closed, with items left");
        while m.pop().is_some() {}
        assert!(m.is_finished());
    }
}

#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use shuttle::sync::Arc;
    use shuttle::sync::mpsc;
    use shuttle::thread;

    use super::Mailbox;

    /// The receiver's loop ("take everything; if nothing came, arm and wait for a ring") and
    /// a sender that rings only when `push` says so: the receiver takes every item without
    /// any later ring to help it (the mailbox is closed only after it has all of them), so a
    /// lost ring leaves it waiting for good, which shuttle reports as a deadlock.
    fn no_ring_is_lost() {
        let mailbox = Arc::new(Mailbox::new(8));
        let (ring, doorbell) = mpsc::sync_channel::<()>(1);
        let receiver = {
            let mailbox = mailbox.clone();
            thread::spawn(move || {
                let mut sum = 0;
                while sum < 6 {
                    let mut took = false;
                    while let Some(v) = mailbox.pop() {
                        sum += v;
                        took = true;
                    }
                    if sum < 6 && !took && mailbox.arm() {
                        doorbell.recv().unwrap();
                    }
                }
                sum
            })
        };
        for v in 1..=3u64 {
            if mailbox.push(v) == Ok(true) {
                let _ = ring.try_send(());
            }
            thread::yield_now();
        }
        assert_eq!(receiver.join().unwrap(), 6);
        mailbox.close();
        assert!(mailbox.is_finished());
    }

    #[test]
    fn shuttle_mailbox_ring_random() {
        shuttle::check_random(no_ring_is_lost, 2000);
    }

    #[test]
    fn shuttle_mailbox_ring_pct() {
        shuttle::check_pct(no_ring_is_lost, 2000, 3);
    }
}
