//! Interned metadata of a core: the storage policies and (aggregations, policy) lists that
//! its series use. Owned by one shard core; ids are meaningful on that core only.

use hashbrown::HashMap;

use crate::aggregation::AggTypes;
use crate::batch::ElemSpec;
use crate::policy::StoragePolicy;

pub(crate) type PolicyIdx = u16;

/// Distinct storage policies one core keeps (M3 deployments use a handful).
pub(crate) const MAX_POLICIES: usize = 1024;
/// Distinct (aggregations, policies) lists one core keeps.
pub(crate) const MAX_SPECS: usize = 16_384;
/// Index into the spec table; 0 is the default spec.
pub(crate) type SpecId = u32;

/// One aggregation element of a series: which policy, which aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ElemKey {
    pub(crate) policy: PolicyIdx,
    pub(crate) aggs: AggTypes,
}

#[derive(Debug)]
pub(crate) struct SpecTable {
    policies: Vec<StoragePolicy>,
    policy_index: HashMap<StoragePolicy, PolicyIdx>,
    specs: Vec<Box<[ElemKey]>>,
    index: HashMap<Box<[ElemSpec]>, SpecId>,
}

impl SpecTable {
    pub(crate) fn new(default_policies: &[StoragePolicy]) -> Self {
        let mut t =
            Self { policies: Vec::new(), policy_index: HashMap::new(), specs: Vec::new(), index: HashMap::new() };
        let default: Vec<ElemSpec> =
            default_policies.iter().map(|p| ElemSpec { aggs: AggTypes::DEFAULT, policy: *p }).collect();
        let id = t.intern(&default);
        debug_assert_eq!(id, Some(0));
        t
    }

    pub(crate) fn policies(&self) -> &[StoragePolicy] {
        &self.policies
    }

    pub(crate) fn policy(&self, idx: PolicyIdx) -> StoragePolicy {
        self.policies[usize::from(idx)]
    }

    pub(crate) fn keys(&self, spec: SpecId) -> &[ElemKey] {
        &self.specs[spec as usize]
    }

    /// The id of this list of elements (duplicates count once), adding it on first sight.
    /// `None` once the core holds `MAX_POLICIES` distinct policies or `MAX_SPECS` specs and
    /// this list would add to them: metadata from the network must not grow these tables
    /// without bound.
    pub(crate) fn intern(&mut self, elems: &[ElemSpec]) -> Option<SpecId> {
        if let Some(id) = self.index.get(elems) {
            return Some(*id);
        }
        let new_policies = elems.iter().filter(|e| !self.policy_index.contains_key(&e.policy)).count();
        if self.specs.len() >= MAX_SPECS || self.policies.len() + new_policies > MAX_POLICIES {
            return None;
        }
        let mut keys: Vec<ElemKey> = Vec::with_capacity(elems.len());
        for e in elems {
            let next = self.policies.len() as PolicyIdx;
            let policy = *self.policy_index.entry(e.policy).or_insert(next);
            if policy == next {
                self.policies.push(e.policy);
            }
            let key = ElemKey { policy, aggs: e.aggs };
            // The same (policy, aggregations) twice would aggregate and emit every value twice.
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let id = self.specs.len() as SpecId;
        self.specs.push(keys.into_boxed_slice());
        self.index.insert(elems.into(), id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(res_s: i64, ret_s: i64) -> ElemSpec {
        ElemSpec {
            aggs: AggTypes::DEFAULT,
            policy: StoragePolicy::new(res_s * 1_000_000_000, ret_s * 1_000_000_000).unwrap(),
        }
    }

    #[test]
    fn duplicate_elements_count_once() {
        let mut t = SpecTable::new(&[]);
        let id = t.intern(&[elem(10, 100), elem(10, 100), elem(60, 600)]).unwrap();
        assert_eq!(t.keys(id).len(), 2);
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
}
