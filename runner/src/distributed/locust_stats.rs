//! Statistics in Locust's wire format (the `stats` message), both ways.
//!
//! A worker keeps a [`ReportBuilder`] on its run's event bus. Every report takes what
//! happened since the previous one (a delta) as:
//! - Locust's own format (`stats`, `stats_total`, `errors`): int-keyed maps, response times
//!   bucketed as Python's `round()` does (half to even), a `stats_total` consistent with the
//!   entries; a real Locust master merges these;
//! - [`LD_STATS_KEY`]: the same requests as core's exact [`RequestStats`] (HDR histograms),
//!   which a LoadDensity master merges instead, so its percentiles are exact;
//! - [`LD_RECORDS_KEY`]: the requests as compact records, for the master's record store
//!   (only to a LoadDensity master, and filtered by `distributed_records`).
//!
//! A LoadDensity master reading a report without [`LD_STATS_KEY`] (from a Locust worker)
//! rebuilds events from Locust's numbers with [`events_from_report`]: counts, failures, bytes
//! and seconds are exact, latencies are Locust's buckets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use load_density_core::stats::histogram_limits;
use load_density_core::{RequestEvent, RequestListener, RequestStats};
use parking_lot::Mutex;
use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::wire::{self, as_f64, as_u64, get, kind_of, WireError};

/// The extra `stats` key holding core's exact statistics (msgpack of [`RequestStats`], as bin).
pub const LD_STATS_KEY: &str = "ld_stats";
/// The extra `stats` key holding the worker's CPU use since its previous report, in percent
/// of its CPUs (the master's generator figures).
pub const LD_CPU_KEY: &str = "ld_cpu";
/// The extra `stats` key holding records (msgpack of `[WireRecord]`, as bin).
pub const LD_RECORDS_KEY: &str = "ld_records";
/// The most requests one Locust report may claim (a Locust worker reports every 3 s; this is
/// over 300,000 requests per second); more is treated as a malformed message. Each is rebuilt
/// into one event, so this bounds what a small message can make the master allocate.
pub const MAX_REQUESTS_PER_REPORT: u64 = 1_000_000;
/// Most events reserved at once while rebuilding a Locust report (the rest grow as built).
const RESERVE_EVENTS: u64 = 64 * 1024;
/// The HDR counters the histograms of one report may allocate (see
/// [`load_density_core::stats::histogram_limits`]): this many bytes, plus
/// [`HISTOGRAM_BYTES_PER_REPORT_BYTE`] per byte of the report's exact statistics. Honest
/// histograms carry their non-zero counters, so they stay well within it; a header claiming a
/// wide range with no counters (40 bytes for 360 KiB) does not.
pub const HISTOGRAM_BYTES_PER_REPORT: u64 = 32 * 1024 * 1024;
/// See [`HISTOGRAM_BYTES_PER_REPORT`].
pub const HISTOGRAM_BYTES_PER_REPORT_BYTE: u64 = 128;

/// Which request records a worker ships to its master (`distributed_records`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordShipping {
    /// Every request (the default): the master's record store holds the whole run.
    #[default]
    All,
    /// Failures only.
    Errors,
    /// None; statistics still travel.
    None,
}

impl RecordShipping {
    /// Parses `"all"`, `"errors"` or `"none"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "errors" => Some(Self::Errors),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    fn keeps(self, event: &RequestEvent) -> bool {
        match self {
            Self::All => true,
            Self::Errors => !event.is_success(),
            Self::None => false,
        }
    }
}

/// Locust's `bucket_response_time`: about two significant digits, rounding half to even.
///
/// ```
/// use load_density::distributed::locust_stats::bucket_response_time;
/// assert_eq!(bucket_response_time(2.5), 2);
/// assert_eq!(bucket_response_time(99.5), 100);
/// assert_eq!(bucket_response_time(145.0), 140);
/// assert_eq!(bucket_response_time(155.0), 160);
/// assert_eq!(bucket_response_time(1250.0), 1200);
/// assert_eq!(bucket_response_time(58760.0), 59000);
/// ```
pub fn bucket_response_time(ms: f64) -> i64 {
    let scale = if ms < 100.0 {
        1.0
    } else if ms < 1000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1000.0
    };
    ((ms / scale).round_ties_even() * scale) as i64
}

fn unix_f64(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One Locust `StatsEntry` delta.
#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    method: Arc<str>,
    num_requests: u64,
    num_failures: u64,
    total_response_time: f64,
    min_response_time: Option<f64>,
    max_response_time: f64,
    total_content_length: u64,
    response_times: BTreeMap<i64, u64>,
    num_reqs_per_sec: BTreeMap<i64, u64>,
    num_fail_per_sec: BTreeMap<i64, u64>,
    last_request_timestamp: Option<f64>,
    start_time: f64,
}

impl Entry {
    fn new(method: Arc<str>, name: Arc<str>, start_time: f64) -> Self {
        Self {
            name,
            method,
            num_requests: 0,
            num_failures: 0,
            total_response_time: 0.0,
            min_response_time: None,
            max_response_time: 0.0,
            total_content_length: 0,
            response_times: BTreeMap::new(),
            num_reqs_per_sec: BTreeMap::new(),
            num_fail_per_sec: BTreeMap::new(),
            last_request_timestamp: None,
            start_time,
        }
    }

    fn add(&mut self, event: &RequestEvent) {
        let ms = event.response_time.as_secs_f64() * 1000.0;
        let end = unix_f64(event.start_time + event.response_time);
        let second = end as i64;
        self.num_requests += 1;
        self.total_response_time += ms;
        self.min_response_time = Some(self.min_response_time.map_or(ms, |m| m.min(ms)));
        self.max_response_time = self.max_response_time.max(ms);
        self.total_content_length = self
            .total_content_length
            .saturating_add(event.response_length);
        *self
            .response_times
            .entry(bucket_response_time(ms))
            .or_insert(0) += 1;
        *self.num_reqs_per_sec.entry(second).or_insert(0) += 1;
        if !event.is_success() {
            self.num_failures += 1;
            *self.num_fail_per_sec.entry(second).or_insert(0) += 1;
        }
        self.last_request_timestamp = Some(self.last_request_timestamp.map_or(end, |l| l.max(end)));
    }

    fn to_value(&self) -> Value {
        let int_map = |m: &BTreeMap<i64, u64>| {
            Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::from(*k), Value::from(*v)))
                    .collect(),
            )
        };
        wire::map([
            ("name", Value::from(&*self.name)),
            ("method", Value::from(&*self.method)),
            (
                "last_request_timestamp",
                self.last_request_timestamp.map_or(Value::Nil, Value::from),
            ),
            ("start_time", Value::from(self.start_time)),
            ("num_requests", Value::from(self.num_requests)),
            ("num_none_requests", Value::from(0)),
            ("num_failures", Value::from(self.num_failures)),
            ("total_response_time", Value::from(self.total_response_time)),
            ("max_response_time", Value::from(self.max_response_time)),
            (
                "min_response_time",
                self.min_response_time.map_or(Value::Nil, Value::from),
            ),
            (
                "total_content_length",
                Value::from(self.total_content_length),
            ),
            ("response_times", int_map(&self.response_times)),
            ("num_reqs_per_sec", int_map(&self.num_reqs_per_sec)),
            ("num_fail_per_sec", int_map(&self.num_fail_per_sec)),
        ])
    }
}

/// One Locust `StatsError` delta.
#[derive(Debug, Clone)]
struct ErrorEntry {
    occurrences: u64,
    first_seen: f64,
    last_seen: f64,
}

/// Python's `repr()` of a str: single quotes unless the text has a `'` and no `"`.
fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One request as shipped to the master: (method, url, name, status, response time µs,
/// length, error, start µs since the epoch, the iteration's start delay µs when it had a due
/// time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRecord(
    pub Arc<str>,
    pub Arc<str>,
    pub Arc<str>,
    pub Option<u16>,
    pub u64,
    pub u64,
    pub Option<Arc<str>>,
    pub u64,
    #[serde(default)] pub Option<u64>,
);

impl WireRecord {
    /// The record of an event.
    pub fn from_event(event: &RequestEvent) -> Self {
        let start_us = event
            .start_time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self(
            event.request_type.clone(),
            event.url.clone(),
            event.name.clone(),
            event.status,
            event.response_time_us(),
            event.response_length,
            event.error.clone(),
            start_us,
            event
                .start_delay
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }

    /// The event again (exact to the microsecond).
    pub fn into_event(self) -> RequestEvent {
        RequestEvent {
            request_type: self.0,
            url: self.1,
            name: self.2,
            status: self.3,
            response_time: Duration::from_micros(self.4),
            response_length: self.5,
            error: self.6,
            start_time: UNIX_EPOCH + Duration::from_micros(self.7),
            start_delay: self.8.map(Duration::from_micros),
        }
    }
}

/// (method, name, error) -> its delta.
type ErrorDeltas = HashMap<(Arc<str>, Arc<str>, Arc<str>), ErrorEntry>;
/// (method, name) -> its error messages and their counts.
type ErrorsByEntry = HashMap<(String, String), Vec<(Arc<str>, u64)>>;

#[derive(Debug)]
struct Delta {
    entries: HashMap<(Arc<str>, Arc<str>), Entry>,
    total: Entry,
    errors: ErrorDeltas,
    exact: RequestStats,
    records: Vec<WireRecord>,
    start_time: f64,
}

impl Delta {
    fn new(start_time: f64) -> Self {
        Self {
            entries: HashMap::new(),
            total: Entry::new(Arc::from(""), Arc::from("Aggregated"), start_time),
            errors: HashMap::new(),
            exact: RequestStats::new(),
            records: Vec::new(),
            start_time,
        }
    }
}

/// What a worker reports: a request listener that accumulates deltas in Locust's format and
/// in core's exact format, taken by [`ReportBuilder::take_report`].
#[derive(Debug)]
pub struct ReportBuilder {
    delta: Mutex<Delta>,
    records: Mutex<Option<RecordShipping>>,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportBuilder {
    /// An empty builder that keeps no records until [`ReportBuilder::ship_records`] is called.
    pub fn new() -> Self {
        Self {
            delta: Mutex::new(Delta::new(unix_f64(SystemTime::now()))),
            records: Mutex::new(None),
        }
    }

    /// Starts (or stops, with `None`) keeping records for the master.
    pub fn ship_records(&self, shipping: Option<RecordShipping>) {
        *self.records.lock() = shipping;
    }

    /// Forgets everything not yet reported (a new test starts).
    pub fn clear(&self) {
        *self.delta.lock() = Delta::new(unix_f64(SystemTime::now()));
    }

    /// The report of everything since the previous one, as the `stats` message's data, and
    /// how many requests it holds. `user_classes_count` is the users running per class now.
    /// `with_exact` adds [`LD_STATS_KEY`] and [`LD_RECORDS_KEY`].
    pub fn take_report(
        &self,
        user_classes_count: &[(String, u64)],
        with_exact: bool,
    ) -> (Value, u64) {
        let now = unix_f64(SystemTime::now());
        let delta = std::mem::replace(&mut *self.delta.lock(), Delta::new(now));
        let requests = delta.total.num_requests;
        let mut entries: Vec<&Entry> = delta
            .entries
            .values()
            .filter(|e| e.num_requests > 0 || e.num_failures > 0)
            .collect();
        entries.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
        let errors = delta
            .errors
            .iter()
            .map(|((method, name, error), e)| {
                let key = format!("{method}.{name}.{}", python_repr(error));
                (
                    Value::from(key),
                    wire::map([
                        ("name", Value::from(&**name)),
                        ("method", Value::from(&**method)),
                        ("error", Value::from(&**error)),
                        ("occurrences", Value::from(e.occurrences)),
                        ("first_seen", Value::from(e.first_seen)),
                        ("last_seen", Value::from(e.last_seen)),
                    ]),
                )
            })
            .collect();
        let user_count: u64 = user_classes_count.iter().map(|(_, c)| c).sum();
        let mut data = vec![
            (
                Value::from("stats"),
                Value::Array(entries.iter().map(|e| e.to_value()).collect()),
            ),
            (Value::from("stats_total"), delta.total.to_value()),
            (Value::from("errors"), Value::Map(errors)),
            (
                Value::from("user_classes_count"),
                wire::counts_value(user_classes_count),
            ),
            (Value::from("user_count"), Value::from(user_count)),
        ];
        if with_exact {
            match rmp_serde::to_vec_named(&delta.exact) {
                Ok(bytes) => data.push((Value::from(LD_STATS_KEY), Value::Binary(bytes))),
                Err(error) => tracing::error!(%error, "cannot serialize the exact statistics"),
            }
            if !delta.records.is_empty() {
                match rmp_serde::to_vec(&delta.records) {
                    Ok(bytes) => data.push((Value::from(LD_RECORDS_KEY), Value::Binary(bytes))),
                    Err(error) => tracing::error!(%error, "cannot serialize the records"),
                }
            }
        }
        (Value::Map(data), requests)
    }
}

impl RequestListener for ReportBuilder {
    fn on_iterations(&self, completed: u64, dropped: u64) {
        self.delta.lock().exact.add_iterations(completed, dropped);
    }

    fn on_start_lags(&self, lags_us: &[u64]) {
        self.delta.lock().exact.add_start_lags(lags_us);
    }

    fn on_requests(&self, events: &[RequestEvent]) {
        let shipping = *self.records.lock();
        let mut delta = self.delta.lock();
        let start_time = delta.start_time;
        for event in events {
            delta
                .entries
                .entry((event.request_type.clone(), event.name.clone()))
                .or_insert_with(|| {
                    Entry::new(event.request_type.clone(), event.name.clone(), start_time)
                })
                .add(event);
            delta.total.add(event);
            if let Some(error) = &event.error {
                let seen = unix_f64(event.start_time + event.response_time);
                let slot = delta
                    .errors
                    .entry((
                        event.request_type.clone(),
                        event.name.clone(),
                        error.clone(),
                    ))
                    .or_insert(ErrorEntry {
                        occurrences: 0,
                        first_seen: seen,
                        last_seen: seen,
                    });
                slot.occurrences += 1;
                slot.first_seen = slot.first_seen.min(seen);
                slot.last_seen = slot.last_seen.max(seen);
            }
            delta.exact.add(event);
            if shipping.is_some_and(|s| s.keeps(event)) {
                delta.records.push(WireRecord::from_event(event));
            }
        }
    }
}

/// What a LoadDensity master takes from one `stats` report.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// The exact statistics (from a LoadDensity worker), if present.
    pub exact: Option<RequestStats>,
    /// Events rebuilt from Locust's numbers (a report without exact statistics).
    pub rebuilt: Vec<RequestEvent>,
    /// The records shipped (a LoadDensity worker).
    pub records: Vec<RequestEvent>,
    /// Users per class, as the worker reports them.
    pub user_classes_count: Vec<(String, u64)>,
    /// Requests in this report.
    pub requests: u64,
}

/// Reads a `stats` message's data.
pub fn read_report(msg: &wire::Message) -> Result<ReadReport, WireError> {
    let data = &msg.data;
    if !matches!(data, Value::Map(_)) {
        return Err(msg.field_error(format!("data is {}, not a map", kind_of(data))));
    }
    let user_classes_count = match get(data, "user_classes_count") {
        Some(v) => {
            wire::counts(v).map_err(|e| msg.field_error(format!("user_classes_count: {e}")))?
        }
        None => Vec::new(),
    };
    let mut report = ReadReport {
        user_classes_count,
        ..ReadReport::default()
    };
    if let Some(exact) = get(data, LD_STATS_KEY) {
        let Value::Binary(bytes) = exact else {
            return Err(
                msg.field_error(format!("{LD_STATS_KEY} is {}, not binary", kind_of(exact)))
            );
        };
        let budget = HISTOGRAM_BYTES_PER_REPORT
            .saturating_add(HISTOGRAM_BYTES_PER_REPORT_BYTE.saturating_mul(bytes.len() as u64));
        let stats: RequestStats =
            histogram_limits::with_budget(budget, || rmp_serde::from_slice(bytes))
                .map_err(|e| msg.field_error(format!("{LD_STATS_KEY}: {e}")))?;
        report.requests = stats.total().num_requests();
        report.exact = Some(stats);
    } else {
        report.rebuilt = events_from_report(msg)?;
        report.requests = report.rebuilt.len() as u64;
    }
    if let Some(records) = get(data, LD_RECORDS_KEY) {
        let Value::Binary(bytes) = records else {
            return Err(msg.field_error(format!(
                "{LD_RECORDS_KEY} is {}, not binary",
                kind_of(records)
            )));
        };
        let records: Vec<WireRecord> = rmp_serde::from_slice(bytes)
            .map_err(|e| msg.field_error(format!("{LD_RECORDS_KEY}: {e}")))?;
        report.records = records.into_iter().map(WireRecord::into_event).collect();
    }
    Ok(report)
}

fn int_map(entry: &Value, key: &str) -> Result<Vec<(i64, u64)>, String> {
    match get(entry, key) {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Map(items)) => items
            .iter()
            .map(|(k, v)| {
                let key = match k {
                    Value::Integer(i) => i.as_i64(),
                    other => as_f64(other).map(|f| f as i64),
                }
                .ok_or_else(|| format!("{key} has a key that is {}", kind_of(k)))?;
                let count =
                    as_u64(v).ok_or_else(|| format!("{key} has a count that is {}", kind_of(v)))?;
                Ok((key, count))
            })
            .collect(),
        Some(other) => Err(format!("{key} is {}, not a map", kind_of(other))),
    }
}

/// Rebuilds one event per request from a Locust report: the counts, failures (with their
/// error messages), bytes and seconds are Locust's; each latency is its Locust bucket.
pub fn events_from_report(msg: &wire::Message) -> Result<Vec<RequestEvent>, WireError> {
    let data = &msg.data;
    let entries = match get(data, "stats") {
        None | Some(Value::Nil) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(msg.field_error(format!("stats is {}, not an array", kind_of(other))))
        }
    };
    // Error messages per (method, name), with their counts.
    let mut errors: ErrorsByEntry = HashMap::new();
    if let Some(Value::Map(items)) = get(data, "errors") {
        for (_, error) in items {
            let text = |k: &str| get(error, k).and_then(Value::as_str).map(str::to_owned);
            let (Some(method), Some(name), Some(message)) =
                (text("method"), text("name"), text("error"))
            else {
                return Err(msg.field_error("an errors entry lacks method, name or error"));
            };
            let occurrences = get(error, "occurrences").and_then(as_u64).unwrap_or(0);
            errors
                .entry((method, name))
                .or_default()
                .push((Arc::from(message), occurrences));
        }
    }
    let claimed: u64 = entries
        .iter()
        .map(|e| get(e, "num_requests").and_then(as_u64).unwrap_or(0))
        .fold(0u64, u64::saturating_add);
    if claimed > MAX_REQUESTS_PER_REPORT {
        return Err(msg.field_error(format!(
            "the report claims {claimed} requests (at most {MAX_REQUESTS_PER_REPORT} are accepted)"
        )));
    }
    let mut events = Vec::with_capacity(claimed.min(RESERVE_EVENTS) as usize);
    let generic: Arc<str> = Arc::from("failure reported by a Locust worker");
    for (index, entry) in entries.iter().enumerate() {
        let at = |e: String| msg.field_error(format!("stats[{index}]: {e}"));
        let text = |k: &str| match get(entry, k) {
            Some(Value::String(s)) => s
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| at(format!("{k} is not valid UTF-8"))),
            Some(other) => Err(at(format!("{k} is {}, not a string", kind_of(other)))),
            None => Err(at(format!("{k} is missing"))),
        };
        let name = text("name")?;
        let method = text("method")?;
        let num = |k: &str| get(entry, k).and_then(as_u64).unwrap_or(0);
        let requests = num("num_requests");
        let none_requests = num("num_none_requests").min(requests);
        let failures = num("num_failures").min(requests);
        let content = num("total_content_length");
        let mut latencies: Vec<f64> = Vec::with_capacity(requests.min(RESERVE_EVENTS) as usize);
        for (bucket, count) in int_map(entry, "response_times").map_err(at)? {
            for _ in 0..count {
                if latencies.len() as u64 >= requests - none_requests {
                    break;
                }
                latencies.push(bucket.max(0) as f64);
            }
        }
        let mut seconds: Vec<i64> = Vec::with_capacity(requests.min(RESERVE_EVENTS) as usize);
        for (second, count) in int_map(entry, "num_reqs_per_sec").map_err(at)? {
            for _ in 0..count {
                if seconds.len() as u64 >= requests {
                    break;
                }
                seconds.push(second);
            }
        }
        let fallback_second = get(entry, "last_request_timestamp")
            .and_then(as_f64)
            .map_or_else(|| unix_f64(SystemTime::now()) as i64, |t| t as i64);
        let mut messages = errors
            .remove(&(method.clone(), name.clone()))
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(m, n)| std::iter::repeat_n(m, n as usize));
        let method: Arc<str> = Arc::from(method);
        let name: Arc<str> = Arc::from(name);
        for i in 0..requests {
            let ms = latencies.get(i as usize).copied().unwrap_or(0.0);
            let response_time = load_density_core::task::options::saturating_seconds(ms / 1000.0);
            let second = seconds
                .get(i as usize)
                .copied()
                .unwrap_or(fallback_second)
                .max(0);
            let end = UNIX_EPOCH + Duration::from_secs(second as u64) + Duration::from_millis(500);
            let error = (i < failures).then(|| messages.next().unwrap_or_else(|| generic.clone()));
            let share = content / requests + u64::from(i < content % requests);
            events.push(RequestEvent {
                request_type: method.clone(),
                name: name.clone(),
                url: name.clone(),
                status: None,
                response_time,
                response_length: share,
                error,
                start_time: end.checked_sub(response_time).unwrap_or(end),
                start_delay: None,
            });
        }
    }
    Ok(events)
}
