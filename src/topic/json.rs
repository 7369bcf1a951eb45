//! m3coordinator's topic API bodies. Requests are jsonpb: lowerCamelCase or proto names,
//! 64-bit integers as strings or numbers, enums by name or number, unknown fields ignored.
//! Responses are `admin.TopicGetResponse` as jsonpb writes it with defaults: `{"topic":{…},
//! "version":N}`, `messageTtlNanos` as a string, the consumption type by name. Pure; the
//! topic API calls it on the control thread.

use serde_json::{Map, Value, json};
use sheaf_proto::topicpb as pb;

/// A request body that does not read as the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, BodyError> {
    v.as_object().ok_or_else(|| BodyError(format!("{what}: expected a JSON object")))
}

/// The field `camel` (or its proto name `snake`); `None` when absent or null.
fn field<'a>(o: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake)).filter(|v| !v.is_null())
}

fn integer(v: &Value, what: &str) -> Result<i128, BodyError> {
    let n = match v {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    n.ok_or_else(|| BodyError(format!("{what}: expected an integer, got {v}")))
}

fn string(o: &Map<String, Value>, camel: &str, snake: &str, what: &str) -> Result<String, BodyError> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(BodyError(format!("{what}: expected a string, got {v}"))),
    }
}

fn parse(body: &[u8]) -> Result<Value, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| BodyError(format!("bad request body: {e}")))
}

/// `POST /api/v1/topic/init`: `{"numberOfShards":64}`.
pub fn init_request(body: &[u8]) -> Result<u32, BodyError> {
    let v = parse(body)?;
    let o = object(&v, "request")?;
    let Some(n) = field(o, "numberOfShards", "number_of_shards") else { return Ok(0) };
    let n = integer(n, "numberOfShards")?;
    u32::try_from(n).map_err(|_| BodyError(format!("numberOfShards: {n} is out of range")))
}

/// `POST /api/v1/topic`: `{"consumerService":{…}}`.
pub fn add_request(body: &[u8]) -> Result<pb::ConsumerService, BodyError> {
    let v = parse(body)?;
    let o = object(&v, "request")?;
    let cs = field(o, "consumerService", "consumer_service")
        .ok_or_else(|| BodyError("consumerService is required".into()))?;
    consumer_service(cs)
}

fn consumer_service(v: &Value) -> Result<pb::ConsumerService, BodyError> {
    let o = object(v, "consumerService")?;
    let service_id = match field(o, "serviceId", "service_id") {
        None => None,
        Some(id) => {
            let id = object(id, "consumerService.serviceId")?;
            Some(pb::ServiceId {
                name: string(id, "name", "name", "serviceId.name")?,
                environment: string(id, "environment", "environment", "serviceId.environment")?,
                zone: string(id, "zone", "zone", "serviceId.zone")?,
            })
        }
    };
    let consumption_type = match field(o, "consumptionType", "consumption_type") {
        None => pb::ConsumptionType::Unknown as i32,
        Some(Value::String(s)) => pb::ConsumptionType::from_str_name(s)
            .ok_or_else(|| BodyError(format!("consumptionType: unknown value {s:?} (SHARED or REPLICATED)")))?
            as i32,
        Some(v) => {
            let n = integer(v, "consumptionType")?;
            i32::try_from(n)
                .ok()
                .filter(|n| pb::ConsumptionType::try_from(*n).is_ok())
                .ok_or_else(|| BodyError(format!("consumptionType: unknown value {n}")))?
        }
    };
    let message_ttl_nanos = match field(o, "messageTtlNanos", "message_ttl_nanos") {
        None => 0,
        Some(v) => {
            let n = integer(v, "messageTtlNanos")?;
            i64::try_from(n).map_err(|_| BodyError(format!("messageTtlNanos: {n} is out of range")))?
        }
    };
    Ok(pb::ConsumerService { service_id, consumption_type, message_ttl_nanos })
}

/// The body of every successful topic call but delete: `{"topic":{…},"version":N}`.
pub fn response(topic: &pb::Topic, version: i64) -> Value {
    json!({ "topic": topic_json(topic), "version": version })
}

pub fn topic_json(t: &pb::Topic) -> Value {
    let services: Vec<Value> = t
        .consumer_services
        .iter()
        .map(|s| {
            let kind = pb::ConsumptionType::try_from(s.consumption_type).unwrap_or(pb::ConsumptionType::Unknown);
            json!({
                "serviceId": s.service_id.as_ref().map(|id| json!({
                    "name": id.name, "environment": id.environment, "zone": id.zone,
                })),
                "consumptionType": kind.as_str_name(),
                "messageTtlNanos": s.message_ttl_nanos.to_string(),
            })
        })
        .collect();
    json!({ "name": t.name, "numberOfShards": t.number_of_shards, "consumerServices": services })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_guides_bodies() {
        assert_eq!(init_request(br#"{"numberOfShards": 64}"#).unwrap(), 64);
        assert_eq!(init_request(br#"{"number_of_shards": "8"}"#).unwrap(), 8);
        let cs = add_request(
            br#"{"consumerService":{"serviceId":{"name":"m3coordinator","environment":"namespace/m3db-cluster-name","zone":"embedded"},"consumptionType":"SHARED","messageTtlNanos":"300000000000"}}"#,
        )
        .unwrap();
        assert_eq!(cs.service_id.as_ref().unwrap().name, "m3coordinator");
        assert_eq!(cs.service_id.as_ref().unwrap().environment, "namespace/m3db-cluster-name");
        assert_eq!(cs.consumption_type, pb::ConsumptionType::Shared as i32);
        assert_eq!(cs.message_ttl_nanos, 300_000_000_000);
        let cs = add_request(
            br#"{"consumer_service":{"service_id":{"name":"a"},"consumption_type":2,"message_ttl_nanos":5}}"#,
        )
        .unwrap();
        assert_eq!((cs.consumption_type, cs.message_ttl_nanos), (2, 5));
    }

    #[test]
    fn refuses_bad_bodies_with_a_reason() {
        assert!(init_request(b"{").is_err());
        assert!(init_request(br#"{"numberOfShards": "x"}"#).unwrap_err().0.contains("numberOfShards"));
        assert!(add_request(b"{}").unwrap_err().0.contains("consumerService"));
        assert!(add_request(br#"{"consumerService":{"consumptionType":"BOTH"}}"#).unwrap_err().0.contains("BOTH"));
    }

    #[test]
    fn responds_like_m3coordinator() {
        let t = pb::Topic {
            name: "aggregated_metrics".into(),
            number_of_shards: 64,
            consumer_services: vec![pb::ConsumerService {
                service_id: Some(pb::ServiceId {
                    name: "m3coordinator".into(),
                    environment: "e".into(),
                    zone: "embedded".into(),
                }),
                consumption_type: 1,
                message_ttl_nanos: 300_000_000_000,
            }],
        };
        assert_eq!(
            response(&t, 2),
            json!({"topic": {"name": "aggregated_metrics", "numberOfShards": 64, "consumerServices": [
                {"serviceId": {"name": "m3coordinator", "environment": "e", "zone": "embedded"},
                 "consumptionType": "SHARED", "messageTtlNanos": "300000000000"}]}, "version": 2})
        );
    }
}
