//! The process allocator: mimalloc, told to give freed memory back to the OS at once.
//!
//! mimalloc (v3, as the `mimalloc` crate builds it) holds freed pages for `purge_delay` (1 s)
//! and purges them only when the thread that owns them next allocates or frees. A shard core
//! allocates almost nothing once its series exist (no allocation per value), so what it freed while growing its tables, or
//! while a flush round's batches were in flight, stayed resident: at 1M counter series,
//! 17 MB before the first flush and 55 MB after flush rounds (`bench/memory.sh`). Purging at
//! once costs an `madvise` per freed run of pages, which only growth and flush rounds pay.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Frees what other threads have freed into this thread's heap and purges its empty pages.
/// A shard core calls it after each flush round: the sink threads free the flush batches the
/// core's pool had no room for, and mimalloc only reclaims those on the owning thread.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; `false` collects without forcing.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
