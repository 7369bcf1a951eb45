//! [`StatsdError`]: why a StatsD line, or the tags of a series id, was rejected.
//!
//! A plain value, returned to whichever core parsed the line (which counts it by
//! [`StatsdError::reason`]).

/// Why a line was rejected. [`StatsdError::reason`] gives a stable label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum StatsdError {
    /// The name is empty or ASCII whitespace only.
    #[error("empty metric name")]
    EmptyName,
    /// The name contains `;` (reserved as the series-id tag separator).
    #[error("metric name contains ';'")]
    BadName,
    /// No `:` before the first `|` (or in the whole line).
    #[error("missing ':' and value")]
    MissingValue,
    /// No `|type` section, or an empty one.
    #[error("missing '|type'")]
    MissingType,
    /// The type is not one of c, g, ms, h, d, s.
    #[error("unknown metric type")]
    UnknownType,
    /// The value is empty or not a number (for numeric kinds).
    #[error("bad value")]
    BadValue,
    /// The value (or counter value / sample rate) is NaN or infinite.
    #[error("non-finite value")]
    NonFinite,
    /// The sample rate is not a number in (0, 1], or is given twice.
    #[error("sample rate not in (0, 1]")]
    BadSampleRate,
    /// A second `|#` section, or an invalid tag (see `write_series_id`).
    #[error("bad tags")]
    BadTags,
    /// A section after the type that is empty or does not start with `@`,
    /// `#` or an ASCII letter.
    #[error("bad '|' section")]
    BadSection,
    /// A DogStatsD event (`_e{`) or service check (`_sc|`), not a metric.
    #[error("event or service check, not a metric")]
    NotAMetric,
    /// The line is longer than the configured maximum.
    #[error("line too long")]
    LineTooLong,
}

impl StatsdError {
    /// Every variant, e.g. to pre-register one drop counter per reason.
    pub const ALL: [StatsdError; 12] = [
        Self::EmptyName,
        Self::BadName,
        Self::MissingValue,
        Self::MissingType,
        Self::UnknownType,
        Self::BadValue,
        Self::NonFinite,
        Self::BadSampleRate,
        Self::BadTags,
        Self::BadSection,
        Self::NotAMetric,
        Self::LineTooLong,
    ];

    /// Stable snake_case label, e.g. `"bad_value"`.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::EmptyName => "empty_name",
            Self::BadName => "bad_name",
            Self::MissingValue => "missing_value",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::BadValue => "bad_value",
            Self::NonFinite => "non_finite",
            Self::BadSampleRate => "bad_sample_rate",
            Self::BadTags => "bad_tags",
            Self::BadSection => "bad_section",
            Self::NotAMetric => "not_a_metric",
            Self::LineTooLong => "line_too_long",
        }
    }
}
