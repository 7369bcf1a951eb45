//! JSON lines, the output format of the JSON sink: one object per aggregated value,
//! `{"id":…,"time_ns":…,"value":…,"policy":…,"agg":…,"type":…}`. Run on the sink threads (and
//! the benches).

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

use super::AggregatedValue;

/// Appends `{"id":…,"time_ns":…,"value":…,"policy":…,"agg":…,"type":…}\n`.
///
/// Ids are bytes, and the line keeps them exactly: `id` is the id as a JSON string, and an id
/// that is not valid UTF-8 (whose `id` then shows each invalid sequence as U+FFFD) also gets
/// `"id_base64"` right after it, the exact bytes in standard base64. A value that is not
/// finite is written as `null` (the cores discard and count those before they reach a sink).
pub fn write_json_line(v: &AggregatedValue<'_>, policy: &str, agg: &str, type_name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    write_json_id(v.id, out);
    write_time_and_value(v.time_nanos, v.value, &mut JsonTimeField::default(), out);
    out.extend_from_slice(&json_line_tail(policy, agg, type_name));
}

/// What follows a JSON line's id up to its value, `,"time_ns":…,"value":`, for the last time it
/// was asked for: a writer of many lines keeps one, since the values of a flush batch mostly
/// share the end of their window.
#[derive(Debug)]
pub struct JsonTimeField {
    time_nanos: Option<i64>,
    bytes: [u8; TIME_FIELD_MAX],
    len: usize,
}

const TIME_FIELD_START: &[u8] = b",\"time_ns\":";
const TIME_FIELD_END: &[u8] = b",\"value\":";
/// The longest `,"time_ns":…,"value":`: an i64 takes at most 20 characters.
const TIME_FIELD_MAX: usize = TIME_FIELD_START.len() + 20 + TIME_FIELD_END.len();

impl Default for JsonTimeField {
    fn default() -> Self {
        Self { time_nanos: None, bytes: [0; TIME_FIELD_MAX], len: 0 }
    }
}

impl JsonTimeField {
    #[inline]
    fn for_time(&mut self, time_nanos: i64) -> &[u8] {
        if self.time_nanos != Some(time_nanos) {
            self.refill(time_nanos);
        }
        &self.bytes[..self.len]
    }

    #[cold]
    fn refill(&mut self, time_nanos: i64) {
        let mut digits = itoa::Buffer::new();
        let parts = [TIME_FIELD_START, digits.format(time_nanos).as_bytes(), TIME_FIELD_END];
        self.len = 0;
        for part in parts {
            self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
            self.len += part.len();
        }
        self.time_nanos = Some(time_nanos);
    }
}

/// The start of a JSON line, up to its value: `{"id":…,"time_ns":…,"value":…`, for a value
/// whose id is `id_parts` one after the other (a flushed value's prefixes, series id and
/// suffix), without putting the id together first unless a part needs escaping (then in
/// `scratch`). A sink that writes many lines keeps one [`JsonTimeField`] and the
/// [`json_line_tail`] of each policy, aggregation and type, which it appends after this: the
/// line [`write_json_line`] writes.
#[inline]
pub fn write_json_line_head_of_parts(
    id_parts: &[&[u8]],
    time_nanos: i64,
    value: f64,
    time_field: &mut JsonTimeField,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    // Plain ASCII parts make a plain ASCII id; anything else is escaped as a whole, since
    // bytes that are not UTF-8 in one part may be in the id.
    if id_parts.iter().all(|part| copies_as_is(part, 0x80)) {
        out.extend_from_slice(b"{\"id\":\"");
        for part in id_parts.iter().filter(|part| !part.is_empty()) {
            out.extend_from_slice(part);
        }
        out.push(b'"');
    } else {
        scratch.clear();
        id_parts.iter().for_each(|part| scratch.extend_from_slice(part));
        out.extend_from_slice(b"{\"id\":");
        write_json_id(scratch, out);
    }
    write_time_and_value(time_nanos, value, time_field, out);
}

#[inline(always)]
fn write_time_and_value(time_nanos: i64, value: f64, time_field: &mut JsonTimeField, out: &mut Vec<u8>) {
    out.extend_from_slice(time_field.for_time(time_nanos));
    if value.is_finite() {
        write_json_number(value, out);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The end of a JSON line after its value: `,"policy":…,"agg":…,"type":…}\n`.
pub fn json_line_tail(policy: &str, agg: &str, type_name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + policy.len() + agg.len() + type_name.len());
    out.extend_from_slice(b",\"policy\":");
    write_json_string(policy, &mut out);
    out.extend_from_slice(b",\"agg\":");
    write_json_string(agg, &mut out);
    out.extend_from_slice(b",\"type\":");
    write_json_string(type_name, &mut out);
    out.extend_from_slice(b"}\n");
    out
}

/// Below this, every integral f64 is exact and ryu writes it as its digits and `.0`.
const INTEGRAL_FAST_PATH_LIMIT: f64 = 1e15;

/// A finite value, as the shortest string that reads back to it (ryu: `10.0`, `0.1`,
/// `1e16`). Most aggregated values are whole numbers (counts, sums of counters), for which
/// ryu's digit loop is the slowest case: those are written with itoa and `.0`, which is the
/// string ryu writes for them (`-0.0` keeps its sign through ryu).
#[inline]
fn write_json_number(value: f64, out: &mut Vec<u8>) {
    // `as i64` and back rather than `fract`, which without SSE4.1 is a call to libm's `trunc`.
    if value.abs() < INTEGRAL_FAST_PATH_LIMIT
        && (value as i64) as f64 == value
        && !(value == 0.0 && value.is_sign_negative())
    {
        // Exact: the value is integral and well inside i64's range.
        out.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

/// Whether every byte of `bytes` is below `end` (at least 0x20) and needs no JSON escape (no
/// control character, `"` or `\\`). Nearly every id and name passes, and is then copied whole.
///
/// Looks at 16 bytes at a time (`sixteen_need_care`): the bytes after the last whole 16 are
/// checked as the 16 that end the slice, and a slice of 8 to 15 bytes as its first 8 and last
/// 8 (an overlap is checked twice, which changes nothing).
#[inline]
fn copies_as_is(bytes: &[u8], end: u8) -> bool {
    if let Some(last) = bytes.last_chunk::<16>() {
        let (chunks, _) = bytes.as_chunks::<16>();
        return !chunks.iter().chain([last]).any(|c| sixteen_need_care(halves(c, 0), halves(c, 8), end));
    }
    match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(head), Some(tail)) => !sixteen_need_care(u64::from_le_bytes(*head), u64::from_le_bytes(*tail), end),
        _ => bytes.iter().all(|&b| byte_needs_care(b, end) == 0),
    }
}

#[inline(always)]
fn halves(chunk: &[u8; 16], at: usize) -> u64 {
    let mut half = [0; 8];
    half.copy_from_slice(&chunk[at..at + 8]);
    u64::from_le_bytes(half)
}

/// 1 if `b` is not in `0x20..end` or is `"` or `\\`, else 0.
#[inline(always)]
fn byte_needs_care(b: u8, end: u8) -> u8 {
    // One compare for the range: below 0x20 wraps to the top.
    u8::from(b.wrapping_sub(0x20) >= end.wrapping_sub(0x20)) | u8::from(b == b'"') | u8::from(b == b'\\')
}

/// Whether any of the 16 bytes of `lo` and `hi` (little-endian) needs care: a few SSE2
/// compares (SSE2 is part of x86-64), one byte at a time elsewhere.
#[inline(always)]
fn sixteen_need_care(lo: u64, hi: u64, end: u8) -> bool {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn sse2(lo: u64, hi: u64, end: u8) -> bool {
        use std::arch::x86_64::*;
        let bytes = _mm_set_epi64x(hi as i64, lo as i64);
        let above = _mm_sub_epi8(bytes, _mm_set1_epi8(0x20));
        let limit = _mm_set1_epi8(end.wrapping_sub(0x20) as i8);
        // Unsigned `above >= limit`: the larger of the two is `above`.
        let out_of_range = _mm_cmpeq_epi8(_mm_max_epu8(above, limit), above);
        let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(out_of_range, _mm_or_si128(quote, backslash))) != 0
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline, so every x86_64 target has it.
        unsafe { sse2(lo, hi, end) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        lo.to_le_bytes().into_iter().chain(hi.to_le_bytes()).fold(0, |any, b| any | byte_needs_care(b, end)) != 0
    }
}

/// An id as a JSON string: printable ASCII is copied whole; anything else is escaped, and an
/// id that is not UTF-8 is written replaced (`id`) and exact (`id_base64`).
fn write_json_id(id: &[u8], out: &mut Vec<u8>) {
    if copies_as_is(id, 0x80) {
        out.push(b'"');
        out.extend_from_slice(id);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(id) {
        Ok(text) => write_json_string(text, out),
        Err(_) => {
            write_json_string(&String::from_utf8_lossy(id), out);
            out.extend_from_slice(b",\"id_base64\":\"");
            out.extend_from_slice(BASE64_STANDARD.encode(id).as_bytes());
            out.push(b'"');
        }
    }
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.push(b'"');
    // UTF-8 never contains the byte 0xFF, so `u8::MAX` as the end lets every other byte through.
    if copies_as_is(bytes, u8::MAX) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(bytes, out);
    }
    out.push(b'"');
}

fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::value;

    #[test]
    fn numbers_are_written_as_ryu_writes_them() {
        let mut cases = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            10.0,
            123456789.0,
            999999999999999.0,
            1e15,
            -1e15,
            1e16,
            2f64.powi(53),
            1e-7,
            -1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 17) as i32;
            let whole = ((x >> 8) % 10u64.pow(digits as u32).max(1)) as f64;
            cases.push(if x & 1 == 0 { whole } else { -whole });
            cases.push(whole + 0.5);
            cases.push(whole / 7.0);
            // Any finite double, exponents of either sign.
            cases.push(Some(f64::from_bits(x)).filter(|v| v.is_finite()).unwrap_or(1.5));
        }
        for v in cases {
            let mut fast = Vec::new();
            write_json_number(v, &mut fast);
            assert_eq!(String::from_utf8(fast).unwrap(), ryu::Buffer::new().format_finite(v), "{v}");
        }
    }

    #[test]
    fn json_lines_escape_ids_and_keep_values_exact() {
        let mut out = Vec::new();
        write_json_line(&value(b"a\"b\\c\n\x01", 10.0), "10s:2d", "sum", "counter", &mut out);
        write_json_line(&value(b"x", 0.1 + 0.2), "10s:2d", "p99", "timer", &mut out);
        write_json_line(&value(b"y", f64::NAN), "10s:2d", "mean", "timer", &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"id":"a\"b\\c\n\u0001","time_ns":1700000010000000000,"value":10.0,"policy":"10s:2d","agg":"sum","type":"counter"}"#
        );
        assert!(lines[1].contains(r#""value":0.30000000000000004,"#), "{}", lines[1]);
        assert!(lines[2].contains(r#""value":null,"#));
    }

    #[test]
    fn a_kept_time_field_follows_each_line_s_time() {
        let (mut field, mut scratch, mut out) = (JsonTimeField::default(), Vec::new(), Vec::new());
        let times = [i64::MIN, i64::MIN, 0, i64::MAX, 1_700_000_010_000_000_000, 0, -1];
        for t in times {
            write_json_line_head_of_parts(&[b"a"], t, 1.0, &mut field, &mut scratch, &mut out);
            out.push(b'\n');
        }
        let expected: String =
            times.iter().map(|t| format!("{{\"id\":\"a\",\"time_ns\":{t},\"value\":1.0\n")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    proptest::proptest! {
        /// The chunked check says what the byte-by-byte definition says, wherever in a short
        /// or long run of plain bytes the one byte that needs care sits (or none does).
        #[test]
        fn copies_as_is_is_the_plain_byte_test(
            len in 0usize..70,
            odd in proptest::option::of((0usize..70, proptest::num::u8::ANY)),
            end in proptest::sample::select(vec![0x80u8, u8::MAX]),
        ) {
            let mut bytes = vec![b'a'; len];
            if let Some((at, b)) = odd && at < len {
                bytes[at] = b;
            }
            let plain = bytes.iter().all(|&b| (0x20..end).contains(&b) && b != b'"' && b != b'\\');
            proptest::prop_assert_eq!(copies_as_is(&bytes, end), plain);
        }

        /// Any id reads back exactly: from `id` when it is UTF-8, else from `id_base64` (and
        /// `id` shows it with U+FFFD for each invalid sequence).
        #[test]
        fn json_ids_read_back(id in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(b"\"\\\n\r\t\x00\x1f\x7f az.;=".to_vec()),
            proptest::num::u8::ANY,
        ], 0..80)) {
            let mut out = Vec::new();
            write_json_line(&value(&id, 1.0), "10s:2d", "sum", "counter", &mut out);
            let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(line["id"].as_str().unwrap(), String::from_utf8_lossy(&id));
            let exact = match line.get("id_base64") {
                Some(b64) => BASE64_STANDARD.decode(b64.as_str().unwrap()).unwrap(),
                None => line["id"].as_str().unwrap().as_bytes().to_vec(),
            };
            proptest::prop_assert_eq!(&exact, &id);
            proptest::prop_assert_eq!(line.get("id_base64").is_some(), std::str::from_utf8(&id).is_err());
        }
    }
}
