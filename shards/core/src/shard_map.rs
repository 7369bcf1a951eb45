//! `ShardMap`: the series of one shard, on the core that owns the shard.
//!
//! Series live densely in a `Vec`; the hash table holds only their 4-byte positions. A table
//! that stored whole series would, with hashbrown's power-of-two sizing, leave up to half of
//! its ~100-byte slots empty; empty slots of positions cost 5 bytes. Removal swaps the last
//! series into the hole and repoints its table entry. Hashes are not stored: they are
//! recomputed from (type, id) when the table grows or a series is removed, both rare.
//!
//! #[PerformanceCriticalPath]: `find_or_insert` runs once per value.

use hashbrown::HashTable;

use crate::aggregation::{MetricType, series_hash};
use crate::series::Series;

#[derive(Debug, Default)]
pub(crate) struct ShardMap {
    index: HashTable<u32>,
    series: Vec<Series>,
}

fn hash_of(s: &Series) -> u64 {
    series_hash(s.metric_type, &s.id)
}

impl ShardMap {
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// The series (`metric_type`, `id`) whose map hash is `hash`, created if absent; the
    /// bool says whether it was created.
    #[inline]
    pub(crate) fn find_or_insert(&mut self, hash: u64, metric_type: MetricType, id: &[u8]) -> (&mut Series, bool) {
        let series = &self.series;
        let found = self.index.find(hash, |&i| {
            let s = &series[i as usize];
            s.metric_type == metric_type && *s.id == *id
        });
        match found {
            Some(&i) => (&mut self.series[i as usize], false),
            None => {
                let i = self.series.len();
                self.series.push(Series::new(id, metric_type));
                let series = &self.series;
                self.index.insert_unique(hash, i as u32, |&j| hash_of(&series[j as usize]));
                (&mut self.series[i], true)
            }
        }
    }

    /// Keeps the series for which `keep` returns true; returns how many were removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&mut Series) -> bool) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.series.len() {
            if keep(&mut self.series[i]) {
                i += 1;
                continue;
            }
            self.remove_at(i);
            removed += 1;
            // The series moved into `i` has not been looked at yet.
        }
        removed
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.series.len() - 1;
        let h = hash_of(&self.series[i]);
        if let Ok(entry) = self.index.find_entry(h, |&j| j as usize == i) {
            entry.remove();
        }
        if i != last {
            let h = hash_of(&self.series[last]);
            if let Some(slot) = self.index.find_mut(h, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        self.series.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a std HashMap model: inserts find what was inserted, removals keep every
        /// other series findable under its own id.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((0u8..3, 0u16..200, any::<bool>()), 1..600)) {
            let mut map = ShardMap::default();
            let mut model: HashMap<(u8, Vec<u8>), u32> = HashMap::new();
            for (t, key, remove_odd) in ops {
                let metric_type = [MetricType::Counter, MetricType::Gauge, MetricType::Timer][t as usize];
                let id = format!("s{key}").into_bytes();
                let (s, created) = map.find_or_insert(series_hash(metric_type, &id), metric_type, &id);
                s.last_write_secs += 1;
                let count = model.entry((t, id.clone())).or_insert(0);
                prop_assert_eq!(created, *count == 0);
                *count += 1;
                prop_assert_eq!(s.last_write_secs, *count);
                if remove_odd {
                    map.retain(|s| s.last_write_secs % 2 == 0);
                    model.retain(|_, c| *c % 2 == 0);
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for ((t, id), count) in &model {
                let metric_type = [MetricType::Counter, MetricType::Gauge, MetricType::Timer][*t as usize];
                let (s, created) = map.find_or_insert(series_hash(metric_type, id), metric_type, id);
                prop_assert!(!created);
                prop_assert_eq!(s.last_write_secs, *count);
            }
        }
    }
}
