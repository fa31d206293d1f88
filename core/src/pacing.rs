//! Pacing between iterations (Locust's `wait_time`).
//!
//! One value, [`Pacing`], covers the four kinds users know from Locust:
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"constant": 1.5}` | wait 1.5 s after each iteration |
//! | `{"between": [0.5, 2]}` | wait a uniformly random 0.5–2 s after each iteration |
//! | `{"constant_pacing": 2}` | start an iteration every 2 s (wait what is left of the 2 s) |
//! | `{"constant_throughput": 4}` | at most 4 iterations per second per user (pacing of 0.25 s) |
//!
//! The long form `{"type": "between", "min": 0.5, "max": 2}` (and `"seconds"` /
//! `"per_second"` for the others) is accepted too. No `wait_time` means no wait, as in Locust
//! with no wait time set (the Python LoadDensity's fixed 0.1–0.2 s is not copied).

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::task::options::MAX_SECONDS;

/// How long a user waits between iterations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pacing {
    /// No wait (the default).
    #[default]
    None,
    /// A fixed wait after each iteration.
    Constant(Duration),
    /// A uniformly random wait in `[min, max]` after each iteration.
    Between(Duration, Duration),
    /// Iterations start this far apart (the wait is what is left of the period).
    ConstantPacing(Duration),
}

fn seconds(value: &Value, what: &str) -> Result<Duration, String> {
    let secs = value
        .as_f64()
        .ok_or_else(|| format!("{what} must be a number of seconds, got {value}"))?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("{what} must be >= 0 seconds, got {secs}"));
    }
    if secs > MAX_SECONDS {
        return Err(format!(
            "{what} is too large: {value} seconds (at most {MAX_SECONDS} seconds)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{what}: {secs} seconds: {e}"))
}

fn throughput(value: &Value) -> Result<Pacing, String> {
    let rate = value
        .as_f64()
        .ok_or_else(|| format!("constant_throughput must be a number per second, got {value}"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("constant_throughput must be > 0, got {rate}"));
    }
    let period = 1.0 / rate;
    if period > MAX_SECONDS {
        return Err(format!(
            "constant_throughput is too small: {value} per second (at least one iteration every {MAX_SECONDS} seconds)"
        ));
    }
    Duration::try_from_secs_f64(period)
        .map(Pacing::ConstantPacing)
        .map_err(|e| format!("constant_throughput {rate}: {e}"))
}

fn between(min: Duration, max: Duration) -> Result<Pacing, String> {
    if min > max {
        return Err(format!(
            "between needs min <= max, got {} > {}",
            min.as_secs_f64(),
            max.as_secs_f64()
        ));
    }
    Ok(Pacing::Between(min, max))
}

impl Pacing {
    /// Parses a `wait_time` value (see the module docs). `null` is no wait.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return match value {
                Value::Null => Ok(Pacing::None),
                Value::Number(_) => seconds(value, "wait_time").map(Pacing::Constant),
                other => Err(format!(
                    "wait_time must be an object like {{\"between\": [0.5, 2]}}, got {other}"
                )),
            };
        };
        if let Some(kind) = map.get("type") {
            let kind = kind
                .as_str()
                .ok_or_else(|| format!("wait_time.type must be a string, got {kind}"))?;
            let get = |key: &str| {
                map.get(key)
                    .ok_or_else(|| format!("wait_time of type {kind:?} needs \"{key}\""))
            };
            return match kind {
                "constant" => seconds(get("seconds")?, "wait_time.seconds").map(Pacing::Constant),
                "between" => between(
                    seconds(get("min")?, "wait_time.min")?,
                    seconds(get("max")?, "wait_time.max")?,
                ),
                "constant_pacing" => {
                    seconds(get("seconds")?, "wait_time.seconds").map(Pacing::ConstantPacing)
                }
                "constant_throughput" => throughput(get("per_second")?),
                other => Err(format!(
                    "unknown wait_time type {other:?} (expected constant, between, constant_pacing or constant_throughput)"
                )),
            };
        }
        let mut entries = map.iter();
        let (Some((kind, arg)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "wait_time must have exactly one kind, like {{\"constant\": 1}}, got {value}"
            ));
        };
        match kind.as_str() {
            "constant" => seconds(arg, "wait_time.constant").map(Pacing::Constant),
            "between" => match arg {
                Value::Array(pair) if pair.len() == 2 => between(
                    seconds(&pair[0], "wait_time.between[0]")?,
                    seconds(&pair[1], "wait_time.between[1]")?,
                ),
                other => Err(format!(
                    "wait_time.between must be [min, max] in seconds, got {other}"
                )),
            },
            "constant_pacing" => seconds(arg, "wait_time.constant_pacing").map(Pacing::ConstantPacing),
            "constant_throughput" => throughput(arg),
            other => Err(format!(
                "unknown wait_time kind {other:?} (expected constant, between, constant_pacing or constant_throughput)"
            )),
        }
    }

    /// The period of a paced schedule (`constant_pacing`, `constant_throughput`): iteration
    /// `k` of a user is due `k` periods after its first. `None` for the other kinds.
    pub fn period(&self) -> Option<Duration> {
        match *self {
            Pacing::ConstantPacing(period) if !period.is_zero() => Some(period),
            _ => None,
        }
    }

    /// How long to wait after an iteration, for a pacing that keeps no schedule (every kind
    /// but a `constant_pacing` with a period, see [`Pacing::period`]): no clock is read.
    pub fn wait_unscheduled(&self) -> Duration {
        match *self {
            Pacing::ConstantPacing(_) => Duration::ZERO,
            _ => self.wait_after(Instant::now()),
        }
    }

    /// How long to wait after an iteration that started at `iteration_start`.
    pub fn wait_after(&self, iteration_start: Instant) -> Duration {
        match *self {
            Pacing::None => Duration::ZERO,
            Pacing::Constant(d) => d,
            Pacing::Between(min, max) => {
                if min == max {
                    min
                } else {
                    let secs = rand::rng().random_range(min.as_secs_f64()..=max.as_secs_f64());
                    Duration::from_secs_f64(secs)
                }
            }
            Pacing::ConstantPacing(period) => period.saturating_sub(iteration_start.elapsed()),
        }
    }
}

/// The due times of one paced user: slot `k` is due `k` periods after the origin.
///
/// An iteration that starts late takes the latest slot already due; the slots it jumped over
/// are *missed* and counted rather than skipped silently, and its start delay (how late it
/// is against its slot) goes into its requests' corrected latency.
#[derive(Debug, Clone, Copy)]
pub struct PacedSchedule {
    origin: Instant,
    period_ns: u128,
    next_slot: u64,
}

impl PacedSchedule {
    /// A schedule whose slot 0 is due at `origin`. `period` must not be zero.
    pub fn new(origin: Instant, period: Duration) -> Self {
        Self {
            origin,
            period_ns: period.as_nanos().max(1),
            next_slot: 0,
        }
    }

    fn due(&self, slot: u64) -> Instant {
        let ns = self.period_ns.saturating_mul(u128::from(slot));
        let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder of a division by 10^9 always fits.
        let nanos = (ns % 1_000_000_000) as u32;
        self.origin + Duration::new(secs, nanos)
    }

    /// An iteration starts at `now`: returns its start delay and the slots it missed.
    pub fn begin(&mut self, now: Instant) -> (Duration, u64) {
        let late = now.saturating_duration_since(self.due(self.next_slot));
        let missed = u64::try_from(late.as_nanos() / self.period_ns).unwrap_or(u64::MAX);
        self.next_slot = self.next_slot.saturating_add(missed);
        let delay = now.saturating_duration_since(self.due(self.next_slot));
        self.next_slot = self.next_slot.saturating_add(1);
        (delay, missed)
    }

    /// When the next slot is due.
    pub fn next_due(&self) -> Instant {
        self.due(self.next_slot)
    }

    /// How long to wait from `now` until the next slot is due.
    pub fn wait(&self, now: Instant) -> Duration {
        self.due(self.next_slot).saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_short_and_long_forms_and_rejects_bad_ones() {
        assert_eq!(Pacing::from_json(&json!(null)), Ok(Pacing::None));
        assert_eq!(
            Pacing::from_json(&json!({"constant": 1})),
            Ok(Pacing::Constant(Duration::from_secs(1)))
        );
        assert_eq!(
            Pacing::from_json(&json!({"type": "between", "min": 0.5, "max": 1})),
            Ok(Pacing::Between(
                Duration::from_millis(500),
                Duration::from_secs(1)
            ))
        );
        assert_eq!(
            Pacing::from_json(&json!({"constant_throughput": 4})),
            Ok(Pacing::ConstantPacing(Duration::from_millis(250)))
        );
        assert!(Pacing::from_json(&json!({"between": [2, 1]})).is_err());
        assert!(Pacing::from_json(&json!({"sometimes": 1})).is_err());
        assert!(Pacing::from_json(&json!({"constant": -1})).is_err());
        assert!(Pacing::from_json(&json!({"constant_throughput": 0})).is_err());
        assert!(Pacing::from_json(&json!("fast")).is_err());
        // Numbers a Duration cannot hold are errors, never panics.
        assert_eq!(
            Pacing::from_json(&json!({"constant_throughput": 1e-300})),
            Err("constant_throughput is too small: 1e-300 per second (at least one iteration every 1000000000 seconds)".to_owned())
        );
        assert_eq!(
            Pacing::from_json(&json!({"constant": 1e300})),
            Err(
                "wait_time.constant is too large: 1e+300 seconds (at most 1000000000 seconds)"
                    .to_owned()
            )
        );
        assert!(Pacing::from_json(&json!({"between": [0, 1e300]})).is_err());
        assert!(Pacing::from_json(&json!(1e300)).is_err());
    }

    #[test]
    fn a_paced_schedule_counts_missed_slots_and_measures_the_delay() {
        let origin = Instant::now();
        let mut schedule = PacedSchedule::new(origin, Duration::from_millis(100));
        assert_eq!(schedule.begin(origin), (Duration::ZERO, 0));
        assert_eq!(
            schedule.wait(origin + Duration::from_millis(30)),
            Duration::from_millis(70)
        );
        // Slot 1 (100 ms) started 20 ms late.
        assert_eq!(
            schedule.begin(origin + Duration::from_millis(120)),
            (Duration::from_millis(20), 0)
        );
        // Slot 2 was due at 200 ms; at 450 ms slots 2 and 3 are missed, slot 4 is 50 ms late.
        assert_eq!(
            schedule.begin(origin + Duration::from_millis(450)),
            (Duration::from_millis(50), 2)
        );
        assert_eq!(
            schedule.wait(origin + Duration::from_millis(460)),
            Duration::from_millis(40)
        );
        assert_eq!(Pacing::ConstantPacing(Duration::ZERO).period(), None);
        assert_eq!(Pacing::Constant(Duration::from_secs(1)).period(), None);
    }

    #[test]
    fn waits_are_in_range() {
        let p = Pacing::Between(Duration::from_millis(10), Duration::from_millis(20));
        for _ in 0..100 {
            let w = p.wait_after(Instant::now());
            assert!(w >= Duration::from_millis(10) && w <= Duration::from_millis(20));
        }
        let pacing = Pacing::ConstantPacing(Duration::from_secs(1));
        let started = Instant::now() - Duration::from_millis(300);
        let w = pacing.wait_after(started);
        assert!(
            w <= Duration::from_millis(700) && w > Duration::from_millis(600),
            "{w:?}"
        );
    }
}
