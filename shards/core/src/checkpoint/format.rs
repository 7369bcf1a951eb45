//! The archived form of one shard (rkyv). Plain owned data, any thread; built and applied on
//! the core that owns the shard. Fields are raw numbers (metric types as `u8`, aggregation
//! sets as M3's bitset, chains packed): `CoreAggregator::restore_shard` checks every one
//! before it touches the core, so that a file from another build or a damaged one is refused
//! as a whole.

use rkyv::{Archive, Deserialize, Serialize};

/// One shard: its series with their open and unflushed windows, the transformation states of
/// its elements, and how far the core that wrote it had flushed each resolution.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ShardCheckpoint {
    pub series: Vec<SeriesCk>,
    pub flushed: Vec<FlushedCk>,
    pub transform_states: Vec<TransformStatesCk>,
    /// Set when the shard was idle (no write, no unflushed window) as it was written.
    pub sync: Option<SyncCk>,
}

/// The synced-flush marker of an idle shard: its `sync_id` and the digest of its state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SyncCk {
    pub sync_id: String,
    pub digest: u64,
}

/// How far the flush rounds of one resolution had reached (window ends).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct FlushedCk {
    pub resolution: i64,
    pub untimed: i64,
    pub timed: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyCk {
    pub resolution: i64,
    pub retention: i64,
}

/// Where an element's flushed values go instead of the sinks.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RollupTargetCk {
    pub id: Vec<u8>,
    pub aggs: u64,
    /// The transformations after the rollup, packed; bit 31: M3's `resend_enabled`.
    pub transforms: u32,
}

/// One element of a metadata list (`ElemSpec` with its rollup written out).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ElemSpecCk {
    pub aggs: u64,
    pub policy: PolicyCk,
    pub transforms: u32,
    pub forwarded: u8,
    pub rollup: Option<RollupTargetCk>,
}

/// What an element's policy slot stands for (a core's `SlotKey`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCk {
    pub policy: PolicyCk,
    pub transforms: u32,
    pub forwarded: u8,
    pub rollup_ordinal: u8,
}

/// What a value without metadata writes to, as the rules decided at the series' creation.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RuleCk {
    Default,
    Dropped,
    Spec(Vec<ElemSpecCk>),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SeriesCk {
    pub metric_type: u8,
    pub id: Vec<u8>,
    /// A gauge's latest value (the base of StatsD deltas); NaN for none.
    pub gauge_base: f64,
    pub last_write_secs: u32,
    /// The metadata whose elements come first in `elems`, in order; `None` before the first write.
    pub spec: Option<Vec<ElemSpecCk>>,
    pub spec_timed: bool,
    pub rule: RuleCk,
    pub elems: Vec<ElemCk>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ElemCk {
    pub slot: SlotCk,
    pub aggs: u64,
    pub timed: bool,
    /// Oldest first.
    pub windows: Vec<WindowCk>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WindowCk {
    pub start: i64,
    pub state: StateCk,
}

/// A window state; its variant must be the one the element's kind keeps.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum StateCk {
    /// A counter's sum or an untimed gauge's last value.
    Num(f64),
    /// Boxed: in the archive an enum takes the size of its largest variant, and a counter's
    /// window would otherwise carry the room of a timer's.
    Full(Box<FullCk>),
    /// A set's member hashes.
    Distinct(Vec<u64>),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FullCk {
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    pub last_time: i64,
    pub sketch: Option<SketchCk>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum SketchCk {
    Exact(Vec<f64>),
    Buckets { positive: BucketsCk, negative: Option<BucketsCk>, zeros: u64, count: u64, min: f64, max: f64 },
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BucketsCk {
    pub counts: Vec<u64>,
    pub first_key: i32,
    pub collapsed: bool,
}

/// The states of the stateful transformations of one element (`TransformStates`), one per
/// (aggregation, stateful op), aggregation-major; a state is the previous point, if any.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransformStatesCk {
    pub metric_type: u8,
    pub timed: bool,
    pub slot: SlotCk,
    pub aggs: u64,
    pub chain: u32,
    pub id: Vec<u8>,
    pub states: Vec<Option<(i64, f64)>>,
}
