//! The synthetic workload: `--series N` series split over counters, gauges and timers by a
//! `--mix`, visited in a fixed interleaving, written as StatsD lines
//! (`load.c{i}:1|c`, `load.g{i}:{v}|g`, `load.t{i}:{v}|ms`) or as m3msg messages carrying one
//! `metricpb.MetricWithMetadatas` each, as M3 coordinators send them.
//!
//! Everything here reuses its buffers: producing a line or a frame allocates nothing in
//! steady state, so the load generator spends its CPU on sending, not on formatting.

use std::fmt;
use std::str::FromStr;

use prost::Message as _;
use sheaf_proto::frame::encode_frame;
use sheaf_proto::metricpb::{
    self, BatchTimer, BatchTimerWithMetadatas, Counter, CounterWithMetadatas, Gauge, GaugeWithMetadatas,
    MetricWithMetadatas, StagedMetadatas, metric_with_metadatas::Type,
};
use sheaf_proto::msgpb;
use sheaf_shard_core::murmur3::shard_for;

/// Largest StatsD datagram the generator sends (fits a 1500-byte MTU with headers).
pub const MAX_DATAGRAM_BYTES: usize = 1400;

/// The id prefix of every generated series.
pub const ID_PREFIX: &str = "load.";

/// Which kind of metric a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter = 0,
    Gauge = 1,
    Timer = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Counter, Kind::Gauge, Kind::Timer];

    /// The letter after `load.` in the series id.
    pub fn letter(self) -> u8 {
        match self {
            Kind::Counter => b'c',
            Kind::Gauge => b'g',
            Kind::Timer => b't',
        }
    }

    /// The StatsD type section.
    pub fn statsd_type(self) -> &'static [u8] {
        match self {
            Kind::Counter => b"c",
            Kind::Gauge => b"g",
            Kind::Timer => b"ms",
        }
    }
}

/// Percentages of counters, gauges and timers, e.g. `60,20,20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub weights: [u32; 3],
}

impl Default for Mix {
    fn default() -> Self {
        Self { weights: [60, 20, 20] }
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!("expected counters,gauges,timers percentages such as 60,20,20, got {s:?}"));
        }
        let mut weights = [0u32; 3];
        for (w, p) in weights.iter_mut().zip(&parts) {
            *w = p.parse().map_err(|e| format!("{p:?}: {e}"))?;
        }
        if weights.iter().sum::<u32>() != 100 {
            return Err(format!("percentages must add up to 100, got {s:?}"));
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, g, t] = self.weights;
        write!(f, "{c},{g},{t}")
    }
}

impl Mix {
    /// One cycle of 100 kinds, interleaved as evenly as the weights allow (smooth weighted
    /// round robin): `60,20,20` gives `c g c t c c g c t c …`, never long runs of one kind.
    pub fn pattern(&self) -> Vec<Kind> {
        let total: i64 = self.weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = [0i64; 3];
        let mut out = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, &w) in current.iter_mut().zip(&self.weights) {
                *c += i64::from(w);
            }
            let best = (0..3).max_by_key(|&i| (current[i], std::cmp::Reverse(i))).unwrap_or(0);
            current[best] -= total;
            out.push(Kind::ALL[best]);
        }
        out
    }
}

/// How many distinct series of each kind: `--series` split by the mix (every kind with a
/// non-zero weight gets at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSpace {
    pub per_kind: [u64; 3],
}

impl SeriesSpace {
    pub fn new(series: u64, mix: Mix) -> Self {
        let mut per_kind = [0u64; 3];
        for (n, &w) in per_kind.iter_mut().zip(&mix.weights) {
            if w > 0 {
                *n = (series * u64::from(w) / 100).max(1);
            }
        }
        Self { per_kind }
    }

    pub fn total(&self) -> u64 {
        self.per_kind.iter().sum()
    }
}

/// One generated value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub kind: Kind,
    /// Series index within its kind: the `{i}` of `load.c{i}`.
    pub index: u64,
    /// 1 for counters; 0..1000 for gauges; 1..=1000 (ms) for timers. Always an integer.
    pub value: f64,
}

/// Appends `v` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The shortest id `write_id` writes (0: no padding). Set once, before sending starts.
static MIN_ID_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Pads every id from here on to at least `len` bytes with zeros before the index
/// (`load.c0000000000042`), e.g. to measure memory at a given id length.
pub fn set_min_id_len(len: usize) {
    MIN_ID_LEN.store(len, std::sync::atomic::Ordering::Relaxed);
}

/// Appends the series id `load.{c|g|t}{index}` (zero-padded, see `set_min_id_len`).
pub fn write_id(kind: Kind, index: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(ID_PREFIX.as_bytes());
    out.push(kind.letter());
    let digits = index.checked_ilog10().unwrap_or(0) as usize + 1;
    let len = ID_PREFIX.len() + 1 + digits;
    let pad = MIN_ID_LEN.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(len);
    out.extend(std::iter::repeat_n(b'0', pad));
    push_u64(out, index);
}

/// Appends `s` to `batch` as a decoding core would: its id, shard (of `num_shards`), series
/// hash and type, untimed, with the default metadata. `id` is scratch space.
pub fn push_sample(batch: &mut sheaf_shard_core::SampleBatch, s: &Sample, num_shards: u32, id: &mut Vec<u8>) {
    use sheaf_shard_core::{DEFAULT_SPEC, MetricType, SampleValue, UNTIMED, series_hash};
    id.clear();
    write_id(s.kind, s.index, id);
    let t = match s.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Timer => MetricType::Timer,
    };
    batch.push(
        shard_for(id, num_shards),
        series_hash(t, id),
        id,
        t,
        UNTIMED,
        SampleValue::Number(s.value),
        DEFAULT_SPEC,
    );
}

/// Walks the series in a fixed order: kinds follow [`Mix::pattern`]; within a kind, a
/// generator started at `first` with `stride` S visits indices first, first+S, … (mod the
/// kind's series count), so S generators with firsts 0..S together cover every series
/// evenly without coordinating.
#[derive(Debug, Clone)]
pub struct Generator {
    pattern: Vec<Kind>,
    pos: usize,
    space: SeriesSpace,
    next: [u64; 3],
    stride: u64,
    seq: u64,
}

impl Generator {
    pub fn new(mix: Mix, space: SeriesSpace, first: u64, stride: u64) -> Self {
        let next = std::array::from_fn(|k| if space.per_kind[k] == 0 { 0 } else { first % space.per_kind[k] });
        Self { pattern: mix.pattern(), pos: 0, space, next, stride: stride.max(1), seq: first }
    }

    /// The next value.
    #[inline]
    pub fn next_sample(&mut self) -> Sample {
        let kind = self.pattern[self.pos];
        self.pos = if self.pos + 1 == self.pattern.len() { 0 } else { self.pos + 1 };
        let k = kind as usize;
        let index = self.next[k];
        self.next[k] = (index + self.stride) % self.space.per_kind[k];
        self.seq = self.seq.wrapping_add(1);
        let value = match kind {
            Kind::Counter => 1.0,
            Kind::Gauge => (self.seq % 1000) as f64,
            Kind::Timer => self.timer_value(0),
        };
        Sample { kind, index, value }
    }

    /// The `j`-th extra value of a timer batch (values of one batch differ).
    #[inline]
    pub fn timer_value(&self, j: u64) -> f64 {
        (1 + (self.seq.wrapping_mul(7919).wrapping_add(j.wrapping_mul(104_729))) % 1000) as f64
    }
}

/// Appends one StatsD line (with its `\n`): `load.c{i}:1|c`, `load.g{i}:{v}|g`, `load.t{i}:{v}|ms`.
pub fn write_statsd_line(s: &Sample, out: &mut Vec<u8>) {
    write_id(s.kind, s.index, out);
    out.push(b':');
    // Generated values are non-negative integers; a gauge value without sign is a set.
    push_u64(out, s.value as u64);
    out.push(b'|');
    out.extend_from_slice(s.kind.statsd_type());
    out.push(b'\n');
}

/// What one datagram holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramCount {
    pub lines: u64,
    pub counter_lines: u64,
}

/// Packs StatsD lines into datagrams of at most `max_lines` lines and `max_bytes` bytes.
#[derive(Debug, Clone)]
pub struct StatsdWriter {
    generator: Generator,
    line: Vec<u8>,
    /// A line that did not fit the previous datagram; it opens the next one.
    pending: Option<Sample>,
}

impl StatsdWriter {
    pub fn new(generator: Generator) -> Self {
        Self { generator, line: Vec::with_capacity(64), pending: None }
    }

    /// Clears `buf` and fills it with the next datagram.
    pub fn fill(&mut self, buf: &mut Vec<u8>, max_lines: usize, max_bytes: usize) -> DatagramCount {
        buf.clear();
        let mut count = DatagramCount::default();
        while (count.lines as usize) < max_lines {
            let s = self.pending.take().unwrap_or_else(|| self.generator.next_sample());
            self.line.clear();
            write_statsd_line(&s, &mut self.line);
            if !buf.is_empty() && buf.len() + self.line.len() > max_bytes {
                self.pending = Some(s);
                break;
            }
            buf.extend_from_slice(&self.line);
            count.lines += 1;
            count.counter_lines += u64::from(s.kind == Kind::Counter);
        }
        count
    }
}

/// The M3 default staged metadatas (`metadata.DefaultStagedMetadatas`): one staged metadata
/// at cutover 0, not tombstoned, with one default pipeline (default aggregations and
/// storage policies).
pub fn default_staged_metadatas() -> StagedMetadatas {
    StagedMetadatas {
        metadatas: vec![metricpb::StagedMetadata {
            cutover_nanos: 0,
            tombstoned: false,
            metadata: Some(metricpb::Metadata { pipelines: vec![metricpb::PipelineMetadata::default()] }),
        }],
    }
}

/// Encodes generated values as framed m3msg messages, one metric per message, reusing the
/// prost structs and buffers.
#[derive(Debug, Clone)]
pub struct M3msgEncoder {
    counter: MetricWithMetadatas,
    gauge: MetricWithMetadatas,
    timer: MetricWithMetadatas,
    message: msgpb::Message,
    num_shards: u32,
    id: Vec<u8>,
}

impl M3msgEncoder {
    /// `metadatas` goes into every metric (an empty `StagedMetadatas` means the defaults);
    /// `num_shards` is the m3msg topic's shard count (message shard = murmur3(id) % it).
    pub fn new(metadatas: StagedMetadatas, num_shards: u32) -> Self {
        let counter = MetricWithMetadatas {
            r#type: Type::CounterWithMetadatas as i32,
            counter_with_metadatas: Some(CounterWithMetadatas {
                counter: Some(Counter::default()),
                metadatas: Some(metadatas.clone()),
            }),
            ..Default::default()
        };
        let gauge = MetricWithMetadatas {
            r#type: Type::GaugeWithMetadatas as i32,
            gauge_with_metadatas: Some(GaugeWithMetadatas {
                gauge: Some(Gauge::default()),
                metadatas: Some(metadatas.clone()),
            }),
            ..Default::default()
        };
        let timer = MetricWithMetadatas {
            r#type: Type::BatchTimerWithMetadatas as i32,
            batch_timer_with_metadatas: Some(BatchTimerWithMetadatas {
                batch_timer: Some(BatchTimer::default()),
                metadatas: Some(metadatas),
            }),
            ..Default::default()
        };
        Self {
            counter,
            gauge,
            timer,
            message: msgpb::Message { metadata: Some(msgpb::Metadata::default()), value: Vec::new() },
            num_shards: num_shards.max(1),
            id: Vec::with_capacity(64),
        }
    }

    /// The `MetricWithMetadatas` of `s` (a timer carries `timer_values`, or `s.value` when
    /// that is empty), as set by the last call for its kind.
    pub fn metric(&mut self, s: &Sample, timer_values: &[f64]) -> &MetricWithMetadatas {
        self.id.clear();
        write_id(s.kind, s.index, &mut self.id);
        match s.kind {
            Kind::Counter => {
                if let Some(c) = self.counter.counter_with_metadatas.as_mut().and_then(|c| c.counter.as_mut()) {
                    c.id.clear();
                    c.id.extend_from_slice(&self.id);
                    c.value = s.value as i64;
                }
                &self.counter
            }
            Kind::Gauge => {
                if let Some(g) = self.gauge.gauge_with_metadatas.as_mut().and_then(|g| g.gauge.as_mut()) {
                    g.id.clear();
                    g.id.extend_from_slice(&self.id);
                    g.value = s.value;
                }
                &self.gauge
            }
            Kind::Timer => {
                if let Some(t) = self.timer.batch_timer_with_metadatas.as_mut().and_then(|t| t.batch_timer.as_mut()) {
                    t.id.clear();
                    t.id.extend_from_slice(&self.id);
                    t.values.clear();
                    if timer_values.is_empty() {
                        t.values.push(s.value);
                    } else {
                        t.values.extend_from_slice(timer_values);
                    }
                }
                &self.timer
            }
        }
    }

    /// Appends the framed `msgpb.Message{metadata{shard, id: seq, sent_at_nanos}, value}` of
    /// `s` to `out`.
    pub fn encode(&mut self, s: &Sample, timer_values: &[f64], seq: u64, sent_at_nanos: u64, out: &mut Vec<u8>) {
        let mut value = std::mem::take(&mut self.message.value);
        value.clear();
        let metric = self.metric(s, timer_values);
        metric.encode(&mut value).expect("a Vec<u8> grows as needed");
        let shard = u64::from(shard_for(&self.id, self.num_shards));
        self.message.value = value;
        self.message.metadata = Some(msgpb::Metadata { shard, id: seq, sent_at_nanos });
        encode_frame(&self.message, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheaf_proto::frame::next_frame;
    use sheaf_proto::view::{MetricView, Scratch, decode_message, decode_metric};
    use sheaf_shard_core::statsd::{MetricKind, for_each_line};

    #[test]
    fn mix_pattern_has_the_weights_and_interleaves() {
        let p = Mix::default().pattern();
        assert_eq!(p.len(), 100);
        assert_eq!(p.iter().filter(|k| **k == Kind::Counter).count(), 60);
        assert_eq!(p.iter().filter(|k| **k == Kind::Gauge).count(), 20);
        assert!(p.windows(4).all(|w| w.contains(&Kind::Counter)));
        assert!("60,20".parse::<Mix>().is_err());
        assert!("60,20,30".parse::<Mix>().is_err());
        assert_eq!("100,0,0".parse::<Mix>().unwrap().pattern(), vec![Kind::Counter; 100]);
    }

    #[test]
    fn generators_with_strides_cover_every_series_once_per_cycle() {
        let mix = Mix::default();
        let space = SeriesSpace::new(1000, mix);
        assert_eq!(space.per_kind, [600, 200, 200]);
        let mut seen = std::collections::HashSet::new();
        for first in 0..4 {
            let mut g = Generator::new(mix, space, first, 4);
            for _ in 0..250 {
                let s = g.next_sample();
                seen.insert((s.kind, s.index));
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn datagrams_parse_and_respect_the_limits() {
        let space = SeriesSpace::new(100_000, Mix::default());
        let mut w = StatsdWriter::new(Generator::new(Mix::default(), space, 99_000, 1));
        let mut buf = Vec::new();
        let mut total = 0;
        for _ in 0..50 {
            let n = w.fill(&mut buf, 87, MAX_DATAGRAM_BYTES);
            assert!(buf.len() <= MAX_DATAGRAM_BYTES);
            let (mut lines, mut counters) = (0, 0);
            for_each_line(&buf, 1024, |l| {
                let l = l.unwrap();
                lines += 1;
                if l.kind == MetricKind::Counter {
                    counters += 1;
                    assert_eq!(l.value, 1.0);
                }
            });
            assert_eq!((lines, counters), (n.lines, n.counter_lines));
            total += n.lines;
        }
        assert!(total > 50 * 70, "{total}");
    }

    #[test]
    fn m3msg_frames_decode_with_the_zero_copy_view() {
        let mut enc = M3msgEncoder::new(StagedMetadatas::default(), 64);
        let mut g = Generator::new(Mix::default(), SeriesSpace::new(100, Mix::default()), 0, 1);
        let mut out = Vec::new();
        let samples: Vec<Sample> = (0..10).map(|_| g.next_sample()).collect();
        for (i, s) in samples.iter().enumerate() {
            enc.encode(s, &[], i as u64 + 1, 42, &mut out);
        }
        let mut at = 0;
        let mut scratch = Scratch::default();
        for (i, s) in samples.iter().enumerate() {
            let (payload, used) = next_frame(&out[at..], 1 << 20).unwrap().unwrap();
            at += used;
            let m = decode_message(payload).unwrap();
            assert_eq!((m.id, m.sent_at_nanos), (i as u64 + 1, 42));
            let mut id = Vec::new();
            write_id(s.kind, s.index, &mut id);
            assert_eq!(m.shard, u64::from(shard_for(&id, 64)));
            match decode_metric(m.value, 0, &mut scratch).unwrap() {
                MetricView::Counter { id: got, value, .. } => {
                    assert_eq!((s.kind, got, value), (Kind::Counter, &id[..], 1));
                }
                MetricView::Gauge { id: got, value, .. } => {
                    assert_eq!((s.kind, got, value), (Kind::Gauge, &id[..], s.value))
                }
                MetricView::BatchTimer { id: got, .. } => {
                    assert_eq!((s.kind, got), (Kind::Timer, &id[..]));
                    assert_eq!(scratch.timer_values, [s.value]);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(scratch.pipelines.is_empty());
        }
        assert_eq!(at, out.len());
    }

    #[test]
    fn push_u64_writes_decimal() {
        for v in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
