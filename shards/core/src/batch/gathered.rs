//! Gathered forwarded samples: one sample carrying the values several source shards forwarded
//! to one window of a rolled-up series in one flush round of a core, in runs, one per source
//! shard (each its own (source shard, version 0) for the receiver's de-duplication). Part of
//! [`SampleBatch`]; built by the core whose flush gathered them, read by whoever reads the batch.

use super::{ForwardedFrom, MetricType, SampleBatch, SpecRef, UnixNanos};

impl SampleBatch {
    /// Appends a forwarded value list of the window at `time` of the series `id`, gathered from
    /// the source shards `runs` names: (source shard, how many of `values` it sent), in the
    /// order of `values`, each source shard once, version 0. One run is a plain forwarded
    /// sample ([`SampleBatch::push_forwarded`]).
    #[allow(clippy::too_many_arguments)]
    pub fn push_gathered(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        time: UnixNanos,
        values: &[f64],
        spec: SpecRef,
        times: u8,
        runs: &[(u32, u32)],
    ) {
        let Some(&(first, _)) = runs.first() else {
            return;
        };
        let from = ForwardedFrom { source: first, version: 0, times };
        self.push_forwarded(shard, hash, id, metric_type, time, values, spec, from);
        if runs.len() > 1 {
            self.mark_last_gathered(runs);
        }
    }

    pub(super) fn mark_last_gathered(&mut self, runs: &[(u32, u32)]) {
        let start = self.gathered_runs.len() as u32;
        self.gathered_runs.extend_from_slice(runs);
        self.gathered.push((self.samples.len() as u32 - 1, start, runs.len() as u32));
    }

    /// The source shards of the gathered sample at `index` and how many of its values each
    /// sent (`None` for a sample from one source: see [`SampleBatch::forwarded_from`]).
    pub fn gathered_runs(&self, index: usize) -> Option<&[(u32, u32)]> {
        if self.gathered.is_empty() {
            return None;
        }
        let at = self.gathered.binary_search_by_key(&(index as u32), |(i, _, _)| *i).ok()?;
        let (_, start, len) = self.gathered[at];
        self.gathered_runs.get(start as usize..(start + len) as usize)
    }

    /// Every (origin, values) the forwarded sample at `index` carries: one per source shard
    /// (what a peer is sent, as M3 forwards them). Empty if it is not forwarded.
    pub fn forwarded_parts(&self, index: usize) -> impl Iterator<Item = (ForwardedFrom, &[f64])> {
        let sample = self.samples.get(index).filter(|s| s.forwarded());
        let from = sample.and_then(|_| self.forwarded_from(index));
        let values = sample.map_or(&[][..], |s| self.timer_values_of(s));
        let runs = self.gathered_runs(index);
        let single = match (from, runs) {
            (Some(from), None) => Some((from, values)),
            _ => None,
        };
        let times = from.map_or(0, |f| f.times);
        let gathered = runs.unwrap_or_default().iter().scan(0usize, move |at, &(source, n)| {
            let part = values.get(*at..*at + n as usize).unwrap_or_default();
            *at += n as usize;
            Some((ForwardedFrom { source, version: 0, times }, part))
        });
        single.into_iter().chain(gathered)
    }
}
