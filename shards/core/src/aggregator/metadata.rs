//! Which of the core's specs a sample's metadata names: the default, the one its batch spec
//! was already resolved to, the spec its series last wrote with (when the metadata is the
//! same), or the batch spec interned (its rollups translated to the core's targets). Same
//! core as [`CoreAggregator`], inside `apply`; split from `aggregator.rs` by concept.
//!
//! #[PerformanceCriticalPath]: runs per value. An M3 coordinator sends a rolled-up value with
//! metadata of its own, so a batch may hold as many specs as values; comparing that metadata
//! with the series' (as M3 does per write) costs no hash, where interning hashes it twice.

use super::CoreAggregator;
use crate::batch::{DEFAULT_SPEC, ElemSpec, NO_ROLLUP, Sample, SampleBatch, SpecRef};
use crate::spec::SpecId;
use crate::time::UnixNanos;

impl CoreAggregator {
    /// The core's spec for the metadata of sample `s` of `batch`, whose series the prefetch
    /// expects at `hint`; `None` if the metadata is refused.
    #[inline]
    pub(super) fn resolve_spec(
        &mut self,
        batch: &SampleBatch,
        s: &Sample,
        hint: Option<usize>,
        now: UnixNanos,
    ) -> Option<SpecId> {
        if s.spec == DEFAULT_SPEC {
            return Some(0);
        }
        let i = s.spec as usize - 1;
        if let Some(&spec) = self.spec_cache.get(i)
            && spec != SpecId::MAX
        {
            return Some(spec);
        }
        if let Some(spec) = self.series_spec_if_same(batch, s, hint) {
            self.cache_spec(i, spec);
            return Some(spec);
        }
        self.intern_batch_spec(batch, s.spec, now)
    }

    /// The spec the series of `s` last wrote with, if the series is at `hint` and the batch
    /// spec of `s` is that spec's metadata.
    #[inline]
    fn series_spec_if_same(&self, batch: &SampleBatch, s: &Sample, hint: Option<usize>) -> Option<SpecId> {
        let map = &self.shards.get(s.shard() as usize)?.map;
        let spec = map.series_at(hint?, s.metric_type, batch.id(s))?.spec_id()?;
        let rollups = &self.rollups;
        let same_rollup = |b, c| crate::rollup::nested::same_chain(batch, b, rollups, c, 0);
        self.specs.is_spec_of(spec, batch.spec(s.spec), same_rollup).then_some(spec)
    }

    fn cache_spec(&mut self, i: usize, spec: SpecId) {
        if self.spec_cache.len() <= i {
            self.spec_cache.resize(i + 1, SpecId::MAX);
        }
        self.spec_cache[i] = spec;
    }

    /// Interns batch spec `r` (its rollups become the core's targets) and remembers it for
    /// the rest of the batch.
    fn intern_batch_spec(&mut self, batch: &SampleBatch, r: SpecRef, now: UnixNanos) -> Option<SpecId> {
        let known = self.specs.live_policy_count();
        let elems = batch.spec(r);
        let spec = if elems.iter().all(|e| e.rollup == NO_ROLLUP) {
            self.specs.intern(elems)?
        } else {
            // Batch rollup references become this core's rollup targets.
            self.translated.clear();
            for e in elems {
                let target = match e.rollup {
                    NO_ROLLUP => NO_ROLLUP,
                    r => crate::rollup::nested::intern_chain(&mut self.rollups, batch, r, 0)?,
                };
                self.translated.push(ElemSpec { rollup: target, ..*e });
            }
            self.specs.intern(&self.translated)?
        };
        if self.specs.live_policy_count() != known {
            self.track_resolutions();
            self.refresh_untimed_starts(now);
        }
        self.cache_spec(r as usize - 1, spec);
        Some(spec)
    }
}
