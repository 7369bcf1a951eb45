//! A topic sink's consumer services: each one's writers (one per consumer instance), the
//! messages no instance owns yet, and how a message finds its instances. SHARED: one owner of
//! its shard (a connected one when there is one); REPLICATED: every owner. When the routes
//! change, a message held for an instance that no longer owns its shard moves to the shard's
//! owner(s) now (so nothing is lost when a shard changes hands), and messages without an owner
//! are routed again. Lives on the sink thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::sinks::sink_metrics::ConsumerMetrics;
use crate::topic::routes::{Routes, ServiceKey, ServiceRoutes};

use super::writer::{Msg, Writer};

pub(super) struct Service {
    pub routes: ServiceRoutes,
    pub ttl: Duration,
    pub writers: BTreeMap<String, Writer>,
    /// Messages whose shard has no owner (no placement yet), by id.
    pub homeless: BTreeMap<u64, Msg>,
    pub homeless_metrics: Arc<ConsumerMetrics>,
}

impl Service {
    /// Messages held, for any instance or none.
    pub fn held(&self) -> usize {
        self.homeless.len() + self.writers.values().map(|w| w.pending.len()).sum::<usize>()
    }

    /// Hands message `id` to its shard's owner(s), or keeps it homeless.
    pub fn route(&mut self, id: u64, msg: Msg) {
        let owners = self.routes.owners_of(msg.shard);
        if owners.is_empty() {
            self.homeless.insert(id, msg);
            return;
        }
        if self.routes.shared {
            // Spread by id over the connected owners (over all of them when none is).
            let is_up = |e: &String| self.writers.get(e).is_some_and(Writer::is_connected);
            let up = owners.iter().filter(|e| is_up(e)).count();
            let pick = if up == 0 {
                &owners[id as usize % owners.len()]
            } else {
                owners.iter().filter(|e| is_up(e)).nth(id as usize % up).unwrap_or(&owners[0])
            };
            if let Some(w) = self.writers.get_mut(pick) {
                w.pending.insert(id, msg);
            }
            return;
        }
        for e in owners {
            if let Some(w) = self.writers.get_mut(e)
                && !w.pending.contains_key(&id)
            {
                w.pending.insert(id, Msg { sent: None, ..msg.clone() });
            }
        }
    }

    /// SHARED: moves what a down instance holds to another, connected owner of the same shard
    /// (an unsharded placement's other instances); returns how many moved.
    pub fn move_off_down_instances(&mut self) -> usize {
        if !self.routes.shared {
            return 0;
        }
        let down: Vec<String> =
            self.writers.iter().filter(|(_, w)| w.down && !w.pending.is_empty()).map(|(e, _)| e.clone()).collect();
        let mut moved = 0;
        for e in down {
            let Some(w) = self.writers.get_mut(&e) else { continue };
            let pending = std::mem::take(&mut w.pending);
            for (id, msg) in pending {
                let target = self
                    .routes
                    .owners_of(msg.shard)
                    .iter()
                    .find(|o| **o != e && self.writers.get(*o).is_some_and(|w| w.is_connected()))
                    .cloned();
                let to = target.as_deref().unwrap_or(&e);
                moved += usize::from(to != e);
                if let Some(w) = self.writers.get_mut(to) {
                    w.pending.insert(id, Msg { sent: None, ..msg });
                }
            }
        }
        moved
    }
}

/// The sink's consumer services, rebuilt from each new [`Routes`].
pub(super) struct Services {
    pub by_key: BTreeMap<ServiceKey, Service>,
    /// Every consumer instance's counters ever made, kept across route changes.
    metrics: BTreeMap<(ServiceKey, String), Arc<ConsumerMetrics>>,
    default_ttl: Duration,
}

impl Services {
    pub fn new(default_ttl: Duration) -> Self {
        Self { by_key: BTreeMap::new(), metrics: BTreeMap::new(), default_ttl }
    }

    fn metrics_for(&mut self, key: &ServiceKey, endpoint: &str) -> Arc<ConsumerMetrics> {
        self.metrics
            .entry((key.clone(), endpoint.to_string()))
            .or_insert_with(|| Arc::new(ConsumerMetrics::new(&key.name, endpoint)))
            .clone()
    }

    /// Takes the new routes: services come and go (a removed service's messages are dropped
    /// and returned as the count), writers follow each placement, held messages move to
    /// their shards' current owners.
    pub fn apply(&mut self, routes: &Routes) -> u64 {
        let mut dropped = 0;
        let wanted: BTreeSet<&ServiceKey> = routes.services.iter().map(|s| &s.key).collect();
        self.by_key.retain(|k, s| {
            let keep = wanted.contains(k);
            if !keep {
                dropped += s.held() as u64;
            }
            keep
        });
        for r in &routes.services {
            let ttl = r.ttl.unwrap_or(self.default_ttl);
            let homeless_metrics = self.metrics_for(&r.key, "");
            let service = self.by_key.entry(r.key.clone()).or_insert_with(|| Service {
                routes: r.clone(),
                ttl,
                writers: BTreeMap::new(),
                homeless: BTreeMap::new(),
                homeless_metrics,
            });
            service.routes = r.clone();
            service.ttl = ttl;
            let endpoints: BTreeSet<String> = match &r.owners {
                Ok(o) => o.iter().flatten().cloned().collect(),
                Err(_) => BTreeSet::new(),
            };
            // Take out what no longer belongs where it is, and the writers that are gone.
            let mut moving: BTreeMap<u64, Msg> = std::mem::take(&mut service.homeless);
            let gone: Vec<String> = service.writers.keys().filter(|e| !endpoints.contains(*e)).cloned().collect();
            for e in gone {
                if let Some(w) = service.writers.remove(&e) {
                    w.metrics.connected.store(0, std::sync::atomic::Ordering::Relaxed);
                    w.metrics.queued.store(0, std::sync::atomic::Ordering::Relaxed);
                    moving.extend(w.pending);
                }
            }
            for (e, w) in service.writers.iter_mut() {
                let stale: Vec<u64> = w
                    .pending
                    .iter()
                    .filter(|(_, m)| !service.routes.owners_of(m.shard).contains(e))
                    .map(|(id, _)| *id)
                    .collect();
                for id in stale {
                    if let Some(m) = w.pending.remove(&id) {
                        moving.insert(id, m);
                    }
                }
            }
            let new: Vec<String> = endpoints.into_iter().filter(|e| !service.writers.contains_key(e)).collect();
            for e in new {
                let m = self
                    .metrics
                    .entry((r.key.clone(), e.clone()))
                    .or_insert_with(|| Arc::new(ConsumerMetrics::new(&r.key.name, &e)))
                    .clone();
                service.writers.insert(e.clone(), Writer::new(&e, m));
            }
            for (id, msg) in moving {
                service.route(id, Msg { sent: None, ..msg });
            }
        }
        dropped
    }

    /// Every consumer instance's counters, for the admin API.
    pub fn all_metrics(&self) -> Vec<Arc<ConsumerMetrics>> {
        self.metrics.values().cloned().collect()
    }

    /// Routes message `id` to every service.
    pub fn route(&mut self, id: u64, msg: &Msg) {
        for s in self.by_key.values_mut() {
            s.route(id, msg.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn key() -> ServiceKey {
        ServiceKey { name: "c".into(), environment: "e".into(), zone: "z".into() }
    }

    fn routes(shared: bool, owners: Vec<Vec<&str>>) -> Routes {
        Routes {
            topic: "t".into(),
            number_of_shards: owners.len() as u32,
            services: vec![ServiceRoutes {
                key: key(),
                shared,
                ttl: None,
                owners: Ok(owners.into_iter().map(|o| o.into_iter().map(String::from).collect()).collect()),
            }],
        }
    }

    fn msg(shard: u32) -> Msg {
        Msg { shard, frame: Arc::from(&b"x"[..]), created: Instant::now(), sent: None }
    }

    fn held_by(s: &Services, endpoint: &str) -> Vec<u64> {
        s.by_key[&key()].writers[endpoint].pending.keys().copied().collect()
    }

    #[test]
    fn shared_sends_each_message_to_its_shards_owner_only() {
        let mut s = Services::new(Duration::from_secs(60));
        s.apply(&routes(true, vec![vec!["a:1"], vec!["b:1"]]));
        for id in 0..4 {
            s.route(id, &msg(id as u32 % 2));
        }
        assert_eq!(held_by(&s, "a:1"), [0, 2]);
        assert_eq!(held_by(&s, "b:1"), [1, 3]);
    }

    #[test]
    fn replicated_sends_each_message_to_every_owner() {
        let mut s = Services::new(Duration::from_secs(60));
        s.apply(&routes(false, vec![vec!["a:1", "b:1"], vec!["b:1"]]));
        s.route(0, &msg(0));
        s.route(1, &msg(1));
        assert_eq!(held_by(&s, "a:1"), [0]);
        assert_eq!(held_by(&s, "b:1"), [0, 1]);
    }

    #[test]
    fn a_shard_that_changes_hands_takes_its_messages_along() {
        let mut s = Services::new(Duration::from_secs(60));
        s.apply(&routes(true, vec![vec!["a:1"], vec!["b:1"]]));
        s.route(0, &msg(0));
        s.route(1, &msg(1));
        s.apply(&routes(true, vec![vec!["b:1"], vec!["c:1"]]));
        assert!(!s.by_key[&key()].writers.contains_key("a:1"));
        assert_eq!(held_by(&s, "b:1"), [0]);
        assert_eq!(held_by(&s, "c:1"), [1]);
    }

    #[test]
    fn messages_wait_for_a_placement_and_go_when_it_comes() {
        let mut s = Services::new(Duration::from_secs(60));
        let mut r = routes(true, vec![vec![]; 2]);
        r.services[0].owners = Err("no placement".into());
        s.apply(&r);
        s.route(7, &msg(1));
        assert_eq!(s.by_key[&key()].homeless.len(), 1);
        s.apply(&routes(true, vec![vec!["a:1"], vec!["a:1"]]));
        assert_eq!(held_by(&s, "a:1"), [7]);
        assert!(s.by_key[&key()].homeless.is_empty());
    }

    #[test]
    fn a_removed_service_drops_what_it_held() {
        let mut s = Services::new(Duration::from_secs(60));
        s.apply(&routes(true, vec![vec!["a:1"]]));
        s.route(0, &msg(0));
        let empty = Routes { topic: "t".into(), number_of_shards: 1, services: vec![] };
        assert_eq!(s.apply(&empty), 1);
        assert!(s.by_key.is_empty());
    }
}
