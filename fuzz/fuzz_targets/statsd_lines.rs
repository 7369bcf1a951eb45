//! StatsD / DogStatsD datagrams and stream reads: the decoder every StatsD transport runs,
//! with a short line limit so that the too-long path is reached as well.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheaf_shard_core::SampleBatch;
use sheaf_shard_runtime::decode::StatsdDecoder;

fuzz_target!(|data: &[u8]| {
    for max_line in [64, 64 * 1024] {
        let mut decoder = StatsdDecoder::new(64, max_line);
        let mut batch = SampleBatch::default();
        decoder.lines(data, &mut batch);
        assert_eq!(decoder.tally().ingested as usize, batch.len());
    }
});
