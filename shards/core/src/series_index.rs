//! `SeriesIndex`: a shard's hash index from series hash to the series' position, on the core
//! that owns the shard.
//!
//! Why not hashbrown's `HashTable<u32>`: with it, at 100k series and more, `apply` would
//! spend most of its time waiting on three dependent cache misses per value (the control
//! bytes, the bucket, the series record), and hashbrown does not expose where a hash's probe
//! starts, so they cannot be prefetched a few values ahead. Here a slot is one
//! `u32` holding an 8-bit tag of the hash and the position: the slot a hash starts at is a
//! plain address (`prefetch`), the tag rules out most non-matching series without reading
//! them, and the table costs 4 bytes per slot (no separate control bytes).
//!
//! Linear probing, power-of-two size, at most 3/4 full; removal shifts later entries back
//! (no tombstones), asking the caller for the hash of an entry it moves.
//!
//! #[PerformanceCriticalPath]: `find` runs once per value.

/// Positions are 24 bits: at most this many series per shard.
pub(crate) const MAX_SERIES_PER_SHARD: usize = (1 << 24) - 1;

const EMPTY: u32 = 0;

/// A successful probe reads about 2.5 slots at 3/4 load: `prefetch` also loads the line
/// holding the slot this far past home.
const PROBE_PREFETCH_SLOTS: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    /// 0 = empty; else `tag << 24 | (position + 1)`.
    slots: Vec<u32>,
    len: usize,
}

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 56) as u32
}

#[inline]
fn slot_value(hash: u64, pos: usize) -> u32 {
    tag(hash) << 24 | (pos as u32 + 1)
}

#[inline]
fn pos_of(slot: u32) -> usize {
    (slot & 0x00ff_ffff) as usize - 1
}

impl SeriesIndex {
    /// Bytes of the slot table.
    pub(crate) fn resident_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u32>()
    }
}

impl SeriesIndex {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// The first position at or after probe step `from` whose tag matches `hash`, and the
    /// step after it; reads only the slots.
    #[inline]
    fn next_candidate(&self, hash: u64, from: usize) -> Option<(usize, usize)> {
        let (mask, t) = (self.mask(), tag(hash));
        let mut i = from;
        loop {
            // `i` is masked, so inside a non-empty table; an empty one has no slot 0.
            let slot = *self.slots.get(i)?;
            if slot == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
            if slot >> 24 == t {
                return Some((pos_of(slot), i));
            }
        }
    }

    /// The position of the entry with `hash` for which `eq(position)` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&usize) -> bool) -> Option<usize> {
        let mut step = self.home(hash);
        loop {
            let (pos, next) = self.next_candidate(hash, step)?;
            if eq(&pos) {
                return Some(pos);
            }
            step = next;
        }
    }

    /// Asks the CPU to load the slots where `hash`'s probe starts: the home slot's cache line
    /// and, when the probe's first few slots run into the next line, that one too.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        // Addresses only (a prefetch reads nothing and never faults), so no bounds checks: the
        // far slot of a run that wraps is past the table's end, a line the probe may not need.
        let home = self.slots.as_ptr().wrapping_add(self.home(hash));
        let far = home.wrapping_add(PROBE_PREFETCH_SLOTS);
        crate::paged::prefetch_address(home.cast());
        crate::paged::prefetch_address(far.cast());
    }

    /// The first position whose tag matches `hash`, reading only the slots (which `prefetch`
    /// should have loaded): for prefetching the series record. It is the series itself unless
    /// a tag collides (1 in 256 per slot passed). Probing on to the empty slot that ends the
    /// run would read about 8 slots at 3/4 load, often into a cache line not prefetched.
    #[inline]
    pub(crate) fn first_candidate(&self, hash: u64) -> Option<usize> {
        self.next_candidate(hash, self.home(hash)).map(|(pos, _)| pos)
    }

    /// Adds `pos` under `hash` (not present yet); `hash_of(position)` gives the hash of any
    /// entry, for growing. The caller keeps positions below `MAX_SERIES_PER_SHARD`.
    pub(crate) fn insert(&mut self, hash: u64, pos: usize, hash_of: impl Fn(usize) -> u64) {
        debug_assert!(pos < MAX_SERIES_PER_SHARD);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(&hash_of);
        }
        self.place(slot_value(hash, pos), hash);
        self.len += 1;
    }

    fn place(&mut self, value: u32, hash: u64) {
        let mask = self.mask();
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = value;
    }

    fn grow(&mut self, hash_of: &impl Fn(usize) -> u64) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(slot, hash_of(pos_of(slot)));
        }
    }

    /// The slot holding position `pos` under `hash`.
    fn slot_of(&self, hash: u64, pos: usize) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                s if pos_of(s) == pos => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Removes position `pos` (stored under `hash`), shifting later entries of the run back
    /// so that no probe stops early; `hash_of(position)` gives their hashes.
    pub(crate) fn remove(&mut self, hash: u64, pos: usize, hash_of: impl Fn(usize) -> u64) {
        let Some(mut hole) = self.slot_of(hash, pos) else { return };
        let mask = self.mask();
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut i = (hole + 1) & mask;
        while self.slots[i] != EMPTY {
            let home = self.home(hash_of(pos_of(self.slots[i])));
            // The entry at `i` may move to `hole` if its home is not cyclically in (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[i];
                self.slots[i] = EMPTY;
                hole = i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry for position `from` (under `hash`) now points at position `to`.
    pub(crate) fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        if let Some(i) = self.slot_of(hash, from) {
            self.slots[i] = slot_value(hash, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a model, with hashes that collide a lot (few distinct homes and tags), so
        /// that runs are long and wrap around the end of the table: every live position stays
        /// findable under its hash after any mix of inserts and removals, and removed ones are
        /// gone.
        #[test]
        fn finds_every_live_entry(ops in prop::collection::vec((any::<bool>(), 0u64..40, 0usize..64), 1..400)) {
            // Position p was inserted with hash hashes[p]; `live` says which are present.
            let mut hashes: Vec<u64> = Vec::new();
            let mut live: Vec<bool> = Vec::new();
            let mut index = SeriesIndex::default();
            for (insert, h, victim) in ops {
                // Homes from the low bits (few of them), tags from the top byte (two of them).
                let hash = (h % 5) | ((h % 2) << 56) | (h << 8);
                if insert {
                    let pos = hashes.len();
                    hashes.push(hash);
                    live.push(true);
                    index.insert(hash, pos, |p| hashes[p]);
                } else if let Some(pos) = (0..live.len()).map(|i| (i + victim) % live.len()).find(|&p| live[p]) {
                    index.remove(hashes[pos], pos, |p| hashes[p]);
                    live[pos] = false;
                }
                for (pos, &hash) in hashes.iter().enumerate() {
                    let found = index.find(hash, |&p| p == pos);
                    prop_assert_eq!(found.is_some(), live[pos], "position {} hash {:#x}", pos, hash);
                }
                prop_assert_eq!(index.len, live.iter().filter(|l| **l).count());
            }
        }
    }
}
