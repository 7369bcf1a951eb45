//! Shard checkpoints on a single node (`data_dir`): each core writes the checkpoint of every
//! shard it owns every `checkpoint.interval` and at shutdown, loads them at start before
//! ingest, and writes flush marks before each round emits, so that a restart, even after
//! `kill -9`, emits every window once: with all its values after a clean stop, with those up
//! to the last checkpoint after a crash.
//!
//! - `files`: the files of `data_dir` and their blocking I/O (any thread but a shard core):
//!   atomic writes, loads, moving a bad file aside, flush marks, the start-up check of
//!   `num_shards` (`prepare_data_dir`, on the main thread before the cores start).
//! - `on_core`: `Checkpointer`, a core's side: load, periodic and final passes, flush marks.
//! - `write_job`: a shard's snapshot archived and written on the core's blocking thread.
//!
//! Checkpoints are per shard (`data_dir/shards/NNNNN.ckpt`), so a restart with other cores
//! loads them all: each core takes the shards it owns now.

mod files;
mod on_core;
mod write_job;

use std::path::PathBuf;
use std::time::Duration;

pub use files::{DataDirError, DataDirScan, prepare_data_dir};
pub(crate) use on_core::{Checkpointer, run};

/// Where and how often the cores checkpoint their shards.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    pub dir: PathBuf,
    pub interval: Duration,
}
