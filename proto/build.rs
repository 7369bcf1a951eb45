//! Compiles the M3-compatible `.proto` files under `protos/` with prost into `OUT_DIR`
//! (one `<package>.rs` per protobuf package, included by `src/lib.rs`).

use std::io::Result;

const PROTOS: &[&str] = &[
    "protos/msgpb/msg.proto",
    "protos/aggregationpb/aggregation.proto",
    "protos/policypb/policy.proto",
    "protos/transformationpb/transformation.proto",
    "protos/pipelinepb/pipeline.proto",
    "protos/metricpb/metric.proto",
    "protos/metricpb/metadata.proto",
    "protos/metricpb/composite.proto",
    "protos/placementpb/placement.proto",
    "protos/flushpb/flush.proto",
    "protos/topicpb/topic.proto",
];

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=protos");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    prost_build::Config::new().compile_protos(PROTOS, &["protos"])
}
