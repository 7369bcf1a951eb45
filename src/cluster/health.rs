//! Whether etcd answers, judged by every request the node agent and its tasks make: the
//! reads and writes, the watches' events and errors, the election's lease renewals and leader
//! queries, and the connection attempts. [`Tracked`](super::tracked::Tracked) wraps the
//! agent's store and records each outcome in the shared [`EtcdHealth`]; the last outcome
//! wins, so `/status` says `unreachable` from the first failed or unanswered request and
//! `connected` again from the first answered one.
//!
//! Control thread only: the agent, its watch and election tasks record; the admin API (same
//! thread) reads. The flag is an atomic only because those are separate tokio tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// etcd's reachability as last observed, and how many requests failed.
#[derive(Debug, Default)]
pub struct EtcdHealth {
    reachable: AtomicBool,
    failures: AtomicU64,
}

impl EtcdHealth {
    /// Unreachable until the first answer.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records one request's outcome: answered (`true`) or failed / unanswered.
    pub fn record(&self, answered: bool) {
        if !answered {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let was = self.reachable.swap(answered, Ordering::Relaxed);
        if was != answered {
            if answered {
                tracing::info!("etcd answers again");
            } else {
                tracing::warn!("etcd does not answer");
            }
        }
    }

    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// `/status`'s `etcd` field.
    pub fn describe(&self) -> &'static str {
        if self.reachable() { "connected" } else { "unreachable" }
    }

    /// Requests that failed or went unanswered since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
