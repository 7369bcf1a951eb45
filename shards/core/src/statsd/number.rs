//! The numbers of a StatsD line: values (`f64`, with fast paths for the short decimals
//! most clients send) and sample rates.
//!
//! Pure functions over borrowed bytes; they run on whichever core parses the line, once
//! per line, without allocating.

use super::error::StatsdError;

/// Parses a float without allocating. `Err(BadValue)` if empty or not a
/// number, `Err(NonFinite)` for NaN/inf/overflow.
#[inline]
pub(super) fn parse_f64(bytes: &[u8]) -> Result<f64, StatsdError> {
    // Fast path: most StatsD values are small unsigned integers, which convert exactly.
    if let Some(n) = parse_short_unsigned(bytes) {
        return Ok(n as f64);
    }
    // Then signed and fractional ones (gauge deltas, timings in milliseconds).
    if let Some(v) = parse_short_decimal(bytes) {
        return Ok(v);
    }
    let s = std::str::from_utf8(bytes).map_err(|_| StatsdError::BadValue)?;
    let v: f64 = s.parse().map_err(|_| StatsdError::BadValue)?;
    if v.is_finite() { Ok(v) } else { Err(StatsdError::NonFinite) }
}

/// 1 to 15 ASCII digits as an integer (exact in an `f64`), in one pass; `None` for anything
/// else.
#[inline(always)]
fn parse_short_unsigned(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// Powers of ten that an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The second fast path of `parse_f64`, for most of what StatsD clients send that is not an
/// unsigned integer: an optional sign, then at most 15 digits with at most one `.` among them
/// (`-3`, `+5`, `12.5`, `.25`).
/// The digits as an integer are exact in an `f64` (below 2^53) and so is the power of ten
/// that scales them, so one division rounds the decimal exactly as the standard parser does
/// (Clinger's fast path), in one pass over the bytes. `None` for anything else, valid or not,
/// which the standard parser then reads. Not inlined: inlined into the per-line loop, it
/// would cost the integer fast path register moves on every line.
#[inline(never)]
fn parse_short_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, body) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, bytes),
    };
    if body.len() > EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let (mut mantissa, mut digits, mut point) = (0u64, 0usize, None);
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if digits == 0 || digits >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let scale = EXACT_POWERS_OF_TEN[point.map_or(0, |p| body.len() - 1 - p)];
    let v = mantissa as f64 / scale;
    Some(if negative { -v } else { v })
}

/// The rate of a `|@rate` section: a number in `(0, 1]`, else `Err(BadSampleRate)`.
#[inline]
pub(super) fn parse_rate(bytes: &[u8]) -> Result<f64, StatsdError> {
    let r: f64 = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or(StatsdError::BadSampleRate)?;
    // Also rejects NaN.
    if r > 0.0 && r <= 1.0 { Ok(r) } else { Err(StatsdError::BadSampleRate) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// What the standard parser makes of `text`, for comparing bit for bit (`-0` included).
    fn std_bits(text: &str) -> Option<u64> {
        text.parse::<f64>().ok().filter(|v| v.is_finite()).map(f64::to_bits)
    }

    proptest! {
        /// Whatever the fast path accepts, it reads as the standard parser does, to the bit.
        #[test]
        fn short_decimals_parse_like_std(text in "[-+]?[0-9]{0,9}[.]?[0-9]{0,9}") {
            if let Some(v) = super::parse_short_decimal(text.as_bytes()) {
                prop_assert_eq!(Some(v.to_bits()), std_bits(&text), "{:?}", text);
            }
            prop_assert_eq!(super::parse_f64(text.as_bytes()).ok().map(f64::to_bits), std_bits(&text), "{:?}", text);
        }

        /// Arbitrary bytes: the fast path never accepts what the standard parser rejects.
        #[test]
        fn short_decimal_bytes_parse_like_std(bytes in prop::collection::vec(prop::sample::select(b"0123456789.-+eE_ x".to_vec()), 0..20)) {
            let text = String::from_utf8(bytes).unwrap();
            if let Some(v) = super::parse_short_decimal(text.as_bytes()) {
                prop_assert_eq!(Some(v.to_bits()), std_bits(&text), "{:?}", text);
            }
        }

        /// Floats as clients format them, with up to 15 significant digits.
        #[test]
        fn formatted_floats_parse_like_std(v in -1e9f64..1e9, decimals in 0usize..7) {
            let text = format!("{v:.decimals$}");
            prop_assert_eq!(super::parse_f64(text.as_bytes()).ok().map(f64::to_bits), std_bits(&text), "{:?}", text);
        }
    }

    #[test]
    fn short_decimal_edges() {
        for (text, want) in [
            ("0", Some(0.0)),
            ("-0", Some(-0.0)),
            ("+5", Some(5.0)),
            ("1.", Some(1.0)),
            (".25", Some(0.25)),
            ("12.5", Some(12.5)),
            ("999999999999999", Some(999_999_999_999_999.0)),
        ] {
            assert_eq!(
                super::parse_short_decimal(text.as_bytes()).map(f64::to_bits),
                want.map(f64::to_bits),
                "{text:?}"
            );
        }
        for text in ["", "-", ".", "+.", "1.2.3", "1e5", "1_0", " 1", "1 ", "1000000000000000", "0.000000000000001"] {
            assert_eq!(super::parse_short_decimal(text.as_bytes()), None, "{text:?}");
        }
    }

    proptest! {
        /// The integer fast path agrees with the standard parser.
        #[test]
        fn integers_parse_like_std(n in 0u64..1_000_000_000_000_000) {
            let text = n.to_string();
            prop_assert_eq!(super::parse_f64(text.as_bytes()).unwrap(), text.parse::<f64>().unwrap());
            let padded = format!("00{text}");
            if padded.len() <= 15 {
                prop_assert_eq!(super::parse_f64(padded.as_bytes()).unwrap(), padded.parse::<f64>().unwrap());
            }
        }
    }
}
