//! The re-route task of a core's `HeldValues` (see `held`): an ingest task in the core's
//! `ingest` queue, counted by its `IngestLifecycle`, so that shutdown waits for its last
//! re-route before the final flush.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::held::Held;
use super::router::{Router, RouterParts};
use crate::core::{IngestLifecycle, RouteTable};

/// How often the task looks for new routes and expired values while any are held.
const RECHECK: Duration = Duration::from_millis(20);

/// The re-route task: while values are held, routes them again whenever the routes change
/// and counts what expires; at shutdown routes them one last time and counts the rest.
pub(crate) async fn run(parts: RouterParts, lifecycle: Rc<IngestLifecycle>) {
    let held = parts.held.clone();
    let Some(woken) = held.woken.borrow_mut().take() else { return };
    let routing: Rc<RouteTable> = parts.routing.clone();
    let mut routes = routing.routes();
    loop {
        if held.is_empty() {
            let stopped = futures_lite::future::or(
                async {
                    woken.recv().await;
                    false
                },
                async {
                    lifecycle.stopped().await;
                    true
                },
            )
            .await;
            if stopped {
                held.closed.set(true);
                return;
            }
            continue;
        }
        let stopping = lifecycle.sleep_unless_stopped(RECHECK).await;
        if stopping {
            held.closed.set(true);
        }
        if stopping || !routing.routes_are(&routes) {
            routes = routing.routes();
            reroute(&parts, held.take_all(), stopping).await;
        }
        let expired = held.expire(Instant::now());
        if expired > 0 {
            parts.state.stats.borrow_mut().unowned_values += expired;
        }
        if stopping {
            return;
        }
    }
}

/// Routes held values again by the routes in force; what is still unowned is held again
/// until its own time is up (or, at shutdown, counted at once).
async fn reroute(parts: &RouterParts, chunks: Vec<Held>, last: bool) {
    let now = Instant::now();
    for h in chunks {
        let until = if last { now } else { h.until };
        let mut router = Router::new(parts.clone(), h.source).holding_until(until);
        router.take(&h.batch);
        router.dispatch().await;
    }
}
