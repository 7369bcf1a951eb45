//! The m3coordinator placement API bodies (shared/reference/m3-aggregator.md §4): the request
//! bodies of `…/placement/init`, `…/placement` (add), `…/placement/remove` and
//! `…/placement/replace` as m3coordinator accepts them (jsonpb: snake_case or lowerCamelCase
//! names, integers as numbers or strings, unknown fields such as `option_override` ignored), and
//! the response of `GET …/placement` and of successful mutations, shaped as m3coordinator's
//! jsonpb output with defaults emitted (int64 as strings, enums by name).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use sheaf_proto::placementpb as pb;

use super::{Instance, Options, Placement, PlacementError, algo, proto};

/// Parses a request body, refusing malformed JSON with a message naming the problem.
pub fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, PlacementError> {
    serde_json::from_slice(body).map_err(|e| PlacementError::Request(format!("invalid request body: {e}")))
}

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

    /// [`algo::init`] on this request.
    pub fn apply(&self) -> Result<Placement, PlacementError> {
        algo::init(self.num_shards, self.replication_factor, &self.instances())
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

    /// [`algo::add`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        algo::add(p, &self.instances(), now_nanos, opts)
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
    /// [`algo::remove`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        algo::remove(p, &self.instance_ids, now_nanos, opts)
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

    /// [`algo::replace`] on this request.
    pub fn apply(&self, p: &Placement, now_nanos: i64, opts: &Options) -> Result<Placement, PlacementError> {
        algo::replace(p, &self.leaving_instance_ids, &self.candidates(), now_nanos, opts)
    }
}

/// The body of `GET …/placement` and of a successful mutation: `{"placement":{…},"version":N}`.
pub fn to_response_json(p: &Placement, version: i64) -> Value {
    json!({ "placement": placement_to_json(p), "version": version })
}

/// The placement as m3coordinator's jsonpb writes it (`EmitDefaults`): lowerCamelCase names,
/// int64 fields as strings, shard states by name, unset messages as `null`.
pub fn placement_to_json(p: &Placement) -> Value {
    let pb = proto::to_proto(p);
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

/// Reads a placement object in jsonpb form (what [`placement_to_json`] writes, or what
/// m3coordinator returns under `"placement"`), then converts it as [`proto::from_proto`] does
/// and checks it with [`algo::validate`].
pub fn placement_from_json(value: &Value) -> Result<Placement, PlacementError> {
    let doc = PlacementDoc::deserialize(value).map_err(|e| PlacementError::Decode(e.to_string()))?;
    let pb = pb::Placement {
        instances: doc.instances.into_iter().map(|(k, i)| (k, i.into_proto())).collect(),
        replica_factor: doc.replica_factor,
        num_shards: doc.num_shards,
        is_sharded: doc.is_sharded,
        cutover_time: doc.cutover_time,
        is_mirrored: doc.is_mirrored,
        max_shard_set_id: doc.max_shard_set_id,
        is_subclustered: doc.is_subclustered,
        instances_per_subcluster: doc.instances_per_subcluster,
    };
    let p = proto::from_proto(&pb)?;
    algo::validate(&p)?;
    Ok(p)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PlacementDoc {
    instances: BTreeMap<String, InstanceDoc>,
    #[serde(rename = "replicaFactor", alias = "replica_factor", deserialize_with = "de_u32")]
    replica_factor: u32,
    #[serde(rename = "numShards", alias = "num_shards", deserialize_with = "de_u32")]
    num_shards: u32,
    #[serde(rename = "isSharded", alias = "is_sharded", deserialize_with = "de_bool")]
    is_sharded: bool,
    #[serde(rename = "cutoverTime", alias = "cutover_time", deserialize_with = "de_i64")]
    cutover_time: i64,
    #[serde(rename = "isMirrored", alias = "is_mirrored", deserialize_with = "de_bool")]
    is_mirrored: bool,
    #[serde(rename = "maxShardSetId", alias = "max_shard_set_id", deserialize_with = "de_u32")]
    max_shard_set_id: u32,
    #[serde(rename = "isSubclustered", alias = "is_subclustered", deserialize_with = "de_bool")]
    is_subclustered: bool,
    #[serde(rename = "instancesPerSubcluster", alias = "instances_per_subcluster", deserialize_with = "de_u32")]
    instances_per_subcluster: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InstanceDoc {
    id: String,
    #[serde(rename = "isolationGroup", alias = "isolation_group")]
    isolation_group: String,
    zone: String,
    #[serde(deserialize_with = "de_u32")]
    weight: u32,
    endpoint: String,
    shards: Vec<ShardDoc>,
    #[serde(rename = "shardSetId", alias = "shard_set_id", deserialize_with = "de_u32")]
    shard_set_id: u32,
    hostname: String,
    #[serde(deserialize_with = "de_u32")]
    port: u32,
    metadata: Option<MetadataDoc>,
    #[serde(rename = "subclusterId", alias = "subcluster_id", deserialize_with = "de_u32")]
    subcluster_id: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetadataDoc {
    #[serde(rename = "debugPort", alias = "debug_port", deserialize_with = "de_u32")]
    debug_port: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShardDoc {
    #[serde(deserialize_with = "de_u32")]
    id: u32,
    #[serde(deserialize_with = "de_state")]
    state: i32,
    #[serde(rename = "sourceId", alias = "source_id")]
    source_id: String,
    #[serde(rename = "cutoverNanos", alias = "cutover_nanos", deserialize_with = "de_i64")]
    cutover_nanos: i64,
    #[serde(rename = "cutoffNanos", alias = "cutoff_nanos", deserialize_with = "de_i64")]
    cutoff_nanos: i64,
    #[serde(rename = "redirectToShardId", alias = "redirect_to_shard_id", deserialize_with = "de_redirect")]
    redirect_to_shard_id: Option<u32>,
}

impl InstanceDoc {
    fn into_proto(self) -> pb::Instance {
        pb::Instance {
            id: self.id,
            isolation_group: self.isolation_group,
            zone: self.zone,
            weight: self.weight,
            endpoint: self.endpoint,
            shards: self
                .shards
                .into_iter()
                .map(|s| pb::Shard {
                    id: s.id,
                    state: s.state,
                    source_id: s.source_id,
                    cutover_nanos: s.cutover_nanos,
                    cutoff_nanos: s.cutoff_nanos,
                    redirect_to_shard_id: s.redirect_to_shard_id.map(|value| pb::UInt32Value { value }),
                })
                .collect(),
            shard_set_id: self.shard_set_id,
            hostname: self.hostname,
            port: self.port,
            metadata: self.metadata.map(|m| pb::InstanceMetadata { debug_port: m.debug_port }),
            subcluster_id: self.subcluster_id,
        }
    }
}

/// A jsonpb scalar: integers may come as numbers or strings, and any field may be `null`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(String),
    Obj(BTreeMap<String, Value>),
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

fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = scalar_i128(Scalar::deserialize(d)?, "a 64-bit integer")?.unwrap_or(0);
    i64::try_from(v).map_err(|_| serde::de::Error::custom(format!("{v} is out of range for a 64-bit integer")))
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Bool(b) => Ok(b),
        Scalar::Null => Ok(false),
        _ => Err(serde::de::Error::custom("expected true or false")),
    }
}

/// A shard state by name (`"AVAILABLE"`) or number (`1`).
fn de_state<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Str(name) => pb::ShardState::from_str_name(&name)
            .map(|s| s as i32)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown shard state {name:?}"))),
        other => {
            let v = scalar_i128(other, "a shard state")?.unwrap_or(0);
            i32::try_from(v).map_err(|_| serde::de::Error::custom(format!("unknown shard state {v}")))
        }
    }
}

/// `google.protobuf.UInt32Value` in jsonpb is a bare number; `{"value": n}` is accepted too.
fn de_redirect<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let to_u32 =
        |v: i128| u32::try_from(v).map_err(|_| serde::de::Error::custom(format!("shard id {v} is out of range")));
    match Scalar::deserialize(d)? {
        Scalar::Obj(mut obj) => match obj.remove("value") {
            None => Ok(Some(0)),
            Some(v) => {
                let s = Scalar::deserialize(v).map_err(serde::de::Error::custom)?;
                scalar_i128(s, "a shard id")?.map(to_u32).transpose().map(|v| Some(v.unwrap_or(0)))
            }
        },
        other => scalar_i128(other, "a shard id")?.map(to_u32).transpose(),
    }
}
