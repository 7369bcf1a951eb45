//! Tests of the m3coordinator JSON: requests in every accepted spelling, the response shape.

use serde_json::json;

use super::{NOW, ids, inst, opts, two_sets};
use crate::cluster::placement::invariants::validate;
use crate::cluster::placement::json::{
    AddRequest, InitRequest, InstanceRequest, RemoveRequest, ReplaceRequest, placement_to_json, to_response_json,
};
use crate::cluster::placement::model::Instance;
use crate::cluster::placement::operations::add;

const INIT_EXAMPLE: &str = r#"{"num_shards":64,"replication_factor":2,"instances":[
    {"id":"a:6000","isolation_group":"rack-a","zone":"embedded","weight":100,"endpoint":"127.0.0.1:6000",
     "hostname":"a","port":6000},
    {"id":"b:6000","isolation_group":"rack-b","zone":"embedded","weight":100,"endpoint":"127.0.0.1:6001",
     "hostname":"b","port":6001}
  ],"option_override":{"foo":1}}"#;

#[test]
fn json_init_example_and_its_response() {
    let req: InitRequest = serde_json::from_slice(INIT_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(req.num_shards, 64);
    assert_eq!(req.replication_factor, 2);
    assert_eq!(req.instances[0].endpoint, "127.0.0.1:6000");
    let p = req.apply().unwrap();
    let resp = to_response_json(&p, 7);
    assert_eq!(resp["version"], 7);
    let pl = &resp["placement"];
    assert_eq!(pl["replicaFactor"], 2);
    assert_eq!(pl["numShards"], 64);
    assert_eq!(pl["isSharded"], true);
    assert_eq!(pl["isMirrored"], true);
    assert_eq!(pl["cutoverTime"], "0");
    assert_eq!(pl["maxShardSetId"], 1);
    let a = &pl["instances"]["a:6000"];
    assert_eq!(a["id"], "a:6000");
    assert_eq!(a["isolationGroup"], "rack-a");
    assert_eq!(a["zone"], "embedded");
    assert_eq!(a["weight"], 100);
    assert_eq!(a["endpoint"], "127.0.0.1:6000");
    assert_eq!(a["hostname"], "a");
    assert_eq!(a["port"], 6000);
    assert_eq!(a["shardSetId"], 1);
    assert_eq!(a["shards"].as_array().unwrap().len(), 64);
    assert_eq!(
        a["shards"][0],
        json!({"id":0,"state":"AVAILABLE","sourceId":"","cutoverNanos":"0","cutoffNanos":"0","redirectToShardId":null})
    );
}

#[test]
fn json_writes_staged_shards() {
    let p = two_sets();
    let q = add(&p, &[inst("c1", "rack-a", 100), inst("c2", "rack-b", 100)], NOW, &opts()).unwrap();
    let v = placement_to_json(&q);
    let t = opts().cutover(NOW);
    let s = &v["instances"]["c1"]["shards"][0];
    assert_eq!(s["state"], "INITIALIZING");
    assert_eq!(s["sourceId"], "a1");
    assert_eq!(s["cutoverNanos"], t.to_string());
    assert_eq!(v["instances"]["a1"]["shards"][31]["state"], "LEAVING");
    assert_eq!(v["instances"]["a1"]["shards"][31]["cutoffNanos"], t.to_string());
    assert_eq!(v["cutoverTime"], t.to_string());
    for (id, inst) in &q.instances {
        assert_eq!(v["instances"][id]["shards"].as_array().unwrap().len(), inst.shards.len(), "{id}");
    }
}

#[test]
fn json_requests_accept_m3coordinator_spellings() {
    let req: InitRequest = serde_json::from_slice(
        br#"{"numShards":"8","replicationFactor":1,
             "instances":[{"id":"a","isolationGroup":"g","weight":"3","port":"9"}]}"#,
    )
    .unwrap();
    assert_eq!((req.num_shards, req.replication_factor), (8, 1));
    assert_eq!(
        req.instances[0],
        InstanceRequest { id: "a".into(), isolation_group: "g".into(), weight: 3, port: 9, ..Default::default() }
    );
    let add: AddRequest = serde_json::from_slice(
        br#"{"instances":[{"id":"b","isolation_group":"g","weight":3,"shard_set_id":9}],"force":true}"#,
    )
    .unwrap();
    assert_eq!(add.instances()[0], Instance::new("b", "g", 3));
    let r: RemoveRequest = serde_json::from_slice(br#"{"instance_ids":["a","b"]}"#).unwrap();
    assert_eq!(r.instance_ids, ids(&["a", "b"]));
    let r: RemoveRequest = serde_json::from_slice(br#"{"instanceIds":["a"]}"#).unwrap();
    assert_eq!(r.instance_ids, ids(&["a"]));
    let r: ReplaceRequest = serde_json::from_slice(
        br#"{"leavingInstanceIDs":["a"],"candidates":[{"id":"c","isolation_group":"g","weight":3}]}"#,
    )
    .unwrap();
    assert_eq!(r.leaving_instance_ids, ids(&["a"]));
    assert_eq!(r.candidates()[0].id, "c");
    let r: ReplaceRequest = serde_json::from_slice(br#"{"leaving_instance_ids":["a"],"candidates":[]}"#).unwrap();
    assert_eq!(r.leaving_instance_ids, ids(&["a"]));
    // The whole flow through the request types.
    let p = req.apply().unwrap();
    let p = add.apply(&p, NOW, &opts()).unwrap();
    let p = ReplaceRequest {
        leaving_instance_ids: ids(&["a"]),
        candidates: vec![InstanceRequest {
            id: "c".into(),
            isolation_group: "h".into(),
            weight: 3,
            ..Default::default()
        }],
    }
    .apply(&p, NOW, &opts())
    .unwrap();
    let p = RemoveRequest { instance_ids: ids(&["b"]) }.apply(&p, NOW, &opts()).unwrap();
    validate(&p).unwrap();
    let e = serde_json::from_slice::<InitRequest>(br#"{"num_shards":-1}"#).unwrap_err().to_string();
    assert!(e.starts_with("-1 is out of range for an unsigned 32-bit integer"), "{e}");
    for bad in [r#"{"num_shards":true}"#, r#"{"num_shards":{"value":1}}"#] {
        let e = serde_json::from_slice::<InitRequest>(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("expected an unsigned 32-bit integer"), "{bad}: {e}");
    }
    let e = serde_json::from_slice::<InitRequest>(br#"{"num_shards":"eight"}"#).unwrap_err().to_string();
    assert!(e.starts_with("expected an unsigned 32-bit integer, got \"eight\""), "{e}");
}
