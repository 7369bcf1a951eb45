//! Shared code of sheaf's benchmarks: the synthetic workload (series ids, StatsD lines,
//! m3msg messages) that both the criterion benches under `benches/` and the `sheaf-load`
//! load generator produce, so the micro-benchmarks measure the same bytes the end-to-end
//! runs send.

pub mod ingest_path;
pub mod m3msg_path;
pub mod rollup_cycle;
pub mod workload;
