//! The digest of a shard's state: equal on two replicas that hold the same series with the
//! same states, whatever order their values arrived in and whenever they were received.
//! Pure; computed on the core that owns the shard when it goes idle.
//!
//! The checkpoint is put in a canonical order (series by metric type and id, transformation
//! states by series and slot), stripped of what differs between replicas of the same data
//! (receive times, flush marks, the marker itself), archived, and hashed (FNV-1a, 64 bits).

use rkyv::rancor;

use super::ShardCheckpoint;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// The digest of `ck`'s series, windows and transformation states (not its flush marks,
/// receive times or sync marker).
pub fn state_digest(ck: &ShardCheckpoint) -> u64 {
    let mut canonical = ShardCheckpoint {
        series: ck.series.clone(),
        flushed: Vec::new(),
        transform_states: ck.transform_states.clone(),
        sync: None,
    };
    canonical.series.sort_by(|a, b| (a.metric_type, &a.id).cmp(&(b.metric_type, &b.id)));
    for s in &mut canonical.series {
        s.last_write_secs = 0;
    }
    canonical.transform_states.sort_by(|a, b| {
        let key = |t: &super::TransformStatesCk| {
            (t.metric_type, t.id.clone(), t.timed, t.slot.policy.resolution, t.slot.policy.retention, t.aggs, t.chain)
        };
        key(a).cmp(&key(b))
    });
    match rkyv::to_bytes::<rancor::Error>(&canonical) {
        Ok(bytes) => fnv1a(&bytes),
        // Unreachable for owned plain data; a digest no replica shares is the safe answer.
        Err(_) => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{RuleCk, SeriesCk};

    fn series(id: &[u8], last_write_secs: u32, gauge_base: f64) -> SeriesCk {
        SeriesCk {
            metric_type: 2,
            id: id.to_vec(),
            gauge_base,
            last_write_secs,
            spec: None,
            spec_timed: false,
            rule: RuleCk::Default,
            elems: Vec::new(),
        }
    }

    #[test]
    fn ignores_order_and_receive_times_but_not_values() {
        let a = ShardCheckpoint { series: vec![series(b"a", 1, 1.0), series(b"b", 2, 2.0)], ..Default::default() };
        let b = ShardCheckpoint { series: vec![series(b"b", 9, 2.0), series(b"a", 8, 1.0)], ..Default::default() };
        let c = ShardCheckpoint { series: vec![series(b"b", 9, 2.0), series(b"a", 8, 1.5)], ..Default::default() };
        assert_eq!(state_digest(&a), state_digest(&b));
        assert_ne!(state_digest(&a), state_digest(&c));
    }
}
