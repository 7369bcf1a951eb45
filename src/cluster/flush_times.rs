//! A shard set's flush times in m3's `ShardSetFlushTimes` layout: per shard, per resolution,
//! the end of the last window the leader emitted (standard and timed lists, and the forwarded
//! lists per forward count). The leader merges its cores' round reports in and persists the
//! whole value; followers decode it into the cores' [`FlushTimes`], and a promoted follower
//! reads it again before it emits.

use prost::Message;
use sheaf_proto::flushpb::{ForwardedFlushTimesForResolution, ShardSetFlushTimes};
use sheaf_shard_core::ForwardedUntil;
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

    /// Moves shard `shard`'s forwarded times for `resolution` forward, per forward count
    /// (never back); true if one moved.
    pub fn advance_forwarded(&mut self, shard: u32, resolution: i64, forwarded: &[ForwardedUntil]) -> bool {
        if forwarded.is_empty() {
            return false;
        }
        let entry = self.0.by_shard.entry(shard).or_default();
        let by_count = &mut entry.forwarded_by_resolution.entry(resolution).or_default().by_num_forwarded_times;
        let mut moved = false;
        for f in forwarded.iter().filter(|f| f.until != i64::MIN) {
            let slot = by_count.entry(i32::from(f.times)).or_insert(i64::MIN);
            if f.until > *slot {
                *slot = f.until;
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
            let mut resolutions: Vec<i64> = times
                .standard_by_resolution
                .keys()
                .chain(times.timed_by_resolution.keys())
                .chain(times.forwarded_by_resolution.keys())
                .copied()
                .collect();
            resolutions.sort_unstable();
            resolutions.dedup();
            for r in resolutions {
                slot.push(ResolutionFlushed {
                    resolution: r,
                    standard: times.standard_by_resolution.get(&r).copied().unwrap_or(i64::MIN),
                    timed: times.timed_by_resolution.get(&r).copied().unwrap_or(i64::MIN),
                    forwarded: times.forwarded_by_resolution.get(&r).map_or_else(Vec::new, forwarded_of),
                });
            }
        }
        FlushTimes { by_shard }
    }
}

/// One resolution's forwarded times, by forward count; a count outside `1..=255` is no count
/// a core can hold, and is left out.
fn forwarded_of(times: &ForwardedFlushTimesForResolution) -> Vec<ForwardedUntil> {
    let mut out: Vec<ForwardedUntil> = times
        .by_num_forwarded_times
        .iter()
        .filter_map(|(&n, &until)| Some(ForwardedUntil { times: u8::try_from(n).ok().filter(|&n| n > 0)?, until }))
        .collect();
    out.sort_unstable_by_key(|f| f.times);
    out
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
        assert_eq!(rt.of(3), &[ResolutionFlushed { resolution: 10, standard: 110, timed: 80, forwarded: vec![] }]);
        assert!(rt.of(5).is_empty());
    }

    fn fwd(times: u8, until: i64) -> ForwardedUntil {
        ForwardedUntil { times, until }
    }

    #[test]
    fn forwarded_times_move_forward_per_count_and_survive_the_wire() {
        let mut t = ShardSetTimes::default();
        assert!(!t.advance_forwarded(2, 10, &[]), "no forwarded list, nothing to persist");
        assert!(t.advance_forwarded(2, 10, &[fwd(1, 100), fwd(2, 90)]));
        assert!(!t.advance_forwarded(2, 10, &[fwd(1, 90), fwd(2, 90)]), "older times do not move them back");
        assert!(t.advance_forwarded(2, 10, &[fwd(1, 90), fwd(2, 100)]));
        assert!(!t.advance_forwarded(2, 10, &[fwd(3, i64::MIN)]), "nothing flushed yet is not persisted");
        assert!(t.advance(2, 10, 120, i64::MIN));
        assert!(t.advance_forwarded(2, 20, &[fwd(1, 40)]));
        // M3's field numbers: forwarded_by_resolution = 3, by_num_forwarded_times = 1.
        let wire = t.encode();
        let back = ShardSetTimes::decode(&wire).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.0.by_shard[&2].forwarded_by_resolution[&10].by_num_forwarded_times[&2], 100);
        let rt = back.to_runtime(4);
        assert_eq!(
            rt.of(2),
            &[
                ResolutionFlushed {
                    resolution: 10,
                    standard: 120,
                    timed: i64::MIN,
                    forwarded: vec![fwd(1, 100), fwd(2, 100)]
                },
                ResolutionFlushed { resolution: 20, standard: i64::MIN, timed: i64::MIN, forwarded: vec![fwd(1, 40)] },
            ]
        );
    }

    #[test]
    fn forward_counts_no_core_can_hold_are_left_out() {
        let mut t = ShardSetTimes::default();
        let by_count = &mut t.0.by_shard.entry(0).or_default().forwarded_by_resolution.entry(10).or_default();
        by_count.by_num_forwarded_times.extend([(0, 5), (-1, 5), (256, 5), (3, 7)]);
        assert_eq!(t.to_runtime(1).of(0)[0].forwarded, vec![fwd(3, 7)]);
    }
}
