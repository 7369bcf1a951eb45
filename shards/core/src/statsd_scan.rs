//! Where the StatsD delimiters are in a datagram, 64 bytes at a time: one bit per byte for
//! each of `\n`, `|`, `:` and `;`, so that a line is split by counting trailing zeros rather
//! than by a byte loop per delimiter (the profile showed those loops, and their mispredicted
//! exits, as most of the parse). Used by `statsd::for_each_line` on whichever core received
//! the datagram; pure functions over borrowed bytes.
//!
//! On x86-64 the bits come from SSE2 compares, 16 bytes at a time. Elsewhere they come from
//! SWAR on 8-byte words: a byte equal to the delimiter is found exactly (no false positives),
//! and the high bits of the eight bytes are gathered into one byte with a multiplication.

/// Bytes covered by one block of masks.
pub(crate) const BLOCK: usize = 64;

const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;
/// Moves bit 8i + 7 of a word to bit 56 + i (see the module docs).
const GATHER: u64 = 0x0102_0408_1020_4080;

/// One bit per byte of `word` (bit i for byte i) that equals `byte`.
#[inline(always)]
fn byte_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    // The high bit of a byte of `zero` is set exactly where that byte of `x` is zero: adding
    // 0x7f to the low seven bits sets the high bit unless they are all zero, and no carry
    // crosses a byte.
    let zero = !(((x & LOW_SEVEN) + LOW_SEVEN) | x) & HIGH;
    (zero >> 7).wrapping_mul(GATHER) >> 56
}

/// The delimiter bits of 64 bytes (or of a window of 64 bytes starting anywhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    pub(crate) newline: u64,
    pub(crate) pipe: u64,
    pub(crate) colon: u64,
    pub(crate) semicolon: u64,
}

impl Masks {
    /// The masks of `bytes` (at most 64; missing bytes match nothing).
    fn of(bytes: &[u8]) -> Self {
        match bytes.first_chunk::<BLOCK>() {
            Some(block) => Self::of_block(block),
            None => {
                let mut block = [0u8; BLOCK];
                block[..bytes.len()].copy_from_slice(bytes);
                Self::of_block(&block)
            }
        }
    }

    /// SSE2 (part of every x86-64 CPU): 16 bytes per compare instead of 8 per SWAR step.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn of_block(block: &[u8; BLOCK]) -> Self {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        let bits = |v: __m128i, byte: u8| {
            // SAFETY: SSE2 is in the x86-64 baseline, so these intrinsics always exist; they only compute.
            let mask = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8))) };
            u64::from(mask as u16)
        };
        let mut m = Masks::default();
        for (i, chunk) in block.as_chunks::<16>().0.iter().enumerate() {
            // SAFETY: SSE2 is in the x86-64 baseline; the unaligned load reads exactly `chunk`.
            let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            let shift = 16 * i;
            m.newline |= bits(v, b'\n') << shift;
            m.pipe |= bits(v, b'|') << shift;
            m.colon |= bits(v, b':') << shift;
            m.semicolon |= bits(v, b';') << shift;
        }
        m
    }

    /// Portable SWAR, 8 bytes at a time.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn of_block_swar(block: &[u8; BLOCK]) -> Self {
        let mut m = Masks::default();
        for (i, chunk) in block.as_chunks::<8>().0.iter().enumerate() {
            let word = u64::from_le_bytes(*chunk);
            let shift = 8 * i;
            m.newline |= byte_mask(word, b'\n') << shift;
            m.pipe |= byte_mask(word, b'|') << shift;
            m.colon |= byte_mask(word, b':') << shift;
            m.semicolon |= byte_mask(word, b';') << shift;
        }
        m
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn of_block(block: &[u8; BLOCK]) -> Self {
        Self::of_block_swar(block)
    }

    /// The bits for the 64 bytes from `offset` (below 64) into `self`, then `next`.
    #[inline(always)]
    fn window(self, next: Self, offset: usize) -> Self {
        if offset == 0 {
            return self;
        }
        let join = |a: u64, b: u64| (a >> offset) | (b << (BLOCK - offset));
        Masks {
            newline: join(self.newline, next.newline),
            pipe: join(self.pipe, next.pipe),
            colon: join(self.colon, next.colon),
            semicolon: join(self.semicolon, next.semicolon),
        }
    }

    /// Keeps only the bits of the first `len` bytes (`len` at most 64).
    #[inline(always)]
    pub(crate) fn truncate(self, len: usize) -> Self {
        let keep = if len >= BLOCK { u64::MAX } else { (1u64 << len) - 1 };
        Masks {
            newline: self.newline & keep,
            pipe: self.pipe & keep,
            colon: self.colon & keep,
            semicolon: self.semicolon & keep,
        }
    }
}

/// The masks of a buffer, computed one block at a time as the reader moves forward.
pub(crate) struct Scanner<'a> {
    buf: &'a [u8],
    /// Index of the block whose masks are in `current` (`next` holds the one after).
    block: usize,
    current: Masks,
    next: Masks,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        let mut s = Scanner { buf, block: 0, current: Masks::default(), next: Masks::default() };
        s.load(0);
        s
    }

    fn block_masks(&self, block: usize) -> Masks {
        Masks::of(self.buf.get(block * BLOCK..).unwrap_or(&[]))
    }

    fn load(&mut self, block: usize) {
        self.current = if block == self.block + 1 { self.next } else { self.block_masks(block) };
        self.next = self.block_masks(block + 1);
        self.block = block;
    }

    /// The bits of the 64 bytes from `at`; `at` never goes backwards between calls.
    #[inline]
    pub(crate) fn window(&mut self, at: usize) -> Masks {
        let block = at / BLOCK;
        if block != self.block {
            self.load(block);
        }
        self.current.window(self.next, at % BLOCK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(bytes: &[u8], c: u8) -> u64 {
        bytes.iter().take(BLOCK).enumerate().filter(|(_, b)| **b == c).fold(0, |m, (i, _)| m | 1 << i)
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
                let w = scanner.window(at);
                let rest = &buf[at..];
                prop_assert_eq!(w.newline, naive(rest, b'\n'));
                prop_assert_eq!(w.pipe, naive(rest, b'|'));
                prop_assert_eq!(w.colon, naive(rest, b':'));
                prop_assert_eq!(w.semicolon, naive(rest, b';'));
                at += step;
            }
        }
    }

    proptest! {
        /// Both block implementations give the bits of a byte loop.
        #[test]
        fn simd_and_swar_blocks_agree(block in prop::collection::vec(prop::sample::select(b"\n|:;a\x80\xff\x00".to_vec()), BLOCK)) {
            let block: [u8; BLOCK] = block.try_into().unwrap();
            let want = Masks {
                newline: naive(&block, b'\n'),
                pipe: naive(&block, b'|'),
                colon: naive(&block, b':'),
                semicolon: naive(&block, b';'),
            };
            prop_assert_eq!(Masks::of_block(&block), want);
            prop_assert_eq!(Masks::of_block_swar(&block), want);
        }
    }

    #[test]
    fn every_byte_value_is_told_apart() {
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b, 0, b'|', b, 0xff, b, b'|', 0x80]);
            let bytes = word.to_le_bytes();
            for c in [b'\n', b'|', b':', b';'] {
                assert_eq!(byte_mask(word, c), naive(&bytes, c), "byte {b:#x} delimiter {c:#x}");
            }
        }
    }

    #[test]
    fn truncate_keeps_the_first_bytes() {
        let m = Masks { newline: u64::MAX, pipe: 0b1011, colon: 1 << 63, semicolon: 0 };
        assert_eq!(m.truncate(2), Masks { newline: 0b11, pipe: 0b11, colon: 0, semicolon: 0 });
        assert_eq!(m.truncate(64), m);
        assert_eq!(m.truncate(0), Masks::default());
    }
}
