//! Placements of stateless services (m3coordinator): what M3's placement API builds for them,
//! a placement that is *not sharded*, replication factor 1, not mirrored, not staged, stored
//! as a plain `placementpb.Placement` under `_sd.placement/{env}/{service}`. Its instances are
//! where m3msg producers send (a SHARED topic consumer's messages each go to one of them).
//! Pure functions over the proto, run by the placement API on the control thread.

use std::collections::BTreeSet;

use prost::Message;
use sheaf_proto::placementpb as pb;

use super::placement::{AddRequest, InitRequest, InstanceRequest, RemoveRequest, ReplaceRequest};

/// A request the stateless placement cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatelessError {
    #[error("{0}")]
    Request(String),
    #[error("the stored placement does not decode: {0}")]
    Decode(String),
}

fn instance(r: &InstanceRequest) -> Result<pb::Instance, StatelessError> {
    if r.id.is_empty() {
        return Err(StatelessError::Request("every instance needs an id".into()));
    }
    if r.endpoint.is_empty() {
        return Err(StatelessError::Request(format!("instance {} needs an endpoint (host:port)", r.id)));
    }
    Ok(pb::Instance {
        id: r.id.clone(),
        isolation_group: r.isolation_group.clone(),
        zone: r.zone.clone(),
        weight: r.weight,
        endpoint: r.endpoint.clone(),
        hostname: r.hostname.clone(),
        port: r.port,
        ..Default::default()
    })
}

fn insert_new(p: &mut pb::Placement, requests: &[InstanceRequest]) -> Result<(), StatelessError> {
    if requests.is_empty() {
        return Err(StatelessError::Request("no instances given".into()));
    }
    for r in requests {
        let i = instance(r)?;
        if p.instances.contains_key(&i.id) {
            return Err(StatelessError::Request(format!("instance {} is already in the placement", i.id)));
        }
        p.instances.insert(i.id.clone(), i);
    }
    Ok(())
}

fn remove_existing(p: &mut pb::Placement, ids: &[String]) -> Result<(), StatelessError> {
    let unique: BTreeSet<&String> = ids.iter().collect();
    for id in unique {
        if p.instances.remove(id).is_none() {
            return Err(StatelessError::Request(format!("instance {id} is not in the placement")));
        }
    }
    Ok(())
}

/// `…/placement/init`: the instances, not sharded, replication factor 1 (M3 forces both for
/// m3coordinator, whatever the request says).
pub fn init(req: &InitRequest) -> Result<pb::Placement, StatelessError> {
    let mut p = pb::Placement { replica_factor: 1, num_shards: req.num_shards, ..Default::default() };
    insert_new(&mut p, &req.instances)?;
    Ok(p)
}

/// `…/placement` (POST): adds instances.
pub fn add(p: &pb::Placement, req: &AddRequest) -> Result<pb::Placement, StatelessError> {
    let mut next = p.clone();
    insert_new(&mut next, &req.instances)?;
    Ok(next)
}

/// `…/placement/remove`: removes instances; one must remain.
pub fn remove(p: &pb::Placement, req: &RemoveRequest) -> Result<pb::Placement, StatelessError> {
    if req.instance_ids.is_empty() {
        return Err(StatelessError::Request("no instance ids given".into()));
    }
    let mut next = p.clone();
    remove_existing(&mut next, &req.instance_ids)?;
    if next.instances.is_empty() {
        return Err(StatelessError::Request("removing every instance would leave the placement empty".into()));
    }
    Ok(next)
}

/// `…/placement/replace`: the leaving instances out, the candidates in.
pub fn replace(p: &pb::Placement, req: &ReplaceRequest) -> Result<pb::Placement, StatelessError> {
    let mut next = p.clone();
    remove_existing(&mut next, &req.leaving_instance_ids)?;
    insert_new(&mut next, &req.candidates)?;
    Ok(next)
}

pub fn encode(p: &pb::Placement) -> Vec<u8> {
    p.encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<pb::Placement, StatelessError> {
    let p = pb::Placement::decode(bytes).map_err(|e| StatelessError::Decode(e.to_string()))?;
    if p.is_sharded {
        return Err(StatelessError::Decode("the placement is sharded; sheaf keeps stateless ones unsharded".into()));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, endpoint: &str) -> InstanceRequest {
        InstanceRequest { id: id.into(), endpoint: endpoint.into(), zone: "embedded".into(), ..Default::default() }
    }

    #[test]
    fn init_is_unsharded_rf1_and_round_trips() {
        let r = InitRequest { num_shards: 0, replication_factor: 3, instances: vec![req("c1", "127.0.0.1:7507")] };
        let p = init(&r).unwrap();
        assert!(!p.is_sharded && !p.is_mirrored);
        assert_eq!((p.replica_factor, p.instances["c1"].endpoint.as_str()), (1, "127.0.0.1:7507"));
        assert!(p.instances["c1"].shards.is_empty());
        assert_eq!(decode(&encode(&p)).unwrap(), p);
    }

    #[test]
    fn add_remove_replace() {
        let p = init(&InitRequest { instances: vec![req("c1", "a:1")], ..Default::default() }).unwrap();
        let p = add(&p, &AddRequest { instances: vec![req("c2", "b:1")] }).unwrap();
        assert!(add(&p, &AddRequest { instances: vec![req("c2", "b:1")] }).is_err());
        assert!(add(&p, &AddRequest { instances: vec![req("c3", "")] }).is_err());
        let p = remove(&p, &RemoveRequest { instance_ids: vec!["c1".into()] }).unwrap();
        assert!(remove(&p, &RemoveRequest { instance_ids: vec!["c2".into()] }).is_err());
        let p = replace(
            &p,
            &ReplaceRequest { leaving_instance_ids: vec!["c2".into()], candidates: vec![req("c4", "d:1")] },
        )
        .unwrap();
        assert_eq!(p.instances.keys().collect::<Vec<_>>(), ["c4"]);
        assert!(init(&InitRequest::default()).is_err());
    }
}
