//! A wake-up grid shared by every core: the instants that are whole multiples of a period
//! since one process-wide origin.
//!
//! A connection that pauses, or holds its acks, until the next instant on the grid wakes up
//! together with every other connection of its core that does the same, and at the same
//! instants as the other cores: one park and unpark of the core serves all of them (and the
//! hand-offs they send each other arrive while the peer is awake anyway), rather than one
//! per connection, per pause and per ack timer. Read on any core; the origin is set once.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// How far `t` is past the last instant on the grid of `period` (not zero) at or before it.
fn past_grid(t: Instant, period: Duration) -> Duration {
    let origin = *ORIGIN.get_or_init(Instant::now);
    let period_ns = period.as_nanos();
    let ns = match t.checked_duration_since(origin) {
        Some(after) => after.as_nanos() % period_ns,
        // An instant taken before the origin was set.
        None => (period_ns - (origin - t).as_nanos() % period_ns) % period_ns,
    };
    Duration::from_nanos(ns as u64)
}

/// How long from `now` to the next instant on the grid of `period` (at most `period`; a full
/// period when `now` is on the grid). Zero for a zero period.
pub(crate) fn until_next(now: Instant, period: Duration) -> Duration {
    if period.is_zero() {
        return Duration::ZERO;
    }
    period - past_grid(now, period)
}

/// The last instant on the grid of `period` at or before `now + period`: after `now` and at
/// most `period` later. `now + period` for a zero period.
pub(crate) fn within(now: Instant, period: Duration) -> Instant {
    let end = now + period;
    if period.is_zero() {
        return end;
    }
    let before = past_grid(end, period);
    if before.is_zero() { end } else { end - before }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_of_one_period_meet_on_the_grid() {
        let period = Duration::from_millis(5);
        let a = Instant::now();
        let b = a + Duration::from_micros(1700);
        // Both wake at the same grid instant, unless `b` crossed one.
        let (wa, wb) = (a + until_next(a, period), b + until_next(b, period));
        assert!(wa == wb || wb == wa + period);
        assert!(until_next(a, period) <= period && !until_next(a, period).is_zero());
        let due = within(a, period);
        assert!(due > a && due <= a + period);
        assert_eq!(until_next(due, period), period, "`within` lands on the grid");
    }

    #[test]
    fn a_zero_period_has_no_grid() {
        let now = Instant::now();
        assert_eq!(until_next(now, Duration::ZERO), Duration::ZERO);
        assert_eq!(within(now, Duration::ZERO), now);
    }
}
