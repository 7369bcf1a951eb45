//! Tests of the placement: each operation and each refusal, the invariant checker, the JSON and
//! proto forms, and randomized properties (seeded, so a failure names a reproducible case).

mod invariants;
mod json;
mod operations;
mod properties;
mod proto;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::cutover::Options;
use super::error::PlacementError;
use super::model::{Instance, Placement};
use super::operations::init;

const MIN: i64 = 60_000_000_000;
/// 2023-11-14T22:13:20Z plus 30.5 s: not on a minute boundary.
const NOW: i64 = 1_700_000_000_000_000_000 + 30_500_000_000;
const FAR_FUTURE: i64 = i64::MAX / 2;

/// `warmup` with m3's one-minute alignment.
fn minute_aligned(warmup: Duration) -> Options {
    Options { warmup, alignment: Duration::from_secs(60) }
}

fn opts() -> Options {
    minute_aligned(Duration::from_secs(60))
}

fn inst(id: &str, group: &str, weight: u32) -> Instance {
    Instance::new(id, group, weight)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn err_text<T: std::fmt::Debug>(r: Result<T, PlacementError>) -> String {
    r.unwrap_err().to_string()
}

/// Two shard sets of two: {a1, b1} and {a2, b2}, 64 shards.
fn two_sets() -> Placement {
    init(
        64,
        2,
        &[inst("a1", "rack-a", 100), inst("a2", "rack-a", 100), inst("b1", "rack-b", 100), inst("b2", "rack-b", 100)],
    )
    .unwrap()
}

/// Owned (non-LEAVING) shard ids per active shard set.
fn owned_by_set(p: &Placement) -> BTreeMap<u32, BTreeSet<u32>> {
    let mut sets: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for i in p.instances.values().filter(|i| !i.is_leaving()) {
        sets.entry(i.shard_set_id).or_default().extend(i.owned_shard_ids());
    }
    sets
}

fn owner_set_of(p: &Placement) -> BTreeMap<u32, u32> {
    owned_by_set(p).into_iter().flat_map(|(set, shards)| shards.into_iter().map(move |s| (s, set))).collect()
}

/// The instances holding one shard: `owners` in a non-`LEAVING` state, `leaving` in `LEAVING`.
#[derive(Debug, Default)]
struct Owners<'a> {
    owners: Vec<&'a Instance>,
    leaving: Vec<&'a Instance>,
}

/// Who holds `shard`, split into owners (`INITIALIZING`/`AVAILABLE`) and `LEAVING` holders.
fn owners_of(p: &Placement, shard: u32) -> Owners<'_> {
    let mut owners = Owners::default();
    for inst in p.instances.values() {
        match inst.shard(shard) {
            Some(s) if s.is_leaving() => owners.leaving.push(inst),
            Some(_) => owners.owners.push(inst),
            None => {}
        }
    }
    owners
}

/// Every instance, leaving ones included, grouped by `shard_set_id`.
fn shard_sets(p: &Placement) -> BTreeMap<u32, Vec<&Instance>> {
    let mut sets: BTreeMap<u32, Vec<&Instance>> = BTreeMap::new();
    for inst in p.instances.values() {
        sets.entry(inst.shard_set_id).or_default().push(inst);
    }
    sets
}
