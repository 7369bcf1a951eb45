//! [`DecodeError`]: why the zero-copy decoder rejected a buffer.
//!
//! A plain value, returned to the shard core that decoded the buffer (which counts it by
//! [`DecodeError::reason`]).

/// Why a buffer could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("truncated input")]
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("malformed varint")]
    BadVarint,
    /// A field key names field number 0 or does not fit in 32 bits.
    #[error("invalid field number")]
    BadFieldNumber,
    /// A field has a wire type that its number does not allow, or an invalid
    /// wire type (6 or 7).
    #[error("field {field} has unexpected wire type {wire_type}")]
    BadWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A (deprecated) group was found; M3 never sends them.
    #[error("field {field} is a group, groups are not supported")]
    GroupUnsupported {
        /// The field number.
        field: u32,
    },
    /// A packed `repeated double` whose length is not a multiple of 8.
    #[error("packed field {field} has length {len}, not a multiple of 8")]
    BadPackedLength {
        /// The field number.
        field: u32,
        /// The packed body length.
        len: usize,
    },
    /// A required field is absent (for example the payload named by the type).
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// `MetricWithMetadatas.type` is UNKNOWN or not a known value.
    #[error("unsupported metric with metadatas type {0}")]
    Unsupported(i32),
    /// `TimedMetric.type` is not COUNTER, TIMER or GAUGE.
    #[error("unsupported timed metric type {0}")]
    UnsupportedTimedType(i32),
}

impl DecodeError {
    /// Short snake_case reason, for a counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated",
            DecodeError::BadVarint => "bad_varint",
            DecodeError::BadFieldNumber => "bad_field_number",
            DecodeError::BadWireType { .. } => "bad_wire_type",
            DecodeError::GroupUnsupported { .. } => "group_unsupported",
            DecodeError::BadPackedLength { .. } => "bad_packed_length",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::Unsupported(_) => "unsupported_type",
            DecodeError::UnsupportedTimedType(_) => "unsupported_timed_type",
        }
    }
}
