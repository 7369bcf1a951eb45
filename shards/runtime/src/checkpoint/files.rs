//! The files of `data_dir`: shard checkpoints (`shards/NNNNN.ckpt`) and flush marks
//! (`flushed/core-N.marks`), written whole (temp file, write, fsync, rename, fsync of the
//! directory) and read back. Plain blocking `std::fs`: run on the control thread before the
//! cores start, or on a core's blocking thread (`glommio::executor().spawn_blocking`), never
//! on a shard core itself.
//!
//! A flush mark says how far a core's rounds had emitted each resolution when it was
//! written, and for which shards. It is written before a round emits anything, so that after
//! a `kill -9` the windows a round emitted after the last checkpoint are dropped at load
//! instead of emitted again.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sheaf_shard_core::checkpoint::{CheckpointError, read_header};

/// Where shard `shard`'s checkpoint lives under `dir`.
pub(crate) fn shard_path(dir: &Path, shard: u32) -> PathBuf {
    dir.join("shards").join(format!("{shard:05}.ckpt"))
}

fn marks_dir(dir: &Path) -> PathBuf {
    dir.join("flushed")
}

/// Where core `core`'s flush marks live under `dir`.
pub(crate) fn marks_path(dir: &Path, core: usize) -> PathBuf {
    marks_dir(dir).join(format!("core-{core}.marks"))
}

/// Writes `bytes` to `path` whole: a temp file beside it, fsync, rename over `path`, fsync of
/// the directory. A crash at any point leaves the old file or the new one, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_parts(path, &[bytes])
}

/// `write_atomic` of the concatenation of `parts` (written one after the other, not joined).
pub(crate) fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let parent = path.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
    fs::create_dir_all(parent)?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    for part in parts {
        f.write_all(part)?;
    }
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    fs::File::open(parent)?.sync_all()
}

/// Renames a file that could not be loaded to `<name>.corrupt-<unix seconds>`; returns the
/// new path.
pub(crate) fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{secs}"));
    let aside = path.with_file_name(name);
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Why `data_dir` cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "data_dir {dir}: its checkpoints are of num_shards {found} (e.g. {file}), the config says {want}; \
         start with --discard-checkpoints to drop them, or set num_shards back"
    )]
    NumShards { dir: PathBuf, file: PathBuf, found: u32, want: u32 },
    #[error("data_dir {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
}

/// What `prepare_data_dir` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DataDirScan {
    /// Checkpoint files whose header is readable and of this `num_shards`.
    pub checkpoints: usize,
    /// Files deleted by `discard`.
    pub discarded: usize,
}

/// Makes `dir` ready before any core starts: creates it, refuses checkpoints of another
/// `num_shards` (their shards would be other sets of series), or with `discard` deletes
/// every checkpoint and flush mark so that the node starts empty. A file whose header does
/// not read is left for its core to count and move aside.
pub fn prepare_data_dir(dir: &Path, num_shards: u32, discard: bool) -> Result<DataDirScan, DataDirError> {
    let io_err = |source| DataDirError::Io { dir: dir.to_path_buf(), source };
    fs::create_dir_all(dir.join("shards")).map_err(io_err)?;
    fs::create_dir_all(marks_dir(dir)).map_err(io_err)?;
    let mut scan = DataDirScan::default();
    if discard {
        for sub in [dir.join("shards"), marks_dir(dir)] {
            for entry in fs::read_dir(&sub).map_err(io_err)? {
                let path = entry.map_err(io_err)?.path();
                if path.is_file() {
                    fs::remove_file(&path).map_err(io_err)?;
                    scan.discarded += 1;
                }
            }
        }
        return Ok(scan);
    }
    for entry in fs::read_dir(dir.join("shards")).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.extension().is_none_or(|e| e != "ckpt") {
            continue;
        }
        let mut head = [0u8; sheaf_shard_core::checkpoint::HEADER_LEN];
        let n = fs::File::open(&path).and_then(|mut f| read_up_to(&mut f, &mut head)).map_err(io_err)?;
        let Ok(header) = read_header(&head[..n]) else { continue };
        if header.num_shards != num_shards {
            return Err(DataDirError::NumShards {
                dir: dir.to_path_buf(),
                file: path,
                found: header.num_shards,
                want: num_shards,
            });
        }
        scan.checkpoints += 1;
    }
    Ok(scan)
}

fn read_up_to(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What reading one shard's checkpoint file gave.
pub(crate) enum Loaded {
    /// No file: the shard starts empty.
    Missing,
    Ok(Box<(sheaf_shard_core::checkpoint::CheckpointHeader, sheaf_shard_core::checkpoint::ShardCheckpoint)>),
    /// Unreadable: moved aside (to the path given, when the rename worked).
    Failed {
        reason: &'static str,
        error: String,
        aside: Option<PathBuf>,
    },
}

/// Reads and checks shard `shard`'s checkpoint (blocking); a bad one is moved aside.
pub(crate) fn load_shard(dir: &Path, shard: u32, num_shards: u32) -> Loaded {
    let path = shard_path(dir, shard);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Failed { reason: "io", error: e.to_string(), aside: None },
    };
    let checked = sheaf_shard_core::checkpoint::decode(&bytes).and_then(|(header, ck)| {
        if header.num_shards == num_shards && header.shard == shard {
            Ok((header, ck))
        } else {
            Err(CheckpointError::Foreign {
                found_shard: header.shard,
                found_shards: header.num_shards,
                shard,
                num_shards,
            })
        }
    });
    match checked {
        Ok(loaded) => Loaded::Ok(Box::new(loaded)),
        Err(e) => Loaded::Failed { reason: e.reason(), error: e.to_string(), aside: move_aside(&path).ok() },
    }
}

/// One core's flush marks: for the shards it owned, how far each resolution was emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FlushMarks {
    pub(crate) written_at: i64,
    pub(crate) shards: Vec<u32>,
    /// (resolution, untimed window end, timed window end), nanoseconds.
    pub(crate) resolutions: Vec<(i64, i64, i64)>,
}

const MARKS_MAGIC: &str = "sheaf-flush-marks 1";

impl FlushMarks {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let shards: Vec<String> = self.shards.iter().map(u32::to_string).collect();
        let mut s = format!("{MARKS_MAGIC}\nwritten_at {}\nshards {}\n", self.written_at, shards.join(","));
        for (r, untimed, timed) in &self.resolutions {
            s.push_str(&format!("resolution {r} {untimed} {timed}\n"));
        }
        s.push_str("end\n");
        s.into_bytes()
    }

    /// `None` for anything but a whole, well-formed file.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        (lines.next()? == MARKS_MAGIC).then_some(())?;
        let written_at = lines.next()?.strip_prefix("written_at ")?.parse().ok()?;
        let shards = lines.next()?.strip_prefix("shards ")?;
        let shards =
            shards.split(',').filter(|s| !s.is_empty()).map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
        let mut resolutions = Vec::new();
        for line in lines {
            if line == "end" {
                return Some(Self { written_at, shards, resolutions });
            }
            let mut f = line.strip_prefix("resolution ")?.split(' ').map(str::parse::<i64>);
            resolutions.push((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?));
        }
        None
    }
}

/// Every readable flush-marks file under `dir` (blocking); unreadable ones are skipped with a
/// warning.
pub(crate) fn read_all_marks(dir: &Path) -> Vec<FlushMarks> {
    let Ok(entries) = fs::read_dir(marks_dir(dir)) else { return Vec::new() };
    let mut out = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|e| e != "marks") {
            continue;
        }
        match fs::read(&path).ok().and_then(|b| FlushMarks::decode(&b)) {
            Some(m) => out.push(m),
            None => tracing::warn!(path = %path.display(), "flush marks unreadable; ignored"),
        }
    }
    out
}

/// The marks that apply to `shard`: those of the newest file that lists it.
pub(crate) fn marks_of(all: &[FlushMarks], shard: u32) -> Option<&FlushMarks> {
    all.iter().filter(|m| m.shards.contains(&shard)).max_by_key(|m| m.written_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_refuse_a_cut_file() {
        let m = FlushMarks { written_at: 7, shards: vec![0, 2, 4], resolutions: vec![(10, 20, 10), (60, 120, 60)] };
        let bytes = m.encode();
        assert_eq!(FlushMarks::decode(&bytes), Some(m.clone()));
        assert_eq!(FlushMarks::decode(&bytes[..bytes.len() - 4]), None);
        let newer = FlushMarks { written_at: 9, shards: vec![2], resolutions: Vec::new() };
        let all = [m, newer];
        assert_eq!(marks_of(&all, 2).map(|m| m.written_at), Some(9));
        assert_eq!(marks_of(&all, 4).map(|m| m.written_at), Some(7));
        assert!(marks_of(&all, 1).is_none());
    }
}
