//! Spawning at the rate asked: how many ramp steps are due, how many one wake-up may make,
//! and what to say when the generator could not keep up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The most users one wake-up of the spawn loop starts (or stops) before it lets them run.
pub(crate) const MAX_BATCH: u64 = 1_000;

/// The ramp steps due `elapsed` after a ramp started at `rate` per second: step 0 at the start,
/// step `n` at `n / rate` seconds.
pub(crate) fn steps_due(elapsed: Duration, rate: f64) -> u64 {
    let due = (elapsed.as_secs_f64() * rate).floor();
    if due.is_finite() && due >= 0.0 {
        (due as u64).saturating_add(1)
    } else if due > 0.0 {
        // An unbounded rate (a model's end stops every user at once): everything is due.
        u64::MAX
    } else {
        1
    }
}

/// The rate a ramp of `done` steps over `elapsed` achieved, in steps per second; `None` for a
/// ramp of fewer than two steps, which has no rate. Below nine tenths of the `rate` asked, it
/// is said once per run (`warned`), in the log.
pub(crate) fn achieved_rate(
    elapsed: Duration,
    done: u64,
    rate: f64,
    warned: &AtomicBool,
) -> Option<f64> {
    if done < 2 {
        return None;
    }
    // The last of `done` steps was due (done - 1) / rate after the start.
    let expected = (done - 1) as f64 / rate;
    let secs = elapsed.as_secs_f64().max(expected).max(1e-6);
    let achieved = ((done - 1) as f64 / secs).min(rate);
    if achieved < rate * 0.9 && secs - expected > 0.25 && !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            asked = rate,
            achieved = (achieved * 10.0).round() / 10.0,
            users = done,
            "the users could not be started at the rate asked: this machine started them \
             more slowly (see achieved_spawn_rate in the summary)"
        );
    }
    Some(achieved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_due_at_the_rate_asked() {
        assert_eq!(steps_due(Duration::ZERO, 2000.0), 1);
        assert_eq!(steps_due(Duration::from_millis(1), 2000.0), 3);
        assert_eq!(steps_due(Duration::from_millis(999), 2000.0), 1999);
        assert_eq!(steps_due(Duration::from_secs(1), 2000.0), 2001);
        assert_eq!(steps_due(Duration::from_millis(500), 1.0), 1);
        assert_eq!(steps_due(Duration::from_millis(1), f64::MAX), u64::MAX);
    }

    #[test]
    fn a_slow_ramp_is_reported_once() {
        let warned = AtomicBool::new(false);
        let on_time = achieved_rate(Duration::from_millis(1000), 2001, 2000.0, &warned);
        assert_eq!(on_time, Some(2000.0));
        assert!(!warned.load(Ordering::Relaxed));
        let slow = achieved_rate(Duration::from_secs(4), 2001, 2000.0, &warned);
        assert_eq!(slow, Some(500.0));
        assert!(warned.load(Ordering::Relaxed));
        assert_eq!(
            achieved_rate(Duration::from_secs(1), 1, 10.0, &warned),
            None
        );
    }
}
