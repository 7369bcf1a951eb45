//! Metric types, aggregation types (M3's `AggregationType` numbering) and the bitset of them
//! that M3 calls an `AggregationID`, with M3's output suffixes; and the map hashes of a series
//! and of a set member.
//!
//! Plain values and pure functions, copied to and computed on whichever core needs them.

use crate::murmur3::hash::murmur3_x86_32;

/// The kind of series a value belongs to; part of the series identity, as in M3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Timer = 2,
    /// StatsD sets: the number of distinct members in a window.
    Set = 3,
}

impl MetricType {
    pub const ALL: [MetricType; 4] = [Self::Counter, Self::Gauge, Self::Timer, Self::Set];

    pub fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Timer => "timer",
            Self::Set => "set",
        }
    }

    /// The aggregations a series of this type gets when its metadata does not name any.
    pub fn default_aggregations(self) -> AggTypes {
        use AggType::*;
        match self {
            Self::Counter => AggTypes::of(&[Sum]),
            Self::Gauge => AggTypes::of(&[Last]),
            Self::Timer => AggTypes::of(&[Sum, SumSq, Mean, Min, Max, Count, Stdev, Median, P50, P95, P99]),
            Self::Set => AggTypes::of(&[Count]),
        }
    }
}

/// One aggregation, numbered as M3's `aggregationpb.AggregationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AggType {
    Last = 1,
    Min = 2,
    Max = 3,
    Mean = 4,
    Median = 5,
    Count = 6,
    Sum = 7,
    SumSq = 8,
    Stdev = 9,
    P10 = 10,
    P20 = 11,
    P30 = 12,
    P40 = 13,
    P50 = 14,
    P60 = 15,
    P70 = 16,
    P80 = 17,
    P90 = 18,
    P95 = 19,
    P99 = 20,
    P999 = 21,
    P9999 = 22,
    P25 = 23,
    P75 = 24,
}

impl AggType {
    pub const MAX_ID: u8 = 24;

    pub fn from_id(id: u8) -> Option<Self> {
        use AggType::*;
        const TABLE: [AggType; 24] = [
            Last, Min, Max, Mean, Median, Count, Sum, SumSq, Stdev, P10, P20, P30, P40, P50, P60, P70, P80, P90, P95,
            P99, P999, P9999, P25, P75,
        ];
        TABLE.get(usize::from(id).wrapping_sub(1)).copied()
    }

    /// The `agg` field of a flushed value, e.g. `sum`, `p99`, `last`.
    pub fn name(self) -> &'static str {
        use AggType::*;
        match self {
            Last => "last",
            Min => "min",
            Max => "max",
            Mean => "mean",
            Median => "median",
            Count => "count",
            Sum => "sum",
            SumSq => "sum_sq",
            Stdev => "stdev",
            P10 => "p10",
            P20 => "p20",
            P30 => "p30",
            P40 => "p40",
            P50 => "p50",
            P60 => "p60",
            P70 => "p70",
            P80 => "p80",
            P90 => "p90",
            P95 => "p95",
            P99 => "p99",
            P999 => "p999",
            P9999 => "p9999",
            P25 => "p25",
            P75 => "p75",
        }
    }

    /// The id suffix M3 appends for this aggregation (`.lower` for min, `.upper` for max).
    pub fn suffix(self) -> &'static str {
        use AggType::*;
        match self {
            Min => ".lower",
            Max => ".upper",
            Last => ".last",
            Mean => ".mean",
            Median => ".median",
            Count => ".count",
            Sum => ".sum",
            SumSq => ".sum_sq",
            Stdev => ".stdev",
            P10 => ".p10",
            P20 => ".p20",
            P30 => ".p30",
            P40 => ".p40",
            P50 => ".p50",
            P60 => ".p60",
            P70 => ".p70",
            P80 => ".p80",
            P90 => ".p90",
            P95 => ".p95",
            P99 => ".p99",
            P999 => ".p999",
            P9999 => ".p9999",
            P25 => ".p25",
            P75 => ".p75",
        }
    }

    /// The quantile this aggregation reads from a sketch, if it is one.
    pub fn quantile(self) -> Option<f64> {
        use AggType::*;
        Some(match self {
            Median | P50 => 0.5,
            P10 => 0.1,
            P20 => 0.2,
            P30 => 0.3,
            P40 => 0.4,
            P60 => 0.6,
            P70 => 0.7,
            P80 => 0.8,
            P90 => 0.9,
            P95 => 0.95,
            P99 => 0.99,
            P999 => 0.999,
            P9999 => 0.9999,
            P25 => 0.25,
            P75 => 0.75,
            _ => return None,
        })
    }
}

/// A set of aggregations; bit `i` means `AggType` number `i` (M3's `AggregationID` bitset).
/// The empty set means "the default aggregations of the metric type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct AggTypes(u32);

impl AggTypes {
    pub const DEFAULT: AggTypes = AggTypes(0);

    pub fn of(types: &[AggType]) -> Self {
        Self(types.iter().fold(0, |bits, t| bits | 1 << (*t as u32)))
    }

    /// From M3's wire bitset; bits that name no aggregation type are dropped.
    pub fn from_m3_id(id: u64) -> Self {
        let valid = ((1u64 << (AggType::MAX_ID + 1)) - 1) & !1;
        Self((id & valid) as u32)
    }

    pub fn to_m3_id(self) -> u64 {
        u64::from(self.0)
    }

    pub fn is_default(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, t: AggType) -> bool {
        self.0 & (1 << (t as u32)) != 0
    }

    /// The types in M3's numbering order.
    #[inline]
    pub fn iter(self) -> impl Iterator<Item = AggType> {
        // One step per set bit (a flush calls this per window; most sets have one type).
        let mut bits = self.0;
        std::iter::from_fn(move || {
            while bits != 0 {
                let i = bits.trailing_zeros();
                bits &= bits - 1;
                if let Some(t) = AggType::from_id(i as u8) {
                    return Some(t);
                }
            }
            None
        })
    }

    /// Whether any of the types needs a quantile sketch.
    pub fn needs_sketch(self) -> bool {
        self.iter().any(|t| t.quantile().is_some())
    }

    /// This set, or the metric type's defaults when it is the default set.
    pub fn resolve(self, metric_type: MetricType) -> Self {
        if self.is_default() { metric_type.default_aggregations() } else { self }
    }
}

/// Seeds the map hashes: `series_hash` (mixed with the metric type) and `member_hash`.
const HASH_SEED: u64 = 0x5eaf_5eaf_5eaf_5eaf;

/// The map hash of a series: the same on every core, so the core that decodes a value can
/// compute it for the core that owns the series. It is the series' murmur3 (which picks its
/// shard too) mixed with its type: see [`series_hash_of_murmur3`].
#[inline]
pub fn series_hash(metric_type: MetricType, id: &[u8]) -> u64 {
    series_hash_of_murmur3(metric_type, murmur3_x86_32(id, 0))
}

/// [`series_hash`] from the id's `murmur3_x86_32(id, 0)`, which the decoder computes anyway
/// to pick the shard: one pass over the id instead of two. A fixed-seed foldhash of the type
/// and the 32-bit murmur3 spreads those bits over the 64 that the series index reads (its home
/// slot from the low ones, its tag from the top ones), including the bits that `% num_shards`
/// makes the same for every series of a shard. Two ids of one shard share a hash with odds of
/// 1 in 2^32 per pair; the index then compares the ids, as it does for any collision.
#[inline]
pub fn series_hash_of_murmur3(metric_type: MetricType, murmur3: u32) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(HASH_SEED ^ metric_type as u64).hash_one(murmur3)
}

/// The 64-bit hash a set keeps of a member: a fixed-seed foldhash of its bytes, so that two
/// members collide with odds of 1 in 2^64 (a set counts members by their hashes).
#[inline]
pub fn member_hash(member: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(HASH_SEED ^ MetricType::Set as u64).hash_one(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m3_bitset_round_trips() {
        for id in 1..=AggType::MAX_ID {
            let t = AggType::from_id(id).unwrap();
            assert_eq!(t as u8, id);
            let set = AggTypes::of(&[t]);
            assert_eq!(set.to_m3_id(), 1u64 << id);
            assert_eq!(AggTypes::from_m3_id(1u64 << id).iter().collect::<Vec<_>>(), vec![t]);
        }
        assert_eq!(AggType::from_id(0), None);
        assert_eq!(AggType::from_id(25), None);
        assert!(AggTypes::from_m3_id(1 | 1 << 40).is_default());
    }

    #[test]
    fn timer_defaults_match_m3() {
        let names: Vec<_> = MetricType::Timer.default_aggregations().iter().map(|t| t.suffix()).collect();
        assert_eq!(
            names,
            [".lower", ".upper", ".mean", ".median", ".count", ".sum", ".sum_sq", ".stdev", ".p50", ".p95", ".p99"]
        );
        assert!(MetricType::Timer.default_aggregations().needs_sketch());
        assert!(!MetricType::Counter.default_aggregations().needs_sketch());
    }
}
