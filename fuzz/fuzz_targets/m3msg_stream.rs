//! A TCP stream of m3msg frames as a producer (or a peer forwarding) sends it: the framing,
//! then each payload through the same decoder the ingest connections run, acks included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheaf_proto::frame::next_frame;
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::{AggregatorOptions, SampleBatch};
use sheaf_shard_runtime::decode::M3msgDecoder;

const MAX_FRAME: usize = 64 * 1024;
const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|stream: &[u8]| {
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap(), "1m:40d".parse().unwrap()]);
    let mut decoder = M3msgDecoder::new(64, &options);
    let mut batch = SampleBatch::default();
    let mut acks = AckFrame::default();
    let mut rest = stream;
    let mut frames = 0;
    while let Ok(Some((payload, used))) = next_frame(rest, MAX_FRAME) {
        assert!(used > 0 && used <= rest.len(), "a frame must consume bytes within the buffer");
        decoder.message(payload, NOW, &mut batch, &mut acks);
        rest = &rest[used..];
        frames += 1;
    }
    // One sample at most per message (a batch timer's values travel in one).
    assert!(batch.len() <= frames, "{} samples from {frames} messages", batch.len());
    let _ = acks.frame();
});
