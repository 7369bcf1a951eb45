//! Which consumer instances get each shard of a topic, as M3's producer decides it
//! (`consumer_service_writer.go`): for a *sharded* consumer placement, the instances that list
//! the shard, in any state (a shard moving between instances goes to both); for a placement
//! that is *not sharded* (m3coordinator's), every instance. A SHARED service gets each message
//! once, on one of those instances; a REPLICATED one on each of them, and refuses a placement
//! that is not sharded. Pure: the watcher thread builds [`Routes`], the sink thread reads them.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use sheaf_proto::{placementpb, topicpb};

use super::placement_key;

/// A consumer service's identity (`topicpb.ServiceID`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub name: String,
    pub environment: String,
    pub zone: String,
}

/// One consumer service's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoutes {
    pub key: ServiceKey,
    /// SHARED (one instance per message) or REPLICATED (every instance of the shard).
    pub shared: bool,
    /// How long a message is retried before it is dropped (`messageTtlNanos`; 0: the handler's
    /// `message_ttl`).
    pub ttl: Option<Duration>,
    /// Per shard, the endpoints that get it; `Err` says why there are none yet (no placement,
    /// or one that cannot be used).
    pub owners: Result<Vec<Vec<String>>, String>,
}

impl ServiceRoutes {
    /// The endpoints of `shard` (none while the placement is missing).
    pub fn owners_of(&self, shard: u32) -> &[String] {
        match &self.owners {
            Ok(o) => o.get(shard as usize).map_or(&[], Vec::as_slice),
            Err(_) => &[],
        }
    }
}

/// A topic's routes: its shard count and each consumer service's owners per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub topic: String,
    pub number_of_shards: u32,
    pub services: Vec<ServiceRoutes>,
}

/// Where each consumer service's placement lives.
#[derive(Debug, Clone)]
pub struct PlacementLayout {
    /// The placement namespace (`_sd.placement`, or `/placement` for m3aggregator's).
    pub namespace: String,
    /// Whether placements are staged (`PlacementSnapshots`) rather than a plain `Placement`.
    pub staged: bool,
}

impl PlacementLayout {
    pub fn key(&self, id: &topicpb::ServiceId) -> String {
        placement_key(&self.namespace, &id.environment, &id.name)
    }
}

/// The placement keys the topic's consumer services need.
pub fn placement_keys(topic: &topicpb::Topic, layout: &PlacementLayout) -> Vec<String> {
    topic.consumer_services.iter().filter_map(|s| s.service_id.as_ref()).map(|id| layout.key(id)).collect()
}

/// The routes of `topic`, each service's placement taken from `placements` (by key; `None`:
/// absent).
pub fn build(
    topic: &topicpb::Topic,
    placements: &BTreeMap<String, Option<Vec<u8>>>,
    layout: &PlacementLayout,
) -> Routes {
    let services = topic
        .consumer_services
        .iter()
        .filter_map(|s| {
            let id = s.service_id.as_ref()?;
            let shared = s.consumption_type == topicpb::ConsumptionType::Shared as i32;
            let key = layout.key(id);
            let owners = match placements.get(&key) {
                Some(Some(bytes)) => decode_placement(bytes, layout.staged)
                    .and_then(|p| owners(&p, shared, topic.number_of_shards))
                    .map_err(|e| format!("placement {key}: {e}")),
                _ => Err(format!("no placement at {key}")),
            };
            Some(ServiceRoutes {
                key: ServiceKey { name: id.name.clone(), environment: id.environment.clone(), zone: id.zone.clone() },
                shared,
                ttl: (s.message_ttl_nanos > 0).then(|| Duration::from_nanos(s.message_ttl_nanos as u64)),
                owners,
            })
        })
        .collect();
    Routes { topic: topic.name.clone(), number_of_shards: topic.number_of_shards, services }
}

/// A placement value: a `PlacementSnapshots` (staged: its last snapshot) or a plain
/// `Placement`, tried in the order `staged` says, then the other.
pub fn decode_placement(bytes: &[u8], staged: bool) -> Result<placementpb::Placement, String> {
    let snapshots = || -> Result<placementpb::Placement, String> {
        let s = placementpb::PlacementSnapshots::decode(bytes).map_err(|e| e.to_string())?;
        if s.compress_mode != placementpb::CompressMode::None as i32 {
            return Err("compressed placements are not supported".into());
        }
        match s.snapshots.last() {
            Some(p) => Ok(p.clone()),
            None if !s.compressed_placement.is_empty() => {
                placementpb::Placement::decode(s.compressed_placement.as_slice()).map_err(|e| e.to_string())
            }
            None => Err("no snapshot".into()),
        }
    };
    let plain = || placementpb::Placement::decode(bytes).map_err(|e| e.to_string());
    let plausible = |p: placementpb::Placement| {
        if p.instances.is_empty() || p.instances.values().any(|i| i.endpoint.is_empty()) {
            Err("a placement with no instances, or one without an endpoint".to_string())
        } else {
            Ok(p)
        }
    };
    let (first, second): (&dyn Fn() -> _, &dyn Fn() -> _) =
        if staged { (&snapshots, &plain) } else { (&plain, &snapshots) };
    match first().and_then(plausible) {
        Ok(p) => Ok(p),
        Err(e) => second().and_then(plausible).map_err(|_| e),
    }
}

/// Per shard of `0..num_shards`, the endpoints that get it (sorted, each once).
pub fn owners(p: &placementpb::Placement, shared: bool, num_shards: u32) -> Result<Vec<Vec<String>>, String> {
    let mut instances: Vec<&placementpb::Instance> = p.instances.values().collect();
    instances.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    if !p.is_sharded {
        if !shared {
            return Err("a placement that is not sharded cannot take a REPLICATED consumer".into());
        }
        let mut all: Vec<String> = instances.iter().map(|i| i.endpoint.clone()).collect();
        all.dedup();
        return Ok(vec![all; num_shards as usize]);
    }
    let mut by_shard = vec![Vec::new(); num_shards as usize];
    for i in instances {
        for s in &i.shards {
            if let Some(list) = by_shard.get_mut(s.id as usize)
                && list.last() != Some(&i.endpoint)
            {
                list.push(i.endpoint.clone());
            }
        }
    }
    Ok(by_shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(endpoint: &str, shards: &[u32]) -> placementpb::Instance {
        placementpb::Instance {
            id: endpoint.into(),
            endpoint: endpoint.into(),
            shards: shards.iter().map(|&id| placementpb::Shard { id, state: 1, ..Default::default() }).collect(),
            ..Default::default()
        }
    }

    fn placement(sharded: bool, instances: Vec<placementpb::Instance>) -> placementpb::Placement {
        placementpb::Placement {
            instances: instances.into_iter().map(|i| (i.id.clone(), i)).collect(),
            is_sharded: sharded,
            replica_factor: 1,
            num_shards: if sharded { 4 } else { 0 },
            ..Default::default()
        }
    }

    fn topic(kind: topicpb::ConsumptionType) -> topicpb::Topic {
        topicpb::Topic {
            name: "t".into(),
            number_of_shards: 4,
            consumer_services: vec![topicpb::ConsumerService {
                service_id: Some(topicpb::ServiceId { name: "c".into(), environment: "e".into(), zone: "z".into() }),
                consumption_type: kind as i32,
                message_ttl_nanos: 0,
            }],
        }
    }

    #[test]
    fn a_sharded_placement_routes_each_shard_to_its_owners() {
        let p = placement(true, vec![instance("a:1", &[0, 1]), instance("b:1", &[1, 2, 3])]);
        let o = owners(&p, true, 4).unwrap();
        assert_eq!(o, vec![vec!["a:1"], vec!["a:1", "b:1"], vec!["b:1"], vec!["b:1"]]);
        assert_eq!(owners(&p, false, 4).unwrap(), o);
    }

    #[test]
    fn an_unsharded_placement_routes_every_shard_to_every_instance_for_shared_only() {
        let p = placement(false, vec![instance("b:1", &[]), instance("a:1", &[])]);
        assert_eq!(owners(&p, true, 2).unwrap(), vec![vec!["a:1", "b:1"]; 2]);
        assert!(owners(&p, false, 2).is_err());
    }

    #[test]
    fn build_reads_staged_and_plain_placements_and_says_what_is_missing() {
        let layout = PlacementLayout { namespace: "_sd.placement".into(), staged: false };
        let p = placement(true, vec![instance("a:1", &[0, 1]), instance("b:1", &[2, 3])]);
        let staged = placementpb::PlacementSnapshots { snapshots: vec![p.clone()], ..Default::default() };
        for bytes in [p.encode_to_vec(), staged.encode_to_vec()] {
            let mut placements = BTreeMap::new();
            placements.insert("_sd.placement/e/c".to_string(), Some(bytes));
            let r = build(&topic(topicpb::ConsumptionType::Replicated), &placements, &layout);
            assert_eq!(r.services[0].owners_of(2), ["b:1"]);
            assert!(!r.services[0].shared);
        }
        let r = build(&topic(topicpb::ConsumptionType::Shared), &BTreeMap::new(), &layout);
        assert!(r.services[0].owners.as_ref().unwrap_err().contains("_sd.placement/e/c"));
        assert!(r.services[0].owners_of(0).is_empty());
    }
}
