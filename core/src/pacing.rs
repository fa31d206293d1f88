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
