//! `TransformStates`: the memory of the stateful transformations (PERSECOND, INCREASE, ADD) of
//! a core's elements, from one flushed window to the next.
//!
//! One per shard of the core's `CoreAggregator` (dropped with the shard), used only in its flush, once per flushed window
//! of an element that has a stateful transformation: the elements without one pay nothing
//! (not even a byte in their record, which must stay one cache line). An element's states
//! are found by its series (type and id), its key (policy slot, aggregations, timed) and its
//! chain, allocated once, the first time the element flushes a window, and dropped with the
//! element (its series expired, or its metadata no longer names it) or its shard.

use hashbrown::HashMap;

use crate::aggregation::{AggTypes, MetricType};
use crate::series::Elem;
use crate::spec::{PolicyIdx, SpecTable};
use crate::transform::{Datapoint, TransformChain, TransformState};

/// Which element a flushed value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElemAt<'a> {
    pub(crate) metric_type: MetricType,
    pub(crate) id: &'a [u8],
    pub(crate) policy: PolicyIdx,
    pub(crate) aggs: AggTypes,
    pub(crate) timed: bool,
    pub(crate) chain: TransformChain,
}

impl<'a> ElemAt<'a> {
    /// Element `elem` of the series of `metric_type` and `id`.
    pub(crate) fn of(metric_type: MetricType, id: &'a [u8], elem: &Elem, specs: &SpecTable) -> Self {
        Self::of_chain(metric_type, id, elem, specs.transforms(elem.policy))
    }

    /// Element `elem`, whose transformation chain is `chain`, of the series of `metric_type`
    /// and `id`.
    pub(crate) fn of_chain(metric_type: MetricType, id: &'a [u8], elem: &Elem, chain: TransformChain) -> Self {
        Self { metric_type, id, policy: elem.policy, aggs: elem.aggs, timed: elem.timed, chain }
    }
}

#[derive(Debug, Default)]
pub(crate) struct TransformStates {
    /// Element key bytes → one state per (aggregation, stateful op), aggregation-major.
    by_elem: HashMap<Box<[u8]>, Box<[TransformState]>>,
    /// The key being looked up, reused.
    key: Vec<u8>,
}

impl TransformStates {
    /// How many elements hold states.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_elem.len()
    }

    /// Runs the element's chain on the value of its `agg_index`-th aggregation (of `agg_count`)
    /// and calls `emit` with each point that comes out (the value itself for an empty chain).
    pub(crate) fn run(
        &mut self,
        elem: ElemAt<'_>,
        agg_index: usize,
        agg_count: usize,
        input: Datapoint,
        resolution_nanos: i64,
        emit: &mut impl FnMut(Datapoint),
    ) {
        if elem.chain.is_empty() {
            emit(input);
            return;
        }
        let per_agg = elem.chain.stateful_len();
        if per_agg == 0 {
            elem.chain.run(&mut [], input, resolution_nanos, emit);
            return;
        }
        self.fill_key(elem);
        let states = match self.by_elem.get_mut(self.key.as_slice()) {
            Some(states) => states,
            None => self
                .by_elem
                .entry(self.key.as_slice().into())
                .or_insert_with(|| vec![TransformState::default(); per_agg * agg_count].into_boxed_slice()),
        };
        let slots = states.get_mut(agg_index * per_agg..(agg_index + 1) * per_agg).unwrap_or_default();
        elem.chain.run(slots, input, resolution_nanos, emit);
    }

    /// Every element's states: (metric type, timed, policy slot, aggregations, chain, id,
    /// states), as `fill_key` laid the key out.
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = (u8, bool, PolicyIdx, u64, u32, &[u8], &[TransformState])> + '_ {
        self.by_elem.iter().filter_map(|(key, states)| {
            let (head, id) = key.split_at_checked(16)?;
            let policy = PolicyIdx::from_le_bytes(head[2..4].try_into().ok()?);
            let aggs = u64::from_le_bytes(head[4..12].try_into().ok()?);
            let chain = u32::from_le_bytes(head[12..16].try_into().ok()?);
            Some((head[0], head[1] != 0, policy, aggs, chain, id, &states[..]))
        })
    }

    /// Puts back the states of an element (from a checkpoint).
    pub(crate) fn insert(&mut self, elem: ElemAt<'_>, states: Box<[TransformState]>) {
        self.fill_key(elem);
        self.by_elem.insert(self.key.as_slice().into(), states);
    }

    /// Drops the states of an element whose series is going away.
    pub(crate) fn forget(&mut self, elem: ElemAt<'_>) {
        if elem.chain.stateful_len() > 0 {
            self.fill_key(elem);
            self.by_elem.remove(self.key.as_slice());
        }
    }

    fn fill_key(&mut self, elem: ElemAt<'_>) {
        self.key.clear();
        self.key.push(elem.metric_type as u8);
        self.key.push(u8::from(elem.timed));
        self.key.extend_from_slice(&elem.policy.to_le_bytes());
        self.key.extend_from_slice(&elem.aggs.to_m3_id().to_le_bytes());
        self.key.extend_from_slice(&elem.chain.to_bits().to_le_bytes());
        self.key.extend_from_slice(elem.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::TransformType;

    const S: i64 = 1_000_000_000;

    fn elem(id: &[u8], chain: TransformChain) -> ElemAt<'_> {
        ElemAt { metric_type: MetricType::Gauge, id, policy: 0, aggs: AggTypes::DEFAULT, timed: false, chain }
    }

    #[test]
    fn each_element_and_aggregation_keeps_its_own_state() {
        let chain = TransformChain::new(&[TransformType::Increase]).unwrap();
        let mut states = TransformStates::default();
        let mut out = Vec::new();
        for (t, (a, b)) in [(10, (1.0, 100.0)), (20, (3.0, 150.0))] {
            for (index, v) in [a, b].into_iter().enumerate() {
                states.run(elem(b"x", chain), index, 2, Datapoint { time_nanos: t * S, value: v }, 10 * S, &mut |p| {
                    out.push((index, p.value))
                });
            }
            states.run(
                elem(b"y", chain),
                0,
                1,
                Datapoint { time_nanos: t * S, value: 7.0 * t as f64 },
                10 * S,
                &mut |p| out.push((9, p.value)),
            );
        }
        assert_eq!(out, vec![(0, 2.0), (1, 50.0), (9, 70.0)]);
        assert_eq!(states.len(), 2);
        states.forget(elem(b"x", chain));
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn stateless_chains_keep_nothing() {
        let chain = TransformChain::new(&[TransformType::Absolute]).unwrap();
        let mut states = TransformStates::default();
        let mut out = Vec::new();
        states.run(elem(b"x", chain), 0, 1, Datapoint { time_nanos: S, value: -2.0 }, S, &mut |p| out.push(p.value));
        assert_eq!((out, states.len()), (vec![2.0], 0));
    }
}
