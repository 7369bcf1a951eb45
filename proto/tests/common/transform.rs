//! A semantics-preserving, schema-driven rewriter of protobuf bytes, used to
//! produce inputs that prost's own encoder never emits but M3 (or any conforming
//! encoder) may: fields in any order, unknown fields of every (non-group) wire
//! type, scalars repeated with an earlier decoy value (last one wins), singular
//! embedded messages split over several occurrences (they merge), and repeated
//! doubles as any mix of packed chunks and unpacked values.
//!
//! The tests check that prost decodes the rewritten bytes to the same value as
//! the original ones, so the rewriter itself is verified.

/// Message types, to know what each field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    MetricWithMetadatas,
    CounterWm,
    BatchTimerWm,
    GaugeWm,
    ForwardedWm,
    TimedWm,
    TimedWms,
    TimedWsp,
    Counter,
    BatchTimer,
    Gauge,
    TimedMetric,
    ForwardedMetric,
    StagedMetadatas,
    StagedMetadata,
    Metadata,
    PipelineMetadata,
    ForwardMetadata,
    TimedMetadata,
    StoragePolicy,
    Resolution,
    Retention,
    RoutingPolicy,
    AggregationId,
    AppliedPipeline,
    AppliedPipelineOp,
    TransformationOp,
    AppliedRollupOp,
    Message,
    EnvelopeMetadata,
}

enum Kind {
    /// Singular embedded message: occurrences merge.
    One(Msg),
    /// Repeated embedded message: each occurrence is an element.
    Many(Msg),
    /// Singular scalar (including bytes): the last occurrence wins.
    Scalar,
    /// `repeated double`, packed or not.
    Doubles,
}

fn kind(msg: Msg, field: u32) -> Kind {
    use Kind::*;
    use Msg as M;
    match (msg, field) {
        (M::MetricWithMetadatas, 2) => One(M::CounterWm),
        (M::MetricWithMetadatas, 3) => One(M::BatchTimerWm),
        (M::MetricWithMetadatas, 4) => One(M::GaugeWm),
        (M::MetricWithMetadatas, 5) => One(M::ForwardedWm),
        (M::MetricWithMetadatas, 6) => One(M::TimedWm),
        (M::MetricWithMetadatas, 7) => One(M::TimedWms),
        (M::MetricWithMetadatas, 8) => One(M::TimedWsp),
        (M::CounterWm, 1) => One(M::Counter),
        (M::BatchTimerWm, 1) => One(M::BatchTimer),
        (M::GaugeWm, 1) => One(M::Gauge),
        (M::ForwardedWm, 1) => One(M::ForwardedMetric),
        (M::ForwardedWm, 2) => One(M::ForwardMetadata),
        (M::TimedWm | M::TimedWms | M::TimedWsp, 1) => One(M::TimedMetric),
        (M::TimedWm, 2) => One(M::TimedMetadata),
        (M::CounterWm | M::BatchTimerWm | M::GaugeWm | M::TimedWms, 2) => One(M::StagedMetadatas),
        (M::TimedWsp, 2) => One(M::StoragePolicy),
        (M::TimedWsp, 3) => One(M::RoutingPolicy),
        (M::BatchTimer, 2) | (M::ForwardedMetric, 4 | 6) => Doubles,
        (M::StagedMetadatas, 1) => Many(M::StagedMetadata),
        (M::StagedMetadata, 3) => One(M::Metadata),
        (M::Metadata, 1) => Many(M::PipelineMetadata),
        (M::PipelineMetadata | M::ForwardMetadata | M::TimedMetadata, 1) => One(M::AggregationId),
        (M::PipelineMetadata, 2) => Many(M::StoragePolicy),
        (M::ForwardMetadata | M::TimedMetadata, 2) => One(M::StoragePolicy),
        (M::PipelineMetadata | M::ForwardMetadata, 3) => One(M::AppliedPipeline),
        (M::PipelineMetadata, 6) | (M::ForwardMetadata, 7) | (M::TimedMetadata, 3) => One(M::RoutingPolicy),
        (M::StoragePolicy, 1) => One(M::Resolution),
        (M::StoragePolicy, 2) => One(M::Retention),
        (M::AppliedPipeline, 1) => Many(M::AppliedPipelineOp),
        (M::AppliedPipelineOp, 2) => One(M::TransformationOp),
        (M::AppliedPipelineOp, 3) => One(M::AppliedRollupOp),
        (M::AppliedRollupOp, 2) => One(M::AggregationId),
        (M::Message, 1) => One(M::EnvelopeMetadata),
        _ => Scalar,
    }
}

/// Small deterministic generator (xorshift64*), seeded by proptest.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/n.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub(crate) fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub(crate) fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0;
    for i in 0.. {
        let b = buf[0];
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            break;
        }
    }
    v
}

pub(crate) fn put_key(field: u32, wire_type: u8, out: &mut Vec<u8>) {
    put_varint(u64::from(field) << 3 | u64::from(wire_type), out);
}

pub(crate) fn put_len(field: u32, body: &[u8], out: &mut Vec<u8>) {
    put_key(field, 2, out);
    put_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// One encoded field (key included).
struct Record {
    field: u32,
    bytes: Vec<u8>,
}

fn len_record(field: u32, body: &[u8]) -> Record {
    let mut bytes = Vec::new();
    put_len(field, body, &mut bytes);
    Record { field, bytes }
}

/// A field of a well-formed input: number, wire type, value bytes (the body for
/// length-delimited fields, the whole encoding otherwise).
fn parse(mut buf: &[u8]) -> Vec<(u32, u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = get_varint(&mut buf);
        let (field, wire_type) = ((key >> 3) as u32, (key & 7) as u8);
        let value = match wire_type {
            0 => {
                let start = buf;
                get_varint(&mut buf);
                start[..start.len() - buf.len()].to_vec()
            }
            1 => {
                let (v, rest) = buf.split_at(8);
                buf = rest;
                v.to_vec()
            }
            2 => {
                let len = get_varint(&mut buf) as usize;
                let (v, rest) = buf.split_at(len);
                buf = rest;
                v.to_vec()
            }
            5 => {
                let (v, rest) = buf.split_at(4);
                buf = rest;
                v.to_vec()
            }
            other => panic!("unexpected wire type {other} in a prost encoding"),
        };
        out.push((field, wire_type, value));
    }
    out
}

fn raw_record(field: u32, wire_type: u8, value: &[u8]) -> Record {
    if wire_type == 2 {
        return len_record(field, value);
    }
    let mut bytes = Vec::new();
    put_key(field, wire_type, &mut bytes);
    bytes.extend_from_slice(value);
    Record { field, bytes }
}

/// A random value of the given (non-group) wire type.
fn random_value(wire_type: u8, rng: &mut Rng) -> Vec<u8> {
    match wire_type {
        0 => {
            let mut v = Vec::new();
            let x = rng.next() >> rng.below(64);
            put_varint(x, &mut v);
            v
        }
        1 => rng.next().to_le_bytes().to_vec(),
        2 => rng.bytes(6),
        _ => (rng.next() as u32).to_le_bytes().to_vec(),
    }
}

fn unknown_record(rng: &mut Rng) -> Record {
    // Every known field number is below 9.
    let field = if rng.one_in(4) { (rng.next() % ((1 << 29) - 9)) as u32 + 9 } else { 9 + rng.below(200) as u32 };
    let wire_type = [0u8, 1, 2, 5][rng.below(4)];
    raw_record(field, wire_type, &random_value(wire_type, rng))
}

fn concat(records: &[Record]) -> Vec<u8> {
    records.iter().flat_map(|r| r.bytes.iter().copied()).collect()
}

fn rewrite_records(buf: &[u8], msg: Msg, rng: &mut Rng) -> Vec<Record> {
    let mut out = Vec::new();
    for (field, wire_type, value) in parse(buf) {
        match kind(msg, field) {
            Kind::One(sub) => {
                let inner = rewrite_records(&value, sub, rng);
                if inner.len() >= 2 && rng.one_in(3) {
                    let k = 1 + rng.below(inner.len() - 1);
                    out.push(len_record(field, &concat(&inner[..k])));
                    out.push(len_record(field, &concat(&inner[k..])));
                } else {
                    if rng.one_in(8) {
                        out.push(len_record(field, &[]));
                    }
                    out.push(len_record(field, &concat(&inner)));
                }
            }
            Kind::Many(sub) => {
                let inner = rewrite_records(&value, sub, rng);
                out.push(len_record(field, &concat(&inner)));
            }
            Kind::Scalar => {
                if rng.one_in(4) {
                    out.push(raw_record(field, wire_type, &random_value(wire_type, rng)));
                }
                out.push(raw_record(field, wire_type, &value));
            }
            Kind::Doubles => {
                let values: Vec<&[u8]> = value.chunks(8).collect();
                let mut i = 0;
                while i < values.len() {
                    let n = 1 + rng.below(values.len() - i);
                    let chunk = &values[i..i + n];
                    if rng.one_in(2) {
                        out.push(len_record(field, &chunk.concat()));
                    } else {
                        for v in chunk {
                            out.push(raw_record(field, 1, v));
                        }
                    }
                    i += n;
                }
                if rng.one_in(6) {
                    // An empty packed run is a valid no-op.
                    out.push(len_record(field, &[]));
                }
            }
        }
    }
    let mut out = interleave(out, rng);
    let unknowns = if rng.one_in(2) { 0 } else { rng.below(4) };
    for _ in 0..unknowns {
        let at = rng.below(out.len() + 1);
        out.insert(at, unknown_record(rng));
    }
    out
}

/// Random order that keeps the relative order of records with the same number.
fn interleave(records: Vec<Record>, rng: &mut Rng) -> Vec<Record> {
    let mut queues: Vec<(u32, std::collections::VecDeque<Record>)> = Vec::new();
    for r in records {
        match queues.iter_mut().find(|(f, _)| *f == r.field) {
            Some((_, q)) => q.push_back(r),
            None => queues.push((r.field, [r].into())),
        }
    }
    let mut out = Vec::new();
    loop {
        let remaining: usize = queues.iter().map(|(_, q)| q.len()).sum();
        if remaining == 0 {
            return out;
        }
        let mut pick = rng.below(remaining);
        for (_, q) in &mut queues {
            if pick < q.len() {
                out.push(q.pop_front().expect("non-empty"));
                break;
            }
            pick -= q.len();
        }
    }
}

/// Rewrites a well-formed encoding of `msg` into an equivalent one.
pub(crate) fn rewrite(buf: &[u8], msg: Msg, seed: u64) -> Vec<u8> {
    concat(&rewrite_records(buf, msg, &mut Rng::new(seed)))
}
