//! `ReadBuffer`: what a stream connection (m3msg, StatsD over TCP) has received and not yet
//! decoded. Lives in one connection's task on the core that accepted it.

/// Bytes asked of each read of a stream socket.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The bytes received on one connection and not yet decoded. The socket reads straight
/// into it (no copy from a separate read buffer); only the partial frame (or line) left at
/// the end of a read moves, to the front, when the room after it runs short.
pub(crate) struct ReadBuffer {
    bytes: Vec<u8>,
    /// Decoded up to here.
    start: usize,
    /// Received up to here.
    end: usize,
}

impl ReadBuffer {
    pub(crate) fn new() -> Self {
        Self { bytes: vec![0; READ_CHUNK * 2], start: 0, end: 0 }
    }

    /// Room for at least `want` more bytes after what was received.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.bytes.len() - self.end < want {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.bytes.len() - self.end < want {
                // A frame larger than the buffer: grow (zeroed once, then reused).
                self.bytes.resize(self.end + want, 0);
            }
        }
        &mut self.bytes[self.end..]
    }

    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    pub(crate) fn unread(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{READ_CHUNK, ReadBuffer};

    /// Frames of any size, received in reads of any size, come out whole and in order.
    #[test]
    fn read_buffer_keeps_partial_frames_across_reads() {
        let frames: Vec<Vec<u8>> =
            (0..200u32).map(|i| vec![i as u8; (i as usize * 7919) % (READ_CHUNK * 3) + 1]).collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        for read_size in [1, 1000, READ_CHUNK - 1, READ_CHUNK * 4] {
            let mut buf = ReadBuffer::new();
            let (mut sent, mut got) = (0, Vec::new());
            let mut next = frames.iter();
            let mut want = next.next();
            while let Some(frame) = want {
                if buf.unread().len() >= frame.len() {
                    got.push(buf.unread()[..frame.len()].to_vec());
                    buf.consume(frame.len());
                    want = next.next();
                    continue;
                }
                let room = buf.spare(read_size);
                assert!(room.len() >= read_size);
                let n = read_size.min(stream.len() - sent);
                room[..n].copy_from_slice(&stream[sent..sent + n]);
                buf.filled(n);
                sent += n;
            }
            assert_eq!(got, frames, "reads of {read_size}");
        }
    }
}
