//! One checkpoint file: a fixed 56-byte header, then the rkyv archive of a
//! [`ShardCheckpoint`]. Pure: the caller reads and writes the bytes (any thread).
//!
//! The header is plain little-endian fields rather than part of the archive, so that a reader
//! can tell a file of another format version (or of another `num_shards`) from a damaged one
//! without trusting the archive's layout. The CRC-32 covers the header's first 52 bytes and
//! the payload: rkyv's validation (bytecheck) proves that the archive is well formed, not
//! that its numbers are the ones written, and a flipped bit in a window's sum would otherwise
//! load as a wrong value.
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `SHEAFCKP` |
//! | 8 | format version (u32) |
//! | 12 | `num_shards` (u32) |
//! | 16 | shard (u32) |
//! | 20 | reserved, 0 (u32) |
//! | 24 | generation (u64): checkpoints the writing core had written of this shard |
//! | 32 | written at (i64, Unix nanoseconds) |
//! | 40 | payload length (u64) |
//! | 48 | reserved, 0 (u32) |
//! | 52 | CRC-32 (IEEE) of bytes 0..52 and the payload (u32) |

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::format::ShardCheckpoint;

/// The format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 3;
pub const HEADER_LEN: usize = 56;
const MAGIC: &[u8; 8] = b"SHEAFCKP";

/// What the header of a checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    pub version: u32,
    pub num_shards: u32,
    pub shard: u32,
    pub generation: u64,
    pub written_at: i64,
    pub payload_len: u64,
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("truncated: {0} bytes where the header says more")]
    Truncated(usize),
    #[error("not a sheaf checkpoint (bad magic)")]
    BadMagic,
    #[error("format version {found}, this build reads {CHECKPOINT_VERSION}")]
    Version { found: u32 },
    #[error("checksum mismatch")]
    Checksum,
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("checkpoint of shard {found_shard} of {found_shards}, expected shard {shard} of {num_shards}")]
    Foreign { found_shard: u32, found_shards: u32, shard: u32, num_shards: u32 },
    #[error("invalid content: {0}")]
    Content(&'static str),
}

impl CheckpointError {
    /// The `reason` label of the load-failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated",
            Self::BadMagic | Self::Checksum => "corrupt",
            Self::Version { .. } => "version",
            Self::Archive(_) | Self::Content(_) => "invalid",
            Self::Foreign { .. } => "foreign",
        }
    }
}

/// The file of `ck`, shard `shard` of `num_shards`, in one buffer.
pub fn encode(
    ck: &ShardCheckpoint,
    num_shards: u32,
    shard: u32,
    generation: u64,
    written_at: i64,
) -> Result<Vec<u8>, CheckpointError> {
    let file = encode_in(ck, num_shards, shard, generation, written_at, AlignedVec::new())?;
    let mut out = Vec::with_capacity(HEADER_LEN + file.payload.len());
    out.extend_from_slice(&file.header);
    out.extend_from_slice(&file.payload);
    Ok(out)
}

/// The buffer an archive is written into (aligned as the archive needs).
pub type ArchiveBuffer = AlignedVec;

/// A checkpoint file as its header and its payload (the archive), kept apart so that the
/// payload's buffer can be reused for the next shard and nothing is copied to join them.
pub struct EncodedCheckpoint {
    pub header: [u8; HEADER_LEN],
    pub payload: ArchiveBuffer,
}

/// The file of `ck`, archived into `buffer` (cleared first; its capacity is reused).
pub fn encode_in(
    ck: &ShardCheckpoint,
    num_shards: u32,
    shard: u32,
    generation: u64,
    written_at: i64,
    mut buffer: ArchiveBuffer,
) -> Result<EncodedCheckpoint, CheckpointError> {
    buffer.clear();
    let payload = rkyv::api::high::to_bytes_in::<_, rancor::Error>(ck, buffer)
        .map_err(|e| CheckpointError::Archive(e.to_string()))?;
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&num_shards.to_le_bytes());
    header[16..20].copy_from_slice(&shard.to_le_bytes());
    header[24..32].copy_from_slice(&generation.to_le_bytes());
    header[32..40].copy_from_slice(&written_at.to_le_bytes());
    header[40..48].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..52]);
    crc.update(&payload);
    header[52..].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(EncodedCheckpoint { header, payload })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// The header of `bytes`, checked for magic and version only (enough to refuse a restart with
/// another `num_shards` before anything loads).
pub fn read_header(bytes: &[u8]) -> Result<CheckpointHeader, CheckpointError> {
    if bytes.len() < HEADER_LEN {
        return Err(CheckpointError::Truncated(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != CHECKPOINT_VERSION {
        return Err(CheckpointError::Version { found: version });
    }
    Ok(CheckpointHeader {
        version,
        num_shards: u32_at(bytes, 12),
        shard: u32_at(bytes, 16),
        generation: u64_at(bytes, 24),
        written_at: u64_at(bytes, 32) as i64,
        payload_len: u64_at(bytes, 40),
    })
}

/// The header and checkpoint in `bytes`: length, checksum and archive validated.
pub fn decode(bytes: &[u8]) -> Result<(CheckpointHeader, ShardCheckpoint), CheckpointError> {
    let header = read_header(bytes)?;
    let payload = &bytes[HEADER_LEN..];
    if (payload.len() as u64) < header.payload_len {
        return Err(CheckpointError::Truncated(bytes.len()));
    }
    if payload.len() as u64 != header.payload_len {
        return Err(CheckpointError::Checksum);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..52]);
    crc.update(payload);
    if crc.finalize() != u32_at(bytes, 52) {
        return Err(CheckpointError::Checksum);
    }
    // The archive needs its alignment: the file's bytes may sit anywhere.
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let ck = rkyv::from_bytes::<ShardCheckpoint, rancor::Error>(&aligned)
        .map_err(|e| CheckpointError::Archive(e.to_string()))?;
    Ok((header, ck))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FlushedCk, SeriesCk};

    fn sample() -> ShardCheckpoint {
        ShardCheckpoint {
            series: vec![SeriesCk {
                metric_type: 0,
                id: b"requests".to_vec(),
                gauge_base: f64::NAN,
                last_write_secs: 7,
                spec: None,
                spec_timed: false,
                rule: crate::checkpoint::RuleCk::Default,
                elems: Vec::new(),
            }],
            flushed: vec![FlushedCk { resolution: 10, untimed: 20, timed: 10 }],
            transform_states: Vec::new(),
            sync: Some(crate::checkpoint::SyncCk { sync_id: "AU2VU0meX-VX2aNbEUsD".into(), digest: 42 }),
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let bytes = encode(&sample(), 64, 3, 9, 1234).unwrap();
        let (header, ck) = decode(&bytes).unwrap();
        assert_eq!((header.num_shards, header.shard, header.generation, header.written_at), (64, 3, 9, 1234));
        assert_eq!(ck.series[0].id, b"requests");
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(CheckpointError::Truncated(_))));
        assert!(matches!(decode(&bytes[..10]), Err(CheckpointError::Truncated(_))));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 0x40;
        assert!(matches!(decode(&flipped), Err(CheckpointError::Checksum)));
        let mut version = bytes.clone();
        version[8] = 99;
        assert!(matches!(decode(&version), Err(CheckpointError::Version { found: 99 })));
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(matches!(decode(&magic), Err(CheckpointError::BadMagic)));
    }
}
