//! The zero-copy view decoder on its own: an m3msg `Message`, then its value as a
//! `MetricWithMetadatas` (also tried on the raw input, so the metric decoder sees bytes that
//! no valid message would wrap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheaf_proto::view::{Scratch, decode_message, decode_metric};

const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Scratch::default();
    if let Ok(message) = decode_message(data) {
        let _ = decode_metric(message.value, NOW, &mut scratch);
    }
    let _ = decode_metric(data, NOW, &mut scratch);
});
