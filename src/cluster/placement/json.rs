//! The m3coordinator placement API bodies: the requests of `…/placement/init`, `…/placement`
//! (add), `…/placement/remove` and `…/placement/replace` as m3coordinator accepts them (jsonpb:
//! snake_case or lowerCamelCase names, integers as numbers or strings, unknown fields such as
//! `option_override` ignored), and the response of `GET …/placement` and of successful
//! mutations, shaped as m3coordinator's jsonpb output with defaults emitted (int64 as strings,
//! enums by name). Pure; the placement API calls it on the control thread, `sheaf placement`
//! on the main thread.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use sheaf_proto::placementpb as pb;

use super::cutover::Options;
use super::error::PlacementError;
use super::model::{Instance, Placement};
use super::{operations, proto};

/// One instance of a request (placementpb `Instance` without shards; `shard_set_id`, `shards`
/// and `metadata` are ignored: the operations assign them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InstanceRequest {
    pub id: String,
    #[serde(alias = "isolationGroup")]
    pub isolation_group: String,
    pub zone: String,
    #[serde(deserialize_with = "de_u32")]
    pub weight: u32,
    pub endpoint: String,
    pub hostname: String,
    #[serde(deserialize_with = "de_u32")]
    pub port: u32,
}

impl From<&InstanceRequest> for Instance {
    fn from(r: &InstanceRequest) -> Self {
        Instance {
            id: r.id.clone(),
            isolation_group: r.isolation_group.clone(),
            zone: r.zone.clone(),
            weight: r.weight,
            endpoint: r.endpoint.clone(),
            hostname: r.hostname.clone(),
            port: r.port,
            shard_set_id: 0,
            shards: Vec::new(),
        }
    }
}

fn instances(requests: &[InstanceRequest]) -> Vec<Instance> {
    requests.iter().map(Instance::from).collect()
}

/// `POST …/placement/init`: `{"num_shards":64,"replication_factor":2,"instances":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InitRequest {
    #[serde(alias = "numShards", deserialize_with = "de_u32")]
    pub num_shards: u32,
    #[serde(alias = "replicationFactor", deserialize_with = "de_u32")]
    pub replication_factor: u32,
    pub instances: Vec<InstanceRequest>,
}

impl InitRequest {
    pub fn instances(&self) -> Vec<Instance> {
        instances(&self.instances)
    }

    /// [`operations::init`] on this request.
    pub fn apply(&self) -> Result<Placement, PlacementError> {
        operations::init(self.num_shards, self.replication_factor, &self.instances())
    }
}

/// `POST …/placement` (add): `{"instances":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AddRequest {
    pub instances: Vec<InstanceRequest>,
}

impl AddRequest {
    pub fn instances(&self) -> Vec<Instance> {
        instances(&self.instances)
    }

    /// [`operations::add`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        operations::add(p, &self.instances(), now_nanos, opts)
    }
}

/// `POST …/placement/remove`: `{"instance_ids":["…"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RemoveRequest {
    #[serde(alias = "instanceIds")]
    pub instance_ids: Vec<String>,
}

impl RemoveRequest {
    /// [`operations::remove`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        operations::remove(p, &self.instance_ids, now_nanos, opts)
    }
}

/// `POST …/placement/replace`: `{"leavingInstanceIDs":["…"],"candidates":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ReplaceRequest {
    #[serde(rename = "leavingInstanceIDs", alias = "leaving_instance_ids", alias = "leavingInstanceIds")]
    pub leaving_instance_ids: Vec<String>,
    pub candidates: Vec<InstanceRequest>,
}

impl ReplaceRequest {
    pub fn candidates(&self) -> Vec<Instance> {
        instances(&self.candidates)
    }

    /// [`operations::replace`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        operations::replace(p, &self.leaving_instance_ids, &self.candidates(), now_nanos, opts)
    }
}

/// The body of `GET …/placement` and of a successful mutation: `{"placement":{…},"version":N}`.
pub fn to_response_json(p: &Placement, version: i64) -> Value {
    json!({ "placement": placement_to_json(p), "version": version })
}

/// The placement as m3coordinator's jsonpb writes it (`EmitDefaults`): lowerCamelCase names,
/// int64 fields as strings, shard states by name, unset messages as `null`.
pub fn placement_to_json(p: &Placement) -> Value {
    proto_to_json(&proto::to_proto(p))
}

/// Any placementpb `Placement` as m3coordinator's jsonpb writes it (see [`placement_to_json`]).
pub fn proto_to_json(pb: &pb::Placement) -> Value {
    let instances: Map<String, Value> = pb
        .instances
        .iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|(id, inst)| (id.clone(), instance_json(inst)))
        .collect();
    json!({
        "instances": instances,
        "replicaFactor": pb.replica_factor,
        "numShards": pb.num_shards,
        "isSharded": pb.is_sharded,
        "cutoverTime": pb.cutover_time.to_string(),
        "isMirrored": pb.is_mirrored,
        "maxShardSetId": pb.max_shard_set_id,
        "isSubclustered": pb.is_subclustered,
        "instancesPerSubcluster": pb.instances_per_subcluster,
    })
}

fn instance_json(inst: &pb::Instance) -> Value {
    let shards: Vec<Value> = inst
        .shards
        .iter()
        .map(|s| {
            let state = pb::ShardState::try_from(s.state).map_or("INITIALIZING", |st| st.as_str_name());
            json!({
                "id": s.id,
                "state": state,
                "sourceId": s.source_id,
                "cutoverNanos": s.cutover_nanos.to_string(),
                "cutoffNanos": s.cutoff_nanos.to_string(),
                "redirectToShardId": s.redirect_to_shard_id.map(|r| r.value),
            })
        })
        .collect();
    json!({
        "id": inst.id,
        "isolationGroup": inst.isolation_group,
        "zone": inst.zone,
        "weight": inst.weight,
        "endpoint": inst.endpoint,
        "shards": shards,
        "shardSetId": inst.shard_set_id,
        "hostname": inst.hostname,
        "port": inst.port,
        "metadata": inst.metadata.map(|m| json!({ "debugPort": m.debug_port })),
        "subclusterId": inst.subcluster_id,
    })
}

/// A jsonpb scalar: integers may come as numbers or strings, and any field may be `null`. A
/// bool or an object is read only to be refused with "expected …" (naming what was wanted).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    UInt(u64),
    Bool(#[expect(dead_code, reason = "refused by its shape; the value is not needed")] bool),
    Str(String),
    Obj(#[expect(dead_code, reason = "refused by its shape; the value is not needed")] BTreeMap<String, Value>),
    Null,
}

fn scalar_i128<E: serde::de::Error>(s: Scalar, what: &str) -> Result<Option<i128>, E> {
    match s {
        Scalar::Int(v) => Ok(Some(i128::from(v))),
        Scalar::UInt(v) => Ok(Some(i128::from(v))),
        Scalar::Str(v) => {
            v.trim().parse::<i128>().map(Some).map_err(|_| E::custom(format!("expected {what}, got {v:?}")))
        }
        Scalar::Null => Ok(None),
        Scalar::Bool(_) | Scalar::Obj(_) => Err(E::custom(format!("expected {what}"))),
    }
}

fn de_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = scalar_i128(Scalar::deserialize(d)?, "an unsigned 32-bit integer")?.unwrap_or(0);
    u32::try_from(v)
        .map_err(|_| serde::de::Error::custom(format!("{v} is out of range for an unsigned 32-bit integer")))
}
