//! [`PlacementError`]: why a placement operation, a decode or a validation failed. Pure.

/// Why a placement operation, a decode or a validation failed. Messages are meant for the
/// operator (they end up in HTTP error bodies and logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The request itself is malformed (zero shards, an empty id, counts that do not match…).
    #[error("{0}")]
    Request(String),
    /// The request names an instance the placement does not hold.
    #[error("instance {0} is not in the placement")]
    UnknownInstance(String),
    /// The request adds an instance the placement already holds (possibly as leaving).
    #[error("instance {0} is already in the placement")]
    DuplicateInstance(String),
    /// The new instances cannot be grouped into mirrored shard sets.
    #[error("cannot form shard sets: {0}")]
    ShardSets(String),
    /// The operation is well-formed but would break a placement rule.
    #[error("{0}")]
    Refused(String),
    /// A placement (stored, decoded or computed) breaks an invariant (see `validate`).
    #[error("invalid placement: {0}")]
    Invalid(String),
    /// The stored bytes do not decode as a placement.
    #[error("decoding the placement: {0}")]
    Decode(String),
    /// The stored value uses M3's zstd compression.
    #[error("zstd-compressed placements are not supported")]
    Zstd,
    /// The placement uses an M3 feature sheaf does not implement.
    #[error("{0}")]
    Unsupported(String),
}
