//! A shard of a `CoreAggregator` to and from its checkpoint ([`ShardCheckpoint`]). Same core
//! as [`CoreAggregator`]; split from `aggregator.rs` by concept.
//!
//! A checkpoint names no id of the core that wrote it: each element's policy slot, the
//! metadata of its series and the rules' choice are written out in full, and interned again
//! on the core that loads it (which may be another core, with other ids). A checkpoint is
//! checked as a whole before anything is loaded: a bad one leaves the shard empty.

use super::{CoreAggregator, FlushedUntil, ShardSync};
use crate::aggregation::{AggTypes, MetricType, series_hash};
use crate::batch::{ElemSpec, NO_ROLLUP};
use crate::checkpoint::{
    CheckpointError, ElemCk, ElemSpecCk, FlushedCk, PolicyCk, RollupTargetCk, RuleCk, SeriesCk, ShardCheckpoint,
    SlotCk, SyncCk, TransformStatesCk, WindowCk, merge_at_cut, restore_state, snapshot_state, valid_state,
};
use crate::policy::StoragePolicy;
use crate::rollup::RollupTargets;
use crate::series::{DROPPED_BY_RULE, Elem, Elems, MAX_ID_LEN};
use crate::spec::{PolicyIdx, SpecId, SpecTable};
use crate::time::{UnixNanos, now_nanos};
use crate::transform::{Datapoint, TransformChain, TransformState};
use crate::transform_states::ElemAt;
use crate::window::WindowKind;

fn policy_ck(p: StoragePolicy) -> PolicyCk {
    PolicyCk { resolution: p.resolution_nanos, retention: p.retention_nanos }
}

fn slot_ck(specs: &SpecTable, idx: PolicyIdx) -> SlotCk {
    let (policy, transforms, forwarded, rollup_ordinal) = specs.slot_parts(idx);
    SlotCk { policy: policy_ck(policy), transforms: transforms.to_bits(), forwarded, rollup_ordinal }
}

/// The metadata list of `spec`, written out.
fn spec_ck(specs: &SpecTable, rollups: &RollupTargets, spec: SpecId) -> Vec<ElemSpecCk> {
    specs
        .keys(spec)
        .iter()
        .map(|k| {
            let (policy, transforms, forwarded, _) = specs.slot_parts(k.policy);
            ElemSpecCk {
                aggs: k.aggs.to_m3_id(),
                policy: policy_ck(policy),
                transforms: transforms.to_bits(),
                forwarded,
                rollup: rollups.get(k.rollup).map(|t| RollupTargetCk {
                    id: t.id.to_vec(),
                    aggs: t.aggs.to_m3_id(),
                    transforms: t.transforms.to_bits() | if t.resend { RESEND_BIT } else { 0 },
                }),
            }
        })
        .collect()
}

fn metric_type_of(t: u8) -> Result<MetricType, CheckpointError> {
    MetricType::ALL.get(usize::from(t)).copied().ok_or(CheckpointError::Content("metric type"))
}

fn aggs_of(bits: u64) -> Result<AggTypes, CheckpointError> {
    let aggs = AggTypes::from_m3_id(bits);
    if aggs.to_m3_id() == bits { Ok(aggs) } else { Err(CheckpointError::Content("aggregation set")) }
}

fn policy_of(p: &PolicyCk) -> Result<StoragePolicy, CheckpointError> {
    StoragePolicy::new(p.resolution, p.retention).map_err(|_| CheckpointError::Content("storage policy"))
}

/// Bit 31 of a written-out rollup target's `transforms`: M3's `resend_enabled` (a chain packs
/// into the 31 bits below it, so checkpoints without the bit read as before).
const RESEND_BIT: u32 = 1 << 31;

fn chain_of(bits: u32) -> Result<TransformChain, CheckpointError> {
    TransformChain::from_bits(bits).ok_or(CheckpointError::Content("transformation chain"))
}

fn check_spec(list: &[ElemSpecCk]) -> Result<(), CheckpointError> {
    for e in list {
        aggs_of(e.aggs)?;
        policy_of(&e.policy)?;
        chain_of(e.transforms)?;
        if let Some(r) = &e.rollup {
            aggs_of(r.aggs)?;
            chain_of(r.transforms & !RESEND_BIT)?;
            if r.id.len() > MAX_ID_LEN {
                return Err(CheckpointError::Content("rollup id length"));
            }
        }
    }
    Ok(())
}

fn check_slot(s: &SlotCk) -> Result<(), CheckpointError> {
    policy_of(&s.policy)?;
    chain_of(s.transforms)?;
    Ok(())
}

fn check_series(s: &SeriesCk) -> Result<(), CheckpointError> {
    let metric_type = metric_type_of(s.metric_type)?;
    if s.id.len() > MAX_ID_LEN {
        return Err(CheckpointError::Content("series id length"));
    }
    if let Some(spec) = &s.spec {
        check_spec(spec)?;
    }
    if let RuleCk::Spec(spec) = &s.rule {
        check_spec(spec)?;
    }
    for e in &s.elems {
        check_slot(&e.slot)?;
        let aggs = aggs_of(e.aggs)?;
        let kind = WindowKind::new(metric_type, aggs.resolve(metric_type), e.timed);
        if !e.windows.windows(2).all(|w| w[0].start < w[1].start) {
            return Err(CheckpointError::Content("window order"));
        }
        if !e.windows.iter().all(|w| w.start > UnixNanos::MIN && valid_state(kind, &w.state)) {
            return Err(CheckpointError::Content("window state"));
        }
    }
    Ok(())
}

fn check_transform_states(t: &TransformStatesCk) -> Result<(), CheckpointError> {
    let metric_type = metric_type_of(t.metric_type)?;
    check_slot(&t.slot)?;
    let (aggs, chain) = (aggs_of(t.aggs)?, chain_of(t.chain)?);
    if t.states.len() != chain.stateful_len() * aggs.resolve(metric_type).len() as usize {
        return Err(CheckpointError::Content("transformation states"));
    }
    Ok(())
}

impl CoreAggregator {
    /// The checkpoint of `shard`: every series with its open and unflushed windows, and how far
    /// this core has flushed each resolution. `None` for a shard this core does not hold.
    pub fn checkpoint_shard(&self, shard: u32) -> Option<ShardCheckpoint> {
        let mut ck = ShardCheckpoint::default();
        self.checkpoint_shard_into(shard, &mut ck).then_some(ck)
    }

    /// `checkpoint_shard` into `out`, whose buffers are reused (a core writing its shards one
    /// after the other keeps one and saves allocating a shard's worth each time); false (and
    /// `out` emptied) for a shard this core does not hold.
    pub fn checkpoint_shard_into(&self, shard: u32, out: &mut ShardCheckpoint) -> bool {
        out.series.clear();
        out.flushed.clear();
        out.transform_states.clear();
        out.sync = None;
        let Some(slot) = self.shards.get(shard as usize).filter(|slot| slot.held) else { return false };
        let (specs, rollups) = (&self.specs, &self.rollups);
        let series = &mut out.series;
        series.reserve(slot.map.len());
        slot.map.for_each_with_id(|s, id, base| {
            let elems = s
                .elems
                .iter()
                .map(|e| {
                    let kind = e.kind();
                    let windows = e
                        .windows()
                        // SAFETY: every state of an element is live and of its kind.
                        .map(|(start, state)| WindowCk { start, state: unsafe { snapshot_state(kind, state) } })
                        .collect();
                    ElemCk { slot: slot_ck(specs, e.policy), aggs: e.aggs.to_m3_id(), timed: e.timed, windows }
                })
                .collect();
            let rule = match s.rule_spec {
                0 => RuleCk::Default,
                DROPPED_BY_RULE => RuleCk::Dropped,
                spec => RuleCk::Spec(spec_ck(specs, rollups, SpecId::from(spec))),
            };
            series.push(SeriesCk {
                metric_type: s.metric_type as u8,
                id: id.to_vec(),
                gauge_base: base.unwrap_or(f64::NAN),
                last_write_secs: s.last_write_secs,
                spec: s.spec_id().map(|spec| spec_ck(specs, rollups, spec)),
                spec_timed: s.spec_timed(),
                rule,
                elems,
            });
        });
        out.transform_states.extend(slot.transform_states.entries().map(
            |(metric_type, timed, policy, aggs, chain, id, states)| TransformStatesCk {
                metric_type,
                timed,
                slot: slot_ck(specs, policy),
                aggs,
                chain,
                id: id.to_vec(),
                states: states.iter().map(|s| s.previous.map(|p| (p.time_nanos, p.value))).collect(),
            },
        ));
        out.flushed.extend(self.flushed.iter().map(|f| FlushedCk {
            resolution: f.resolution,
            untimed: f.untimed,
            timed: f.timed,
        }));
        out.sync = slot.sync.as_ref().map(|s| SyncCk { sync_id: s.sync_id.to_string(), digest: s.digest });
        true
    }

    /// Loads `ck` into `shard` (a series this core already holds there keeps its own state): every series, element and
    /// window comes back, re-interned on this core, and the flush marks of the writer are
    /// taken where they are ahead (so that a timed value for a window emitted before the
    /// checkpoint is still refused). Returns the number of series loaded. A checkpoint that
    /// fails any check loads nothing.
    pub fn restore_shard(&mut self, shard: u32, ck: &ShardCheckpoint) -> Result<usize, CheckpointError> {
        if self.shards.get(shard as usize).is_none() {
            return Err(CheckpointError::Content("shard out of range"));
        }
        ck.series.iter().try_for_each(check_series)?;
        ck.transform_states.iter().try_for_each(check_transform_states)?;
        let mut loaded = 0;
        let mut windows = 0u64;
        for s in &ck.series {
            let Ok(metric_type) = metric_type_of(s.metric_type) else { continue };
            let rule_spec = match &s.rule {
                RuleCk::Default => 0,
                RuleCk::Dropped => DROPPED_BY_RULE,
                RuleCk::Spec(list) => match self.intern_spec_ck(list) {
                    Some(id) => {
                        self.specs.pin(id);
                        id as u16
                    }
                    None => 0,
                },
            };
            let spec = s.spec.as_deref().and_then(|list| self.intern_spec_ck(list));
            let mut elems = Elems::None;
            for e in &s.elems {
                let Some(policy) = self.slot_of(&e.slot) else { continue };
                let aggs = AggTypes::from_m3_id(e.aggs);
                let kind = WindowKind::new(metric_type, aggs.resolve(metric_type), e.timed);
                self.specs.elem_created(policy);
                windows += e.windows.len() as u64;
                let states = e.windows.iter().map(|w| (w.start, restore_state(kind, &w.state)));
                let at = elems.len();
                elems.insert(at, Elem::restored(policy, aggs, e.timed, metric_type, states));
            }
            let slot = &mut self.shards[shard as usize];
            let hash = series_hash(metric_type, &s.id);
            let Ok((_, series, mut base, created)) = slot.map.find_or_insert(hash, metric_type, &s.id, None, true)
            else {
                continue;
            };
            if !created {
                // The same series twice: the first stays (its counts are released below).
                elems.iter().for_each(|e| self.specs.elem_dropped(e.policy));
                continue;
            }
            series.last_write_secs = s.last_write_secs;
            series.rule_spec = rule_spec;
            series.elems = elems;
            if let Some(spec) = spec {
                series.set_spec(spec, s.spec_timed);
            }
            if !s.gauge_base.is_nan() {
                base.set(s.gauge_base);
            }
            slot.held = true;
            loaded += 1;
        }
        for t in &ck.transform_states {
            let (Ok(metric_type), Some(policy)) = (metric_type_of(t.metric_type), self.slot_of(&t.slot)) else {
                continue;
            };
            let (aggs, chain) = (AggTypes::from_m3_id(t.aggs), TransformChain::from_bits(t.chain).unwrap_or_default());
            let at = ElemAt { metric_type, id: &t.id, policy, aggs, timed: t.timed, chain };
            let states = t
                .states
                .iter()
                .map(|s| TransformState { previous: s.map(|(time_nanos, value)| Datapoint { time_nanos, value }) })
                .collect();
            self.shards[shard as usize].transform_states.insert(at, states);
        }
        self.series_held += loaded;
        self.windows_held[shard as usize] += windows;
        let slot = &mut self.shards[shard as usize];
        slot.last_write = slot.last_write.max(now_nanos());
        // A shard this core already held values of is not the copy the marker was given for.
        if loaded == ck.series.len() && windows == 0 && slot.map.len() == loaded {
            slot.sync = ck.sync.as_ref().map(|s| ShardSync { sync_id: s.sync_id.as_str().into(), digest: s.digest });
        }
        self.track_resolutions();
        for f in &ck.flushed {
            if let Some(mine) = self.flushed.iter_mut().find(|m| m.resolution == f.resolution) {
                *mine = FlushedUntil {
                    resolution: f.resolution,
                    untimed: mine.untimed.max(f.untimed),
                    timed: mine.timed.max(f.timed),
                };
            }
            self.latest_horizon = self.latest_horizon.max(f.untimed);
        }
        Ok(loaded)
    }

    /// Peer recovery: replaces `shard` with this core's copy merged with the leader's
    /// checkpoint `theirs` at the cut after `from` (`checkpoint::merge_at_cut`): the leader's
    /// windows before the cut, this core's from it. Runs in one step, between two batches, so
    /// no value applied here falls between the copy and the load. A checkpoint that fails a
    /// check changes nothing. Returns the series held.
    pub fn recover_shard(
        &mut self,
        shard: u32,
        theirs: &ShardCheckpoint,
        from: UnixNanos,
    ) -> Result<usize, CheckpointError> {
        theirs.series.iter().try_for_each(check_series)?;
        theirs.transform_states.iter().try_for_each(check_transform_states)?;
        let mine = self.checkpoint_shard(shard).unwrap_or_default();
        let merged = merge_at_cut(&mine, theirs, from);
        self.clear_shard(shard);
        self.restore_shard(shard, &merged)
    }

    /// Drops everything `shard` holds (its window stays).
    fn clear_shard(&mut self, shard: u32) {
        let Some(slot) = self.shards.get_mut(shard as usize) else { return };
        let map = std::mem::take(&mut slot.map);
        slot.transform_states = Default::default();
        slot.sync = None;
        map.for_each(|series| series.release_elems(&mut self.specs));
        self.series_held -= map.len();
        slot.held = false;
        self.windows_held[shard as usize] = 0;
    }

    fn slot_of(&mut self, s: &SlotCk) -> Option<PolicyIdx> {
        let policy = policy_of(&s.policy).ok()?;
        let chain = chain_of(s.transforms).ok()?;
        self.specs.slot_for(policy, chain, s.forwarded, s.rollup_ordinal)
    }

    /// Interns a written-out metadata list on this core (its rollups too).
    fn intern_spec_ck(&mut self, list: &[ElemSpecCk]) -> Option<SpecId> {
        let mut elems = Vec::with_capacity(list.len());
        for e in list {
            let rollup = match &e.rollup {
                None => NO_ROLLUP,
                Some(r) => {
                    let (aggs, resend) = (AggTypes::from_m3_id(r.aggs), r.transforms & RESEND_BIT != 0);
                    let transforms = chain_of(r.transforms & !RESEND_BIT).ok()?;
                    self.rollups.intern_with(&r.id, aggs, transforms, resend, NO_ROLLUP)?
                }
            };
            elems.push(ElemSpec {
                aggs: AggTypes::from_m3_id(e.aggs),
                policy: policy_of(&e.policy).ok()?,
                transforms: chain_of(e.transforms).ok()?,
                rollup,
                forwarded: e.forwarded,
            });
        }
        self.specs.intern(&elems)
    }
}
