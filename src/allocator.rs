//! The process allocator: mimalloc (set as the global allocator in `src/main.rs`), told to
//! give freed memory back to the OS at once.
//!
//! mimalloc (v3, as the `mimalloc` crate builds it) holds freed pages for `purge_delay` (1 s)
//! and purges them only when the thread that owns them next allocates or frees. A shard core
//! allocates almost nothing once its series exist (no allocation per value), so what it
//! freed while growing its tables, or while a flush round's batches were in flight, would
//! stay resident (`bench/memory.sh` measures it). Purging at once costs an `madvise` per
//! freed run of pages, which only growth and flush rounds pay. Set once on the main thread
//! before any other starts; `release_freed_memory` runs on each shard core after its flush
//! rounds.

/// `mi_option_purge_delay` in `mi_option_t` (the same index in mimalloc v2 and v3;
/// libmimalloc-sys defines no constant for it). Checked against its documented default
/// before it is set.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;

/// Sets mimalloc's purge delay to 0 unless `MIMALLOC_PURGE_DELAY` chose one.
pub fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // Index 15 is within `mi_option_t` in every mimalloc this crate builds.
    // SAFETY: reading and setting an option has no precondition beyond a valid index.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

/// Turns transparent huge pages off for this process unless `MIMALLOC_ALLOW_THP` chose.
///
/// mimalloc (v3) asks for huge pages on its arenas (`MADV_HUGEPAGE`). A purge then returns
/// 64 KiB runs inside a 2 MiB huge page, and khugepaged, which by default collapses a range
/// with even one page present (`max_ptes_none` 511), fills the holes with zeroed pages again:
/// memory freed after each flush round came back as resident, 15–20 B per series at 1M
/// counter series, varying from run to run. Throughput was the same with and without (StatsD at 100k
/// series and m3msg at 1M series, alternating runs on the 2-CPU box; see `bench/README.md`).
/// mimalloc's own switch is read before `main` runs, so this sets the kernel's per-process
/// flag (`PR_SET_THP_DISABLE`) directly; it covers mappings made before as well as after.
pub fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and touches no user memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        // Before Linux 3.15; huge pages then stay as the system configures them.
        eprintln!("sheaf: could not turn transparent huge pages off: {}", std::io::Error::last_os_error());
    }
}

/// Frees what other threads have freed into this thread's heap and purges its empty pages.
/// A shard core calls it after each flush round: the sink threads free the flush batches the
/// core's pool had no room for, and mimalloc only reclaims those on the owning thread. The m3msg
/// sink calls it once everything is acked, for the frames it allocated and freed itself (the
/// JSON sink allocates nothing per value, so it has nothing to give back).
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; `false` collects without forcing.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
