//! Request statistics: exact, mergeable, serializable.
//!
//! [`RequestStats`] keeps one [`StatsEntry`] per `(request_type, name)` plus a total. Each entry
//! has exact counts, min/max/mean, byte totals, an HDR histogram of latencies in microseconds
//! (three significant digits, auto-resizing, so memory stays bounded whatever the run length),
//! and requests per second over a recent window. The total also keeps the per-second series for
//! the whole run. Failures are grouped by `(request_type, name, message)`.
//!
//! Two `RequestStats` merge exactly ([`RequestStats::merge`]): this is how distributed runs
//! combine workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer as HdrDeserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cardinality::{self, Limits};
use crate::event::{RequestEvent, RequestListener};
use crate::shard::{Numbers, ShardStats, Touch};

/// Seconds of per-second history kept per entry (the total keeps the whole run).
pub const ENTRY_RATE_WINDOW_SECS: u64 = 20;
/// The longest window of the current rates the tables show, in seconds (Locust's).
pub const CURRENT_RATE_WINDOW_SECS: u64 = 10;
/// The longest per-second history the total keeps (a day).
pub const TOTAL_RATE_HISTORY_SECS: u64 = 86_400;

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits, auto-resizing from 1 µs; cannot fail for these constant arguments.
    let mut histogram = Histogram::new(3).expect("3 significant digits is a valid HDR setting");
    histogram.auto(true);
    histogram
}

fn unix_secs_f64(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks of serialized histograms read from a peer, before the HDR decoder allocates
/// anything: the decoder sizes its buffers from the header's claims (a `payload_len` of
/// `0xFFFFFFFF` would reserve 4 GiB; wide bounds, many counters).
pub mod histogram_limits {
    use std::cell::Cell;

    /// The uncompressed V2 cookie, the only encoding written (and so accepted).
    const V2_COOKIE: u32 = 0x1c84_9313;
    /// Bytes of a V2 header.
    const V2_HEADER: usize = 40;
    /// Significant digits accepted: what statistics use.
    pub const MAX_DIGITS: u32 = 3;
    /// The highest trackable value accepted, in microseconds (about 285 years: above any
    /// latency a run can record).
    pub const MAX_HIGHEST: u64 = 1 << 53;

    thread_local! {
        static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// Runs `decode` with at most `bytes` of histogram counters allowed to be allocated by the
    /// histograms it deserializes on this thread (across all of them): a small message cannot
    /// claim thousands of wide histograms.
    pub fn with_budget<T>(bytes: u64, decode: impl FnOnce() -> T) -> T {
        let previous = BUDGET.with(|b| b.replace(Some(bytes)));
        let result = decode();
        BUDGET.with(|b| b.set(previous));
        result
    }

    /// The counters a histogram with these bounds allocates, in bytes (as `hdrhistogram`
    /// sizes them).
    fn counter_bytes(digits: u32, low: u64, high: u64) -> u64 {
        let sub_buckets = (2 * 10u64.pow(digits)).next_power_of_two();
        let unit_magnitude = 63 - low.max(1).leading_zeros();
        let mut smallest_untrackable = sub_buckets << unit_magnitude;
        let mut buckets = 1u64;
        while smallest_untrackable <= high {
            if smallest_untrackable > u64::MAX / 2 {
                buckets += 1;
                break;
            }
            smallest_untrackable <<= 1;
            buckets += 1;
        }
        (buckets + 1) * (sub_buckets / 2) * 8
    }

    /// Checks the header of a serialized histogram and charges its counters to the budget.
    pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
        let header = bytes
            .get(..V2_HEADER)
            .ok_or_else(|| format!("{} bytes, shorter than a header", bytes.len()))?;
        let u32_at = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&header[at..at + 4]);
            u32::from_be_bytes(word)
        };
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&header[at..at + 8]);
            u64::from_be_bytes(word)
        };
        if u32_at(0) != V2_COOKIE {
            return Err(format!(
                "cookie {:#x} is not an uncompressed V2 histogram",
                u32_at(0)
            ));
        }
        let payload = u64::from(u32_at(4));
        let carried = (bytes.len() - V2_HEADER) as u64;
        if payload > carried {
            return Err(format!(
                "the header claims {payload} payload bytes, the histogram carries {carried}"
            ));
        }
        let digits = u32_at(12);
        if digits > MAX_DIGITS {
            return Err(format!(
                "{digits} significant digits (at most {MAX_DIGITS} are accepted)"
            ));
        }
        let (low, high) = (u64_at(16), u64_at(24));
        if high > MAX_HIGHEST {
            return Err(format!(
                "highest trackable value {high} (at most {MAX_HIGHEST} is accepted)"
            ));
        }
        let cost = counter_bytes(digits, low, high);
        BUDGET.with(|budget| match budget.get() {
            Some(left) if cost > left => Err(format!(
                "the histograms of this message need more than the decode budget ({cost} bytes more, {left} left)"
            )),
            Some(left) => {
                budget.set(Some(left - cost));
                Ok(())
            }
            None => Ok(()),
        })
    }
}

mod histogram_serde {
    use super::*;
    use serde::de::Error as _;
    use serde::ser::Error as _;

    pub fn serialize<S: serde::Serializer>(
        histogram: &Histogram<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(|e| S::Error::custom(format!("histogram: {e:?}")))?;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| D::Error::custom(format!("histogram base64: {e}")))?;
        histogram_limits::check(&bytes).map_err(|e| D::Error::custom(format!("histogram: {e}")))?;
        let mut histogram: Histogram<u64> = HdrDeserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| D::Error::custom(format!("histogram: {e:?}")))?;
        histogram.auto(true);
        Ok(histogram)
    }
}

mod optional_histogram {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        histogram: &Option<Histogram<u64>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match histogram {
            Some(histogram) => histogram_serde::serialize(histogram, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Histogram<u64>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "histogram_serde")] Histogram<u64>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

/// Statistics for one `(request_type, name)`, or for the total.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsEntry {
    request_type: Arc<str>,
    name: Arc<str>,
    num_requests: u64,
    num_failures: u64,
    total_response_time_us: u64,
    min_response_time_us: Option<u64>,
    max_response_time_us: u64,
    total_content_length: u64,
    #[serde(with = "histogram_serde")]
    histogram: Histogram<u64>,
    /// Corrected latencies (response time + the iteration's start delay), in microseconds,
    /// of the requests whose iteration had a due time; `None` until the first such request.
    #[serde(
        default,
        with = "optional_histogram",
        skip_serializing_if = "Option::is_none"
    )]
    corrected: Option<Histogram<u64>>,
    /// The largest corrected latency, exact.
    #[serde(default)]
    max_corrected_us: u64,
    /// unix second -> (requests, failures)
    per_second: BTreeMap<u64, (u64, u64)>,
    first_request_unix: Option<u64>,
    last_request_unix: Option<u64>,
}

impl StatsEntry {
    fn new(request_type: Arc<str>, name: Arc<str>) -> Self {
        Self {
            request_type,
            name,
            num_requests: 0,
            num_failures: 0,
            total_response_time_us: 0,
            min_response_time_us: None,
            max_response_time_us: 0,
            total_content_length: 0,
            histogram: new_histogram(),
            corrected: None,
            max_corrected_us: 0,
            per_second: BTreeMap::new(),
            first_request_unix: None,
            last_request_unix: None,
        }
    }

    fn add(&mut self, event: &RequestEvent, window: u64) {
        self.add_sample(
            event.response_time_us(),
            !event.is_success(),
            event.response_length,
            event.start_delay,
            unix_secs(event.start_time + event.response_time),
            window,
        );
    }

    /// Adds one request: its latency in microseconds, whether it failed, its bytes, its
    /// iteration's start delay and the unix second it ended in.
    pub(crate) fn add_sample(
        &mut self,
        us: u64,
        failed: bool,
        length: u64,
        start_delay: Option<std::time::Duration>,
        second: u64,
        window: u64,
    ) {
        self.num_requests += 1;
        if failed {
            self.num_failures += 1;
        }
        self.total_response_time_us = self.total_response_time_us.saturating_add(us);
        self.min_response_time_us = Some(self.min_response_time_us.map_or(us, |m| m.min(us)));
        self.max_response_time_us = self.max_response_time_us.max(us);
        self.total_content_length = self.total_content_length.saturating_add(length);
        // The histogram auto-resizes; should that ever fail, clamp rather than lose the value.
        if self.histogram.record(us.max(1)).is_err() {
            self.histogram.saturating_record(us.max(1));
        }
        if let Some(delay) = start_delay {
            let delay_us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
            let corrected_us = us.saturating_add(delay_us).max(1);
            let histogram = self.corrected.get_or_insert_with(new_histogram);
            if histogram.record(corrected_us).is_err() {
                histogram.saturating_record(corrected_us);
            }
            self.max_corrected_us = self.max_corrected_us.max(corrected_us);
        }
        let slot = self.per_second.entry(second).or_insert((0, 0));
        slot.0 += 1;
        slot.1 += u64::from(failed);
        // The seconds kept change only when this second moves the window (a new last second)
        // or lies before it.
        if self
            .last_request_unix
            .is_none_or(|last| second > last || second.saturating_add(window) < last)
        {
            self.trim(window);
        }
        self.first_request_unix = Some(self.first_request_unix.map_or(second, |f| f.min(second)));
        self.last_request_unix = Some(self.last_request_unix.map_or(second, |l| l.max(second)));
    }

    /// Empties the entry and keeps its histograms' memory (a shard reuses its entries from
    /// one flush to the next).
    pub(crate) fn clear(&mut self) {
        self.num_requests = 0;
        self.num_failures = 0;
        self.total_response_time_us = 0;
        self.min_response_time_us = None;
        self.max_response_time_us = 0;
        self.total_content_length = 0;
        self.histogram.reset();
        if let Some(corrected) = &mut self.corrected {
            corrected.reset();
        }
        self.max_corrected_us = 0;
        self.per_second.clear();
        self.first_request_unix = None;
        self.last_request_unix = None;
    }

    /// A new empty entry (a shard's).
    pub(crate) fn empty(request_type: Arc<str>, name: Arc<str>) -> Self {
        Self::new(request_type, name)
    }

    /// Keeps the seconds from `last - window` on. Whether a second is kept depends only on
    /// the seconds seen, not on the order they came in, so statistics aggregated per worker
    /// thread and merged keep exactly the seconds one aggregation would.
    fn trim(&mut self, window: u64) {
        let (Some((&first, _)), Some((&last, _))) = (
            self.per_second.first_key_value(),
            self.per_second.last_key_value(),
        ) else {
            return;
        };
        let keep_from = last.saturating_sub(window);
        if first < keep_from {
            self.per_second = self.per_second.split_off(&keep_from);
        }
    }

    pub(crate) fn merge_from(&mut self, other: &StatsEntry, window: u64) {
        self.merge(other, window);
    }

    fn merge(&mut self, other: &StatsEntry, window: u64) {
        self.num_requests += other.num_requests;
        self.num_failures += other.num_failures;
        self.total_response_time_us = self
            .total_response_time_us
            .saturating_add(other.total_response_time_us);
        self.min_response_time_us = match (self.min_response_time_us, other.min_response_time_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_response_time_us = self.max_response_time_us.max(other.max_response_time_us);
        self.total_content_length = self
            .total_content_length
            .saturating_add(other.total_content_length);
        // Both histograms auto-resize, so adding cannot run out of range.
        if let Err(error) = self.histogram.add(&other.histogram) {
            tracing::warn!(?error, "could not merge a latency histogram");
        }
        // A shard's reused entry can hold an emptied histogram: it carries nothing.
        if let Some(theirs) = other.corrected.as_ref().filter(|h| !h.is_empty()) {
            let mine = self.corrected.get_or_insert_with(new_histogram);
            if let Err(error) = mine.add(theirs) {
                tracing::warn!(?error, "could not merge a corrected latency histogram");
            }
            self.max_corrected_us = self.max_corrected_us.max(other.max_corrected_us);
        }
        for (second, (requests, failures)) in &other.per_second {
            let slot = self.per_second.entry(*second).or_insert((0, 0));
            slot.0 += requests;
            slot.1 += failures;
        }
        self.first_request_unix = match (self.first_request_unix, other.first_request_unix) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_request_unix = match (self.last_request_unix, other.last_request_unix) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.trim(window);
    }

    pub(crate) fn request_type_arc(&self) -> &Arc<str> {
        &self.request_type
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// Request type (`GET`, `WS`, ...); `"Aggregated"` style totals have an empty type.
    pub fn request_type(&self) -> &str {
        &self.request_type
    }
    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Requests counted, successes and failures.
    pub fn num_requests(&self) -> u64 {
        self.num_requests
    }
    /// Failures counted.
    pub fn num_failures(&self) -> u64 {
        self.num_failures
    }
    /// Successes counted.
    pub fn num_successes(&self) -> u64 {
        self.num_requests - self.num_failures
    }
    /// Failures / requests (0 when there were none).
    pub fn failure_ratio(&self) -> f64 {
        if self.num_requests == 0 {
            0.0
        } else {
            self.num_failures as f64 / self.num_requests as f64
        }
    }
    /// Sum of all latencies in microseconds.
    pub fn total_response_time_us(&self) -> u64 {
        self.total_response_time_us
    }
    /// Smallest latency in microseconds (0 when empty).
    pub fn min_response_time_us(&self) -> u64 {
        self.min_response_time_us.unwrap_or(0)
    }
    /// Largest latency in microseconds.
    pub fn max_response_time_us(&self) -> u64 {
        self.max_response_time_us
    }
    /// Mean latency in milliseconds (0 when empty).
    pub fn mean_response_time_ms(&self) -> f64 {
        if self.num_requests == 0 {
            0.0
        } else {
            self.total_response_time_us as f64 / self.num_requests as f64 / 1000.0
        }
    }
    /// Total bytes.
    pub fn total_content_length(&self) -> u64 {
        self.total_content_length
    }
    /// Mean bytes per request.
    pub fn avg_content_length(&self) -> f64 {
        if self.num_requests == 0 {
            0.0
        } else {
            self.total_content_length as f64 / self.num_requests as f64
        }
    }
    /// The latency histogram, in microseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
    /// The latency at `percentile` (0-100), in milliseconds, from the HDR histogram, clamped
    /// to the exact smallest and largest latency (a histogram bucket's upper edge can lie a
    /// little above the largest value recorded). 0 when empty.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.num_requests == 0 {
            return 0.0;
        }
        let quantile = (percentile / 100.0).clamp(0.0, 1.0);
        // min/max rather than clamp: a merged worker report could carry min > max, and clamp
        // would panic on it.
        let us = self
            .histogram
            .value_at_quantile(quantile)
            .min(self.max_response_time_us)
            .max(self.min_response_time_us());
        us as f64 / 1000.0
    }
    /// The corrected latency histogram (response time + the iteration's start delay, in
    /// microseconds), when some request of this entry belonged to an iteration with a due
    /// time.
    pub fn corrected_histogram(&self) -> Option<&Histogram<u64>> {
        self.corrected.as_ref()
    }
    /// The corrected latency at `percentile` (0-100), in milliseconds, clamped to the exact
    /// largest corrected latency; `None` when no request had a due time.
    pub fn corrected_percentile_ms(&self, percentile: f64) -> Option<f64> {
        let histogram = self.corrected.as_ref().filter(|h| !h.is_empty())?;
        let quantile = (percentile / 100.0).clamp(0.0, 1.0);
        let us = histogram
            .value_at_quantile(quantile)
            .min(self.max_corrected_us);
        Some(us as f64 / 1000.0)
    }
    /// The largest corrected latency in microseconds (0 when there is none).
    pub fn max_corrected_us(&self) -> u64 {
        self.max_corrected_us
    }
    /// Requests per second over the entry's whole life (first to last request second).
    pub fn total_rps(&self) -> f64 {
        match (self.first_request_unix, self.last_request_unix) {
            (Some(first), Some(last)) => {
                self.num_requests as f64 / ((last - first) as f64).max(1.0)
            }
            _ => 0.0,
        }
    }
    /// Requests and failures per second over the last complete `secs` seconds before `now`.
    pub fn current_rates(&self, now: SystemTime, secs: u64) -> (f64, f64) {
        let end = unix_secs(now);
        let start = end.saturating_sub(secs);
        let (requests, failures) = self
            .per_second
            .range(start..end)
            .fold((0, 0), |(r, f), (_, (rr, ff))| (r + rr, f + ff));
        let secs = secs.max(1) as f64;
        (requests as f64 / secs, failures as f64 / secs)
    }
    /// Requests and failures per second over the last seconds actually elapsed, at most
    /// `max_secs`: the complete seconds before `now`, counted from `since` (when the run or
    /// its statistics started) rather than from a fixed window, so a run two seconds old is not
    /// divided by ten. Without `since`, the entry's first second is the start. Less than one
    /// complete second in, the rate is over the fraction of a second elapsed.
    pub fn recent_rates(
        &self,
        now: SystemTime,
        since: Option<SystemTime>,
        max_secs: u64,
    ) -> (f64, f64) {
        let now_f = unix_secs_f64(now);
        let since_f = match since {
            Some(since) => unix_secs_f64(since),
            None => match self.first_request_unix {
                Some(first) => first as f64,
                None => return (0.0, 0.0),
            },
        };
        let end = unix_secs(now);
        let window_start = end.saturating_sub(max_secs.max(1));
        let (start, span) = if (window_start as f64) >= since_f {
            (window_start, (end - window_start) as f64)
        } else if (end as f64) > since_f {
            // The window reaches back before the start: count from the start's second (nothing
            // was recorded in it before the start) over the time actually elapsed.
            (since_f.floor() as u64, end as f64 - since_f)
        } else {
            // Not one complete second yet: everything so far over the time elapsed.
            let span = now_f - since_f;
            if span <= 0.0 {
                return (0.0, 0.0);
            }
            let (requests, failures) = self.count_between(since_f.floor() as u64, end + 1);
            return (requests as f64 / span, failures as f64 / span);
        };
        let (requests, failures) = self.count_between(start, end);
        if span <= 0.0 {
            return (0.0, 0.0);
        }
        (requests as f64 / span, failures as f64 / span)
    }

    fn count_between(&self, start: u64, end: u64) -> (u64, u64) {
        if start >= end {
            return (0, 0);
        }
        self.per_second
            .range(start..end)
            .fold((0, 0), |(r, f), (_, (rr, ff))| (r + rr, f + ff))
    }

    /// Requests and failures per second averaged over `secs` seconds (the whole run, as
    /// Locust's final table shows them); 0 for a run of no time.
    pub fn average_rates(&self, secs: f64) -> (f64, f64) {
        if secs > 0.0 && secs.is_finite() {
            (
                self.num_requests as f64 / secs,
                self.num_failures as f64 / secs,
            )
        } else {
            (0.0, 0.0)
        }
    }

    /// The per-second series kept: (unix second, requests, failures).
    pub fn per_second(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.per_second.iter().map(|(s, (r, f))| (*s, *r, *f))
    }
}

/// Failures grouped by message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorGroup {
    /// Request type.
    pub request_type: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// The failure message.
    pub message: Arc<str>,
    /// How many times it happened.
    pub occurrences: u64,
}

type Key = (Arc<str>, Arc<str>);
/// (request type, name, message) -> occurrences.
type ErrorCounts = HashMap<(Arc<str>, Arc<str>, Arc<str>), u64>;

/// All statistics of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestStats {
    #[serde(with = "entries_serde")]
    entries: HashMap<Key, StatsEntry>,
    total: StatsEntry,
    #[serde(with = "errors_serde")]
    errors: ErrorCounts,
    /// Iterations (passes over a group's scenario) that ran.
    #[serde(default)]
    iterations: u64,
    /// Iterations a schedule wanted that never started (see the load models).
    #[serde(default)]
    dropped_iterations: u64,
    /// How late schedules' timers fired against the iterations' due times, in microseconds
    /// (the generator's own start lag); `None` until the first.
    #[serde(
        default,
        with = "optional_histogram",
        skip_serializing_if = "Option::is_none"
    )]
    start_lag: Option<Histogram<u64>>,
    /// Caps on entries and error groups; not sent (a receiver applies its own).
    #[serde(skip)]
    limits: Limits,
    /// When these statistics started counting (the run's start, or the last reset), unix
    /// seconds; `None` until a runner marks it.
    #[serde(default)]
    since_unix: Option<f64>,
}

mod entries_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        entries: &HashMap<Key, StatsEntry>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(entries.values())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<Key, StatsEntry>, D::Error> {
        let list = Vec::<StatsEntry>::deserialize(deserializer)?;
        Ok(list
            .into_iter()
            .map(|e| ((e.request_type.clone(), e.name.clone()), e))
            .collect())
    }
}

mod errors_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        errors: &ErrorCounts,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(errors.iter().map(|((t, n, m), c)| ErrorGroup {
            request_type: t.clone(),
            name: n.clone(),
            message: m.clone(),
            occurrences: *c,
        }))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ErrorCounts, D::Error> {
        let list = Vec::<ErrorGroup>::deserialize(deserializer)?;
        Ok(list
            .into_iter()
            .map(|g| ((g.request_type, g.name, g.message), g.occurrences))
            .collect())
    }
}

impl Default for RequestStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self {
            entries: HashMap::new(),
            total: StatsEntry::new(Arc::from(""), Arc::from("Aggregated")),
            errors: HashMap::new(),
            iterations: 0,
            dropped_iterations: 0,
            start_lag: None,
            limits: Limits::default(),
            since_unix: None,
        }
    }

    /// Marks when these statistics start counting (a run's start), unless already marked.
    pub fn mark_start(&mut self, at: SystemTime) {
        if self.since_unix.is_none() {
            self.since_unix = Some(unix_secs_f64(at));
        }
    }

    /// When these statistics started counting: the run's start, or the last
    /// [`reset`](Self::reset). `None` when no runner marked it.
    pub fn since(&self) -> Option<SystemTime> {
        // A peer's claim could be any number: one a Duration cannot hold means "unknown".
        let since = std::time::Duration::try_from_secs_f64(self.since_unix?).ok()?;
        UNIX_EPOCH.checked_add(since)
    }

    /// Seconds these statistics cover at `now` (from [`since`](Self::since)), when known.
    pub fn elapsed(&self, now: SystemTime) -> Option<f64> {
        self.since()
            .map(|since| now.duration_since(since).map_or(0.0, |d| d.as_secs_f64()))
    }

    /// The current rates of `entry` (one of these statistics' entries, or the total): over
    /// the last seconds elapsed since these statistics started, at most ten
    /// ([`StatsEntry::recent_rates`]).
    pub fn current_rates_of(&self, entry: &StatsEntry, now: SystemTime) -> (f64, f64) {
        entry.recent_rates(now, self.since(), CURRENT_RATE_WINDOW_SECS)
    }

    /// The average rates of `entry` over its whole life, as Locust's `total_rps`: from when
    /// these statistics started to the entry's last request (or `now`, whichever is first).
    /// Without a start, over the entry's first to last request second.
    pub fn total_rates_of(&self, entry: &StatsEntry, now: SystemTime) -> (f64, f64) {
        match (self.since(), entry.last_request_unix) {
            (Some(since), Some(last)) => {
                let end = unix_secs_f64(now).min(last as f64 + 1.0);
                entry.average_rates((end - unix_secs_f64(since)).max(1e-3))
            }
            (Some(_), None) => (0.0, 0.0),
            (None, _) => {
                let rps = entry.total_rps();
                (rps, rps * entry.failure_ratio())
            }
        }
    }

    /// Empty statistics with these caps on entries and error groups (see [`crate::cardinality`];
    /// [`RequestStats::new`] uses the defaults).
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::new()
        }
    }

    /// Adds start lags (microseconds) of a schedule's timers.
    pub fn add_start_lags(&mut self, lags_us: &[u64]) {
        if lags_us.is_empty() {
            return;
        }
        let histogram = self.start_lag.get_or_insert_with(new_histogram);
        for &lag in lags_us {
            if histogram.record(lag).is_err() {
                histogram.saturating_record(lag);
            }
        }
    }

    /// The start lag at `percentile` (0-100) in milliseconds; `None` when nothing ran on a
    /// schedule's timer.
    pub fn start_lag_percentile_ms(&self, percentile: f64) -> Option<f64> {
        let histogram = self.start_lag.as_ref().filter(|h| !h.is_empty())?;
        let quantile = (percentile / 100.0).clamp(0.0, 1.0);
        Some(histogram.value_at_quantile(quantile) as f64 / 1000.0)
    }

    /// Counts `completed` iterations that ran and `dropped` ones that never started.
    pub fn add_iterations(&mut self, completed: u64, dropped: u64) {
        self.iterations = self.iterations.saturating_add(completed);
        self.dropped_iterations = self.dropped_iterations.saturating_add(dropped);
    }

    /// Iterations (passes over a group's scenario) that ran.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// Iterations a schedule wanted that never started.
    pub fn dropped_iterations(&self) -> u64 {
        self.dropped_iterations
    }

    /// Whether some request belonged to an iteration with a due time (so corrected
    /// latencies exist).
    pub fn has_schedule(&self) -> bool {
        self.total.corrected.is_some()
    }

    /// Adds one event.
    pub fn add(&mut self, event: &RequestEvent) {
        let key = (event.request_type.clone(), event.name.clone());
        match self.entries.get_mut(&key) {
            Some(entry) => entry.add(event, ENTRY_RATE_WINDOW_SECS),
            None => {
                let key = if self.limits.name_overflows(
                    self.entries.len(),
                    &event.request_type,
                    &event.name,
                ) {
                    cardinality::other_entry()
                } else {
                    key
                };
                self.entries
                    .entry(key)
                    .or_insert_with_key(|(t, n)| StatsEntry::new(t.clone(), n.clone()))
                    .add(event, ENTRY_RATE_WINDOW_SECS);
            }
        }
        self.total.add(event, TOTAL_RATE_HISTORY_SECS);
        if let Some(message) = &event.error {
            let key = (
                event.request_type.clone(),
                event.name.clone(),
                message.clone(),
            );
            self.count_error(key, 1);
        }
    }

    /// Adds `count` failures to the group `key`, or to the overflow group past the cap.
    fn count_error(&mut self, key: (Arc<str>, Arc<str>, Arc<str>), count: u64) {
        if let Some(occurrences) = self.errors.get_mut(&key) {
            *occurrences += count;
            return;
        }
        let key = if self
            .limits
            .error_overflows(self.errors.len(), &key.1, &key.2)
        {
            cardinality::other_error()
        } else {
            key
        };
        *self.errors.entry(key).or_insert(0) += count;
    }

    /// Adds every event of a batch.
    pub fn add_all(&mut self, events: &[RequestEvent]) {
        for event in events {
            self.add(event);
        }
    }

    /// Merges one entry under its key, or under the overflow entry past the cap on names.
    fn merge_entry(&mut self, entry: &StatsEntry) {
        let key = (entry.request_type.clone(), entry.name.clone());
        if let Some(mine) = self.entries.get_mut(&key) {
            mine.merge(entry, ENTRY_RATE_WINDOW_SECS);
        } else if self
            .limits
            .name_overflows(self.entries.len(), &key.0, &key.1)
        {
            let (t, n) = cardinality::other_entry();
            self.entries
                .entry((t.clone(), n.clone()))
                .or_insert_with(|| StatsEntry::new(t, n))
                .merge(entry, ENTRY_RATE_WINDOW_SECS);
        } else {
            let mut copy = StatsEntry::new(key.0.clone(), key.1.clone());
            copy.merge(entry, ENTRY_RATE_WINDOW_SECS);
            self.entries.insert(key, copy);
        }
    }

    /// Adds what one worker thread aggregated since the last flush, exactly as adding its
    /// requests one by one in the order they were made.
    pub(crate) fn absorb_shard(&mut self, shard: &ShardStats) {
        if shard.requests() == 0 {
            return;
        }
        for touch in shard.touched() {
            match *touch {
                Touch::Entry(id) => self.merge_entry(shard.entry(id)),
                Touch::Spilled(index) => {
                    let (request_type, name, numbers) = shard.spilled(index);
                    self.add_numbers(request_type, name, numbers);
                }
            }
        }
        self.total.merge(shard.total(), TOTAL_RATE_HISTORY_SECS);
        for (key, count) in shard.errors() {
            self.count_error(key.clone(), *count);
        }
    }

    /// Adds one request's numbers to its entry (not to the total).
    fn add_numbers(&mut self, request_type: &Arc<str>, name: &Arc<str>, numbers: &Numbers) {
        let key = (request_type.clone(), name.clone());
        match self.entries.get_mut(&key) {
            Some(entry) => numbers.add_to(entry, ENTRY_RATE_WINDOW_SECS),
            None => {
                let key = if self
                    .limits
                    .name_overflows(self.entries.len(), request_type, name)
                {
                    cardinality::other_entry()
                } else {
                    key
                };
                let entry = self
                    .entries
                    .entry(key)
                    .or_insert_with_key(|(t, n)| StatsEntry::new(t.clone(), n.clone()));
                numbers.add_to(entry, ENTRY_RATE_WINDOW_SECS);
            }
        }
    }

    /// Adds another run's (or worker's) statistics to these, exactly.
    pub fn merge(&mut self, other: &RequestStats) {
        for entry in other.entries.values() {
            self.merge_entry(entry);
        }
        self.total.merge(&other.total, TOTAL_RATE_HISTORY_SECS);
        for (key, count) in &other.errors {
            self.count_error(key.clone(), *count);
        }
        self.add_iterations(other.iterations, other.dropped_iterations);
        if let Some(theirs) = &other.start_lag {
            let mine = self.start_lag.get_or_insert_with(new_histogram);
            if let Err(error) = mine.add(theirs) {
                tracing::warn!(?error, "could not merge a start lag histogram");
            }
        }
        if self.since_unix.is_none() {
            self.since_unix = other.since_unix;
        }
    }

    /// The entries, sorted by (name, request type) as Locust prints them.
    pub fn entries(&self) -> Vec<&StatsEntry> {
        let mut entries: Vec<&StatsEntry> = self.entries.values().collect();
        entries.sort_by(|a, b| (&a.name, &a.request_type).cmp(&(&b.name, &b.request_type)));
        entries
    }

    /// One entry.
    pub fn entry(&self, request_type: &str, name: &str) -> Option<&StatsEntry> {
        self.entries
            .iter()
            .find(|((t, n), _)| &**t == request_type && &**n == name)
            .map(|(_, e)| e)
    }

    /// The aggregated total.
    pub fn total(&self) -> &StatsEntry {
        &self.total
    }

    /// Failures grouped by message, most frequent first.
    pub fn errors(&self) -> Vec<ErrorGroup> {
        let mut groups: Vec<ErrorGroup> = self
            .errors
            .iter()
            .map(|((t, n, m), c)| ErrorGroup {
                request_type: t.clone(),
                name: n.clone(),
                message: m.clone(),
                occurrences: *c,
            })
            .collect();
        groups.sort_by(|a, b| {
            b.occurrences
                .cmp(&a.occurrences)
                .then_with(|| a.name.cmp(&b.name))
        });
        groups
    }

    /// Clears everything; the statistics count again from now ([`since`](Self::since)).
    pub fn reset(&mut self) {
        let limits = Limits::new(self.limits.max_names(), self.limits.max_error_groups());
        *self = Self::with_limits(limits);
        self.since_unix = Some(unix_secs_f64(SystemTime::now()));
    }
}

/// A [`RequestStats`] shared between the collector and readers.
#[derive(Debug, Clone, Default)]
pub struct SharedStats(Arc<parking_lot::Mutex<RequestStats>>);

impl SharedStats {
    /// Empty shared statistics.
    pub fn new() -> Self {
        Self::default()
    }
    /// A copy of the current statistics.
    pub fn snapshot(&self) -> RequestStats {
        self.0.lock().clone()
    }
    /// Runs `f` with the statistics locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut RequestStats) -> R) -> R {
        f(&mut self.0.lock())
    }
}

impl RequestListener for SharedStats {
    fn on_requests(&self, events: &[RequestEvent]) {
        self.0.lock().add_all(events);
    }

    fn on_iterations(&self, completed: u64, dropped: u64) {
        self.0.lock().add_iterations(completed, dropped);
    }

    fn on_start_lags(&self, lags_us: &[u64]) {
        self.0.lock().add_start_lags(lags_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(name: &str, ms: u64, error: Option<&str>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from(name),
            url: Arc::from("http://h/"),
            status: Some(200),
            response_time: Duration::from_millis(ms),
            response_length: 100,
            error: error.map(Arc::from),
            start_time: SystemTime::now(),
            start_delay: None,
        }
    }

    #[test]
    fn corrected_latency_is_kept_apart_and_merges_exactly() {
        let mut whole = RequestStats::new();
        let mut left = RequestStats::new();
        let mut right = RequestStats::new();
        whole.add(&event("/a", 5, None));
        assert!(!whole.has_schedule());
        assert_eq!(whole.total().corrected_percentile_ms(50.0), None);
        for i in 0..200u64 {
            let e = RequestEvent {
                start_delay: Some(Duration::from_millis(if i % 10 == 0 { 1000 } else { 0 })),
                ..event("/a", 5, None)
            };
            whole.add(&e);
            if i % 2 == 0 {
                left.add(&e)
            } else {
                right.add(&e)
            }
        }
        left.add(&event("/a", 5, None));
        left.add_iterations(7, 2);
        right.add_iterations(3, 1);
        assert_eq!(left.start_lag_percentile_ms(99.0), None);
        left.add_start_lags(&[100, 200]);
        right.add_start_lags(&[9_000]);
        let wire = serde_json::to_string(&right).expect("serialize");
        let right: RequestStats = serde_json::from_str(&wire).expect("deserialize");
        left.merge(&right);
        assert!(left.has_schedule());
        assert_eq!((left.iterations(), left.dropped_iterations()), (10, 3));
        let lag_max = left.start_lag_percentile_ms(100.0).expect("lags");
        assert!((8.9..9.1).contains(&lag_max), "{lag_max}");
        let a = left.entry("GET", "/a").expect("entry");
        // Service time stays 5 ms; one request in ten waited a second to start.
        assert_eq!(a.percentile_ms(95.0), 5.0);
        let near =
            |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < want * 0.002);
        assert!(
            near(a.corrected_percentile_ms(50.0), 5.0),
            "{:?}",
            a.corrected_percentile_ms(50.0)
        );
        assert!(
            near(a.corrected_percentile_ms(95.0), 1005.0),
            "{:?}",
            a.corrected_percentile_ms(95.0)
        );
        assert_eq!(a.max_corrected_us(), 1_005_000);
        assert_eq!(
            a.corrected_percentile_ms(99.0),
            whole
                .entry("GET", "/a")
                .expect("whole")
                .corrected_percentile_ms(99.0)
        );
        assert_eq!(a.corrected_histogram().map(|h| h.len()), Some(200));
    }

    #[test]
    fn counts_percentiles_and_errors() {
        let mut stats = RequestStats::new();
        for ms in 1..=100 {
            stats.add(&event("/a", ms, None));
        }
        stats.add(&event("/b", 5, Some("boom")));
        stats.add(&event("/b", 5, Some("boom")));
        let a = stats.entry("GET", "/a").expect("entry /a");
        assert_eq!(a.num_requests(), 100);
        assert_eq!(a.min_response_time_us(), 1000);
        assert_eq!(a.max_response_time_us(), 100_000);
        assert!(
            (a.percentile_ms(50.0) - 50.0).abs() < 0.1,
            "{}",
            a.percentile_ms(50.0)
        );
        assert!((a.percentile_ms(99.0) - 99.0).abs() < 0.1);
        assert!((a.mean_response_time_ms() - 50.5).abs() < 1e-9);
        assert_eq!(stats.total().num_requests(), 102);
        assert_eq!(stats.total().num_failures(), 2);
        assert_eq!(stats.errors()[0].occurrences, 2);
        assert_eq!(&*stats.errors()[0].message, "boom");
    }

    #[test]
    fn percentiles_never_leave_the_exact_minimum_and_maximum() {
        let mut stats = RequestStats::new();
        // At this magnitude an HDR bucket is 1024 us wide: its upper edge is 1,234,943 us.
        let slow = RequestEvent {
            response_time: Duration::from_micros(1_234_567),
            ..event("/slow", 0, None)
        };
        stats.add(&slow);
        stats.add(&slow);
        let entry = stats.entry("GET", "/slow").expect("entry /slow");
        assert!(entry.histogram().value_at_quantile(1.0) > 1_234_567);
        for percentile in [0.0, 50.0, 99.0, 100.0] {
            assert_eq!(entry.percentile_ms(percentile), 1234.567, "p{percentile}");
        }
    }

    #[test]
    fn merge_equals_one_big_run_and_survives_serde() {
        let mut whole = RequestStats::new();
        let mut left = RequestStats::new();
        let mut right = RequestStats::new();
        for i in 0..1000u64 {
            let e = event(if i % 3 == 0 { "/x" } else { "/y" }, 1 + i % 250, None);
            whole.add(&e);
            if i % 2 == 0 {
                left.add(&e)
            } else {
                right.add(&e)
            }
        }
        let wire = serde_json::to_string(&right).expect("serialize");
        let right: RequestStats = serde_json::from_str(&wire).expect("deserialize");
        left.merge(&right);
        for p in [50.0, 95.0, 99.0] {
            assert_eq!(
                left.total().percentile_ms(p),
                whole.total().percentile_ms(p)
            );
        }
        assert_eq!(left.total().num_requests(), 1000);
        assert_eq!(
            left.entry("GET", "/x").map(StatsEntry::num_requests),
            whole.entry("GET", "/x").map(StatsEntry::num_requests)
        );
    }

    fn at(second: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(second) + Duration::from_millis(millis)
    }

    fn steady(stats: &mut RequestStats, from: u64, to: u64, per_second: u64) {
        for second in from..to {
            for _ in 0..per_second {
                stats.add(&RequestEvent {
                    start_time: at(second, 100),
                    ..event("/a", 1, None)
                });
            }
        }
    }

    #[test]
    fn current_rates_divide_by_the_seconds_elapsed_not_by_ten() {
        // A run that started at 1000.5 s and made 20 requests a second, read at 1004.7 s:
        // 3.5 seconds elapsed up to the last complete second, 80 requests in them.
        let mut stats = RequestStats::new();
        stats.mark_start(at(1000, 500));
        steady(&mut stats, 1000, 1005, 20);
        let (rps, _) = stats.current_rates_of(stats.total(), at(1004, 700));
        assert!((rps - 80.0 / 3.5).abs() < 1e-9, "{rps}");
        // Twelve seconds in, the window is the last ten complete seconds.
        steady(&mut stats, 1005, 1013, 20);
        let (rps, _) = stats.current_rates_of(stats.total(), at(1012, 300));
        assert!((rps - 20.0).abs() < 1e-9, "{rps}");
        // Less than one second in: what there is over the fraction elapsed.
        let mut young = RequestStats::new();
        young.mark_start(at(2000, 0));
        steady(&mut young, 2000, 2001, 10);
        let (rps, _) = young.current_rates_of(young.total(), at(2000, 500));
        assert!((rps - 20.0).abs() < 1e-9, "{rps}");
    }

    #[test]
    fn a_reset_restarts_the_clock_and_the_average_is_over_the_whole_time() {
        let mut stats = RequestStats::new();
        assert_eq!(stats.since(), None);
        stats.add(&event("/a", 1, None));
        let before = SystemTime::now();
        stats.reset();
        assert_eq!(stats.total().num_requests(), 0);
        let since = stats.since().expect("a reset marks the start");
        assert!(since >= before - Duration::from_millis(1));
        let mut four = RequestStats::new();
        for _ in 0..79 {
            four.add(&event("/a", 1, None));
        }
        let (rps, fps) = four.total().average_rates(4.0);
        assert_eq!((rps, fps), (19.75, 0.0));
        assert_eq!(four.total().average_rates(0.0), (0.0, 0.0));
    }
}
