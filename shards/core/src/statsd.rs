//! Zero-copy StatsD / DogStatsD line parsing and canonical series ids.
//!
//! **Runs on:** any shard core (and whichever core terminates the UDP/TCP
//! socket). Everything here is a pure function over borrowed bytes: no state,
//! no I/O, no clock.
//!
//! **Hot path:** called for every received line. No allocation per line (the
//! parsed [`StatsdLine`] borrows from the input buffer; [`write_series_id`]
//! only writes into the caller's reused `Vec`), no logging (errors are
//! returned as [`StatsdError`], whose [`StatsdError::reason`] is meant to be a
//! label on a drop counter), and malformed input never panics.
//!
//! # Line grammar
//!
//! ```text
//! line     = name ":" value "|" type *( "|" section )
//! type     = "c" | "g" | "ms" | "h" | "d" | "s"
//! section  = "@" rate            ; sample rate, 0 < rate <= 1
//!          | "#" tags            ; DogStatsD tags: tag *( "," tag ), may be empty
//!          | ALPHA *( any but "|" ) ; other DogStatsD extension: skipped
//! ```
//!
//! Decisions (each one is tested below):
//!
//! * **Splitting.** The line is cut at the first `|`; the part before it is cut
//!   at its first `:` into name and value. A name therefore never contains `:`
//!   or `|`. A value containing `:` (DogStatsD ≥1.1 multi-value packing,
//!   `name:1:2:3|d`) is [`StatsdError::BadValue`] for numeric kinds; for sets
//!   it is simply a member containing `:`.
//! * **Names.** Empty or ASCII-whitespace-only names are
//!   [`StatsdError::EmptyName`]. Names containing `;` are
//!   [`StatsdError::BadName`]: `;` separates the name from the tags in the
//!   series id, so allowing it would let `foo;a=1` collide with `foo|#a:1`.
//!   Nothing is trimmed or sanitised; all other bytes (spaces, UTF-8, …) are
//!   kept as sent.
//! * **Types.** `c` counter, `g` gauge, `ms`/`h`/`d` timer (`h` is StatsD's
//!   histogram, `d` DogStatsD's distribution; both are sampled values like
//!   `ms`), `s` set. Case-sensitive. The type must be the first section.
//! * **Values.** Parsed with `f64::from_str` on the borrowed slice (no
//!   allocation): no surrounding whitespace, no hex, no `_`. NaN/±inf
//!   (including overflow such as `1e400`) are [`StatsdError::NonFinite`].
//!   Gauges: a leading `+` or `-` makes the value a signed delta
//!   ([`GaugeOp::Delta`]), as in Etsy StatsD; so a gauge cannot be *set* to a
//!   negative value in one line. Sets: the value is an opaque non-empty member.
//! * **Sample rate.** Must parse and lie in `(0, 1]` (else
//!   [`StatsdError::BadSampleRate`]; so does a second `@` section). Counters are
//!   divided by it (`1|c|@0.1` → 10.0; a non-finite result is
//!   [`StatsdError::NonFinite`]). For other kinds it is only reported.
//! * **Sections after the type** may come in any order. `@` and `#` may each
//!   appear at most once (a second `#` is [`StatsdError::BadTags`]).
//!   Sections starting with an ASCII letter are DogStatsD extensions (`c:`
//!   container id, `T` timestamp, `e:` external data, `card:` cardinality, …)
//!   and are **skipped**, so newer clients keep working; the timestamp in
//!   particular is ignored (samples are aggregated at arrival time). Any other
//!   section (empty — e.g. a trailing `|` —, a digit, punctuation) is
//!   [`StatsdError::BadSection`].
//! * **Tags** are returned raw by [`parse_line`] (cheap: not even split) and
//!   validated by [`write_series_id`].
//! * DogStatsD **events and service checks** (`_e{…`, `_sc|…`) are
//!   [`StatsdError::NotAMetric`].
//!
//! # Canonical series id
//!
//! [`write_series_id`] writes the Graphite tagged-series form
//! `name;k1=v1;k2=v2;flag`: each DogStatsD tag `k:v` becomes `k=v` (only the
//! first `:` is the separator, so `url:http://x` becomes `url=http://x`), a
//! tag without `:` is a valueless flag written as is, the tags are sorted by
//! these canonical bytes and exact duplicates removed. A tag set with
//! duplicate keys but different values (`a:1,a:2`) keeps both, as Datadog
//! does. To keep the mapping injective, a tag that is empty (`a,,b`, a
//! leading or trailing `,`), has an empty key (`:v`), or contains `;` or `=`
//! is [`StatsdError::BadTags`].

use std::cmp::Ordering;

use smallvec::SmallVec;

use crate::aggregation::{MetricType, member_hash};
use crate::batch::SampleValue;
use crate::statsd_scan::{BLOCK, Scanner};

/// Which aggregation a line feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `c`: summed; already divided by the sample rate.
    Counter,
    /// `g`: last value wins, or a delta (see [`GaugeOp`]).
    Gauge,
    /// `ms`, `h` (StatsD histogram) and `d` (DogStatsD distribution):
    /// individual samples fed to a distribution.
    Timer,
    /// `s`: counts distinct members.
    Set,
}

impl MetricKind {
    /// A stable lower-case name, e.g. for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Timer => "timer",
            Self::Set => "set",
        }
    }
}

/// How a gauge value applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GaugeOp {
    /// `name:5|g`: set the gauge to the value. Also used for all non-gauge
    /// kinds.
    Set,
    /// `name:+5|g` / `name:-5|g`: add the (signed) value to the gauge.
    Delta,
}

/// One parsed line, borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsdLine<'a> {
    /// Metric name: non-empty, not whitespace-only, no `:` `|` `;`.
    pub name: &'a [u8],
    /// Which aggregation the line feeds.
    pub kind: MetricKind,
    /// Numeric value, always finite; for counters already divided by the
    /// sample rate (`1|c|@0.1` → 10.0); for gauge deltas the signed delta;
    /// for sets 0.0 (see `member`).
    pub value: f64,
    /// [`GaugeOp::Delta`] only for gauges whose value starts with `+`/`-`.
    pub gauge_op: GaugeOp,
    /// For sets: the raw member bytes (non-empty; members may be
    /// non-numeric). Empty for other kinds.
    pub member: &'a [u8],
    /// The `|@rate` section, in `(0, 1]`; 1.0 when absent.
    pub sample_rate: f64,
    /// Raw DogStatsD tag section after `|#` (may be empty); not yet
    /// validated, see [`write_series_id`].
    pub tags: &'a [u8],
}

impl<'a> StatsdLine<'a> {
    /// [`write_series_id`] of this line's name and tags.
    #[inline]
    pub fn write_series_id(&self, out: &mut Vec<u8>) -> Result<(), StatsdError> {
        write_series_id(self.name, self.tags, out)
    }

    /// What this line adds to the aggregator: its series id (the name itself when the line has
    /// no tags, else the canonical id written into `scratch`), metric type and value.
    #[inline]
    pub fn sample<'s>(&self, scratch: &'s mut Vec<u8>) -> Result<(&'s [u8], MetricType, SampleValue), StatsdError>
    where
        'a: 's,
    {
        // A line without tags has its name as id, already checked by the parser.
        let id = if self.tags.is_empty() {
            self.name
        } else {
            scratch.clear();
            self.write_series_id(scratch)?;
            scratch.as_slice()
        };
        let (metric_type, value) = match (self.kind, self.gauge_op) {
            (MetricKind::Counter, _) => (MetricType::Counter, SampleValue::Number(self.value)),
            (MetricKind::Gauge, GaugeOp::Set) => (MetricType::Gauge, SampleValue::Number(self.value)),
            (MetricKind::Gauge, GaugeOp::Delta) => (MetricType::Gauge, SampleValue::GaugeDelta(self.value)),
            (MetricKind::Timer, _) => (MetricType::Timer, SampleValue::Number(self.value)),
            (MetricKind::Set, _) => (MetricType::Set, SampleValue::Member(member_hash(self.member))),
        };
        Ok((id, metric_type, value))
    }
}

/// Why a line was rejected. [`StatsdError::reason`] gives a stable label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum StatsdError {
    /// The name is empty or ASCII whitespace only.
    #[error("empty metric name")]
    EmptyName,
    /// The name contains `;` (reserved as the series-id tag separator).
    #[error("metric name contains ';'")]
    BadName,
    /// No `:` before the first `|` (or in the whole line).
    #[error("missing ':' and value")]
    MissingValue,
    /// No `|type` section, or an empty one.
    #[error("missing '|type'")]
    MissingType,
    /// The type is not one of c, g, ms, h, d, s.
    #[error("unknown metric type")]
    UnknownType,
    /// The value is empty or not a number (for numeric kinds).
    #[error("bad value")]
    BadValue,
    /// The value (or counter value / sample rate) is NaN or infinite.
    #[error("non-finite value")]
    NonFinite,
    /// The sample rate is not a number in (0, 1], or is given twice.
    #[error("sample rate not in (0, 1]")]
    BadSampleRate,
    /// A second `|#` section, or an invalid tag (see [`write_series_id`]).
    #[error("bad tags")]
    BadTags,
    /// A section after the type that is empty or does not start with `@`,
    /// `#` or an ASCII letter.
    #[error("bad '|' section")]
    BadSection,
    /// A DogStatsD event (`_e{`) or service check (`_sc|`), not a metric.
    #[error("event or service check, not a metric")]
    NotAMetric,
    /// The line is longer than the configured maximum.
    #[error("line too long")]
    LineTooLong,
}

impl StatsdError {
    /// Every variant, e.g. to pre-register one drop counter per reason.
    pub const ALL: [StatsdError; 12] = [
        Self::EmptyName,
        Self::BadName,
        Self::MissingValue,
        Self::MissingType,
        Self::UnknownType,
        Self::BadValue,
        Self::NonFinite,
        Self::BadSampleRate,
        Self::BadTags,
        Self::BadSection,
        Self::NotAMetric,
        Self::LineTooLong,
    ];

    /// Stable snake_case label, e.g. `"bad_value"`.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::EmptyName => "empty_name",
            Self::BadName => "bad_name",
            Self::MissingValue => "missing_value",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::BadValue => "bad_value",
            Self::NonFinite => "non_finite",
            Self::BadSampleRate => "bad_sample_rate",
            Self::BadTags => "bad_tags",
            Self::BadSection => "bad_section",
            Self::NotAMetric => "not_a_metric",
            Self::LineTooLong => "line_too_long",
        }
    }
}

#[inline]
fn find(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Splits at the first `sep`: `(before, Some(after))`, or `(all, None)`.
#[inline]
fn split_once(bytes: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match find(bytes, sep) {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    }
}

#[inline]
fn check_name(name: &[u8]) -> Result<(), StatsdError> {
    if name.iter().all(u8::is_ascii_whitespace) {
        // Also true for the empty name.
        return Err(StatsdError::EmptyName);
    }
    if find(name, b';').is_some() {
        return Err(StatsdError::BadName);
    }
    Ok(())
}

/// Parses a float without allocating. `Err(BadValue)` if empty or not a
/// number, `Err(NonFinite)` for NaN/inf/overflow.
#[inline]
fn parse_f64(bytes: &[u8]) -> Result<f64, StatsdError> {
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
/// which the standard parser then reads. Not inlined: in the per-line loop it cost the
/// integer path ~25 instructions per line in register moves.
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

#[cfg(test)]
mod parse_f64_tests {
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

#[inline]
fn parse_rate(bytes: &[u8]) -> Result<f64, StatsdError> {
    let r: f64 = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or(StatsdError::BadSampleRate)?;
    // Also rejects NaN.
    if r > 0.0 && r <= 1.0 { Ok(r) } else { Err(StatsdError::BadSampleRate) }
}

/// The metric kind of a `|type` section.
#[inline]
fn parse_kind(ty: &[u8]) -> Result<MetricKind, StatsdError> {
    match ty {
        b"" => Err(StatsdError::MissingType),
        b"c" => Ok(MetricKind::Counter),
        b"g" => Ok(MetricKind::Gauge),
        b"ms" | b"h" | b"d" => Ok(MetricKind::Timer),
        b"s" => Ok(MetricKind::Set),
        _ => Err(StatsdError::UnknownType),
    }
}

/// The value of a line of `kind` (before any sample rate), its gauge op, and a set's member.
#[inline]
fn parse_value(kind: MetricKind, raw_value: &[u8]) -> Result<(f64, GaugeOp, &[u8]), StatsdError> {
    match kind {
        MetricKind::Set if raw_value.is_empty() => Err(StatsdError::BadValue),
        MetricKind::Set => Ok((0.0, GaugeOp::Set, raw_value)),
        MetricKind::Gauge => {
            let op = match raw_value.first() {
                Some(b'+' | b'-') => GaugeOp::Delta,
                _ => GaugeOp::Set,
            };
            Ok((parse_f64(raw_value)?, op, &[]))
        }
        MetricKind::Counter | MetricKind::Timer => Ok((parse_f64(raw_value)?, GaugeOp::Set, &[])),
    }
}

/// Parses one line (without its `\n` / `\r\n` terminator; see the module docs
/// for the grammar and the decisions taken).
///
/// Errors are reported in this order of checks: event/service check, name
/// and value split ([`MissingValue`](StatsdError::MissingValue)), name,
/// type, value, then the sections left to right, then the counter's division
/// by the sample rate. Never panics and never allocates.
pub fn parse_line(line: &[u8]) -> Result<StatsdLine<'_>, StatsdError> {
    if line.starts_with(b"_e{") || line.starts_with(b"_sc|") {
        return Err(StatsdError::NotAMetric);
    }
    let (head, rest) = split_once(line, b'|');
    let (name, raw_value) = match split_once(head, b':') {
        (name, Some(value)) => (name, value),
        (_, None) => return Err(StatsdError::MissingValue),
    };
    check_name(name)?;
    let Some(rest) = rest else {
        return Err(StatsdError::MissingType);
    };
    let (ty, sections) = split_once(rest, b'|');
    let kind = parse_kind(ty)?;
    let (mut value, gauge_op, member) = parse_value(kind, raw_value)?;

    let mut rate: Option<f64> = None;
    let mut tags: Option<&[u8]> = None;
    if let Some(sections) = sections {
        for section in sections.split(|&b| b == b'|') {
            match section.first() {
                Some(b'@') => {
                    if rate.is_some() {
                        return Err(StatsdError::BadSampleRate);
                    }
                    rate = Some(parse_rate(&section[1..])?);
                }
                Some(b'#') => {
                    if tags.is_some() {
                        return Err(StatsdError::BadTags);
                    }
                    tags = Some(&section[1..]);
                }
                // DogStatsD extension (container id, timestamp, ...): skipped.
                Some(c) if c.is_ascii_alphabetic() => {}
                _ => return Err(StatsdError::BadSection),
            }
        }
    }

    let sample_rate = rate.unwrap_or(1.0);
    if kind == MetricKind::Counter && sample_rate != 1.0 {
        value /= sample_rate;
        if !value.is_finite() {
            return Err(StatsdError::NonFinite);
        }
    }

    Ok(StatsdLine { name, kind, value, gauge_op, member, sample_rate, tags: tags.unwrap_or(&[]) })
}

/// Splits a datagram / TCP chunk on `\n` (stripping one trailing `\r` from
/// each line, skipping empty lines) and calls `f` once per line, in order.
///
/// A line longer than `max_line` bytes (after stripping `\r`) gives
/// `Err(LineTooLong)` for that line only; an invalid line never affects its
/// neighbours. The last line needs no terminator, so for a TCP stream pass
/// only the complete part (see [`split_complete_lines`]).
pub fn for_each_line<'a>(buf: &'a [u8], max_line: usize, mut f: impl FnMut(Result<StatsdLine<'a>, StatsdError>)) {
    let mut scanner = Scanner::new(buf);
    let mut start = 0;
    while let Some(line) = buf.get(start..).filter(|rest| !rest.is_empty()) {
        if let Some((parsed, len)) = plain_line(line, scanner.window(start), max_line) {
            f(Ok(parsed));
            start += len;
            continue;
        }
        // Anything else (a long line, a section after the type, an error): find its end byte
        // by byte and read it in full.
        let (line, len) = match find(line, b'\n') {
            Some(i) => (&line[..i], i + 1),
            None => (line, line.len()),
        };
        start += len;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        f(if line.len() > max_line { Err(StatsdError::LineTooLong) } else { parse_line(line) });
    }
}

/// The common case of [`parse_line`], read from the delimiter bits of the first 64 bytes of
/// `text` (see `Scanner::window`): a line `name:value|type` with no section after the type,
/// ending with a `\n` among those bytes or with `text`. Returns it and the bytes it took, its
/// `\n` included. `None` for anything else, valid or not, which the caller then reads with
/// [`parse_line`]; so when this answers, it answers what [`parse_line`] would, and every
/// error comes from [`parse_line`] alone.
#[inline]
fn plain_line(text: &[u8], delimiters: u64, max_line: usize) -> Option<(StatsdLine<'_>, usize)> {
    // The first three delimiters, in order (64 where there are fewer): a plain line has
    // exactly a `:`, a `|` and its `\n`, or runs to the end of `text` without one.
    let colon = delimiters.trailing_zeros() as usize;
    let rest = delimiters & delimiters.wrapping_sub(1);
    let pipe = rest.trailing_zeros() as usize;
    let rest = rest & rest.wrapping_sub(1);
    let (end, taken) = if rest != 0 {
        let newline = rest.trailing_zeros() as usize;
        if text.get(newline) != Some(&b'\n') {
            return None;
        }
        (newline, newline + 1)
    } else if text.len() <= BLOCK {
        // The mask covered every byte left: the line ends with `text`.
        (text.len(), text.len())
    } else {
        return None;
    };
    if text.get(colon) != Some(&b':') || text.get(pipe) != Some(&b'|') {
        return None;
    }
    // A name: not empty (`colon > 0`); not an event or service check (`_`); not whitespace
    // only, left to `parse_line` when it starts with whitespace. It has no `;`: the first
    // delimiter is its `:`.
    if colon == 0 || text[0] == b'_' || text[0].is_ascii_whitespace() {
        return None;
    }
    let line = &text[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The `|` must fall inside the line (not on a `\r` before its `\n`, or after it).
    if line.len() > max_line || pipe >= line.len() {
        return None;
    }
    let (name, raw_value, ty) = (&line[..colon], &line[colon + 1..pipe], &line[pipe + 1..]);
    let kind = parse_kind(ty).ok()?;
    let (value, gauge_op, member) = parse_value(kind, raw_value).ok()?;
    Some((StatsdLine { name, kind, value, gauge_op, member, sample_rate: 1.0, tags: &[] }, taken))
}

/// For stream (TCP) input: splits `buf` after its last `\n` into
/// `(complete lines, partial last line)`. The first part can go to
/// [`for_each_line`]; the second must be kept until more bytes arrive.
#[inline]
pub fn split_complete_lines(buf: &[u8]) -> (&[u8], &[u8]) {
    match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => buf.split_at(i + 1),
        None => (&[], buf),
    }
}

/// How many tags are sorted without touching the heap.
const INLINE_TAGS: usize = 32;

/// One validated DogStatsD tag: `key` or `key:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    /// Non-empty; no `:` `;` `=` `,`.
    key: &'a [u8],
    /// After the first `:`; may be empty or contain `:`; no `;` `=` `,`.
    value: Option<&'a [u8]>,
}

impl Tag<'_> {
    /// Length of the canonical form `key` / `key=value`.
    #[inline]
    fn canonical_len(&self) -> usize {
        self.key.len() + self.value.map_or(0, |v| 1 + v.len())
    }
}

#[inline]
fn parse_tag(raw: &[u8]) -> Result<Tag<'_>, StatsdError> {
    if raw.iter().any(|&b| b == b';' || b == b'=') {
        return Err(StatsdError::BadTags);
    }
    let (key, value) = split_once(raw, b':');
    if key.is_empty() {
        // Covers the empty tag (`a,,b`) and the empty key (`:v`).
        return Err(StatsdError::BadTags);
    }
    Ok(Tag { key, value })
}

/// Compares the canonical forms (`key` or `key=value`) byte-wise without
/// building them. Relies on keys containing neither `:` nor `=`.
fn cmp_canonical(a: &Tag<'_>, b: &Tag<'_>) -> Ordering {
    let m = a.key.len().min(b.key.len());
    match a.key[..m].cmp(&b.key[..m]) {
        Ordering::Equal => {}
        other => return other,
    }
    match a.key.len().cmp(&b.key.len()) {
        // Same key: "k" < "k=..."; "k=x" vs "k=y" compares x with y.
        Ordering::Equal => a.value.cmp(&b.value),
        // a's key is a strict prefix of b's: a ends (Less) or continues with
        // '=', which never equals b.key[m].
        Ordering::Less => match a.value {
            None => Ordering::Less,
            Some(_) => b'='.cmp(&b.key[m]),
        },
        Ordering::Greater => match b.value {
            None => Ordering::Greater,
            Some(_) => a.key[m].cmp(&b'='),
        },
    }
}

/// Appends the canonical series id of `name` + DogStatsD `tags` to `out`
/// (which is not cleared): `name;k1=v1;k2=v2;flag`, tags sorted by these
/// canonical bytes with duplicates removed; just `name` without tags. The
/// same name with the same tags in any order (or repeated) gives the same id,
/// and distinct (name, tag set) pairs give distinct ids.
///
/// Errors, leaving `out` unchanged: [`StatsdError::EmptyName`] /
/// [`StatsdError::BadName`] as in [`parse_line`]; [`StatsdError::BadTags`] for
/// an empty tag (`a,,b`, leading/trailing `,`), an empty key (`:v`), or a tag
/// containing `;` or `=`. An empty `tags` means no tags.
///
/// Allocates only if `out` lacks capacity (at most one reservation) or there
/// are more than 32 tags.
pub fn write_series_id(name: &[u8], tags: &[u8], out: &mut Vec<u8>) -> Result<(), StatsdError> {
    check_name(name)?;
    if tags.is_empty() {
        out.extend_from_slice(name);
        return Ok(());
    }
    let mut list: SmallVec<[Tag<'_>; INLINE_TAGS]> = SmallVec::new();
    if !tags.is_empty() {
        for raw in tags.split(|&b| b == b',') {
            list.push(parse_tag(raw)?);
        }
    }
    // Unstable sort: in place, no allocation. Equal canonical forms are equal
    // tags, so the order among them does not matter.
    list.sort_unstable_by(cmp_canonical);
    list.dedup();

    let len = name.len() + list.iter().map(|t| 1 + t.canonical_len()).sum::<usize>();
    out.reserve(len);
    out.extend_from_slice(name);
    for tag in &list {
        out.push(b';');
        out.extend_from_slice(tag.key);
        if let Some(value) = tag.value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use GaugeOp::{Delta, Set as Abs};
    use MetricKind::{Counter, Gauge, Set, Timer};
    use StatsdError as E;
    use proptest::prelude::*;

    fn line<'a>(
        name: &'a str,
        kind: MetricKind,
        value: f64,
        gauge_op: GaugeOp,
        member: &'a str,
        sample_rate: f64,
        tags: &'a str,
    ) -> StatsdLine<'a> {
        StatsdLine {
            name: name.as_bytes(),
            kind,
            value,
            gauge_op,
            member: member.as_bytes(),
            sample_rate,
            tags: tags.as_bytes(),
        }
    }

    #[test]
    fn valid_lines() {
        #[rustfmt::skip]
        let cases: &[(&str, StatsdLine<'_>)] = &[
            // counters
            ("a:1|c", line("a", Counter, 1.0, Abs, "", 1.0, "")),
            ("a.b_c-d:1.5|c", line("a.b_c-d", Counter, 1.5, Abs, "", 1.0, "")),
            ("a:-3|c", line("a", Counter, -3.0, Abs, "", 1.0, "")),
            ("a:+3|c", line("a", Counter, 3.0, Abs, "", 1.0, "")),
            ("a:1e3|c", line("a", Counter, 1000.0, Abs, "", 1.0, "")),
            ("a:1|c|@0.1", line("a", Counter, 10.0, Abs, "", 0.1, "")),
            ("a:3|c|@0.5", line("a", Counter, 6.0, Abs, "", 0.5, "")),
            ("a:1|c|@1", line("a", Counter, 1.0, Abs, "", 1.0, "")),
            ("a:1|c|@.25", line("a", Counter, 4.0, Abs, "", 0.25, "")),
            // gauges: plain sets, signed deltas
            ("a:5|g", line("a", Gauge, 5.0, Abs, "", 1.0, "")),
            ("a:0|g", line("a", Gauge, 0.0, Abs, "", 1.0, "")),
            ("a:+5|g", line("a", Gauge, 5.0, Delta, "", 1.0, "")),
            ("a:-5|g", line("a", Gauge, -5.0, Delta, "", 1.0, "")),
            ("a:-0|g", line("a", Gauge, 0.0, Delta, "", 1.0, "")),
            ("a:7|g|@0.5", line("a", Gauge, 7.0, Abs, "", 0.5, "")),
            // timers: ms, h, d; the rate does not scale them
            ("a:3.2|ms", line("a", Timer, 3.2, Abs, "", 1.0, "")),
            ("a:3|h", line("a", Timer, 3.0, Abs, "", 1.0, "")),
            ("a:3|d", line("a", Timer, 3.0, Abs, "", 1.0, "")),
            ("a:.5|ms", line("a", Timer, 0.5, Abs, "", 1.0, "")),
            ("a:-2|h", line("a", Timer, -2.0, Abs, "", 1.0, "")),
            ("a:3|ms|@0.5", line("a", Timer, 3.0, Abs, "", 0.5, "")),
            // sets: opaque members
            ("u:alice|s", line("u", Set, 0.0, Abs, "alice", 1.0, "")),
            ("u:1.5|s", line("u", Set, 0.0, Abs, "1.5", 1.0, "")),
            ("u:a:b|s", line("u", Set, 0.0, Abs, "a:b", 1.0, "")),
            ("u:x|s|@0.5", line("u", Set, 0.0, Abs, "x", 0.5, "")),
            // tags, in either order with the rate
            ("a:1|c|#", line("a", Counter, 1.0, Abs, "", 1.0, "")),
            ("a:1|c|#x:1,y", line("a", Counter, 1.0, Abs, "", 1.0, "x:1,y")),
            ("a:1|c|#x:1|@0.5", line("a", Counter, 2.0, Abs, "", 0.5, "x:1")),
            ("a:1|c|@0.5|#x:1", line("a", Counter, 2.0, Abs, "", 0.5, "x:1")),
            ("a:1|c|#bad,,tags", line("a", Counter, 1.0, Abs, "", 1.0, "bad,,tags")),
            // DogStatsD extensions are skipped
            ("a:1|c|c:abc123|#x", line("a", Counter, 1.0, Abs, "", 1.0, "x")),
            ("a:1|c|T1656581400", line("a", Counter, 1.0, Abs, "", 1.0, "")),
            ("a:1|d|#x|c:ci|T1|e:ext|card:low|@0.5", line("a", Timer, 1.0, Abs, "", 0.5, "x")),
            // names are kept as sent
            ("a b:1|c", line("a b", Counter, 1.0, Abs, "", 1.0, "")),
            (" a:1|c", line(" a", Counter, 1.0, Abs, "", 1.0, "")),
            ("ñ.métrique:1|c", line("ñ.métrique", Counter, 1.0, Abs, "", 1.0, "")),
            ("a=b:1|c", line("a=b", Counter, 1.0, Abs, "", 1.0, "")),
        ];
        for (input, want) in cases {
            assert_eq!(parse_line(input.as_bytes()), Ok(*want), "input {input:?}");
        }
        // -0 delta keeps its sign.
        assert!(parse_line(b"a:-0|g").unwrap().value.is_sign_negative());
    }

    #[test]
    fn invalid_lines() {
        #[rustfmt::skip]
        let cases: &[(&[u8], StatsdError)] = &[
            (b"", E::MissingValue),
            (b"a", E::MissingValue),
            (b"a|c", E::MissingValue),
            (b"a|c:1", E::MissingValue),
            (b"a:1", E::MissingType),
            (b"a:1|", E::MissingType),
            (b"a:1||c", E::MissingType),
            (b":1|c", E::EmptyName),
            (b"  :1|c", E::EmptyName),
            (b"\t\r :1|c", E::EmptyName),
            (b"a;b:1|c", E::BadName),
            (b"a;x=1:1|c", E::BadName),
            (b"a:1|x", E::UnknownType),
            (b"a:1|C", E::UnknownType),
            (b"a:1|cc", E::UnknownType),
            (b"a:1|m", E::UnknownType),
            (b"a:1|c\r", E::UnknownType),
            (b"a:1|@0.5", E::UnknownType),
            (b"a:1|#x", E::UnknownType),
            (b"a:|c", E::BadValue),
            (b"a:|g", E::BadValue),
            (b"a:|s", E::BadValue),
            (b"a:x|c", E::BadValue),
            (b"a:1:2|d", E::BadValue),
            (b"a: 1|c", E::BadValue),
            (b"a:1 |c", E::BadValue),
            (b"a:0x10|c", E::BadValue),
            (b"a:1_000|c", E::BadValue),
            (b"a:+-1|g", E::BadValue),
            (b"a:-|g", E::BadValue),
            (b"a:\xff|c", E::BadValue),
            (b"a:nan|c", E::NonFinite),
            (b"a:NaN|ms", E::NonFinite),
            (b"a:inf|g", E::NonFinite),
            (b"a:+inf|g", E::NonFinite),
            (b"a:-infinity|ms", E::NonFinite),
            (b"a:1e400|c", E::NonFinite),
            (b"a:1|c|@1e-320", E::NonFinite),
            (b"a:1|c|@0", E::BadSampleRate),
            (b"a:1|c|@1.5", E::BadSampleRate),
            (b"a:1|c|@-0.5", E::BadSampleRate),
            (b"a:1|c|@", E::BadSampleRate),
            (b"a:1|c|@nan", E::BadSampleRate),
            (b"a:1|c|@inf", E::BadSampleRate),
            (b"a:1|c|@x", E::BadSampleRate),
            (b"a:1|c|@0.5|@0.5", E::BadSampleRate),
            (b"a:1|g|@2", E::BadSampleRate),
            (b"a:1|c|#x|#y", E::BadTags),
            (b"a:1|c|", E::BadSection),
            (b"a:1|c||#x", E::BadSection),
            (b"a:1|c|0.5", E::BadSection),
            (b"a:1|c|%x", E::BadSection),
            (b"a:1|c| #x", E::BadSection),
            (b"_e{5,4}:title|text", E::NotAMetric),
            (b"_e{5,4}:title|text|#a:b", E::NotAMetric),
            (b"_sc|my.check|0|#a:b", E::NotAMetric),
        ];
        for (input, want) in cases {
            assert_eq!(parse_line(input), Err(*want), "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn reasons_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in StatsdError::ALL {
            let r = e.reason();
            assert!(r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{r}");
            assert!(seen.insert(r), "duplicate reason {r}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(StatsdError::BadValue.reason(), "bad_value");
        assert_eq!(StatsdError::LineTooLong.reason(), "line_too_long");
    }

    #[test]
    fn for_each_line_splits_and_strips() {
        let buf = b"a:1|c\r\n\n\nb:2|g\nbad\r\n\r\nc:3|ms|#t:1\n0123456789:1|c\nd:4|s";
        let mut got = Vec::new();
        for_each_line(buf, 12, |r| got.push(r));
        assert_eq!(
            got,
            vec![
                Ok(line("a", Counter, 1.0, Abs, "", 1.0, "")),
                Ok(line("b", Gauge, 2.0, Abs, "", 1.0, "")),
                Err(E::MissingValue),
                Ok(line("c", Timer, 3.0, Abs, "", 1.0, "t:1")),
                Err(E::LineTooLong),
                Ok(line("d", Set, 0.0, Abs, "4", 1.0, "")),
            ]
        );
        let mut n = 0;
        for_each_line(b"", 10, |_| n += 1);
        for_each_line(b"\n\r\n\n", 10, |_| n += 1);
        assert_eq!(n, 0);
        // The limit applies after stripping '\r'; exactly max_line is fine.
        let mut got = Vec::new();
        for_each_line(b"a:1|c\r\nab:1|c\r\n", 5, |r| got.push(r.map(|l| l.name)));
        assert_eq!(got, vec![Ok(&b"a"[..]), Err(E::LineTooLong)]);
    }

    #[test]
    fn split_complete_lines_keeps_partial_tail() {
        assert_eq!(split_complete_lines(b"a:1|c\nb:2|c\nc:3"), (&b"a:1|c\nb:2|c\n"[..], &b"c:3"[..]));
        assert_eq!(split_complete_lines(b"a:1|c\n"), (&b"a:1|c\n"[..], &b""[..]));
        assert_eq!(split_complete_lines(b"partial"), (&b""[..], &b"partial"[..]));
        assert_eq!(split_complete_lines(b""), (&b""[..], &b""[..]));
    }

    fn series_id(name: &str, tags: &str) -> Result<String, StatsdError> {
        let mut out = Vec::new();
        write_series_id(name.as_bytes(), tags.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn series_ids() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            ("m", "", "m"),
            ("m", "a:1", "m;a=1"),
            ("m", "b:2,a:1", "m;a=1;b=2"),
            ("m", "a:1,b:2", "m;a=1;b=2"),
            ("m", "flag,a:1", "m;a=1;flag"),
            ("m", "a:1,a:1,b,b", "m;a=1;b"),
            ("m", "a:2,a:1", "m;a=1;a=2"),
            ("m", "url:http://x:80/", "m;url=http://x:80/"),
            ("m", "k:", "m;k="),
            ("m", "k:,k", "m;k;k="),
            // sorted by canonical bytes ('=' is 0x3d), not raw (':' is 0x3a)
            ("m", "a<,a:x", "m;a<;a=x"),
            ("m", "ab,a:1", "m;a=1;ab"),
            ("m", "a:1,a!", "m;a!;a=1"),
            ("m", "a,a!", "m;a;a!"),
            ("a.b c", "env:prod,host:h1", "a.b c;env=prod;host=h1"),
        ];
        for (name, tags, want) in cases {
            assert_eq!(series_id(name, tags).as_deref(), Ok(*want), "{name:?} {tags:?}");
        }
    }

    #[test]
    fn series_id_errors_leave_out_unchanged() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, StatsdError)] = &[
            ("", "", E::EmptyName),
            (" ", "a:1", E::EmptyName),
            ("m;x=1", "", E::BadName),
            ("m", ",", E::BadTags),
            ("m", "a,,b", E::BadTags),
            ("m", ",a", E::BadTags),
            ("m", "a,", E::BadTags),
            ("m", "a;b", E::BadTags),
            ("m", "a=b", E::BadTags),
            ("m", "k:v=w", E::BadTags),
            ("m", ":v", E::BadTags),
            ("m", "a:1,:", E::BadTags),
        ];
        for (name, tags, want) in cases {
            let mut out = b"prefix".to_vec();
            let got = write_series_id(name.as_bytes(), tags.as_bytes(), &mut out);
            assert_eq!(got, Err(*want), "{name:?} {tags:?}");
            assert_eq!(out, b"prefix", "{name:?} {tags:?}");
        }
    }

    #[test]
    fn series_id_appends_without_reallocating() {
        let tags: Vec<String> = (0..32).rev().map(|i| format!("k{i:02}:v")).collect();
        let tags = tags.join(",");
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"xx");
        let ptr = out.as_ptr();
        write_series_id(b"m", tags.as_bytes(), &mut out).unwrap();
        assert_eq!(out.as_ptr(), ptr);
        assert!(out.starts_with(b"xxm;k00=v;k01=v;"));
        assert!(out.ends_with(b";k31=v"));
        // More than 32 tags still works (the sort buffer spills to the heap).
        let many: Vec<String> = (0..100).rev().map(|i| format!("k{i:03}")).collect();
        let id = series_id("m", &many.join(",")).unwrap();
        assert!(id.starts_with("m;k000;k001;") && id.ends_with(";k099"));
        // Via the line.
        let l = parse_line(b"m:1|c|#b:2,a:1").unwrap();
        let mut out = Vec::new();
        l.write_series_id(&mut out).unwrap();
        assert_eq!(out, b"m;a=1;b=2");
    }

    // ---------------------------------------------------------------- proptest

    /// Reference model of the series id: build canonical strings, sort, dedup.
    fn naive_series_id(name: &[u8], tags: &[Vec<u8>]) -> Vec<u8> {
        let mut canon: Vec<Vec<u8>> = tags
            .iter()
            .map(|t| {
                let mut c = t.clone();
                if let Some(i) = c.iter().position(|&b| b == b':') {
                    c[i] = b'=';
                }
                c
            })
            .collect();
        canon.sort();
        canon.dedup();
        let mut out = name.to_vec();
        for c in canon {
            out.push(b';');
            out.extend_from_slice(&c);
        }
        out
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.\\- ]{0,20}[a-zA-Z0-9_.]"
    }

    /// Valid tags over a small alphabet so that duplicates, shared prefixes
    /// and keys around '=' (`<`, `>`) occur often.
    fn tag_strategy() -> impl Strategy<Value = String> {
        ("[ab<>!~]{1,3}", proptest::option::of("[ab:<>]{0,3}")).prop_map(|(k, v)| match v {
            Some(v) => format!("{k}:{v}"),
            None => k,
        })
    }

    #[derive(Debug, Clone)]
    struct Generated {
        text: String,
        name: String,
        kind: MetricKind,
        value: f64,
        gauge_op: GaugeOp,
        member: String,
        rate: Option<f64>,
        tags: Option<Vec<String>>,
    }

    fn valid_line_strategy() -> impl Strategy<Value = Generated> {
        let kind_value = prop_oneof![
            (-1e9f64..1e9).prop_map(|v| (Counter, "c", v, Abs, String::new(), format!("{v}"))),
            (0f64..1e9).prop_map(|v| (Gauge, "g", v, Abs, String::new(), format!("{v}"))),
            (-1e9f64..1e9).prop_map(|v| {
                let text = if v.is_sign_negative() { format!("{v}") } else { format!("+{v}") };
                (Gauge, "g", v, Delta, String::new(), text)
            }),
            (-1e9f64..1e9, prop::sample::select(vec!["ms", "h", "d"])).prop_map(|(v, t)| (
                Timer,
                t,
                v,
                Abs,
                String::new(),
                format!("{v}")
            )),
            "[a-zA-Z0-9.:_-]{1,12}".prop_map(|m| (Set, "s", 0.0, Abs, m.clone(), m)),
        ];
        (
            name_strategy(),
            kind_value,
            proptest::option::of(1e-3f64..=1.0),
            proptest::option::of(proptest::collection::vec(tag_strategy(), 0..8)),
            proptest::collection::vec(prop::sample::select(vec!["c:abc", "T1656581400", "e:x", "card:low"]), 0..2),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(name, (kind, ty, value, gauge_op, member, vtext), rate, tags, ext, at, rate_first)| {
                let mut sections: Vec<String> = ext.into_iter().map(String::from).collect();
                let mut known = Vec::new();
                if let Some(r) = rate {
                    known.push(format!("@{r}"));
                }
                if let Some(t) = &tags {
                    known.push(format!("#{}", t.join(",")));
                }
                if !rate_first {
                    known.reverse();
                }
                for (i, s) in known.into_iter().enumerate() {
                    let pos = (at.index(sections.len() + 1) + i).min(sections.len());
                    sections.insert(pos, s);
                }
                let mut text = format!("{name}:{vtext}|{ty}");
                for s in sections {
                    text.push('|');
                    text.push_str(&s);
                }
                Generated { text, name, kind, value, gauge_op, member, rate, tags }
            })
    }

    /// Lines that are mostly structurally plausible, to reach deep paths.
    fn fuzzy_line_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop::sample::select(vec![
                &b"a"[..],
                b":",
                b"|",
                b"@",
                b"#",
                b",",
                b"c",
                b"g",
                b"ms",
                b"s",
                b"d",
                b"h",
                b"1",
                b"0.5",
                b"-",
                b"+",
                b"e9",
                b"nan",
                b"inf",
                b";",
                b"=",
                b" ",
                b"\r",
                b"\xff",
                b"_e{",
                b"_sc|",
                b"T1",
            ]),
            0..16,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Lines shaped like `name:value|type[sections]`, each part valid or just off.
    fn shaped_line_strategy() -> impl Strategy<Value = Vec<u8>> {
        fn pick(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
            prop::sample::select(options)
        }
        (
            pick(&["a", "x.y_z", " a", "\t", "_e{", "_x", "a;b", "", "a b", "\u{e9}t\u{e9}"]),
            pick(&[":", "", "::"]),
            pick(&["1", "-2", "+3", "0.5", "", "nan", "1e400", "x", "12345678901234567890", "007"]),
            pick(&["|", "", "||"]),
            pick(&["c", "g", "ms", "h", "d", "s", "", "x", "cc", "C"]),
            pick(&["", "", "", "|@0.5", "|#a:b", "|", "|T1", ";", ":"]),
            pick(&["", "", "\r"]),
        )
            .prop_map(|parts| {
                let (a, b, c, d, e, f, g) = parts;
                [a, b, c, d, e, f, g].concat().into_bytes()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128),
                                    max in 0usize..64) {
            let _ = parse_line(&bytes);
            for_each_line(&bytes, max, |_| {});
            let mut out = Vec::new();
            let _ = write_series_id(&bytes, &bytes, &mut out);
            let _ = split_complete_lines(&bytes);
        }

        /// The delimiter-mask fast path of `for_each_line` gives what splitting on `\n` and
        /// `parse_line` give, line by line, at every position in a datagram.
        #[test]
        fn for_each_line_agrees_with_parse_line(
            lines in proptest::collection::vec(prop_oneof![fuzzy_line_strategy(), shaped_line_strategy()], 0..40),
            pad in 0usize..70,
            max in 8usize..100,
        ) {
            let mut buf = vec![b'x'; pad];
            buf.push(b'\n');
            for l in &lines {
                buf.extend_from_slice(l);
                buf.push(b'\n');
            }
            let mut want = Vec::new();
            for line in buf.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    want.push(if line.len() > max { Err(StatsdError::LineTooLong) } else { parse_line(line) });
                }
            }
            let mut got = Vec::new();
            for_each_line(&buf, max, |l| got.push(l));
            prop_assert_eq!(got, want);
            // And without the final newline.
            buf.pop();
            let mut got = Vec::new();
            for_each_line(&buf, max, |l| got.push(l));
            let mut want_unterminated = Vec::new();
            for line in buf.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    want_unterminated.push(if line.len() > max { Err(StatsdError::LineTooLong) } else { parse_line(line) });
                }
            }
            prop_assert_eq!(got, want_unterminated);
        }

        #[test]
        fn fuzzy_lines_never_panic(l in fuzzy_line_strategy(), tags in fuzzy_line_strategy()) {
            if let Ok(parsed) = parse_line(&l) {
                prop_assert!(parsed.value.is_finite());
                prop_assert!(parsed.sample_rate > 0.0 && parsed.sample_rate <= 1.0);
                prop_assert!(!parsed.name.is_empty());
                let mut out = Vec::new();
                let _ = parsed.write_series_id(&mut out);
            }
            let mut out = Vec::new();
            let _ = write_series_id(b"m", &tags, &mut out);
        }

        #[test]
        fn generated_lines_round_trip(g in valid_line_strategy(),
                                      perm_seed in any::<prop::sample::Index>()) {
            let parsed = parse_line(g.text.as_bytes());
            prop_assert!(parsed.is_ok(), "{:?} -> {:?}", g.text, parsed);
            let p = parsed.unwrap();
            prop_assert_eq!(p.name, g.name.as_bytes());
            prop_assert_eq!(p.kind, g.kind);
            prop_assert_eq!(p.gauge_op, g.gauge_op);
            prop_assert_eq!(p.member, g.member.as_bytes());
            let rate = g.rate.unwrap_or(1.0);
            prop_assert_eq!(p.sample_rate, rate);
            let want = if g.kind == Counter && rate != 1.0 { g.value / rate } else { g.value };
            prop_assert_eq!(p.value.to_bits(), want.to_bits(), "{} vs {}", p.value, want);
            let tags = g.tags.unwrap_or_default();
            let joined = tags.join(",");
            prop_assert_eq!(p.tags, joined.as_bytes());

            // Series id: matches the naive model and is permutation-invariant.
            let mut id = Vec::new();
            p.write_series_id(&mut id).unwrap();
            let raw: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
            prop_assert_eq!(&id, &naive_series_id(g.name.as_bytes(), &raw));
            let mut shuffled = tags.clone();
            if !shuffled.is_empty() {
                // A rotation plus a swap, driven by the seed.
                let n = shuffled.len();
                shuffled.rotate_left(perm_seed.index(n));
                shuffled.swap(0, perm_seed.index(n));
            }
            let mut id2 = Vec::new();
            write_series_id(g.name.as_bytes(), shuffled.join(",").as_bytes(), &mut id2).unwrap();
            prop_assert_eq!(id, id2);
        }

        #[test]
        fn series_id_permutation_invariant(
            (tags, shuffled) in proptest::collection::vec(tag_strategy(), 0..40)
                .prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        ) {
            let mut a = Vec::new();
            let mut b = Vec::new();
            write_series_id(b"m", tags.join(",").as_bytes(), &mut a).unwrap();
            write_series_id(b"m", shuffled.join(",").as_bytes(), &mut b).unwrap();
            prop_assert_eq!(&a, &b);
            let raw: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
            prop_assert_eq!(a, naive_series_id(b"m", &raw));
        }

        #[test]
        fn for_each_line_one_result_per_line(
            lines in proptest::collection::vec(
                prop_oneof![
                    3 => valid_line_strategy().prop_map(|g| g.text.into_bytes()),
                    2 => proptest::collection::vec(any::<u8>(), 0..40)
                        .prop_map(|b| b.into_iter().filter(|&c| c != b'\n' && c != b'\r').collect()),
                    1 => fuzzy_line_strategy()
                        .prop_map(|b| b.into_iter().filter(|&c| c != b'\n' && c != b'\r').collect()),
                    1 => Just(Vec::new()),
                ],
                0..12,
            ),
            crlf in proptest::collection::vec(any::<bool>(), 12),
            trailing in any::<bool>(),
            max in prop_oneof![Just(usize::MAX), 10usize..80],
        ) {
            let mut buf = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    buf.extend_from_slice(if crlf[i] { b"\r\n" } else { b"\n" });
                }
                buf.extend_from_slice(l);
            }
            if trailing {
                buf.push(b'\n');
            }
            let want: Vec<_> = lines
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| if l.len() > max { Err(E::LineTooLong) } else { parse_line(l) })
                .collect();
            let mut got = Vec::new();
            for_each_line(&buf, max, |r| got.push(r));
            prop_assert_eq!(got, want);
        }
    }
}
