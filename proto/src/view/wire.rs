//! Protobuf wire-format primitives for the zero-copy decoder: varints, field keys,
//! fixed64 and length-delimited values, and a field iterator that skips nothing
//! silently (every field's framing is checked) and rejects groups.
//!
//! Runs on the shard cores for every ingested message; never allocates.

use super::error::DecodeError;

/// Wire type numbers as they appear in a field key.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Longest valid varint encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Decodes a varint at the start of `buf`, returning it and its encoded length.
///
/// Same acceptance as prost: at most 10 bytes, the 10th byte may only carry the
/// top bit of the value; non-canonical (over-long) encodings are accepted.
#[inline(always)]
pub(super) fn decode_varint(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    if let Some(&b) = buf.first()
        && b < 0x80
    {
        return Ok((u64::from(b), 1));
    }
    // Up to 8 bytes, with 8 readable: the end from the word's top bits, the 7-bit groups
    // gathered by three shift-and-mask steps (no loop, no branch per byte). An m3msg message
    // carries several (its id, a 9-byte `sent_at_nanos` whose first 8 bytes come this way).
    if let Some(word) = buf.first_chunk::<8>().map(|w| u64::from_le_bytes(*w)) {
        let ends = !word & 0x8080_8080_8080_8080;
        if ends != 0 {
            let len = ends.trailing_zeros() as usize / 8 + 1;
            return Ok((gather_groups(word, len), len));
        }
        // 9 or 10 bytes: the first 8 give the low 56 bits.
        if let Some(&b8) = buf.get(8)
            && b8 < 0x80
        {
            return Ok((gather_groups(word, 8) | u64::from(b8) << 56, 9));
        }
    }
    decode_varint_bytewise(buf)
}

/// The 7-bit groups of the first `len` (1 to 8) bytes of `word` (little-endian), packed.
#[inline(always)]
fn gather_groups(word: u64, len: usize) -> u64 {
    let keep = if len == 8 { u64::MAX } else { (1u64 << (8 * len)) - 1 };
    let x = word & keep & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
}

/// [`decode_varint`] one byte at a time: near the end of the buffer, and for 10-byte varints.
#[inline(never)]
fn decode_varint_bytewise(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(DecodeError::BadVarint);
            }
            return Ok((value, i + 1));
        }
    }
    if buf.len() < MAX_VARINT_LEN { Err(DecodeError::Truncated) } else { Err(DecodeError::BadVarint) }
}

/// The value of one field, as framed by its wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// One field of a message: its number and its (framed, not yet interpreted) value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Field<'a> {
    pub(super) number: u32,
    pub(super) value: Value<'a>,
}

impl<'a> Field<'a> {
    fn wire_type(&self) -> u8 {
        match self.value {
            Value::Varint(_) => VARINT,
            Value::Fixed64(_) => FIXED64,
            Value::Bytes(_) => LEN,
            Value::Fixed32 => FIXED32,
        }
    }

    fn bad_wire_type(&self) -> DecodeError {
        DecodeError::BadWireType { field: self.number, wire_type: self.wire_type() }
    }

    /// The value of a varint-typed field (`int64`, `uint64`, `int32`, `bool`, enums).
    #[inline]
    pub(super) fn varint(self) -> Result<u64, DecodeError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.bad_wire_type()),
        }
    }

    /// The value of a `double` field.
    #[inline]
    pub(super) fn double(self) -> Result<f64, DecodeError> {
        match self.value {
            Value::Fixed64(v) => Ok(f64::from_bits(v)),
            _ => Err(self.bad_wire_type()),
        }
    }

    /// The body of a length-delimited field (`bytes`, `string`, embedded message).
    #[inline]
    pub(super) fn bytes(self) -> Result<&'a [u8], DecodeError> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            _ => Err(self.bad_wire_type()),
        }
    }

    /// Appends the values of a `repeated double` field, packed or not.
    pub(super) fn push_doubles(self, out: &mut Vec<f64>) -> Result<(), DecodeError> {
        match self.value {
            Value::Fixed64(v) => out.push(f64::from_bits(v)),
            Value::Bytes(b) => {
                let (chunks, rest) = b.as_chunks::<8>();
                if !rest.is_empty() {
                    return Err(DecodeError::BadPackedLength { field: self.number, len: b.len() });
                }
                out.extend(chunks.iter().map(|c| f64::from_le_bytes(*c)));
            }
            _ => return Err(self.bad_wire_type()),
        }
        Ok(())
    }
}

/// Iterates over the fields of one message body. Stops after the first error.
#[derive(Debug, Clone)]
pub(super) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    #[inline]
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(DecodeError::Truncated),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = decode_varint(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    fn field(&mut self) -> Result<Field<'a>, DecodeError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| DecodeError::BadFieldNumber)?;
        let number = key >> 3;
        if number == 0 {
            return Err(DecodeError::BadFieldNumber);
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                let b = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(b.try_into().expect("took 8 bytes")))
            }
            LEN => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            FIXED32 => {
                self.take(4)?;
                Value::Fixed32
            }
            START_GROUP | END_GROUP => return Err(DecodeError::GroupUnsupported { field: number }),
            wire_type => {
                return Err(DecodeError::BadWireType { field: number, wire_type });
            }
        };
        Ok(Field { number, value })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.buf = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &[u8]) -> Result<Vec<Field<'_>>, DecodeError> {
        Fields::new(buf).collect()
    }

    proptest::proptest! {
        /// The word-at-a-time path agrees with the byte loop on any bytes, valid or not, at any
        /// length and with anything after them.
        #[test]
        fn varints_decode_as_the_byte_loop_does(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16), v in proptest::prelude::any::<u64>(), shift in 0u32..64) {
            proptest::prop_assert_eq!(decode_varint(&buf), decode_varint_bytewise(&buf));
            let v = v >> shift;
            let mut enc = Vec::new();
            prost::encoding::encode_varint(v, &mut enc);
            let n = enc.len();
            enc.extend_from_slice(&buf);
            proptest::prop_assert_eq!(decode_varint(&enc), Ok((v, n)));
        }
    }

    #[test]
    fn varints_match_prost() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(v, &mut buf);
            assert_eq!(decode_varint(&buf), Ok((v, buf.len())));
            buf.push(0xaa);
            assert_eq!(decode_varint(&buf), Ok((v, buf.len() - 1)));
            let n = buf.len() - 1;
            for cut in 0..n {
                assert_eq!(decode_varint(&buf[..cut]), Err(DecodeError::Truncated));
            }
        }
        // Over-long but valid encoding of 0.
        assert_eq!(decode_varint(&[0x80, 0x80, 0x00]), Ok((0, 3)));
        // 10th byte carrying more than the top bit overflows u64.
        let mut over = [0xff; 10];
        over[9] = 0x02;
        assert_eq!(decode_varint(&over), Err(DecodeError::BadVarint));
        // 11 bytes long.
        assert_eq!(decode_varint(&[0x80; 11]), Err(DecodeError::BadVarint));
        assert_eq!(decode_varint(&[0x80; 10]), Err(DecodeError::BadVarint));
    }

    #[test]
    fn all_wire_types() {
        let buf = [
            0x08, 0x96, 0x01, // field 1 varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // field 2 fixed64 1
            0x1a, 0x02, b'h', b'i', // field 3 bytes "hi"
            0x25, 0, 0, 0, 0, // field 4 fixed32
        ];
        let fields = collect(&buf).unwrap();
        assert_eq!(
            fields,
            vec![
                Field { number: 1, value: Value::Varint(150) },
                Field { number: 2, value: Value::Fixed64(1) },
                Field { number: 3, value: Value::Bytes(b"hi") },
                Field { number: 4, value: Value::Fixed32 },
            ]
        );
    }

    #[test]
    fn rejects_groups_bad_wire_types_and_field_zero() {
        assert_eq!(collect(&[0x0b]), Err(DecodeError::GroupUnsupported { field: 1 }));
        assert_eq!(collect(&[0x0c]), Err(DecodeError::GroupUnsupported { field: 1 }));
        assert_eq!(collect(&[0x0e]), Err(DecodeError::BadWireType { field: 1, wire_type: 6 }));
        assert_eq!(collect(&[0x00, 0x00]), Err(DecodeError::BadFieldNumber));
        // Key above u32::MAX.
        assert_eq!(collect(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]), Err(DecodeError::BadFieldNumber));
    }

    #[test]
    fn truncation_is_detected() {
        assert_eq!(collect(&[0x08]), Err(DecodeError::Truncated));
        assert_eq!(collect(&[0x11, 0, 0]), Err(DecodeError::Truncated));
        assert_eq!(collect(&[0x1a, 0x03, 0]), Err(DecodeError::Truncated));
        assert_eq!(collect(&[0x25, 0]), Err(DecodeError::Truncated));
    }

    #[test]
    fn doubles_packed_and_unpacked() {
        let mut out = Vec::new();
        let one = 1.5f64.to_le_bytes();
        Field { number: 2, value: Value::Fixed64(u64::from_le_bytes(one)) }.push_doubles(&mut out).unwrap();
        let packed: Vec<u8> = [2.0f64, -3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        Field { number: 2, value: Value::Bytes(&packed) }.push_doubles(&mut out).unwrap();
        assert_eq!(out, vec![1.5, 2.0, -3.0]);
        assert_eq!(
            Field { number: 2, value: Value::Bytes(&packed[..9]) }.push_doubles(&mut out),
            Err(DecodeError::BadPackedLength { field: 2, len: 9 })
        );
        assert_eq!(
            Field { number: 2, value: Value::Varint(1) }.push_doubles(&mut out),
            Err(DecodeError::BadWireType { field: 2, wire_type: 0 })
        );
    }
}
