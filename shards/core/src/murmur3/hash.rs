//! MurmurHash3 x86 32-bit, vendored rather than taken from the unmaintained `mur3` crate, and
//! bit-for-bit identical to Go's `github.com/spaolacci/murmur3` `Sum32WithSeed`, which is what
//! M3 shards with. It is Austin Appleby's `MurmurHash3_x86_32` from SMHasher: 4-byte
//! little-endian blocks, a 1–3 byte tail, the length mixed in (truncated to 32 bits, as Go's
//! `uint32(len(data))`), then the `fmix32` finaliser.
//!
//! A pure function, called on whichever core decodes a value; it reads the id in place.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// Scrambles one 4-byte block (or the zero-padded tail) before it is mixed in.
#[inline(always)]
fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// MurmurHash3 x86 32-bit of `data` with `seed`; equals Go's
/// `murmur3.Sum32WithSeed(data, seed)` (and `murmur3.Sum32(data)` for seed 0).
#[inline]
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= scramble(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    // The 1–3 tail bytes as a little-endian word, without a branch per length (ids of every
    // length arrive mixed, so those branches mispredict): the first, middle and last byte
    // ORed into place, which for shorter tails are the same byte.
    let tail = blocks.remainder();
    if let (Some(&first), Some(&last)) = (tail.first(), tail.last()) {
        let (mid, end) = (tail.len() / 2, tail.len() - 1);
        let k = u32::from(first) | u32::from(tail[mid]) << (8 * mid) | u32::from(last) << (8 * end);
        h ^= scramble(k);
    }

    // Truncation is intended: the reference (and Go's) use a 32-bit length.
    h ^= data.len() as u32;

    // fmix32
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of github.com/spaolacci/murmur3's `murmur_test.go`
    /// (`data` table, `h32` column), seed 0 and seed 0x2a.
    const GO_VECTORS: &[(u32, &str, u32)] = &[
        (0x00, "", 0x0000_0000),
        (0x00, "hello", 0x248b_fa47),
        (0x00, "hello, world", 0x149b_bb7f),
        (0x00, "19 Jan 2038 at 3:14:07 AM", 0xe31e_8a70),
        (0x00, "The quick brown fox jumps over the lazy dog.", 0xd5c4_8bfc),
        (0x2a, "", 0x087f_cd5c),
        (0x2a, "hello", 0xe2db_d2e1),
        (0x2a, "hello, world", 0x7ec7_c6c2),
        (0x2a, "19 Jan 2038 at 3:14:07 AM", 0x58f7_45f6),
        (0x2a, "The quick brown fox jumps over the lazy dog.", 0xc02d_1434),
    ];

    #[test]
    fn go_spaolacci_vectors() {
        for &(seed, input, want) in GO_VECTORS {
            let got = murmur3_x86_32(input.as_bytes(), seed);
            assert_eq!(got, want, "seed {seed:#x} input {input:?}: got {got:#010x}");
        }
    }

    /// Canonical SMHasher / reference-implementation check values, which
    /// independently validate the Go vectors above.
    #[test]
    fn smhasher_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514E_28B7),
            (b"", 0xffff_ffff, 0x81F1_6F39),
            (b"\xff\xff\xff\xff", 0, 0x7629_3B50),
            (b"\x21\x43\x65\x87", 0, 0xF55B_516B),
            (b"\x21\x43\x65\x87", 0x5082_EDEE, 0x2362_F9DE),
            (b"\x21\x43\x65", 0, 0x7E4A_8634),
            (b"\x21\x43", 0, 0xA0F7_B07A),
            (b"\x21", 0, 0x7266_1CF4),
            (b"\0\0\0\0", 0, 0x2362_F9DE),
            (b"\0\0\0", 0, 0x85F0_B427),
            (b"\0\0", 0, 0x30F4_C306),
            (b"\0", 0, 0x514E_28B7),
            (b"aaaa", 0x9747_b28c, 0x5A97_808A),
            (b"aaa", 0x9747_b28c, 0x283E_0130),
            (b"aa", 0x9747_b28c, 0x5D21_1726),
            (b"a", 0x9747_b28c, 0x7FA0_9EA6),
            (b"abcd", 0x9747_b28c, 0xF047_8627),
            (b"abc", 0x9747_b28c, 0xC84A_62DD),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4CBA),
            (b"The quick brown fox jumps over the lazy dog", 0x9747_b28c, 0x2FA8_26CD),
        ];
        for &(input, seed, want) in cases {
            let got = murmur3_x86_32(input, seed);
            assert_eq!(got, want, "seed {seed:#x} input {input:?}: got {got:#010x}");
        }
    }

    /// The SMHasher "verification value" for MurmurHash3_x86_32: hash keys
    /// {}, {0}, {0,1}, ... {0..254} with seed 256-n, hash the 256 hashes
    /// (little-endian) with seed 0; the first 4 bytes read LE are 0xB0F57EE3.
    #[test]
    fn smhasher_verification_value() {
        let mut key = [0u8; 256];
        let mut hashes = [0u8; 256 * 4];
        for i in 0..256usize {
            key[i] = i as u8;
            let h = murmur3_x86_32(&key[..i], (256 - i) as u32);
            hashes[i * 4..i * 4 + 4].copy_from_slice(&h.to_le_bytes());
        }
        assert_eq!(murmur3_x86_32(&hashes, 0), 0xB0F5_7EE3);
    }
}
