//! Peer recovery at a cut: a replica that missed values (restarted, or new) takes from the
//! leader's checkpoint of a shard every window that starts before the cut, and keeps its own
//! windows from the cut on. The cut is, per resolution, the first window start at or after
//! the moment the replica was receiving every value of the shard itself; the leader's
//! checkpoint is taken once the windows before the cut have ended, so it holds all their
//! untimed values. No value is counted twice: a window comes whole from one copy. Pure; the
//! core merges and loads the result (`CoreAggregator::recover_shard`).

use std::collections::HashMap;

use super::{ElemCk, SeriesCk, ShardCheckpoint};

/// The first window start of `resolution` at or after `from`.
pub fn cut_of(resolution: i64, from: i64) -> i64 {
    if resolution <= 0 {
        return from;
    }
    from.div_euclid(resolution).saturating_add(i64::from(from.rem_euclid(resolution) != 0)).saturating_mul(resolution)
}

fn same_elem(a: &ElemCk, b: &ElemCk) -> bool {
    a.slot == b.slot && a.aggs == b.aggs && a.timed == b.timed
}

/// `theirs`' windows before the cut, then `mine`'s from it (either may be absent).
fn merge_elem(mine: Option<&ElemCk>, theirs: Option<&ElemCk>, from: i64) -> Option<ElemCk> {
    let base = mine.or(theirs)?;
    let cut = cut_of(base.slot.policy.resolution, from);
    let mut windows: Vec<_> = theirs.iter().flat_map(|e| &e.windows).filter(|w| w.start < cut).cloned().collect();
    windows.extend(mine.iter().flat_map(|e| &e.windows).filter(|w| w.start >= cut).cloned());
    Some(ElemCk { windows, ..base.clone() })
}

fn merge_series(mine: Option<&SeriesCk>, theirs: Option<&SeriesCk>, from: i64) -> Option<SeriesCk> {
    let base = mine.or(theirs)?;
    let mut elems: Vec<ElemCk> = Vec::new();
    for e in mine.iter().flat_map(|s| &s.elems) {
        let other = theirs.and_then(|t| t.elems.iter().find(|o| same_elem(o, e)));
        elems.extend(merge_elem(Some(e), other, from));
    }
    for e in theirs.iter().flat_map(|s| &s.elems) {
        if !elems.iter().any(|m| same_elem(m, e)) {
            elems.extend(merge_elem(None, Some(e), from));
        }
    }
    let mut out = SeriesCk { elems, ..base.clone() };
    if out.gauge_base.is_nan()
        && let Some(t) = theirs
    {
        out.gauge_base = t.gauge_base;
    }
    Some(out)
}

/// The shard as the recovering replica should hold it: per element, the leader's windows
/// (`theirs`) before the cut after `from`, its own (`mine`) from the cut on; series and
/// transformation states of either; the flush marks furthest along; no sync marker.
pub fn merge_at_cut(mine: &ShardCheckpoint, theirs: &ShardCheckpoint, from: i64) -> ShardCheckpoint {
    let key = |s: &SeriesCk| (s.metric_type, s.id.clone());
    let their_series: HashMap<_, &SeriesCk> = theirs.series.iter().map(|s| (key(s), s)).collect();
    let mut series: Vec<SeriesCk> = Vec::with_capacity(mine.series.len().max(theirs.series.len()));
    for s in &mine.series {
        series.extend(merge_series(Some(s), their_series.get(&key(s)).copied(), from));
    }
    let my_keys: std::collections::HashSet<_> = mine.series.iter().map(key).collect();
    for s in theirs.series.iter().filter(|s| !my_keys.contains(&key(s))) {
        series.extend(merge_series(None, Some(s), from));
    }
    let mut transform_states = mine.transform_states.clone();
    for t in &theirs.transform_states {
        let same = |m: &&super::TransformStatesCk| {
            (m.metric_type, &m.id, m.timed, m.slot, m.aggs, m.chain)
                == (t.metric_type, &t.id, t.timed, t.slot, t.aggs, t.chain)
        };
        if !transform_states.iter().any(|m| same(&m)) {
            transform_states.push(t.clone());
        }
    }
    let mut flushed = mine.flushed.clone();
    for f in &theirs.flushed {
        match flushed.iter_mut().find(|m| m.resolution == f.resolution) {
            Some(m) => {
                m.untimed = m.untimed.max(f.untimed);
                m.timed = m.timed.max(f.timed);
            }
            None => flushed.push(*f),
        }
    }
    ShardCheckpoint { series, flushed, transform_states, sync: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{PolicyCk, RuleCk, SlotCk, StateCk, WindowCk};

    const S: i64 = 1_000_000_000;

    fn counter(id: &str, windows: &[(i64, f64)]) -> SeriesCk {
        let slot = SlotCk {
            policy: PolicyCk { resolution: 10 * S, retention: 3600 * S },
            transforms: 0,
            forwarded: 0,
            rollup_ordinal: 0,
        };
        SeriesCk {
            metric_type: 0,
            id: id.as_bytes().to_vec(),
            gauge_base: f64::NAN,
            last_write_secs: 0,
            spec: None,
            spec_timed: false,
            rule: RuleCk::Default,
            elems: vec![ElemCk {
                slot,
                aggs: 0,
                timed: false,
                windows: windows.iter().map(|&(start, v)| WindowCk { start, state: StateCk::Num(v) }).collect(),
            }],
        }
    }

    fn sums(ck: &ShardCheckpoint, id: &str) -> Vec<(i64, f64)> {
        let s = ck.series.iter().find(|s| s.id == id.as_bytes()).unwrap();
        s.elems[0]
            .windows
            .iter()
            .map(|w| match w.state {
                StateCk::Num(v) => (w.start, v),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn windows_before_the_cut_come_from_the_leader_and_the_rest_from_the_replica() {
        assert_eq!(cut_of(10 * S, 25 * S), 30 * S);
        assert_eq!(cut_of(10 * S, 30 * S), 30 * S);
        // The replica has received since 25s: a partial 20s window, a whole 30s one.
        let mine =
            ShardCheckpoint { series: vec![counter("a", &[(20 * S, 2.0), (30 * S, 5.0)])], ..Default::default() };
        let theirs = ShardCheckpoint {
            series: vec![
                counter("a", &[(10 * S, 1.0), (20 * S, 7.0), (30 * S, 4.0)]),
                counter("b", &[(20 * S, 3.0), (30 * S, 1.0)]),
            ],
            ..Default::default()
        };
        let merged = merge_at_cut(&mine, &theirs, 25 * S);
        assert_eq!(sums(&merged, "a"), vec![(10 * S, 1.0), (20 * S, 7.0), (30 * S, 5.0)]);
        assert_eq!(sums(&merged, "b"), vec![(20 * S, 3.0)], "the replica's own windows from the cut on");
    }
}
