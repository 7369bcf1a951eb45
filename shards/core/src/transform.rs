//! M3's transformations (`src/metrics/transformation/`): what a pipeline does to the value an
//! element flushes before it is emitted or rolled up.
//!
//! Pure functions and a small per-op state; the state lives with the element that has the
//! op, on the core that owns the element, and only elements whose pipeline has a stateful op
//! (ADD, PERSECOND, INCREASE) pay for it.
//!
//! # Semantics (our reading of M3's `unary.go`, `binary.go`, `unary_multi.go`)
//!
//! - ABSOLUTE: `|v|`, NaN stays NaN.
//! - ADD: a running sum over every window the element flushed, NaN counted as 0.
//! - PERSECOND: `(curr − prev) / (t_curr − t_prev in seconds)` against the previous window's
//!   input value. The first value emits nothing. A decrease (a counter reset) emits nothing,
//!   as M3 keeps only non-negative rates; the decreased value becomes the new previous value,
//!   so the rate resumes at the next window. A NaN on either side, or a time that does not
//!   move forward, emits nothing.
//! - INCREASE: `curr − prev` against the previous window's input value. The first value emits
//!   nothing. A decrease is a counter reset: the increase is `curr` (the counter restarted
//!   from 0). NaN and a time that does not move forward emit nothing.
//! - RESET: emits the value, then a 0 half a resolution later, so that a failover does not look
//!   like a counter reset downstream.
//!
//! A binary op keeps the last input it was given even when it emitted nothing, as M3 stores
//! `lastConsumedValues` after each transform; a NaN input is not kept.

/// One transformation, numbered as M3's `transformationpb.TransformationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransformType {
    Absolute = 1,
    PerSecond = 2,
    Increase = 3,
    Add = 4,
    Reset = 5,
}

impl TransformType {
    /// The type of a `transformationpb.TransformationType` number; `None` for UNKNOWN and
    /// numbers M3 does not define.
    pub fn from_m3(value: u64) -> Option<Self> {
        Some(match value {
            1 => Self::Absolute,
            2 => Self::PerSecond,
            3 => Self::Increase,
            4 => Self::Add,
            5 => Self::Reset,
            _ => return None,
        })
    }

    /// M3's name of the type (as in rule configs: `PerSecond`, `Increase`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Absolute => "Absolute",
            Self::PerSecond => "PerSecond",
            Self::Increase => "Increase",
            Self::Add => "Add",
            Self::Reset => "Reset",
        }
    }

    /// Whether the op remembers something from one window to the next.
    pub fn is_stateful(self) -> bool {
        matches!(self, Self::PerSecond | Self::Increase | Self::Add)
    }
}

/// A value at a time (nanoseconds), the unit the transformations work on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    pub time_nanos: i64,
    pub value: f64,
}

/// What one op emits for one input: nothing, one point or (RESET) two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transformed {
    Nothing,
    One(Datapoint),
    Two(Datapoint, Datapoint),
}

impl Transformed {
    /// The points emitted, in time order.
    pub fn points(self) -> impl Iterator<Item = Datapoint> {
        let (a, b) = match self {
            Self::Nothing => (None, None),
            Self::One(p) => (Some(p), None),
            Self::Two(p, q) => (Some(p), Some(q)),
        };
        a.into_iter().chain(b)
    }
}

/// The memory of a stateful op on one element output: the previous input (PERSECOND,
/// INCREASE) or the running sum (ADD). Empty until the first value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TransformState {
    pub(crate) previous: Option<Datapoint>,
}

impl TransformState {
    /// Applies `op` to `input`, the value of the window of resolution `resolution_nanos` that
    /// ends at `input.time_nanos`, updating the state.
    pub fn apply(&mut self, op: TransformType, input: Datapoint, resolution_nanos: i64) -> Transformed {
        match op {
            TransformType::Absolute => Transformed::One(Datapoint { value: input.value.abs(), ..input }),
            TransformType::Reset => {
                let zero = Datapoint { time_nanos: input.time_nanos.saturating_add(resolution_nanos / 2), value: 0.0 };
                Transformed::Two(input, zero)
            }
            TransformType::Add => {
                let before = self.previous.map_or(0.0, |p| p.value);
                let add = if input.value.is_nan() { 0.0 } else { input.value };
                let sum = Datapoint { time_nanos: input.time_nanos, value: before + add };
                self.previous = Some(sum);
                Transformed::One(sum)
            }
            TransformType::PerSecond | TransformType::Increase => {
                if input.value.is_nan() {
                    return Transformed::Nothing;
                }
                let previous = self.previous.replace(input);
                let Some(prev) = previous else {
                    return Transformed::Nothing;
                };
                if prev.time_nanos >= input.time_nanos {
                    // Out of order: keep the later point as the reference.
                    self.previous = Some(prev);
                    return Transformed::Nothing;
                }
                let diff = input.value - prev.value;
                let value = match op {
                    TransformType::PerSecond if diff < 0.0 => return Transformed::Nothing,
                    TransformType::PerSecond => diff * 1e9 / (input.time_nanos - prev.time_nanos) as f64,
                    _ if diff < 0.0 => input.value,
                    _ => diff,
                };
                Transformed::One(Datapoint { time_nanos: input.time_nanos, value })
            }
        }
    }
}

/// The transformations of an element, in order, packed in 32 bits so that it is a plain
/// `Copy` part of an element's key: 4 bits of length, then 3 bits per op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransformChain(u32);

impl TransformChain {
    /// The most transformations one element may chain.
    pub const MAX_LEN: usize = 9;
    /// No transformation: the aggregated value is emitted as it is.
    pub const NONE: Self = Self(0);

    /// The chain of `ops`; `None` when longer than [`Self::MAX_LEN`].
    pub fn new(ops: &[TransformType]) -> Option<Self> {
        if ops.len() > Self::MAX_LEN {
            return None;
        }
        let packed = ops.iter().enumerate().fold(ops.len() as u32, |acc, (i, op)| acc | (*op as u32) << (4 + 3 * i));
        Some(Self(packed))
    }

    /// This chain with `op` appended; `None` when it is full.
    pub fn with(self, op: TransformType) -> Option<Self> {
        let len = self.len();
        (len < Self::MAX_LEN).then(|| Self((self.0 & !0xf | (op as u32) << (4 + 3 * len)) | (len as u32 + 1)))
    }

    /// The chain packed as `bits` (see [`Self::to_bits`]); `None` when `bits` is not a chain
    /// this build packs (read from a checkpoint, say).
    pub fn from_bits(bits: u32) -> Option<Self> {
        let len = (bits & 0xf) as usize;
        if len > Self::MAX_LEN {
            return None;
        }
        let ops: Vec<TransformType> =
            (0..len).map(|i| TransformType::from_m3(u64::from(bits >> (4 + 3 * i) & 0b111))).collect::<Option<_>>()?;
        Self::new(&ops).filter(|c| c.0 == bits)
    }

    /// The packed form (4 bits of length, 3 bits per op).
    pub fn to_bits(self) -> u32 {
        self.0
    }

    pub fn len(self) -> usize {
        (self.0 & 0xf) as usize
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The ops, in order.
    pub fn iter(self) -> impl Iterator<Item = TransformType> {
        (0..self.len()).filter_map(move |i| TransformType::from_m3(u64::from(self.0 >> (4 + 3 * i) & 0b111)))
    }

    /// How many ops keep a state from one window to the next.
    pub fn stateful_len(self) -> usize {
        self.iter().filter(|t| t.is_stateful()).count()
    }

    /// The most points one input can become (each RESET doubles them).
    pub fn max_fanout(self) -> usize {
        1 << self.iter().filter(|t| *t == TransformType::Reset).count()
    }

    /// Runs the chain on `input` with one state per stateful op in `states` (in op order),
    /// calling `emit` with each point that comes out, in time order; no allocation.
    pub fn run(
        self,
        states: &mut [TransformState],
        input: Datapoint,
        resolution_nanos: i64,
        emit: &mut impl FnMut(Datapoint),
    ) {
        self.run_from(0, states, input, resolution_nanos, emit);
    }

    fn run_from(
        self,
        at: usize,
        states: &mut [TransformState],
        input: Datapoint,
        resolution_nanos: i64,
        emit: &mut impl FnMut(Datapoint),
    ) {
        let Some(op) = self.iter().nth(at) else {
            emit(input);
            return;
        };
        let mut stateless = TransformState::default();
        let (state, rest) = match states.split_first_mut() {
            Some((state, rest)) if op.is_stateful() => (state, rest),
            _ => (&mut stateless, states),
        };
        for point in state.apply(op, input, resolution_nanos).points() {
            self.run_from(at + 1, rest, point, resolution_nanos, emit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    fn dp(t: i64, v: f64) -> Datapoint {
        Datapoint { time_nanos: t * S, value: v }
    }

    fn run(op: TransformType, inputs: &[(i64, f64)]) -> Vec<(i64, f64)> {
        let mut state = TransformState::default();
        inputs
            .iter()
            .flat_map(|&(t, v)| state.apply(op, dp(t, v), 10 * S).points())
            .map(|p| (p.time_nanos / S, p.value))
            .collect()
    }

    #[test]
    fn m3_names_round_trip() {
        for n in 1..=5 {
            assert_eq!(TransformType::from_m3(n).map(|t| t as u64), Some(n));
        }
        assert_eq!(TransformType::from_m3(0), None);
        assert_eq!(TransformType::from_m3(6), None);
    }

    #[test]
    fn per_second_skips_the_first_value_and_a_reset() {
        let out = run(TransformType::PerSecond, &[(10, 100.0), (20, 150.0), (30, 20.0), (40, 120.0)]);
        assert_eq!(out, vec![(20, 5.0), (40, 10.0)]);
    }

    #[test]
    fn increase_skips_the_first_value_and_takes_a_reset_as_a_restart() {
        let out = run(TransformType::Increase, &[(10, 100.0), (20, 150.0), (30, 20.0), (40, 120.0)]);
        assert_eq!(out, vec![(20, 50.0), (30, 20.0), (40, 100.0)]);
    }

    #[test]
    fn a_gap_divides_by_the_real_interval() {
        let out = run(TransformType::PerSecond, &[(10, 0.0), (50, 80.0)]);
        assert_eq!(out, vec![(50, 2.0)]);
    }

    #[test]
    fn nan_and_time_going_back_emit_nothing() {
        let out = run(TransformType::Increase, &[(10, 1.0), (20, f64::NAN), (30, 4.0), (30, 9.0), (20, 9.0)]);
        assert_eq!(out, vec![(30, 3.0)]);
    }

    #[test]
    fn add_is_a_running_sum_with_nan_as_zero() {
        let out = run(TransformType::Add, &[(10, 1.0), (20, f64::NAN), (30, -3.0)]);
        assert_eq!(out, vec![(10, 1.0), (20, 1.0), (30, -2.0)]);
    }

    #[test]
    fn reset_adds_a_zero_half_a_resolution_later() {
        let out = run(TransformType::Reset, &[(10, 7.0)]);
        assert_eq!(out, vec![(10, 7.0), (15, 0.0)]);
    }

    #[test]
    fn absolute() {
        assert_eq!(run(TransformType::Absolute, &[(10, -2.5), (20, 3.0)]), vec![(10, 2.5), (20, 3.0)]);
    }

    #[test]
    fn a_chain_packs_its_ops_in_order() {
        use TransformType::*;
        let ops = [Increase, Add, Reset, Absolute, PerSecond, Increase, Add, Reset, Absolute];
        let chain = TransformChain::new(&ops).unwrap();
        assert_eq!(chain.iter().collect::<Vec<_>>(), ops);
        assert_eq!((chain.stateful_len(), chain.max_fanout()), (5, 4));
        assert!(TransformChain::new(&[Add; 10]).is_none());
        assert!(TransformChain::NONE.is_empty());
        let built = ops.iter().try_fold(TransformChain::NONE, |c, op| c.with(*op)).unwrap();
        assert_eq!(built, chain);
        assert_eq!(chain.with(Add), None);
    }

    #[test]
    fn a_chain_feeds_each_point_to_the_next_op() {
        use TransformType::*;
        let chain = TransformChain::new(&[Increase, Reset, Add]).unwrap();
        let mut states = vec![TransformState::default(); chain.stateful_len()];
        let mut out = Vec::new();
        for (t, v) in [(10, 5.0), (20, 8.0), (30, 9.0)] {
            chain.run(&mut states, dp(t, v), 10 * S, &mut |p| out.push((p.time_nanos / S, p.value)));
        }
        // Increase: -, 3, 1; Reset adds a 0 five seconds later; Add sums them all.
        assert_eq!(out, vec![(20, 3.0), (25, 3.0), (30, 4.0), (35, 4.0)]);
    }

    proptest! {
        /// Increase over a monotone counter sums back to its growth after the first value;
        /// PerSecond is that growth over the time between the first and last value.
        #[test]
        fn increase_and_per_second_telescope(steps in prop::collection::vec(0u32..1000, 2..40)) {
            let mut total = 0.0;
            let inputs: Vec<(i64, f64)> = steps.iter().enumerate().map(|(i, s)| {
                total += f64::from(*s);
                (10 * (i as i64 + 1), total)
            }).collect();
            let growth = inputs.last().unwrap().1 - inputs[0].1;
            let increases: f64 = run(TransformType::Increase, &inputs).iter().map(|p| p.1).sum();
            prop_assert_eq!(increases, growth);
            let rates: f64 = run(TransformType::PerSecond, &inputs).iter().map(|p| p.1 * 10.0).sum();
            prop_assert!((rates - growth).abs() <= 1e-6 * growth.max(1.0));
        }

        /// Increase never emits a negative value and emits one point per input but the first
        /// (for finite inputs in time order).
        #[test]
        fn increase_is_never_negative(values in prop::collection::vec(-1e6f64..1e6, 1..40)) {
            let inputs: Vec<(i64, f64)> = values.iter().enumerate().map(|(i, v)| (i as i64 + 1, v.abs())).collect();
            let out = run(TransformType::Increase, &inputs);
            prop_assert_eq!(out.len(), inputs.len() - 1);
            prop_assert!(out.iter().all(|p| p.1 >= 0.0));
        }
    }
}
