//! Interned metadata of a core: the storage policies and (aggregations, policy) lists that
//! its series use. Owned by one shard core; ids are meaningful on that core only.

use hashbrown::HashMap;

use crate::aggregation::AggTypes;
use crate::batch::ElemSpec;
use crate::policy::StoragePolicy;

pub(crate) type PolicyIdx = u16;
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
        debug_assert_eq!(id, 0);
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

    /// The id of this list of elements, adding it on first sight.
    /// Returns `None` when the core already knows `u16::MAX` distinct policies.
    pub(crate) fn intern(&mut self, elems: &[ElemSpec]) -> SpecId {
        if let Some(id) = self.index.get(elems) {
            return *id;
        }
        let keys: Box<[ElemKey]> = elems
            .iter()
            .map(|e| {
                let next = self.policies.len() as PolicyIdx;
                let policy = *self.policy_index.entry(e.policy).or_insert(next);
                if policy == next {
                    self.policies.push(e.policy);
                }
                ElemKey { policy, aggs: e.aggs }
            })
            .collect();
        let id = self.specs.len() as SpecId;
        self.specs.push(keys);
        self.index.insert(elems.into(), id);
        id
    }
}
