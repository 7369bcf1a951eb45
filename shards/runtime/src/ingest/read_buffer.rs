//! `ReadBuffer`: what a stream connection (m3msg, StatsD over TCP) has received and not yet
//! decoded, and `BufferBudget`: how much more than their base buffers the connections of one
//! protocol on one core may hold. A `ReadBuffer` lives in one connection's task; the budget
//! is its core's, shared (`Rc`) by that core's connections of the protocol, and no other
//! thread touches either.

use std::cell::Cell;
use std::rc::Rc;

/// Bytes asked of each read of a stream socket.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The buffer every connection starts with (and returns to once a larger frame is
/// decoded); only what a frame or line needs beyond it is charged to the budget.
pub(crate) const BASE_BYTES: usize = READ_CHUNK * 2;

/// The bytes one core's connections of one protocol hold beyond `BASE_BYTES` each, and the
/// most they may hold. Plain cells: only its core touches it.
pub(crate) struct BufferBudget {
    held: Cell<usize>,
    max: usize,
}

impl BufferBudget {
    pub(crate) fn new(max: usize) -> Rc<Self> {
        Rc::new(Self { held: Cell::new(0), max })
    }

    /// Takes `n` more bytes if they fit; false (nothing taken) if they do not.
    fn take(&self, n: usize) -> bool {
        let held = self.held.get().saturating_add(n);
        if held > self.max {
            return false;
        }
        self.held.set(held);
        true
    }

    fn give_back(&self, n: usize) {
        self.held.set(self.held.get().saturating_sub(n));
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.get()
    }
}

/// A frame (or line) that would take its core over the budget.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OverBudget;

/// The bytes received on one connection and not yet decoded. The socket reads straight
/// into it (no copy from a separate read buffer); only the partial frame (or line) left at
/// the end of a read moves, to the front, when the room after it runs short. A frame larger
/// than `BASE_BYTES` grows it, within the budget, until the frame is decoded (and at most
/// `READ_CHUNK` bytes are left after it).
pub(crate) struct ReadBuffer {
    bytes: Vec<u8>,
    /// Decoded up to here.
    start: usize,
    /// Received up to here.
    end: usize,
    budget: Rc<BufferBudget>,
    /// What this buffer holds of the budget: its size beyond `BASE_BYTES`.
    charged: usize,
}

impl ReadBuffer {
    pub(crate) fn new(budget: Rc<BufferBudget>) -> Self {
        Self { bytes: vec![0; BASE_BYTES], start: 0, end: 0, budget, charged: 0 }
    }

    /// Room for at least `want` more bytes after what was received, unless making it would
    /// take the core over its budget.
    pub(crate) fn spare(&mut self, want: usize) -> Result<&mut [u8], OverBudget> {
        if self.bytes.len() - self.end < want {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.bytes.len() - self.end < want {
                self.grow(self.end + want)?;
            }
        }
        Ok(&mut self.bytes[self.end..])
    }

    /// Grows to exactly `len` bytes (zeroed once, then reused until the buffer empties).
    fn grow(&mut self, len: usize) -> Result<(), OverBudget> {
        let charge = len.saturating_sub(BASE_BYTES);
        if !self.budget.take(charge - self.charged) {
            return Err(OverBudget);
        }
        self.charged = charge;
        self.bytes.reserve_exact(len - self.bytes.len());
        self.bytes.resize(len, 0);
        Ok(())
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
        if self.charged > 0 && self.end - self.start <= READ_CHUNK {
            self.shrink();
        }
    }

    /// The large frame is decoded: what is left (at most `READ_CHUNK`) moves to the front
    /// of a buffer of the base size, and the growth goes back to the budget.
    fn shrink(&mut self) {
        self.bytes.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.bytes.truncate(BASE_BYTES);
        self.bytes.shrink_to_fit();
        self.budget.give_back(std::mem::take(&mut self.charged));
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        self.budget.give_back(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::{BASE_BYTES, BufferBudget, OverBudget, READ_CHUNK, ReadBuffer};

    /// Frames of any size, received in reads of any size, come out whole and in order.
    #[test]
    fn read_buffer_keeps_partial_frames_across_reads() {
        let frames: Vec<Vec<u8>> =
            (0..200u32).map(|i| vec![i as u8; (i as usize * 7919) % (READ_CHUNK * 3) + 1]).collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        for read_size in [1, 1000, READ_CHUNK - 1, READ_CHUNK * 4] {
            let budget = BufferBudget::new(usize::MAX);
            let mut buf = ReadBuffer::new(budget.clone());
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
                let room = buf.spare(read_size).unwrap();
                assert!(room.len() >= read_size);
                let n = read_size.min(stream.len() - sent);
                room[..n].copy_from_slice(&stream[sent..sent + n]);
                buf.filled(n);
                sent += n;
            }
            assert_eq!(got, frames, "reads of {read_size}");
            assert_eq!(budget.held(), 0, "an emptied buffer gives its growth back");
        }
    }

    /// Growth beyond the base buffer is charged to the core's budget, refused past it, and
    /// given back when the large frame is decoded or the connection ends.
    #[test]
    fn growth_is_charged_to_the_budget_and_given_back() {
        let budget = BufferBudget::new(3 * READ_CHUNK);
        let mut a = ReadBuffer::new(budget.clone());
        let mut b = ReadBuffer::new(budget.clone());
        let n = a.spare(BASE_BYTES + 2 * READ_CHUNK).unwrap().len();
        a.filled(n);
        assert_eq!(budget.held(), 2 * READ_CHUNK);
        b.spare(BASE_BYTES).unwrap();
        assert_eq!(b.spare(BASE_BYTES + 2 * READ_CHUNK).err(), Some(OverBudget), "past the budget");
        assert_eq!(budget.held(), 2 * READ_CHUNK, "a refused growth takes nothing");
        let n = b.spare(BASE_BYTES + READ_CHUNK).unwrap().len();
        b.filled(n);
        assert_eq!(budget.held(), 3 * READ_CHUNK);
        let len = a.unread().len();
        a.consume(len - 10);
        assert_eq!(budget.held(), READ_CHUNK, "a decoded large frame gives its growth back");
        assert_eq!(a.unread().len(), 10, "and keeps what follows it");
        drop(b);
        assert_eq!(budget.held(), 0, "a closed connection gives its growth back");
    }
}
