//! Where the StatsD delimiters are in a datagram, 64 bytes at a time: one bit per byte that
//! is any of `\n`, `|`, `:` and `;`, so that a line is split by counting trailing zeros rather
//! than by a byte loop per delimiter, whose loops and mispredicted exits would be most of the
//! parse's cost. Used by `line::for_each_line` on whichever core received the datagram; pure
//! functions over borrowed bytes.
//!
//! One mask for the four delimiters, not one per delimiter: a plain line `name:value|type\n`
//! has exactly three, and the reader tells them apart by looking at the three bytes the mask
//! points to. That is a quarter of the masks to build, shift and join per line.
//!
//! On x86-64 the bits come from SSE2 compares, 16 bytes at a time. Elsewhere they come from
//! SWAR on 8-byte words: a byte equal to a delimiter is found exactly (no false positives),
//! and the high bits of the eight bytes are gathered into one byte with a multiplication.

/// Bytes covered by one block of the mask.
pub(super) const BLOCK: usize = 64;

/// What the mask marks.
pub(super) const DELIMITERS: [u8; 4] = [b'\n', b'|', b':', b';'];

const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;
/// Moves bit 8i + 7 of a word to bit 56 + i (see the module docs).
const GATHER: u64 = 0x0102_0408_1020_4080;

/// The high bit of each byte of `word` that equals `byte`, and no other bit.
#[inline(always)]
fn high_bits_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    // The high bit of a byte of the result is set exactly where that byte of `x` is zero:
    // adding 0x7f to the low seven bits sets the high bit unless they are all zero, and no
    // carry crosses a byte.
    !(((x & LOW_SEVEN) + LOW_SEVEN) | x) & HIGH
}

/// One bit per byte of `word` (bit i for byte i) that is a delimiter.
#[inline(always)]
fn word_mask(word: u64) -> u64 {
    let high = DELIMITERS.iter().fold(0, |m, &d| m | high_bits_equal(word, d));
    (high >> 7).wrapping_mul(GATHER) >> 56
}

/// The delimiter bits of 64 bytes (at most 64; missing bytes match nothing).
fn mask_of(bytes: &[u8]) -> u64 {
    match bytes.first_chunk::<BLOCK>() {
        Some(block) => block_mask(block),
        None => {
            let mut block = [0u8; BLOCK];
            block[..bytes.len()].copy_from_slice(bytes);
            block_mask(&block)
        }
    }
}

/// SSE2 (part of every x86-64 CPU): 16 bytes per compare instead of 8 per SWAR step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_mask(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let mut mask = 0;
    for (i, chunk) in block.as_chunks::<16>().0.iter().enumerate() {
        // The unaligned load reads exactly `chunk`; the other intrinsics only compute.
        // SAFETY: SSE2 is in the x86-64 baseline, so these intrinsics always exist.
        let bits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let [a, b, c, d] = DELIMITERS.map(|byte| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8)));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))
        };
        mask |= u64::from(bits as u16) << (16 * i);
    }
    mask
}

/// Portable SWAR, 8 bytes at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn block_mask_swar(block: &[u8; BLOCK]) -> u64 {
    let mut mask = 0;
    for (i, chunk) in block.as_chunks::<8>().0.iter().enumerate() {
        mask |= word_mask(u64::from_le_bytes(*chunk)) << (8 * i);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask_swar(block)
}

/// The delimiter mask of a buffer, computed one block at a time as the reader moves forward.
pub(super) struct Scanner<'a> {
    buf: &'a [u8],
    /// Index of the block whose mask is in `current` (`next` holds the one after).
    block: usize,
    current: u64,
    next: u64,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        let mut s = Scanner { buf, block: 0, current: 0, next: 0 };
        s.load(0);
        s
    }

    fn block_mask(&self, block: usize) -> u64 {
        mask_of(self.buf.get(block * BLOCK..).unwrap_or(&[]))
    }

    fn load(&mut self, block: usize) {
        self.current = if block == self.block + 1 { self.next } else { self.block_mask(block) };
        self.next = self.block_mask(block + 1);
        self.block = block;
    }

    /// The delimiter bits of the 64 bytes from `at` (bit i for byte `at + i`; none past the
    /// buffer's end); `at` never goes backwards between calls.
    #[inline]
    pub(super) fn window(&mut self, at: usize) -> u64 {
        let block = at / BLOCK;
        if block != self.block {
            self.load(block);
        }
        let offset = at % BLOCK;
        if offset == 0 { self.current } else { (self.current >> offset) | (self.next << (BLOCK - offset)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(bytes: &[u8]) -> u64 {
        bytes.iter().take(BLOCK).enumerate().filter(|(_, b)| DELIMITERS.contains(b)).fold(0, |m, (i, _)| m | 1 << i)
    }

    proptest! {
        /// Every window of every buffer agrees with a byte loop.
        #[test]
        fn windows_match_a_byte_loop(
            buf in prop::collection::vec(prop::sample::select(b"\n|:;a0\x80\xff\x7f\x00\x0a\x3a".to_vec()), 0..300),
            step in 1usize..70,
        ) {
            let mut scanner = Scanner::new(&buf);
            let mut at = 0;
            while at < buf.len() {
                prop_assert_eq!(scanner.window(at), naive(&buf[at..]));
                at += step;
            }
        }
    }

    proptest! {
        /// Both block implementations give the bits of a byte loop.
        #[test]
        fn simd_and_swar_blocks_agree(block in prop::collection::vec(prop::sample::select(b"\n|:;a\x80\xff\x00".to_vec()), BLOCK)) {
            let block: [u8; BLOCK] = block.try_into().unwrap();
            prop_assert_eq!(block_mask(&block), naive(&block));
            prop_assert_eq!(block_mask_swar(&block), naive(&block));
        }
    }

    #[test]
    fn every_byte_value_is_told_apart() {
        for b in 0..=255u8 {
            let bytes = [b, 0, b'|', b, 0xff, b, b':', 0x80];
            assert_eq!(word_mask(u64::from_le_bytes(bytes)), naive(&bytes), "byte {b:#x}");
        }
    }
}
