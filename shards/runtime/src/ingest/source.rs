//! `Source`: whether the values a router takes in still need copying to the other replicas.
//! A plain tag, set by the ingest task that owns the router (any shard core).

/// Whether the source already sends each value to every replica (an M3 producer with a
/// replicated topic) or only to this node (StatsD), which must then copy it to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Replicated,
    Single,
}
