//! sans-IO data plane of sheaf (see ARCHITECTURE.md).
pub mod murmur3;
pub mod statsd;
