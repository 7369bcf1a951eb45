//! `Checkpointer`: one core's side of the shard checkpoints. It loads the checkpoints of the
//! shards the core owns before ingest starts, writes them every `checkpoint.interval` and at
//! shutdown, and writes the core's flush marks before each round emits.
//!
//! Lives on its shard core, shared through `Rc` by that core's flush task, its checkpoint
//! task and its command loop; no other thread touches it. The core serialises one shard at
//! a time (a `RefCell` borrow that ends before any `.await`); the file I/O, fsync included,
//! runs on the core's blocking thread (`spawn_blocking`, placed off the core's CPU by the
//! pool), one write in flight while the next shard is serialised.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::Semaphore;
use sheaf_shard_core::checkpoint::{ArchiveBuffer, FlushedCk, ShardCheckpoint};
use sheaf_shard_core::time::now_nanos;

use super::files::{self, FlushMarks, Loaded};
use super::write_job::{WriteDone, WriteJob};
use crate::core::{CoreState, IngestLifecycle};
use crate::stats::CheckpointStats;

pub(crate) struct Checkpointer {
    state: Rc<CoreState>,
    dir: PathBuf,
    interval: std::time::Duration,
    /// The shards this core owns (set by the load).
    owned: RefCell<Vec<u32>>,
    /// Per shard: the generation of its last checkpoint (loaded or written).
    generation: RefCell<Vec<u64>>,
    /// Per shard: a checkpoint file of it exists (so an emptied shard is written, not skipped).
    on_disk: RefCell<Vec<bool>>,
    /// Per shard: when its last checkpoint was written (loaded: when the loaded one was).
    written_at: RefCell<Vec<i64>>,
    /// Per shard: its file carries the marker it holds now (an idle shard is not rewritten).
    synced_on_disk: RefCell<Vec<bool>>,
    /// Writes start only once the load is done (an unloaded shard would be overwritten).
    loaded: Cell<bool>,
    /// One pass at a time (the periodic one, the final one).
    pass: Semaphore,
    /// Snapshots and archive buffers back from finished writes, reused so that a pass does
    /// not allocate (and fault in) a shard's worth of fresh memory for every shard.
    recycled: RefCell<Vec<(ShardCheckpoint, ArchiveBuffer)>>,
}

/// A write on the blocking thread.
type Pending = std::pin::Pin<Box<dyn Future<Output = WriteDone>>>;

impl Checkpointer {
    /// `None` when the pool has no `data_dir`.
    pub(crate) fn new(state: Rc<CoreState>) -> Option<Self> {
        let config = state.config.checkpoint.clone()?;
        let n = state.config.num_shards as usize;
        Some(Self {
            state,
            dir: config.dir,
            interval: config.interval,
            owned: RefCell::default(),
            generation: RefCell::new(vec![0; n]),
            on_disk: RefCell::new(vec![false; n]),
            written_at: RefCell::new(vec![0; n]),
            synced_on_disk: RefCell::new(vec![false; n]),
            loaded: Cell::new(false),
            pass: Semaphore::new(1),
            recycled: RefCell::default(),
        })
    }

    fn with_stats(&self, f: impl FnOnce(&mut CheckpointStats)) {
        f(&mut self.state.stats.borrow_mut().checkpoint);
    }

    /// Loads the checkpoint of every shard `owners` gives this core, dropping the windows the
    /// flush marks say were emitted; a bad file is counted, moved aside, and its shard starts
    /// empty. Returns what was loaded.
    pub(crate) async fn load(&self, owners: &[u16]) -> CheckpointStats {
        let index = self.state.index;
        let mine: Vec<u32> =
            owners.iter().enumerate().filter(|(_, o)| usize::from(**o) == index).map(|(s, _)| s as u32).collect();
        *self.owned.borrow_mut() = mine.clone();
        let dir = self.dir.clone();
        let marks = glommio::executor().spawn_blocking(move || files::read_all_marks(&dir)).await;
        let loading = Instant::now();
        let num_shards = self.state.config.num_shards;
        // The next shard is read and decoded on the blocking thread while this one is restored.
        let read = |shard: u32| {
            let dir = self.dir.clone();
            glommio::executor().spawn_blocking(move || files::load_shard(&dir, shard, num_shards))
        };
        let mut next = mine.first().map(|&s| read(s));
        for (i, &shard) in mine.iter().enumerate() {
            let Some(reading) = next.take() else { break };
            let loaded = reading.await;
            next = mine.get(i + 1).map(|&s| read(s));
            match loaded {
                Loaded::Missing => {}
                Loaded::Failed { reason, error, aside } => self.load_failed(shard, reason, &error, aside),
                Loaded::Ok(b) => {
                    let (header, mut ck) = *b;
                    let marks = files::marks_of(&marks, shard);
                    if let Some(m) = marks {
                        merge_marks(&mut ck, m);
                    }
                    let restored = {
                        let mut agg = self.state.aggregator.borrow_mut();
                        let restored = agg.restore_shard(shard, &ck);
                        if let (Ok(_), Some(m)) = (&restored, marks) {
                            let now = now_nanos();
                            for &(r, untimed, timed) in &m.resolutions {
                                agg.discard_shard(shard, r, untimed, timed, &[], now);
                            }
                        }
                        restored
                    };
                    match restored {
                        Ok(series) => {
                            self.generation.borrow_mut()[shard as usize] = header.generation;
                            self.on_disk.borrow_mut()[shard as usize] = true;
                            self.written_at.borrow_mut()[shard as usize] = header.written_at;
                            self.synced_on_disk.borrow_mut()[shard as usize] = ck.sync.is_some();
                            self.with_stats(|s| s.loaded(series as u64, header.written_at, header.generation));
                        }
                        Err(e) => {
                            let path = files::shard_path(&self.dir, shard);
                            let aside = glommio::executor().spawn_blocking(move || files::move_aside(&path).ok()).await;
                            self.load_failed(shard, e.reason(), &e.to_string(), aside);
                        }
                    }
                }
            }
            glommio::yield_if_needed().await;
        }
        self.loaded.set(true);
        self.with_stats(|s| {
            s.loaded_at = now_nanos();
            s.load_ns = loading.elapsed().as_nanos() as u64;
        });
        self.state.publish_stats();
        self.state.stats.borrow().checkpoint.clone()
    }

    fn load_failed(&self, shard: u32, reason: &'static str, error: &str, aside: Option<PathBuf>) {
        tracing::error!(
            core = self.state.index,
            shard,
            reason,
            error,
            moved_to = ?aside,
            "checkpoint not loaded; the shard starts empty"
        );
        self.with_stats(|s| s.load_failed(reason));
    }

    /// Writes the checkpoint of every shard this core owns (those it holds, and those it no
    /// longer holds but has a file of), one shard at a time, and waits for the last write.
    pub(crate) async fn write_all(&self) {
        if !self.loaded.get() {
            return;
        }
        let Ok(_pass) = self.pass.acquire_permit(1).await else { return };
        let started_at = now_nanos();
        let owned = self.owned.borrow().clone();
        let mut pending: Option<Pending> = None;
        let mut failed = false;
        for shard in owned {
            let began = Instant::now();
            if self.synced_on_disk.borrow()[shard as usize]
                && self.state.aggregator.borrow().shard_sync(shard).is_some()
            {
                continue;
            }
            let (mut snapshot, buffer) = self.recycled.borrow_mut().pop().unwrap_or_default();
            let held = self.state.aggregator.borrow().checkpoint_shard_into(shard, &mut snapshot);
            if !held && !self.on_disk.borrow()[shard as usize] {
                self.recycled.borrow_mut().push((snapshot, buffer));
                continue;
            }
            let generation = self.generation.borrow()[shard as usize] + 1;
            self.synced_on_disk.borrow_mut()[shard as usize] = snapshot.sync.is_some();
            self.generation.borrow_mut()[shard as usize] = generation;
            self.written_at.borrow_mut()[shard as usize] = started_at;
            let job = self.job(shard, generation, now_nanos(), snapshot, buffer, began);
            let write = glommio::executor().spawn_blocking(move || job.run());
            if let Some(previous) = pending.replace(Box::pin(write)) {
                failed |= !self.finished(previous.await);
            }
            glommio::yield_if_needed().await;
        }
        if let Some(last) = pending {
            failed |= !self.finished(last.await);
        }
        if !failed {
            self.with_stats(|s| s.last_written_at = started_at);
        }
        self.state.publish_stats();
    }

    /// Writes `ck` as the checkpoint of `shard` (an idle shard with its marker) and waits for
    /// the write; false if it failed or the load is not done.
    pub(crate) async fn write_shard(&self, shard: u32, ck: &ShardCheckpoint) -> bool {
        if !self.loaded.get() {
            return false;
        }
        let Ok(_pass) = self.pass.acquire_permit(1).await else { return false };
        let began = Instant::now();
        let written_at = now_nanos();
        let generation = self.generation.borrow()[shard as usize] + 1;
        self.generation.borrow_mut()[shard as usize] = generation;
        self.written_at.borrow_mut()[shard as usize] = written_at;
        let buffer = self.recycled.borrow_mut().pop().map(|(_, b)| b).unwrap_or_default();
        let job = self.job(shard, generation, written_at, ck.clone(), buffer, began);
        let ok = self.finished(glommio::executor().spawn_blocking(move || job.run()).await);
        self.synced_on_disk.borrow_mut()[shard as usize] = ok && ck.sync.is_some();
        ok
    }

    fn job(
        &self,
        shard: u32,
        generation: u64,
        written_at: i64,
        snapshot: ShardCheckpoint,
        buffer: ArchiveBuffer,
        began: Instant,
    ) -> WriteJob {
        let path = files::shard_path(&self.dir, shard);
        let num_shards = self.state.config.num_shards;
        WriteJob { shard, num_shards, generation, written_at, path, snapshot, buffer, began }
    }

    /// Counts a finished write and keeps its snapshot and buffer; false if it failed.
    fn finished(&self, done: WriteDone) -> bool {
        let WriteDone { shard, len, result, began, snapshot, buffer } = done;
        let mut recycled = self.recycled.borrow_mut();
        if recycled.len() < 2 {
            recycled.push((snapshot, buffer));
        }
        drop(recycled);
        let elapsed = began.elapsed().as_nanos() as u64;
        match result {
            Ok(()) => {
                self.on_disk.borrow_mut()[shard as usize] = true;
                let generation = self.generation.borrow()[shard as usize];
                self.with_stats(|s| {
                    s.writes += 1;
                    s.bytes += len as u64;
                    s.write_ns_total += elapsed;
                    s.last_write_ns = elapsed;
                    s.generation = s.generation.max(generation);
                });
                true
            }
            Err(error) => {
                tracing::error!(core = self.state.index, shard, %error, "checkpoint not written");
                self.with_stats(|s| s.write_failures += 1);
                false
            }
        }
    }

    /// The generation and write time of `shard`'s last checkpoint (0 for none).
    pub(crate) fn shard_info(&self, shard: u32) -> (u64, i64) {
        let i = shard as usize;
        (self.generation.borrow().get(i).copied().unwrap_or(0), self.written_at.borrow().get(i).copied().unwrap_or(0))
    }

    /// Persists how far this core's rounds have reached (after `begin_flush`, before the round
    /// emits): after a crash, the windows emitted since the last checkpoint are dropped at
    /// load rather than emitted again.
    pub(crate) async fn write_marks(&self) {
        if !self.loaded.get() {
            return;
        }
        let resolutions = {
            let agg = self.state.aggregator.borrow();
            agg.resolutions()
                .map(|r| {
                    let (untimed, timed) = agg.flushed_through(r);
                    (r, untimed, timed)
                })
                .collect()
        };
        let marks = FlushMarks { written_at: now_nanos(), shards: self.owned.borrow().clone(), resolutions };
        let path = files::marks_path(&self.dir, self.state.index);
        let written = glommio::executor().spawn_blocking(move || files::write_atomic(&path, &marks.encode())).await;
        if let Err(e) = written {
            tracing::error!(core = self.state.index, error = %e, "flush marks not written");
            self.with_stats(|s| s.marks_failures += 1);
        }
    }
}

/// Raises the checkpoint's flush marks to `marks` (so that restoring it raises the core's).
fn merge_marks(ck: &mut ShardCheckpoint, marks: &FlushMarks) {
    for &(resolution, untimed, timed) in &marks.resolutions {
        match ck.flushed.iter_mut().find(|f| f.resolution == resolution) {
            Some(f) => {
                f.untimed = f.untimed.max(untimed);
                f.timed = f.timed.max(timed);
            }
            None => ck.flushed.push(FlushedCk { resolution, untimed, timed }),
        }
    }
}

/// Writes the core's checkpoints every `checkpoint.interval` until ingest stops (the final
/// pass is the `Checkpoint` command's).
pub(crate) async fn run(checkpointer: Rc<Checkpointer>, lifecycle: Rc<IngestLifecycle>) {
    while !lifecycle.sleep_unless_stopped(checkpointer.interval).await {
        checkpointer.write_all().await;
    }
}
