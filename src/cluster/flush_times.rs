//! A shard set's flush times in m3's `ShardSetFlushTimes` layout: per shard, per resolution,
//! the end of the last window the leader emitted (standard and timed lists). The leader merges
//! its cores' round reports in and persists the whole value; followers decode it into the
//! cores' [`FlushTimes`].

use prost::Message;
use sheaf_proto::flushpb::ShardSetFlushTimes;
use sheaf_shard_runtime::{FlushTimes, ResolutionFlushed};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSetTimes(pub ShardSetFlushTimes);

impl ShardSetTimes {
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Ok(Self(ShardSetFlushTimes::decode(bytes)?))
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0.encode_to_vec()
    }

    /// Moves shard `shard`'s times for `resolution` forward (never back); true if they moved.
    pub fn advance(&mut self, shard: u32, resolution: i64, standard: i64, timed: i64) -> bool {
        let entry = self.0.by_shard.entry(shard).or_default();
        let mut moved = false;
        for (map, t) in [(&mut entry.standard_by_resolution, standard), (&mut entry.timed_by_resolution, timed)] {
            // i64::MIN means "nothing flushed yet" inside a core; it is not worth persisting.
            if t == i64::MIN {
                continue;
            }
            let slot = map.entry(resolution).or_insert(i64::MIN);
            if t > *slot {
                *slot = t;
                moved = true;
            }
        }
        moved
    }

    /// The cores' view: index = shard id, up to `num_shards`.
    pub fn to_runtime(&self, num_shards: u32) -> FlushTimes {
        let mut by_shard = vec![Vec::new(); num_shards as usize];
        for (shard, times) in &self.0.by_shard {
            let Some(slot) = by_shard.get_mut(*shard as usize) else { continue };
            if times.tombstoned {
                continue;
            }
            let mut resolutions: Vec<i64> =
                times.standard_by_resolution.keys().chain(times.timed_by_resolution.keys()).copied().collect();
            resolutions.sort_unstable();
            resolutions.dedup();
            for r in resolutions {
                slot.push(ResolutionFlushed {
                    resolution: r,
                    standard: times.standard_by_resolution.get(&r).copied().unwrap_or(i64::MIN),
                    timed: times.timed_by_resolution.get(&r).copied().unwrap_or(i64::MIN),
                });
            }
        }
        FlushTimes { by_shard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_only_move_forward_and_survive_the_wire() {
        let mut t = ShardSetTimes::default();
        assert!(t.advance(3, 10, 100, 80));
        assert!(!t.advance(3, 10, 90, 70), "older times do not move them back");
        assert!(t.advance(3, 10, 110, 70));
        assert!(!t.advance(4, 10, i64::MIN, i64::MIN) || t.0.by_shard[&4].standard_by_resolution.is_empty());
        let back = ShardSetTimes::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        let rt = back.to_runtime(8);
        assert_eq!(rt.of(3), &[ResolutionFlushed { resolution: 10, standard: 110, timed: 80 }]);
        assert!(rt.of(5).is_empty());
    }
}
