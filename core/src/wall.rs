//! Wall-clock times as integers: a request's start is kept in nanoseconds since the Unix epoch,
//! so that the statistics (the second it ended in), the records (its start in microseconds)
//! and the exporters (its end in nanoseconds) get what they need by integer arithmetic, not
//! one `SystemTime` conversion each.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration in nanoseconds, saturated to `u64`.
pub(crate) fn nanos(duration: Duration) -> u64 {
    duration
        .as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(duration.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch (0 before it, saturated past `u64`).
pub(crate) fn epoch_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(nanos).unwrap_or(0)
}

/// The time `ns` nanoseconds after the Unix epoch.
pub(crate) fn from_epoch_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_round_trip_and_saturate() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(epoch_ns(time), 1_700_000_000_123_456_789);
        assert_eq!(from_epoch_ns(epoch_ns(time)), time);
        assert_eq!(epoch_ns(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
