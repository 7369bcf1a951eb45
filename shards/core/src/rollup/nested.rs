//! Nested rollups: a pipeline with several rollup ops. The first rollup's target carries the
//! rest of the pipeline (the transformations after it, then the next rollup), so the rolled-up
//! series, once flushed, forwards again one forward count further. A core target names the
//! next one ([`RollupTarget::next`](super::RollupTarget)); a batch rollup names the next
//! rollup of its batch. Chains are at most [`MAX_ROLLUP_DEPTH`] long. Same core as the
//! [`RollupTargets`] they read.

use super::RollupTargets;
use crate::aggregation::MetricType;
use crate::batch::{ElemSpec, NO_ROLLUP, RollupRef, SampleBatch};
use crate::pipeline::MAX_ROLLUP_DEPTH;
use crate::policy::StoragePolicy;
use crate::shard_map::same_id;
use crate::time::UnixNanos;

/// The core target for rollup `r` of `batch` and the rollups after it, interned; `None` if
/// one is refused or the chain is deeper than [`MAX_ROLLUP_DEPTH`].
pub(crate) fn intern_chain(
    targets: &mut RollupTargets,
    batch: &SampleBatch,
    r: RollupRef,
    depth: usize,
) -> Option<RollupRef> {
    if depth >= MAX_ROLLUP_DEPTH {
        return None;
    }
    let rollup = batch.rollup(r)?;
    let next = match rollup.next {
        NO_ROLLUP => NO_ROLLUP,
        n => intern_chain(targets, batch, n, depth + 1)?,
    };
    targets.intern_with(batch.rollup_id(rollup), rollup.aggs, rollup.transforms, rollup.resend, next)
}

/// Whether rollup `b` of `batch` is core target `c`, and so are the rollups after them.
pub(crate) fn same_chain(
    batch: &SampleBatch,
    b: RollupRef,
    targets: &RollupTargets,
    c: RollupRef,
    depth: usize,
) -> bool {
    let (Some(x), Some(t)) = (batch.rollup(b), targets.get(c)) else {
        return false;
    };
    let same =
        x.aggs == t.aggs && x.transforms == t.transforms && x.resend == t.resend && same_id(batch.rollup_id(x), t.id);
    same && match (x.next, t.next) {
        (NO_ROLLUP, NO_ROLLUP) => true,
        (NO_ROLLUP, _) | (_, NO_ROLLUP) => false,
        (bn, cn) => depth + 1 < MAX_ROLLUP_DEPTH && same_chain(batch, bn, targets, cn, depth + 1),
    }
}

/// Copies core target `r` and the ones after it into `batch` as its rollups.
fn copy_chain(batch: &mut SampleBatch, targets: &RollupTargets, r: RollupRef, depth: usize) -> RollupRef {
    let Some(t) = targets.get(r).filter(|_| depth < MAX_ROLLUP_DEPTH) else {
        return NO_ROLLUP;
    };
    let next = if t.next == NO_ROLLUP { NO_ROLLUP } else { copy_chain(batch, targets, t.next, depth + 1) };
    batch.add_nested_rollup(t.id, t.aggs, t.transforms, t.resend, next)
}

/// What a source shard's flush forwards to one window of a target that rolls up again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NestedGroup {
    pub(crate) target: RollupRef,
    pub(crate) policy: StoragePolicy,
    pub(crate) forwarded: u8,
    pub(crate) metric_type: MetricType,
    pub(crate) time: UnixNanos,
    pub(crate) shard: u32,
    pub(crate) hash: u64,
}

/// Seals `values` for the nested target of `g` into `sealed`, gathered from the source shards
/// `runs` names (see [`SampleBatch::push_gathered`]): its spec names the rest of the chain
/// (rare: not cached as the outbox's plain specs are).
pub(crate) fn seal_nested(
    sealed: &mut SampleBatch,
    targets: &RollupTargets,
    g: NestedGroup,
    values: &[f64],
    runs: &[(u32, u32)],
) {
    let Some(t) = targets.get(g.target) else {
        return;
    };
    let next = copy_chain(sealed, targets, t.next, 1);
    let elem =
        ElemSpec { aggs: t.aggs, policy: g.policy, transforms: t.transforms, rollup: next, forwarded: g.forwarded };
    let spec = sealed.add_spec(&[elem]);
    sealed.push_gathered(g.shard, g.hash, t.id, g.metric_type, g.time, values, spec, g.forwarded, runs);
    if t.resend {
        sealed.mark_last_resend();
    }
}

/// Marks every target reachable from one `named` through `next` (kept by a prune).
pub(crate) fn mark_chains(targets: &RollupTargets, named: &mut [bool]) {
    for r in 1..named.len() {
        if !named[r] {
            continue;
        }
        let mut at = targets.get(r as RollupRef).map_or(NO_ROLLUP, |t| t.next);
        let mut depth = 0;
        while at != NO_ROLLUP && depth < MAX_ROLLUP_DEPTH {
            if let Some(n) = named.get_mut(at as usize) {
                *n = true;
            }
            at = targets.get(at).map_or(NO_ROLLUP, |t| t.next);
            depth += 1;
        }
    }
}
