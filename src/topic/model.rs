//! The topic's rules, as M3's topic package keeps them: a name, at least one shard, consumer
//! services each named, of a known consumption type, and none twice. Pure functions over
//! `topicpb` values; the topic API runs them on the control thread between reading the topic
//! from etcd and writing it back, the watcher thread to check what it reads.

use prost::Message;
use sheaf_proto::topicpb as pb;

/// Why a topic or a change of it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic: {0}")]
    Invalid(String),
    #[error("consumer service {0} already exists")]
    ServiceExists(String),
    #[error("the stored topic does not decode: {0}")]
    Decode(String),
}

/// A new topic: no consumer services yet.
pub fn init(name: &str, number_of_shards: u32) -> Result<pb::Topic, TopicError> {
    let topic = pb::Topic { name: name.to_string(), number_of_shards, consumer_services: Vec::new() };
    validate(&topic)?;
    Ok(topic)
}

/// `topic` with `service` added (refused when a service of the same id is there already).
pub fn add_consumer_service(topic: &pb::Topic, service: pb::ConsumerService) -> Result<pb::Topic, TopicError> {
    check_service(&service)?;
    let id = service_label(service.service_id.as_ref());
    if topic.consumer_services.iter().any(|s| s.service_id == service.service_id) {
        return Err(TopicError::ServiceExists(id));
    }
    let mut next = topic.clone();
    next.consumer_services.push(service);
    validate(&next)?;
    Ok(next)
}

/// Checks the whole topic.
pub fn validate(topic: &pb::Topic) -> Result<(), TopicError> {
    if topic.name.is_empty() {
        return Err(TopicError::Invalid("empty topic name".into()));
    }
    if topic.number_of_shards == 0 {
        return Err(TopicError::Invalid("numberOfShards must be at least 1".into()));
    }
    for (i, s) in topic.consumer_services.iter().enumerate() {
        check_service(s)?;
        if topic.consumer_services[..i].iter().any(|o| o.service_id == s.service_id) {
            return Err(TopicError::Invalid(format!(
                "consumer service {} is listed twice",
                service_label(s.service_id.as_ref())
            )));
        }
    }
    Ok(())
}

fn check_service(s: &pb::ConsumerService) -> Result<(), TopicError> {
    let id = s.service_id.as_ref().filter(|id| !id.name.is_empty());
    let Some(id) = id else {
        return Err(TopicError::Invalid("a consumer service needs a serviceId with a name".into()));
    };
    match pb::ConsumptionType::try_from(s.consumption_type) {
        Ok(pb::ConsumptionType::Shared | pb::ConsumptionType::Replicated) => {}
        _ => {
            return Err(TopicError::Invalid(format!(
                "consumer service {}: consumptionType must be SHARED or REPLICATED",
                service_label(Some(id))
            )));
        }
    }
    if s.message_ttl_nanos < 0 {
        return Err(TopicError::Invalid(format!("consumer service {}: negative messageTtlNanos", id.name)));
    }
    Ok(())
}

/// How logs and errors name a service: `name` (environment `env`, zone `zone`).
pub fn service_label(id: Option<&pb::ServiceId>) -> String {
    match id {
        Some(id) => format!("{} (environment {:?}, zone {:?})", id.name, id.environment, id.zone),
        None => "(no service id)".into(),
    }
}

/// The etcd value: the raw proto, as M3's KV store writes it.
pub fn encode(topic: &pb::Topic) -> Vec<u8> {
    topic.encode_to_vec()
}

/// Reads and checks an etcd value.
pub fn decode(bytes: &[u8]) -> Result<pb::Topic, TopicError> {
    let topic = pb::Topic::decode(bytes).map_err(|e| TopicError::Decode(e.to_string()))?;
    validate(&topic)?;
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn service(name: &str, kind: pb::ConsumptionType) -> pb::ConsumerService {
        pb::ConsumerService {
            service_id: Some(pb::ServiceId { name: name.into(), environment: "env".into(), zone: "embedded".into() }),
            consumption_type: kind as i32,
            message_ttl_nanos: 300_000_000_000,
        }
    }

    #[test]
    fn round_trip_through_the_etcd_value() {
        let t = init("aggregated_metrics", 64).unwrap();
        let t = add_consumer_service(&t, service("m3coordinator", pb::ConsumptionType::Shared)).unwrap();
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    #[test]
    fn refuses_what_m3_refuses() {
        assert!(init("", 64).is_err());
        assert!(init("t", 0).is_err());
        let t = init("t", 8).unwrap();
        let t = add_consumer_service(&t, service("a", pb::ConsumptionType::Shared)).unwrap();
        assert!(matches!(
            add_consumer_service(&t, service("a", pb::ConsumptionType::Replicated)),
            Err(TopicError::ServiceExists(_))
        ));
        assert!(add_consumer_service(&t, service("b", pb::ConsumptionType::Unknown)).is_err());
        assert!(add_consumer_service(&t, service("", pb::ConsumptionType::Shared)).is_err());
        assert!(decode(b"\xff").is_err());
    }
}
