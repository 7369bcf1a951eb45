//! Truncated and garbage input never panics: random bytes, and every prefix of a
//! valid (rewritten) message, which must give an error or exactly what prost
//! decodes from that prefix.

mod common;

use common::reference::{expected, observe};
use common::strategies::{message, metric_with_metadatas, nanos};
use common::transform::{Msg, rewrite};
use proptest::prelude::*;
use prost::Message;
use sheaf_proto::msgpb;
use sheaf_proto::view::{self, DecodeError};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256), now in nanos()) {
        let got = observe(&buf, now);
        if let Some(want) = expected(&buf, now)
            && !matches!(got, Err(DecodeError::GroupUnsupported { .. }))
        {
            prop_assert_eq!(got, want);
        }
        let _ = view::decode_message(&buf);
    }

    #[test]
    fn every_metric_prefix_is_an_error_or_consistent(
        m in metric_with_metadatas(),
        now in nanos(),
        seed in any::<u64>(),
    ) {
        let buf = rewrite(&m.encode_to_vec(), Msg::MetricWithMetadatas, seed);
        for cut in 0..buf.len() {
            let prefix = &buf[..cut];
            let got = observe(prefix, now);
            match expected(prefix, now) {
                Some(want) => prop_assert_eq!(got, want, "prefix of {} bytes", cut),
                None => prop_assert!(got.is_err(), "prefix of {} bytes: {:?}", cut, got),
            }
        }
    }

    #[test]
    fn every_message_prefix_is_an_error_or_consistent(m in message(), seed in any::<u64>()) {
        let buf = rewrite(&m.encode_to_vec(), Msg::Message, seed);
        for cut in 0..buf.len() {
            let prefix = &buf[..cut];
            let got = view::decode_message(prefix);
            match msgpb::Message::decode(prefix) {
                Ok(want) => {
                    let md = want.metadata.unwrap_or_default();
                    let got = got.expect("prost accepted the prefix");
                    prop_assert_eq!(
                        (got.shard, got.id, got.sent_at_nanos, got.value),
                        (md.shard, md.id, md.sent_at_nanos, &want.value[..])
                    );
                }
                Err(_) => prop_assert!(got.is_err(), "prefix of {} bytes", cut),
            }
        }
    }
}
