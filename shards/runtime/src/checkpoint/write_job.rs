//! One shard's checkpoint on its way to disk. The core takes the snapshot (it reads the live
//! maps, so it must); everything after it (archiving, the checksum, the write and fsync,
//! freeing the snapshot's series) runs on the core's blocking thread, and the job comes back
//! with its snapshot emptied and its buffer, for the core to reuse on the next shard.

use std::path::PathBuf;
use std::time::Instant;

use sheaf_shard_core::checkpoint::{ArchiveBuffer, ShardCheckpoint, encode_in};

use super::files;

/// What the blocking thread gets: a snapshot and where to put it.
pub(crate) struct WriteJob {
    pub shard: u32,
    pub num_shards: u32,
    pub generation: u64,
    pub written_at: i64,
    pub path: PathBuf,
    pub snapshot: ShardCheckpoint,
    pub buffer: ArchiveBuffer,
    pub began: Instant,
}

/// What comes back: the outcome, and the snapshot (emptied) and buffer to reuse.
pub(crate) struct WriteDone {
    pub shard: u32,
    /// Bytes written (0 when the write failed).
    pub len: usize,
    /// `Err`: why nothing (or not all) was written, for the log.
    pub result: Result<(), String>,
    pub began: Instant,
    pub snapshot: ShardCheckpoint,
    pub buffer: ArchiveBuffer,
}

impl WriteJob {
    /// Archives and writes the snapshot (blocking: not on a shard core).
    pub(crate) fn run(self) -> WriteDone {
        let Self { shard, num_shards, generation, written_at, path, mut snapshot, buffer, began } = self;
        let encoded = encode_in(&snapshot, num_shards, shard, generation, written_at, buffer);
        snapshot.series.clear();
        snapshot.transform_states.clear();
        let (len, result, buffer) = match encoded {
            Ok(file) => {
                let len = file.header.len() + file.payload.len();
                match files::write_atomic_parts(&path, &[&file.header, &file.payload]) {
                    Ok(()) => (len, Ok(()), file.payload),
                    Err(e) => (0, Err(format!("not written: {e}")), file.payload),
                }
            }
            Err(e) => (0, Err(format!("not serialised: {e}")), ArchiveBuffer::new()),
        };
        WriteDone { shard, len, result, began, snapshot, buffer }
    }
}
