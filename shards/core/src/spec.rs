//! Interned metadata of a core: the storage policies (each with the transformations of its
//! elements) and (aggregations, policy) lists that its series use, and how many series elements use each policy. Owned by one shard core;
//! ids are meaningful on that core only.
//!
//! A policy no element uses any more (its series expired or moved to other metadata) is
//! pruned, with every spec that names it, unless the default spec names it: its slot and
//! theirs are then free for the next new policy or spec. Pruning is safe because a live series
//! always holds an element for each key of its current spec, so no live series names a spec
//! whose policy has no element left.

use hashbrown::HashMap;

use crate::aggregation::AggTypes;
use crate::batch::{ElemSpec, NO_ROLLUP, RollupRef};
use crate::policy::StoragePolicy;
use crate::transform::TransformChain;

pub(crate) type PolicyIdx = u16;

/// Distinct storage policies one core keeps (M3 deployments use a handful).
pub(crate) const MAX_POLICIES: usize = 1024;
/// Distinct (aggregations, policies) lists one core keeps.
pub(crate) const MAX_SPECS: usize = 16_384;
/// Index into the spec table; 0 is the default spec.
pub(crate) type SpecId = u32;

/// What `SpecTable::heads` holds for a spec without keys (no policy slot is this one:
/// there are at most `MAX_POLICIES`).
const NO_KEY: ElemKey = ElemKey { policy: PolicyIdx::MAX, aggs: AggTypes::DEFAULT, rollup: NO_ROLLUP };

/// The first key of a spec and how many it has (see `SpecTable::heads`).
#[derive(Debug, Clone, Copy)]
struct SpecHead {
    first: ElemKey,
    len: u32,
}

impl Default for SpecHead {
    fn default() -> Self {
        Self { first: NO_KEY, len: 0 }
    }
}

/// One aggregation element of a series: which policy, which aggregations, and which of the
/// core's rollup targets its flushed values go on to (`NO_ROLLUP`: emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ElemKey {
    pub(crate) policy: PolicyIdx,
    pub(crate) aggs: AggTypes,
    pub(crate) rollup: RollupRef,
}

/// What a policy slot stands for: a storage policy, the transformations and forward count of
/// its elements, and which of a spec's rollups of the same (policy, aggregations) its elements
/// hold (0: none; 1: the first, and so on), so that an element that is emitted and one that is
/// rolled up, or two rolled up to different series, are distinct elements of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SlotKey {
    policy: StoragePolicy,
    transforms: TransformChain,
    forwarded: u8,
    rollup_ordinal: u8,
}

/// The slot key of each element of `elems`, in order (`intern` bounds the rollups of a list
/// by the ordinal's range).
fn slot_keys(elems: &[ElemSpec]) -> impl Iterator<Item = SlotKey> + '_ {
    elems.iter().enumerate().map(|(i, e)| {
        let same = |o: &&ElemSpec| {
            o.rollup != NO_ROLLUP
                && (o.policy, o.transforms, o.forwarded, o.aggs) == (e.policy, e.transforms, e.forwarded, e.aggs)
        };
        let rollup_ordinal = if e.rollup == NO_ROLLUP { 0 } else { elems[..=i].iter().filter(same).count() as u8 };
        SlotKey { policy: e.policy, transforms: e.transforms, forwarded: e.forwarded, rollup_ordinal }
    })
}

#[derive(Debug)]
pub(crate) struct SpecTable {
    /// By `PolicyIdx`; a pruned policy's slot keeps its old value until reused.
    policies: Vec<StoragePolicy>,
    /// By `PolicyIdx`: the transformations of the elements of the slot. A slot is a storage
    /// policy and a transformation chain, so that an element's key stays as small as it was.
    transforms: Vec<TransformChain>,
    /// By `PolicyIdx`: how many times the values of the slot's elements were forwarded.
    forwarded: Vec<u8>,
    /// By `PolicyIdx`: the slot's key.
    slot_keys: Vec<SlotKey>,
    policy_index: HashMap<SlotKey, PolicyIdx>,
    /// By `PolicyIdx`: the series elements that use the policy.
    elems_using: Vec<u64>,
    /// Policy slots pruned and free for reuse.
    free_policies: Vec<PolicyIdx>,
    /// By `SpecId`; a pruned spec's slot is empty until reused.
    specs: Vec<Box<[ElemKey]>>,
    /// By `SpecId`: the spec's first key ([`NO_KEY`] if it has none) and how many it has, side
    /// by side, so that what a flush or a metadata comparison reads of most specs (they have
    /// one key) is one small entry, with no pointer to follow.
    heads: Vec<SpecHead>,
    index: HashMap<Box<[ElemSpec]>, SpecId>,
    /// Spec slots pruned and free for reuse.
    free_specs: Vec<SpecId>,
    /// By `SpecId`: the series whose rules chose the spec (`Series::rule_spec`). A pinned spec
    /// and its policies are not pruned, even while no element uses them.
    pinned_by: Vec<u64>,
}

impl SpecTable {
    pub(crate) fn new(default_policies: &[StoragePolicy]) -> Self {
        let mut t = Self {
            policies: Vec::new(),
            transforms: Vec::new(),
            forwarded: Vec::new(),
            slot_keys: Vec::new(),
            policy_index: HashMap::new(),
            elems_using: Vec::new(),
            free_policies: Vec::new(),
            specs: Vec::new(),
            heads: Vec::new(),
            index: HashMap::new(),
            free_specs: Vec::new(),
            pinned_by: Vec::new(),
        };
        let default: Vec<ElemSpec> = default_policies.iter().map(|p| ElemSpec::new(AggTypes::DEFAULT, *p)).collect();
        let id = t.intern(&default);
        debug_assert_eq!(id, Some(0));
        t
    }

    /// Every policy slot, pruned ones included (indexed by `PolicyIdx`).
    pub(crate) fn policies(&self) -> &[StoragePolicy] {
        &self.policies
    }

    /// The policies in use (not pruned).
    pub(crate) fn live_policies(&self) -> impl Iterator<Item = StoragePolicy> + '_ {
        self.policy_index.keys().map(|k| k.policy)
    }

    /// The forward counts of the policy slots in use whose resolution is `resolution`.
    pub(crate) fn live_forward_counts(&self, resolution: i64) -> impl Iterator<Item = u8> + '_ {
        self.policy_index
            .values()
            .filter(move |&&p| self.policy(p).resolution_nanos == resolution)
            .map(|&p| self.forwarded(p))
    }

    /// How many policy slots are in use (not pruned).
    pub(crate) fn live_policy_count(&self) -> usize {
        self.policy_index.len()
    }

    /// How many distinct storage policies are in use: a policy whose elements have two
    /// transformation chains counts once.
    pub(crate) fn live_storage_policy_count(&self) -> usize {
        self.live_policies().collect::<hashbrown::HashSet<_>>().len()
    }

    /// A series element of `policy` was created.
    #[inline]
    pub(crate) fn elem_created(&mut self, policy: PolicyIdx) {
        self.elems_using[usize::from(policy)] += 1;
    }

    /// A series element of `policy` was dropped.
    #[inline]
    pub(crate) fn elem_dropped(&mut self, policy: PolicyIdx) {
        let uses = &mut self.elems_using[usize::from(policy)];
        *uses = uses.saturating_sub(1);
    }

    /// Pins `spec` for one more series (its rules chose it): it is not pruned until unpinned.
    pub(crate) fn pin(&mut self, spec: SpecId) {
        let i = spec as usize;
        if self.pinned_by.len() <= i {
            self.pinned_by.resize(i + 1, 0);
        }
        self.pinned_by[i] += 1;
    }

    /// A series that pinned `spec` is going away.
    pub(crate) fn unpin(&mut self, spec: SpecId) {
        if let Some(n) = self.pinned_by.get_mut(spec as usize) {
            *n = n.saturating_sub(1);
        }
    }

    /// Prunes the policies no series element uses, but those of the default spec and of pinned
    /// specs, and every spec naming one of them; returns how many policies were pruned.
    pub(crate) fn prune_unused(&mut self) -> usize {
        let default: &[ElemKey] = self.specs.first().map_or(&[], |keys| keys);
        let pinned = self.pinned_by.iter().enumerate().filter(|(_, n)| **n > 0);
        let kept: Vec<PolicyIdx> = default
            .iter()
            .map(|k| k.policy)
            .chain(pinned.flat_map(|(id, _)| self.specs[id].iter().map(|k| k.policy)))
            .collect();
        let unused: Vec<PolicyIdx> = self
            .policy_index
            .values()
            .copied()
            .filter(|&p| self.elems_using[usize::from(p)] == 0 && !kept.contains(&p))
            .collect();
        if unused.is_empty() {
            return 0;
        }
        for &p in &unused {
            self.policy_index.remove(&self.slot_keys[usize::from(p)]);
            self.free_policies.push(p);
        }
        let policies = &self.policy_index;
        let mut pruned_specs = Vec::new();
        self.index.retain(|elems, id| {
            let keep = slot_keys(elems).all(|k| policies.contains_key(&k));
            if !keep {
                pruned_specs.push(*id);
            }
            keep
        });
        for id in pruned_specs {
            self.specs[id as usize] = Box::default();
            self.heads[id as usize] = SpecHead::default();
            self.free_specs.push(id);
        }
        unused.len()
    }

    /// The rollup targets the live specs name (a pruned spec names none).
    pub(crate) fn rollups_named(&self) -> impl Iterator<Item = RollupRef> + '_ {
        self.specs.iter().flat_map(|keys| keys.iter().map(|k| k.rollup)).filter(|&r| r != NO_ROLLUP)
    }

    /// What policy slot `idx` stands for: (policy, transformations, forward count, rollup ordinal).
    pub(crate) fn slot_parts(&self, idx: PolicyIdx) -> (StoragePolicy, TransformChain, u8, u8) {
        let k = self.slot_keys[usize::from(idx)];
        (k.policy, k.transforms, k.forwarded, k.rollup_ordinal)
    }

    /// The slot standing for these parts (see `slot_parts`), added if needed; `None` once the
    /// core holds `MAX_POLICIES`.
    pub(crate) fn slot_for(
        &mut self,
        policy: StoragePolicy,
        transforms: TransformChain,
        forwarded: u8,
        rollup_ordinal: u8,
    ) -> Option<PolicyIdx> {
        let slot = SlotKey { policy, transforms, forwarded, rollup_ordinal };
        if let Some(&p) = self.policy_index.get(&slot) {
            return Some(p);
        }
        (self.policy_index.len() < MAX_POLICIES).then(|| self.add_policy(slot))
    }

    pub(crate) fn policy(&self, idx: PolicyIdx) -> StoragePolicy {
        self.policies[usize::from(idx)]
    }

    /// How many times the values of the elements of policy slot `idx` were forwarded.
    #[inline]
    pub(crate) fn forwarded(&self, idx: PolicyIdx) -> u8 {
        self.forwarded[usize::from(idx)]
    }

    /// Whether the elements of policy slot `idx` roll up (their key names a rollup target).
    #[inline]
    pub(crate) fn rolls_up(&self, idx: PolicyIdx) -> bool {
        self.slot_keys[usize::from(idx)].rollup_ordinal > 0
    }

    /// The transformations of the elements of policy slot `idx`.
    pub(crate) fn transforms(&self, idx: PolicyIdx) -> TransformChain {
        self.transforms[usize::from(idx)]
    }

    pub(crate) fn keys(&self, spec: SpecId) -> &[ElemKey] {
        &self.specs[spec as usize]
    }

    /// Bytes of each spec's entry at [`SpecTable::heads_address`].
    pub(crate) const HEAD_SIZE: usize = size_of::<SpecHead>();

    /// Where the specs' first keys and lengths lie (spec `s` at `s × HEAD_SIZE` bytes on),
    /// for prefetching only.
    pub(crate) fn heads_address(&self) -> *const u8 {
        self.heads.as_ptr().cast()
    }

    /// How many keys spec `spec` has.
    #[inline]
    pub(crate) fn key_count(&self, spec: SpecId) -> usize {
        self.heads.get(spec as usize).map_or(0, |h| h.len as usize)
    }

    /// The `i`-th key of spec `spec`: `keys(spec).get(i)`, with the first key read from
    /// `heads` rather than through the spec's own allocation.
    #[inline]
    pub(crate) fn key(&self, spec: SpecId, i: usize) -> Option<ElemKey> {
        match i {
            0 => self.heads.get(spec as usize).map(|h| h.first).filter(|k| *k != NO_KEY),
            _ => self.specs.get(spec as usize)?.get(i).copied(),
        }
    }

    /// Whether interning `elems` would give `spec`, checked without hashing: each element is
    /// the spec's key at its position (same policy slot, aggregations, and a rollup for which
    /// `same_rollup(element's, key's)` holds), none dropped as a duplicate. `false` may still
    /// intern to `spec` (a list with duplicates); `true` always does, as long as `spec` is
    /// live (a live series' spec is never pruned).
    #[inline]
    pub(crate) fn is_spec_of(
        &self,
        spec: SpecId,
        elems: &[ElemSpec],
        mut same_rollup: impl FnMut(RollupRef, RollupRef) -> bool,
    ) -> bool {
        if self.key_count(spec) != elems.len() {
            return false;
        }
        slot_keys(elems).zip(elems).enumerate().all(|(i, (slot, e))| {
            self.key(spec, i).is_some_and(|k| {
                k.aggs == e.aggs
                    && self.slot_keys.get(usize::from(k.policy)) == Some(&slot)
                    && match (e.rollup, k.rollup) {
                        (NO_ROLLUP, NO_ROLLUP) => true,
                        (NO_ROLLUP, _) | (_, NO_ROLLUP) => false,
                        (batch, core) => same_rollup(batch, core),
                    }
            })
        })
    }

    /// The id of this list of elements (duplicates count once), adding it on first sight.
    /// `None` once the core holds `MAX_POLICIES` distinct policies or `MAX_SPECS` specs and
    /// this list would add to them: metadata from the network must not grow these tables
    /// without bound.
    pub(crate) fn intern(&mut self, elems: &[ElemSpec]) -> Option<SpecId> {
        if let Some(id) = self.index.get(elems) {
            return Some(*id);
        }
        if elems.iter().filter(|e| e.rollup != NO_ROLLUP).count() > usize::from(u8::MAX) {
            return None;
        }
        let mut new_policies: Vec<SlotKey> = slot_keys(elems).filter(|k| !self.policy_index.contains_key(k)).collect();
        new_policies.dedup();
        let live_specs = self.specs.len() - self.free_specs.len();
        if live_specs >= MAX_SPECS || self.policy_index.len() + new_policies.len() > MAX_POLICIES {
            return None;
        }
        let mut keys: Vec<ElemKey> = Vec::with_capacity(elems.len());
        for (e, slot) in elems.iter().zip(slot_keys(elems)) {
            let policy = match self.policy_index.get(&slot) {
                Some(&p) => p,
                None => self.add_policy(slot),
            };
            let key = ElemKey { policy, aggs: e.aggs, rollup: e.rollup };
            // The same (policy slot, aggregations) twice would aggregate and emit every value
            // twice: a series' elements are told apart by those two.
            if !keys.iter().any(|k| k.policy == key.policy && k.aggs == key.aggs) {
                keys.push(key);
            }
        }
        let head = SpecHead { first: keys.first().copied().unwrap_or(NO_KEY), len: keys.len() as u32 };
        let id = match self.free_specs.pop() {
            Some(id) => {
                self.specs[id as usize] = keys.into_boxed_slice();
                self.heads[id as usize] = head;
                id
            }
            None => {
                self.specs.push(keys.into_boxed_slice());
                self.heads.push(head);
                (self.specs.len() - 1) as SpecId
            }
        };
        self.index.insert(elems.into(), id);
        Some(id)
    }

    /// Gives `policy` a slot (a free one if any), with no element using it yet.
    fn add_policy(&mut self, slot: SlotKey) -> PolicyIdx {
        let SlotKey { policy, transforms, forwarded, .. } = slot;
        let idx = match self.free_policies.pop() {
            Some(idx) => {
                self.policies[usize::from(idx)] = policy;
                self.transforms[usize::from(idx)] = transforms;
                self.forwarded[usize::from(idx)] = forwarded;
                self.slot_keys[usize::from(idx)] = slot;
                self.elems_using[usize::from(idx)] = 0;
                idx
            }
            None => {
                self.policies.push(policy);
                self.transforms.push(transforms);
                self.forwarded.push(forwarded);
                self.slot_keys.push(slot);
                self.elems_using.push(0);
                (self.policies.len() - 1) as PolicyIdx
            }
        };
        self.policy_index.insert(slot, idx);
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(res_s: i64, ret_s: i64) -> ElemSpec {
        ElemSpec::new(AggTypes::DEFAULT, StoragePolicy::new(res_s * 1_000_000_000, ret_s * 1_000_000_000).unwrap())
    }

    #[test]
    fn duplicate_elements_count_once() {
        let mut t = SpecTable::new(&[]);
        let id = t.intern(&[elem(10, 100), elem(10, 100), elem(60, 600)]).unwrap();
        assert_eq!(t.keys(id).len(), 2);
    }

    #[test]
    fn a_policy_with_two_chains_is_two_slots_and_one_storage_policy() {
        let mut t = SpecTable::new(&[]);
        let chained =
            ElemSpec { transforms: TransformChain::new(&[crate::TransformType::Add]).unwrap(), ..elem(10, 100) };
        let id = t.intern(&[elem(10, 100), chained]).unwrap();
        assert_eq!(t.keys(id).len(), 2);
        assert_eq!((t.live_policy_count(), t.live_storage_policy_count()), (2, 1));
    }

    #[test]
    fn policies_and_specs_are_bounded() {
        let mut t = SpecTable::new(&[]);
        for k in 0..MAX_POLICIES as i64 {
            assert!(t.intern(&[elem(1, 1000 + k)]).is_some());
        }
        assert_eq!(t.intern(&[elem(1, 5_000_000)]), None, "a new policy past the cap is refused");
        assert!(t.intern(&[elem(1, 1000), elem(1, 1001)]).is_some(), "known policies still combine");
    }

    #[test]
    fn unused_policies_are_pruned_and_their_slots_reused() {
        let mut t = SpecTable::new(&[StoragePolicy::new(10_000_000_000, 100_000_000_000).unwrap()]);
        let used = t.intern(&[elem(1, 3600)]).unwrap();
        let unused = t.intern(&[elem(60, 3600), elem(1, 3600)]).unwrap();
        let (one_second, one_minute) = (t.keys(used)[0].policy, t.keys(unused)[0].policy);
        t.elem_created(one_second);
        assert_eq!(t.prune_unused(), 1, "only 60s:1h has no element; the default is kept");
        assert_eq!(t.live_policies().count(), 2);
        assert_eq!(t.intern(&[elem(1, 3600)]), Some(used), "a spec of live policies stays");
        let reused = t.intern(&[elem(30, 3600)]).unwrap();
        assert_eq!(reused, unused, "the pruned spec's slot is reused");
        assert_eq!(t.keys(reused)[0].policy, one_minute, "and the pruned policy's slot");
        t.elem_dropped(one_second);
        assert_eq!(t.prune_unused(), 2);
        assert_eq!(t.live_policies().collect::<Vec<_>>(), vec![t.policy(0)]);
        assert_eq!(t.keys(0).len(), 1, "the default spec stays");
    }

    #[test]
    fn pruned_policies_do_not_count_against_the_cap() {
        let mut t = SpecTable::new(&[]);
        for round in 0..3i64 {
            for k in 0..MAX_POLICIES as i64 {
                assert!(t.intern(&[elem(1, 1000 + k + round * 10_000)]).is_some(), "round {round}, policy {k}");
            }
            assert_eq!(t.prune_unused(), MAX_POLICIES);
        }
    }
}
