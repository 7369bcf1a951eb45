//! `HandoffLedger`: batches sent per ordered pair of cores, in atomics that only the sending
//! core writes and any core reads, so that a receiver can tell at shutdown that it has taken
//! in everything sent to it. One per pool, shared (`Arc`) by every core.

use crate::sync::{AtomicU64, Ordering};

/// Batches sent from core i to core j, at `i * cores + j`.
#[derive(Debug)]
pub(crate) struct HandoffLedger {
    cores: usize,
    sent: Vec<AtomicU64>,
}

impl HandoffLedger {
    pub(crate) fn new(cores: usize) -> Self {
        Self { cores, sent: (0..cores * cores).map(|_| AtomicU64::new(0)).collect() }
    }

    pub(crate) fn record_sent(&self, from: usize, to: usize) {
        self.sent[from * self.cores + to].fetch_add(1, Ordering::Release);
    }

    pub(crate) fn sent(&self, from: usize, to: usize) -> u64 {
        self.sent[from * self.cores + to].load(Ordering::Acquire)
    }
}

#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use super::HandoffLedger;
    use crate::sync::{AtomicU64, BoundedQueue, Ordering};
    use shuttle::sync::Arc;
    use shuttle::thread;

    /// The shutdown check of the hand-off: once the sender has stopped (joined, as after
    /// `StopIngest`), a receiver that has taken in as many batches as the ledger says were
    /// sent has applied every value. The receiver drains concurrently with the sender, and
    /// the sender records a batch only after the queue accepted it.
    fn drained_means_everything_applied() {
        let ledger = Arc::new(HandoffLedger::new(2));
        let channel = Arc::new(BoundedQueue::<u64>::new(2));
        let received = Arc::new(AtomicU64::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let sender = {
            let (ledger, channel) = (ledger.clone(), channel.clone());
            thread::spawn(move || {
                for batch in 1..=4u64 {
                    let mut b = batch;
                    while let Err(back) = channel.push(b) {
                        b = back;
                        thread::yield_now();
                    }
                    ledger.record_sent(0, 1);
                }
            })
        };
        let receiver = {
            let (channel, received, applied) = (channel.clone(), received.clone(), applied.clone());
            thread::spawn(move || {
                while received.load(Ordering::SeqCst) < 4 {
                    match channel.pop() {
                        Some(v) => {
                            applied.fetch_add(v, Ordering::SeqCst);
                            received.fetch_add(1, Ordering::SeqCst);
                        }
                        None => thread::yield_now(),
                    }
                }
            })
        };
        sender.join().unwrap();
        // The final flush: wait until received catches up with the ledger.
        while received.load(Ordering::SeqCst) < ledger.sent(0, 1) {
            thread::yield_now();
        }
        assert_eq!(applied.load(Ordering::SeqCst), 1 + 2 + 3 + 4);
        receiver.join().unwrap();
    }

    #[test]
    fn shuttle_handoff_drain_random() {
        shuttle::check_random(drained_means_everything_applied, 2000);
    }
}
