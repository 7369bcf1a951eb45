//! Nanosecond time helpers shared by every shard core (pure functions, hot path).

/// Nanoseconds since the Unix epoch, as M3 stores every timestamp.
pub type UnixNanos = i64;

/// Start of the window of size `resolution` that contains `t` (floor, also for negative `t`).
#[inline]
pub fn truncate(t: UnixNanos, resolution: i64) -> UnixNanos {
    debug_assert!(resolution > 0);
    t - t.rem_euclid(resolution)
}

/// Wall-clock now in Unix nanoseconds.
pub fn now_nanos() -> UnixNanos {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn truncate_puts_t_inside_its_window(t in -1_000_000_000_000i64..4_000_000_000_000_000_000, r in 1i64..3_600_000_000_000) {
            let s = truncate(t, r);
            prop_assert!(s <= t && t < s + r);
            prop_assert_eq!(s.rem_euclid(r), 0);
        }
    }
}
