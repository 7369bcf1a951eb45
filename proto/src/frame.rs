//! m3msg framing: each message on the stream is a 4-byte big-endian length
//! followed by that many bytes of protobuf.
//!
//! Used by the ingest connections on the shard cores (splitting the byte stream,
//! writing acks) and by tests and tools that produce m3msg traffic.

use prost::Message;

/// Length of the frame header (a big-endian `u32`).
pub const HEADER_LEN: usize = 4;

/// M3's default maximum m3msg frame size (4 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 4 << 20;

/// Error while splitting a stream into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a body larger than allowed. The stream cannot be
    /// resynchronised after that: the caller closes the connection.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced body length.
        len: usize,
        /// Configured maximum body length.
        max: usize,
    },
}

/// Appends a 4-byte big-endian length then the encoded message.
///
/// # Panics
///
/// If the encoded message is 4 GiB or larger (it cannot be framed).
pub fn encode_frame<M: Message>(msg: &M, out: &mut Vec<u8>) {
    let len = msg.encoded_len();
    let header = u32::try_from(len).expect("m3msg frame body must be smaller than 4 GiB");
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&header.to_be_bytes());
    msg.encode(out).expect("a Vec<u8> grows as needed");
}

/// Looks at the start of `buf`.
///
/// - `Ok(None)`: not a whole frame yet (need more bytes).
/// - `Ok(Some((payload, consumed)))`: `payload` is the frame body and
///   `consumed = 4 + payload.len()` bytes of `buf` were used.
/// - `Err(FrameError::TooLarge { .. })` as soon as the header announces a body
///   longer than `max_frame_size`, without waiting for the body.
pub fn next_frame(buf: &[u8], max_frame_size: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    // A u32 always fits in usize on the 32- and 64-bit targets sheaf supports.
    let len = u32::from_be_bytes(*header) as usize;
    if len > max_frame_size {
        return Err(FrameError::TooLarge { len, max: max_frame_size });
    }
    Ok(rest.get(..len).map(|payload| (payload, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpb;

    fn message(id: u64, value: &[u8]) -> msgpb::Message {
        msgpb::Message {
            metadata: Some(msgpb::Metadata { shard: 7, id, sent_at_nanos: 1_000 + id }),
            value: value.to_vec(),
        }
    }

    #[test]
    fn round_trip_several_frames_in_one_buffer() {
        let msgs: Vec<_> = (0..5).map(|i| message(i, &vec![i as u8; i as usize * 3])).collect();
        let mut buf = Vec::new();
        for m in &msgs {
            encode_frame(m, &mut buf);
        }
        let mut at = 0;
        let mut decoded = Vec::new();
        while let Some((payload, consumed)) = next_frame(&buf[at..], 1024).unwrap() {
            decoded.push(msgpb::Message::decode(payload).unwrap());
            at += consumed;
        }
        assert_eq!(at, buf.len());
        assert_eq!(decoded, msgs);
    }

    #[test]
    fn header_is_big_endian_length() {
        let m = message(1, b"abc");
        let mut buf = Vec::new();
        encode_frame(&m, &mut buf);
        let len = m.encoded_len();
        assert_eq!(&buf[..4], &(len as u32).to_be_bytes());
        assert_eq!(buf.len(), 4 + len);
        assert_eq!(&buf[4..], &m.encode_to_vec()[..]);
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let mut buf = Vec::new();
        encode_frame(&message(3, b"hello"), &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(next_frame(&buf[..cut], 1024), Ok(None), "cut at {cut}");
        }
        let (payload, consumed) = next_frame(&buf, 1024).unwrap().unwrap();
        assert_eq!(consumed, buf.len());
        assert_eq!(payload, &buf[4..]);
    }

    #[test]
    fn empty_body_is_a_frame() {
        let buf = [0, 0, 0, 0, 9];
        assert_eq!(next_frame(&buf, 0), Ok(Some((&[][..], 4))));
    }

    #[test]
    fn oversize_is_reported_from_the_header_alone() {
        let buf = [0, 0, 1, 1];
        assert_eq!(next_frame(&buf, 256), Err(FrameError::TooLarge { len: 257, max: 256 }));
        assert_eq!(next_frame(&[0, 0, 1, 0], 256), Ok(None));
        assert_eq!(
            next_frame(&[0xff; 4], DEFAULT_MAX_FRAME_SIZE),
            Err(FrameError::TooLarge { len: u32::MAX as usize, max: DEFAULT_MAX_FRAME_SIZE })
        );
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut buf = vec![0, 0, 0, 3];
        buf.extend_from_slice(b"xyz");
        assert_eq!(next_frame(&buf, 3), Ok(Some((&b"xyz"[..], 7))));
    }
}
