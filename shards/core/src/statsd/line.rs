//! One StatsD line: what it parses into ([`StatsdLine`], [`MetricKind`], [`GaugeOp`]),
//! [`parse_line`] for the full grammar, and the splitters that feed it: [`for_each_line`]
//! for a datagram or the complete part of a stream, [`split_complete_lines`] for a stream.
//!
//! Pure functions over borrowed bytes; they run on whichever core received the datagram or
//! stream chunk, once per line, without allocating.

use crate::aggregation::{MetricType, member_hash};
use crate::batch::SampleValue;

use super::bytes::{find, split_once};
use super::error::StatsdError;
use super::number::{parse_f64, parse_rate};
use super::scan::{BLOCK, Scanner};
use super::tags::{check_name, write_series_id};

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
