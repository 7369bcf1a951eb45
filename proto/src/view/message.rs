//! Zero-copy view of an m3msg `msgpb.Message`: the metadata to ack and the value
//! (a `metricpb.MetricWithMetadatas`), borrowed from the frame. Used on the shard cores.

use super::error::DecodeError;
use super::wire::Fields;

/// A decoded `msgpb.Message`. An absent metadata reads as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageView<'a> {
    /// `Metadata.shard`.
    pub shard: u64,
    /// `Metadata.id`, echoed back in the ack.
    pub id: u64,
    /// `Metadata.sentAtNanos`, echoed back in the ack.
    pub sent_at_nanos: u64,
    /// The message body, borrowed from the input.
    pub value: &'a [u8],
    /// The metadata field as it came (key, length and body), for an ack to echo without
    /// encoding it again (see `output::AckFrame`). Empty when the decoder did not keep it
    /// (metadata absent, or a layout only the general decoder reads).
    pub ack_entry: &'a [u8],
}

/// `decode_message` for any layout, not only the one the fast path reads.
#[inline(never)]
pub(super) fn decode_message_in_general(buf: &[u8]) -> Result<MessageView<'_>, DecodeError> {
    let mut view = MessageView::default();
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => {
                for field in Fields::new(field.bytes()?) {
                    let field = field?;
                    match field.number {
                        1 => view.shard = field.varint()?,
                        2 => view.id = field.varint()?,
                        3 => view.sent_at_nanos = field.varint()?,
                        _ => {}
                    }
                }
            }
            2 => view.value = field.bytes()?,
            _ => {}
        }
    }
    Ok(view)
}
