//! The control plane and boot of the `sheaf` binary, as a library: `src/main.rs` parses the
//! command line and calls in here, and the fuzz targets (`fuzz/`) reach the parsers that read
//! operators' input (the config loader, placement JSON) without a process. Not a stable API:
//! `pub` marks what modules share, as in a binary.
#![allow(unreachable_pub)]

pub mod admin;
pub mod allocator;
pub mod boot;
pub mod cluster;
pub mod config;
pub mod control;
pub mod host_checks;
pub mod rules;
pub mod sinks;
pub mod topic;
pub mod topology;
