//! Arrival schedules: when iteration number `u` of an arrival-rate model is due.
//!
//! The rate over time is piecewise linear ([`RateCurve`]). The number of arrivals due by time
//! `t` is its integral `A(t)`, and arrival `u` is due at `A⁻¹(u)`: due times come from the
//! iteration index, so nothing is queued. Evenly spaced arrivals take `u = 0, 1, 2, ...`;
//! Poisson arrivals take `u` as a sum of exponential steps of mean 1 (a Poisson process in
//! `A`-space is one of the varying rate in time). A share `index` of `count` takes every
//! `count`-th arrival, starting at `index`, so the shares of several workers add up exactly
//! to the whole schedule.

use load_density_core::task::options::saturating_seconds;
use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Seconds from the start.
    start: f64,
    /// Seconds; infinite for a last segment without end.
    duration: f64,
    /// Rate (per second) at the start and at the end.
    from: f64,
    to: f64,
    /// Arrivals due before the segment starts.
    before: f64,
}

impl Segment {
    fn total(&self) -> f64 {
        if self.duration.is_infinite() {
            if self.from > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        } else {
            (self.from + self.to) / 2.0 * self.duration
        }
    }

    fn slope(&self) -> f64 {
        if self.duration.is_infinite() {
            0.0
        } else {
            (self.to - self.from) / self.duration
        }
    }

    /// Arrivals due `s` seconds into the segment.
    fn arrivals(&self, s: f64) -> f64 {
        self.from * s + self.slope() / 2.0 * s * s
    }

    /// Seconds into the segment at which `x` arrivals (from its start) are due.
    fn time_of(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let root = (self.from * self.from + 2.0 * self.slope() * x)
            .max(0.0)
            .sqrt();
        let denominator = self.from + root;
        if denominator <= 0.0 {
            0.0
        } else {
            2.0 * x / denominator
        }
    }
}

/// A rate (iterations per second) that is piecewise linear over time.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    segments: Vec<Segment>,
}

impl RateCurve {
    /// `rate` per second, for `duration` seconds (`None`: without end).
    pub fn constant(rate: f64, duration: Option<f64>) -> Self {
        Self {
            segments: vec![Segment {
                start: 0.0,
                duration: duration.unwrap_or(f64::INFINITY),
                from: rate,
                to: rate,
                before: 0.0,
            }],
        }
    }

    /// From `start_rate`, linearly to each stage's `(duration, target rate)` in turn.
    pub fn ramping(start_rate: f64, stages: &[(f64, f64)]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut start, mut before, mut from) = (0.0, 0.0, start_rate);
        for &(duration, to) in stages {
            let segment = Segment {
                start,
                duration,
                from,
                to,
                before,
            };
            before += segment.total();
            start += duration;
            from = to;
            segments.push(segment);
        }
        Self { segments }
    }

    /// When the schedule ends, from its start (`None`: it does not).
    pub fn end(&self) -> Option<Duration> {
        let last = self.segments.last()?;
        let end = last.start + last.duration;
        end.is_finite().then(|| saturating_seconds(end))
    }

    /// The number of arrivals over the whole schedule (`None`: without end).
    pub fn total(&self) -> Option<f64> {
        let last = self.segments.last()?;
        let total = last.before + last.total();
        total.is_finite().then_some(total)
    }

    /// The rate (per second) `t` seconds from the start; 0 past the end.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.start && t < s.start + s.duration)
            .map_or(0.0, |s| s.from + s.slope() * (t - s.start))
    }

    /// Arrivals due by `t` seconds from the start.
    pub fn arrivals_by(&self, t: f64) -> f64 {
        let mut due = 0.0;
        for segment in &self.segments {
            if t < segment.start {
                break;
            }
            due = segment.before + segment.arrivals((t - segment.start).min(segment.duration));
        }
        due
    }

    /// When arrival `u` (0-based, may be fractional) is due, in seconds from the start;
    /// `None` when the schedule ends before it.
    pub fn time_of(&self, u: f64) -> Option<f64> {
        let segment = self
            .segments
            .iter()
            .find(|s| u >= s.before && u < s.before + s.total())?;
        let t = segment.start + segment.time_of(u - segment.before);
        Some(t.min(segment.start + segment.duration))
    }
}

/// Walks the due times of one share of a schedule.
#[derive(Debug, Clone)]
pub struct ArrivalCursor {
    curve: RateCurve,
    count: f64,
    poisson: bool,
    next: f64,
}

impl ArrivalCursor {
    /// The share `index` of `count` (0 <= index < count) from `from_secs` into the schedule.
    pub fn new(curve: RateCurve, poisson: bool, index: u64, count: u64, from_secs: f64) -> Self {
        let count = count.max(1) as f64;
        let index = index as f64;
        let already = curve.arrivals_by(from_secs.max(0.0));
        let next = if poisson {
            already + count * exponential()
        } else {
            // The first u >= already with u = index (mod count).
            let k = ((already - index) / count).ceil().max(0.0);
            index + k * count
        };
        Self {
            curve,
            count,
            poisson,
            next,
        }
    }

    /// The next due time, in seconds from the start of the schedule; `None` once it ended.
    pub fn next_due(&mut self) -> Option<f64> {
        let due = self.curve.time_of(self.next)?;
        self.next += if self.poisson {
            self.count * exponential()
        } else {
            self.count
        };
        Some(due)
    }
}

/// An exponential variate of mean 1.
fn exponential() -> f64 {
    let u: f64 = rand::rng().random_range(0.0..1.0);
    -(1.0 - u).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut cursor: ArrivalCursor) -> Vec<f64> {
        std::iter::from_fn(|| cursor.next_due()).collect()
    }

    #[test]
    fn a_constant_rate_is_evenly_spaced_and_ends() {
        let curve = RateCurve::constant(4.0, Some(2.0));
        let due = all(ArrivalCursor::new(curve.clone(), false, 0, 1, 0.0));
        assert_eq!(due, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]);
        assert_eq!(curve.end(), Some(Duration::from_secs(2)));
        assert_eq!(curve.total(), Some(8.0));
    }

    #[test]
    fn shares_add_up_to_the_whole_schedule_exactly() {
        let curve = RateCurve::ramping(0.0, &[(3.0, 7.0), (2.0, 7.0), (1.0, 0.0)]);
        let whole = all(ArrivalCursor::new(curve.clone(), false, 0, 1, 0.0));
        let mut split: Vec<f64> = (0..3)
            .flat_map(|i| all(ArrivalCursor::new(curve.clone(), false, i, 3, 0.0)))
            .collect();
        split.sort_by(f64::total_cmp);
        assert_eq!(whole, split);
        // 0 -> 7/s over 3 s, 7/s for 2 s, 7 -> 0/s over 1 s: 10.5 + 14 + 3.5 = 28 arrivals.
        assert_eq!(whole.len(), 28);
        // Linear ramp: arrivals by t = 7/6 t^2 over the first stage.
        assert!((curve.arrivals_by(1.5) - 7.0 / 6.0 * 2.25).abs() < 1e-9);
        assert!(whole.windows(2).all(|w| w[0] <= w[1]));
        // Joining later: only what is due from then on.
        let late = all(ArrivalCursor::new(curve.clone(), false, 0, 1, 4.0));
        assert_eq!(late.len(), 28 - curve.arrivals_by(4.0).ceil() as usize);
        assert!(late.iter().all(|t| *t >= 4.0));
    }

    #[test]
    fn poisson_arrivals_keep_the_mean_rate() {
        let curve = RateCurve::constant(1000.0, Some(20.0));
        let count = all(ArrivalCursor::new(curve, true, 0, 1, 0.0)).len() as f64;
        // 20,000 expected, standard deviation about 141.
        assert!((count - 20_000.0).abs() < 1_000.0, "{count}");
    }
}
