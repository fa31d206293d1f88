//! [`ChartHistory`]: the chart points of a whole run, downsampled so that a day-long run stays a
//! few hundred points.
//!
//! The last [`RECENT_POINTS`] points keep one-second resolution. Older points move to a tier of
//! uniform resolution: a point there covers `resolution` seconds, and when that tier passes
//! [`OLD_POINTS_CAP`] points its resolution doubles and neighbours merge. Rates, latencies and
//! user counts merge as time-weighted means, so the area under a rate curve (the request count)
//! is kept exactly.
//!
//! The page keeps the same structure in JavaScript (`assets/chart.js`), fed the same points.
//! The HTML report keeps a [`ChartHistory`] of its own points ([`HistoryPoint`] is what a point
//! type needs), so a day-long run's report stays small too.

use std::collections::VecDeque;

use serde::ser::SerializeSeq;
use serde::Serialize;

/// Points kept at one-second resolution (the last five minutes).
pub const RECENT_POINTS: usize = 300;
/// The most points the older tier holds before its resolution doubles.
pub const OLD_POINTS_CAP: usize = 1200;

/// One chart point: the run over `width_s` seconds from `time_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    /// Unix second the point starts at.
    pub time_s: u64,
    /// Seconds it covers (1 for a fresh point).
    pub width_s: u64,
    /// Users running.
    pub users: f64,
    /// Requests per second.
    pub rps: f64,
    /// Failures per second.
    pub fps: f64,
    /// Median response time (ms) over the recent window.
    pub p50_ms: f64,
    /// 95th percentile response time (ms) over the recent window.
    pub p95_ms: f64,
    /// 95th percentile corrected latency (ms, from the iterations' due times) over the
    /// recent window; 0 when the run has no schedule.
    pub corrected_p95_ms: f64,
    /// Iterations per second an arrival-rate schedule asks for; 0 without one.
    pub target_rate: f64,
    /// Iterations per second that ran.
    pub iteration_rate: f64,
}

/// A point a [`ChartHistory`] can hold: it covers `width_s` seconds and merges with its
/// neighbour when the history downsamples.
pub trait HistoryPoint: Copy {
    /// Seconds the point covers.
    fn width_s(&self) -> u64;
    /// Unix second the point starts at.
    fn time_s(&self) -> u64;
    /// Merges the next point into this one (time-weighted means; widths add up).
    fn absorb(&mut self, other: &Self);
}

impl HistoryPoint for ChartPoint {
    fn width_s(&self) -> u64 {
        self.width_s
    }
    fn time_s(&self) -> u64 {
        self.time_s
    }
    fn absorb(&mut self, other: &ChartPoint) {
        let (a, b) = (self.width_s as f64, other.width_s as f64);
        let mean = |x: f64, y: f64| (x * a + y * b) / (a + b);
        self.users = mean(self.users, other.users);
        self.rps = mean(self.rps, other.rps);
        self.fps = mean(self.fps, other.fps);
        self.p50_ms = mean(self.p50_ms, other.p50_ms);
        self.p95_ms = mean(self.p95_ms, other.p95_ms);
        self.corrected_p95_ms = mean(self.corrected_p95_ms, other.corrected_p95_ms);
        self.target_rate = mean(self.target_rate, other.target_rate);
        self.iteration_rate = mean(self.iteration_rate, other.iteration_rate);
        self.width_s += other.width_s;
    }
}

impl Serialize for ChartPoint {
    /// A compact array: `[time_s, width_s, users, rps, fps, p50_ms, p95_ms,
    /// corrected_p95_ms, target_rate, iteration_rate]`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let mut seq = serializer.serialize_seq(Some(10))?;
        seq.serialize_element(&self.time_s)?;
        seq.serialize_element(&self.width_s)?;
        seq.serialize_element(&round(self.users))?;
        seq.serialize_element(&round(self.rps))?;
        seq.serialize_element(&round(self.fps))?;
        seq.serialize_element(&round(self.p50_ms))?;
        seq.serialize_element(&round(self.p95_ms))?;
        seq.serialize_element(&round(self.corrected_p95_ms))?;
        seq.serialize_element(&round(self.target_rate))?;
        seq.serialize_element(&round(self.iteration_rate))?;
        seq.end()
    }
}

/// The chart points of a run: the last minutes at one point a second, older points merged.
#[derive(Debug, Clone, Serialize)]
pub struct ChartHistory<P = ChartPoint> {
    /// Seconds each point of the older tier covers at most.
    resolution: u64,
    /// The older tier, oldest first.
    old: Vec<P>,
    /// The recent tier at one-second resolution, oldest first.
    recent: VecDeque<P>,
}

impl<P: HistoryPoint> Default for ChartHistory<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: HistoryPoint> ChartHistory<P> {
    /// An empty history.
    pub fn new() -> Self {
        Self {
            resolution: 1,
            old: Vec::new(),
            recent: VecDeque::new(),
        }
    }

    /// Appends the newest point.
    pub fn push(&mut self, point: P) {
        self.recent.push_back(point);
        while self.recent.len() > RECENT_POINTS {
            if let Some(oldest) = self.recent.pop_front() {
                self.push_old(oldest);
            }
        }
    }

    fn push_old(&mut self, point: P) {
        match self.old.last_mut() {
            Some(last) if last.width_s() + point.width_s() <= self.resolution => {
                last.absorb(&point)
            }
            _ => self.old.push(point),
        }
        if self.old.len() > OLD_POINTS_CAP {
            self.resolution *= 2;
            let mut merged: Vec<P> = Vec::with_capacity(self.old.len() / 2 + 1);
            for point in self.old.drain(..) {
                match merged.last_mut() {
                    Some(last) if last.width_s() + point.width_s() <= self.resolution => {
                        last.absorb(&point)
                    }
                    _ => merged.push(point),
                }
            }
            self.old = merged;
        }
    }

    /// Every point, oldest first.
    pub fn points(&self) -> impl Iterator<Item = &P> + '_ {
        self.old.iter().chain(self.recent.iter())
    }

    /// How many points there are.
    pub fn len(&self) -> usize {
        self.old.len() + self.recent.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seconds each point of the older tier covers at most.
    pub fn resolution_s(&self) -> u64 {
        self.resolution
    }

    /// The unix second of the newest point.
    pub fn last_time_s(&self) -> Option<u64> {
        self.recent.back().or(self.old.last()).map(|p| p.time_s())
    }
}
