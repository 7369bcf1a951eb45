//! The placement as stored in etcd (M3's `PlacementSnapshots` protobuf): whatever another
//! writer left under the key decodes to a valid placement or to an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheaf::cluster::placement::{decode_snapshots, encode_snapshots};

fuzz_target!(|data: &[u8]| {
    if let Ok(placement) = decode_snapshots(data) {
        let again = decode_snapshots(&encode_snapshots(&placement)).expect("a decoded placement re-encodes");
        assert_eq!(again, placement);
    }
});
