//! Shard checkpoints: the state of one shard as bytes that any core (of this node, or later of
//! a peer) can load, so that a restart resumes the windows it had open instead of emitting
//! them early.
//!
//! - `format.rs`: the archived mirror types (rkyv, validated with bytecheck on load). Nothing
//!   in them is core-local: policies, aggregations, transformation chains and rollup targets
//!   are written out in full, never as a core's interned ids.
//! - `file.rs`: the file around an archive: a fixed header (magic, format version,
//!   `num_shards`, shard, generation, written-at time, payload length, CRC-32 of the payload)
//!   and the errors of reading one back.
//! - `state.rs`: window states to and from their mirror.
//! - `recover.rs`: a replica's copy merged with the leader's at a cut (peer recovery).
//! - `digest.rs`: the digest of a shard's state that replicas compare before sharing a `sync_id`.
//!
//! Built by `CoreAggregator::checkpoint_shard` and loaded by `CoreAggregator::restore_shard`
//! on the core that owns the shard; the bytes themselves may go to any thread (the writer, a
//! peer). Pure: no I/O here (the runtime writes and reads the files).

mod digest;
mod file;
mod format;
mod recover;
mod state;

pub use digest::state_digest;
pub use file::{
    ArchiveBuffer, CHECKPOINT_VERSION, CheckpointError, CheckpointHeader, EncodedCheckpoint, HEADER_LEN, decode,
    encode, encode_in, read_header,
};
pub use format::{
    BucketsCk, ElemCk, ElemSpecCk, FlushedCk, FullCk, PolicyCk, RollupTargetCk, RuleCk, SeriesCk, ShardCheckpoint,
    SketchCk, SlotCk, StateCk, SyncCk, TransformStatesCk, WindowCk,
};
pub use recover::{cut_of, merge_at_cut};
pub(crate) use state::{restore_state, snapshot_state, valid_state};
