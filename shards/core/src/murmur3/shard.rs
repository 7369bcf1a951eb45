//! M3's shard of a series id, `murmur3.Sum32(id) % numShards`: [`shard_for`], and [`ShardOf`]
//! for one shard count, which also gives the series' map hash from the same murmur3.
//!
//! Pure functions and a plain value, used on whichever core decodes a value to route it to
//! the core that owns its shard.

use crate::aggregation::{MetricType, series_hash_of_murmur3};

use super::hash::murmur3_x86_32;

/// The M3 shard of a series id: `murmur3_x86_32(id, 0) % num_shards`, as
/// m3aggregator / m3cluster compute it (`murmur3.Sum32(id) % numShards`).
///
/// # Panics
///
/// If `num_shards` is 0 (a configuration error that must be rejected when the
/// placement is loaded, not per series).
#[inline]
pub fn shard_for(id: &[u8], num_shards: u32) -> u32 {
    assert!(num_shards > 0, "shard_for: num_shards must be > 0");
    murmur3_x86_32(id, 0) % num_shards
}

/// [`shard_for`] for one shard count, with the division replaced by a multiplication
/// (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019): the ingest path
/// computes a shard per value, and two multiplications take a fraction of a 32-bit `div`'s
/// latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOf {
    num_shards: u32,
    /// `ceil(2^64 / num_shards)`.
    inverse: u64,
}

impl ShardOf {
    /// # Panics
    ///
    /// If `num_shards` is 0, as [`shard_for`].
    pub fn new(num_shards: u32) -> Self {
        assert!(num_shards > 0, "ShardOf: num_shards must be > 0");
        Self { num_shards, inverse: (u64::MAX / u64::from(num_shards)).wrapping_add(1) }
    }

    /// `murmur3_x86_32(id, 0) % num_shards`.
    #[inline]
    pub fn of(&self, id: &[u8]) -> u32 {
        self.reduce(murmur3_x86_32(id, 0))
    }

    /// The shard of `id` and the map hash of the series (`metric_type`, `id`), from one pass
    /// over the id: `(self.of(id), series_hash(metric_type, id))`.
    #[inline]
    pub fn shard_and_hash(&self, metric_type: MetricType, id: &[u8]) -> (u32, u64) {
        let murmur3 = murmur3_x86_32(id, 0);
        (self.reduce(murmur3), series_hash_of_murmur3(metric_type, murmur3))
    }

    /// `hash % num_shards`, exact for every 32-bit `hash` and shard count.
    #[inline]
    fn reduce(&self, hash: u32) -> u32 {
        let low = self.inverse.wrapping_mul(u64::from(hash));
        ((u128::from(low) * u128::from(self.num_shards)) >> 64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shard_for_is_hash_mod_shards() {
        assert_eq!(shard_for(b"hello", 1), 0);
        assert_eq!(shard_for(b"hello", 1024), 0x248b_fa47 % 1024);
        assert_eq!(shard_for(b"", 7), 0);
    }

    #[test]
    #[should_panic(expected = "num_shards must be > 0")]
    fn shard_for_zero_shards_panics() {
        let _ = shard_for(b"x", 0);
    }

    proptest! {
        #[test]
        fn shard_in_range(id in proptest::collection::vec(any::<u8>(), 0..64), n in 1u32..=4096) {
            let s = shard_for(&id, n);
            prop_assert!(s < n);
            prop_assert_eq!(s, murmur3_x86_32(&id, 0) % n);
        }
    }

    proptest! {
        /// The multiplication gives the remainder for any hash and shard count.
        #[test]
        fn shard_of_is_the_remainder(hash in any::<u32>(), num_shards in 1u32..) {
            prop_assert_eq!(ShardOf::new(num_shards).reduce(hash), hash % num_shards);
        }
    }

    #[test]
    fn shard_of_edges() {
        for n in [1, 2, 3, 7, 64, 1024, 4096, u32::MAX - 1, u32::MAX] {
            let s = ShardOf::new(n);
            for h in [0, 1, n - 1, n, n.wrapping_add(1), u32::MAX - 1, u32::MAX] {
                assert_eq!(s.reduce(h), h % n, "{h} % {n}");
            }
        }
        assert_eq!(ShardOf::new(64).of(b"some.metric"), shard_for(b"some.metric", 64));
    }

    proptest! {
        /// One pass gives what the two separate hashes give.
        #[test]
        fn shard_and_hash_is_both(id in proptest::collection::vec(any::<u8>(), 0..80), n in 1u32..=4096, t in 0usize..4) {
            let metric_type = [MetricType::Counter, MetricType::Gauge, MetricType::Timer, MetricType::Set][t];
            let of = ShardOf::new(n);
            prop_assert_eq!(of.shard_and_hash(metric_type, &id), (of.of(&id), crate::series_hash(metric_type, &id)));
        }
    }

    /// The series of one shard share the low bits of their murmur3 (`% 32` here); their map
    /// hashes must not: the index takes its home slot from the low bits and its tag from the
    /// top eight.
    #[test]
    fn map_hashes_of_one_shard_spread() {
        let of = ShardOf::new(32);
        let hashes: Vec<u64> = (0..400_000)
            .map(|i| format!("sheaf.test.series.{i}"))
            .filter_map(|id| {
                let (shard, hash) = of.shard_and_hash(MetricType::Counter, id.as_bytes());
                (shard == 0).then_some(hash)
            })
            .take(8192)
            .collect();
        assert_eq!(hashes.len(), 8192);
        // 8192 hashes into 4096 home slots: ~3542 distinct expected if uniform, 128 if five bits
        // were stuck.
        let homes: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
        assert!(homes.len() > 3300, "{} distinct home slots", homes.len());
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 56).collect();
        assert_eq!(tags.len(), 256);
    }
}
