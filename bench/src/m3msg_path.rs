//! What a shard core does with the m3msg frames it reads, up to the batches it applies or
//! hands off: cut the frames, then run the runtime's own sans-IO decoder
//! (`sheaf_shard_runtime::decode::M3msgDecoder`) on each message, which decodes it
//! (zero-copy `view`), computes the shard and series hash and pushes the sample into the
//! batch of the core owning the shard. Shared by the `m3msg_ingest`, `instructions` and
//! `scaling` benches.

use sheaf_proto::frame::{DEFAULT_MAX_FRAME_SIZE, next_frame};
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::{AggregatorOptions, SampleBatch};
use sheaf_shard_runtime::decode::{M3msgDecoder, SampleRouter};

/// Decodes framed m3msg messages into sample batches, with sheaf's default storage policy
/// (`10s:2d`).
pub struct FrameDecoder {
    decoder: M3msgDecoder,
    acks: AckFrame,
    now: i64,
}

impl FrameDecoder {
    /// `now`: the decoding time, which picks the staged metadata in effect.
    pub fn new(num_shards: u32, now: i64) -> Self {
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
        Self { decoder: M3msgDecoder::new(num_shards, &options), acks: AckFrame::default(), now }
    }

    /// Decodes up to `max` frames at the start of `frames` into the batches `router` picks,
    /// gathering each message's ack as a connection does; returns the bytes used.
    pub fn decode(&mut self, frames: &[u8], max: usize, router: &mut impl SampleRouter) -> usize {
        let mut at = 0;
        for _ in 0..max {
            let Ok(Some((payload, used))) = next_frame(&frames[at..], DEFAULT_MAX_FRAME_SIZE) else { break };
            at += used;
            self.decoder.message(payload, self.now, router, &mut self.acks);
        }
        self.acks.clear();
        std::mem::take(self.decoder.tally());
        at
    }
}

/// Routes each sample into `batches[owner(shard)]`: one batch per destination core.
pub struct ByOwner<'a, F> {
    pub owner: F,
    pub batches: &'a mut [SampleBatch],
}

impl<F: FnMut(u32) -> usize> SampleRouter for ByOwner<'_, F> {
    #[inline]
    fn batch_for(&mut self, shard: u32) -> &mut SampleBatch {
        &mut self.batches[(self.owner)(shard)]
    }
}
