//! The record store: every finished request as a compact [`Record`].
//!
//! [`TestRecord`] keeps successes in `test_record_list` and failures in `error_record_list`,
//! with the fields of the Python API (`Method`, `test_url`, `name`, `status_code`,
//! `response_time_ms`, `response_length`, `error`). Unlike the Python version, every event is
//! recorded, whatever the protocol, and 4xx/5xx failures keep their status code.
//!
//! The store has a capacity (default [`DEFAULT_RECORD_CAPACITY`]). Past it, records are counted
//! but not kept, a warning is logged once, and statistics stay exact: the store keeps its own
//! [`RequestStats`] over every event it was given ([`TestRecord::stats`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::event::{RequestEvent, RequestListener};
use crate::shard::{Sample, ShardStats};
use crate::stats::RequestStats;

/// How many records a store keeps before it only counts (about 100 MB of records).
pub const DEFAULT_RECORD_CAPACITY: usize = 1_000_000;

/// One recorded request. Strings are shared with the event that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Protocol verb (`GET`, `WS`, ...); `Method` in the Python API.
    pub method: Arc<str>,
    /// Target URL or address.
    pub test_url: Arc<str>,
    /// The statistics name.
    pub name: Arc<str>,
    /// Protocol status code, when a response was received.
    pub status_code: Option<u16>,
    /// Latency in microseconds.
    pub response_time_us: u64,
    /// Bytes counted for the request.
    pub response_length: u64,
    /// Failure reason; `None` for successes.
    pub error: Option<Arc<str>>,
    /// Wall-clock start, microseconds since the Unix epoch.
    pub start_time_us: u64,
}

impl Record {
    /// Latency in milliseconds, as the Python API reports it.
    pub fn response_time_ms(&self) -> f64 {
        self.response_time_us as f64 / 1000.0
    }

    /// Builds a record from an event.
    pub fn from_event(event: &RequestEvent) -> Self {
        Self {
            method: event.request_type.clone(),
            test_url: event.url.clone(),
            name: event.name.clone(),
            status_code: event.status,
            response_time_us: event.response_time_us(),
            response_length: event.response_length,
            error: event.error.clone(),
            start_time_us: event
                .start_time
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }

    pub(crate) fn from_sample(sample: &Sample<'_>) -> Self {
        Self {
            method: sample.request_type.clone(),
            test_url: sample.url.clone(),
            name: sample.name.clone(),
            status_code: sample.status,
            response_time_us: u64::try_from(sample.response_time.as_micros()).unwrap_or(u64::MAX),
            response_length: sample.response_length,
            error: sample.error.clone(),
            start_time_us: sample.start_ns / 1_000,
        }
    }

    /// The wall-clock start time.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_micros(self.start_time_us)
    }
}

impl Serialize for Record {
    /// Serializes with the Python API's field names; `status_code` is a string or null.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("Method", &*self.method)?;
        map.serialize_entry("test_url", &*self.test_url)?;
        map.serialize_entry("name", &*self.name)?;
        map.serialize_entry("status_code", &self.status_code.map(|s| s.to_string()))?;
        map.serialize_entry("response_time_ms", &self.response_time_ms())?;
        map.serialize_entry("response_length", &self.response_length)?;
        map.serialize_entry("error", &self.error.as_deref())?;
        map.end()
    }
}

#[derive(Default)]
struct Lists {
    successes: Vec<Record>,
    failures: Vec<Record>,
}

/// The record store.
pub struct TestRecord {
    lists: RwLock<Lists>,
    stats: parking_lot::Mutex<RequestStats>,
    capacity: AtomicUsize,
    dropped: AtomicU64,
    warned: AtomicBool,
}

impl std::fmt::Debug for TestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists = self.lists.read();
        f.debug_struct("TestRecord")
            .field("successes", &lists.successes.len())
            .field("failures", &lists.failures.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Default for TestRecord {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_RECORD_CAPACITY)
    }
}

impl TestRecord {
    /// An empty store keeping at most `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            lists: RwLock::new(Lists::default()),
            stats: parking_lot::Mutex::new(RequestStats::new()),
            capacity: AtomicUsize::new(capacity),
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Changes the capacity. Records already kept stay.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
        // The buses attached to this store stop or start keeping records for it.
        crate::event::listeners_changed();
    }

    /// Whether another record would be kept (not only counted as dropped): the buses keep
    /// records on their worker threads only while it is so.
    pub(crate) fn has_room(&self) -> bool {
        let lists = self.lists.read();
        lists.successes.len() + lists.failures.len() < self.capacity()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// A copy of the success records, in arrival order.
    pub fn test_record_list(&self) -> Vec<Record> {
        self.lists.read().successes.clone()
    }

    /// A copy of the failure records, in arrival order.
    pub fn error_record_list(&self) -> Vec<Record> {
        self.lists.read().failures.clone()
    }

    /// Runs `f` over both lists without copying them.
    pub fn with_records<R>(&self, f: impl FnOnce(&[Record], &[Record]) -> R) -> R {
        let lists = self.lists.read();
        f(&lists.successes, &lists.failures)
    }

    /// Number of records kept: (successes, failures).
    pub fn counts(&self) -> (usize, usize) {
        let lists = self.lists.read();
        (lists.successes.len(), lists.failures.len())
    }

    /// Records counted but not kept because the store was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exact statistics over every event recorded since the last clear, including events past
    /// the capacity: reports read these, so their percentiles come from HDR histograms.
    pub fn stats(&self) -> RequestStats {
        self.stats.lock().clone()
    }

    /// Empties both lists and the statistics, and resets the dropped count.
    pub fn clear_records(&self) {
        self.stats.lock().reset();
        let mut lists = self.lists.write();
        lists.successes = Vec::new();
        lists.failures = Vec::new();
        self.dropped.store(0, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
        drop(lists);
        crate::event::listeners_changed();
    }

    /// Counts iterations into the store's statistics (a master adds its workers' here).
    pub fn record_iterations(&self, completed: u64, dropped: u64) {
        self.stats.lock().add_iterations(completed, dropped);
    }

    /// Stores one batch of events.
    pub fn record_events(&self, events: &[RequestEvent]) {
        self.stats.lock().add_all(events);
        self.keep(events.iter().map(Record::from_event), 0);
    }

    /// Takes what one worker thread aggregated since the last flush: its statistics, its
    /// records, its iterations (completed, dropped) and start lags. `not_kept` requests were
    /// aggregated while the store had no room, so the thread kept no record of them: they
    /// count as dropped.
    pub(crate) fn absorb_shard(
        &self,
        shard: &ShardStats,
        records: impl Iterator<Item = Record>,
        not_kept: u64,
        (completed, dropped): (u64, u64),
        lags_us: &[u64],
    ) {
        {
            let mut stats = self.stats.lock();
            stats.absorb_shard(shard);
            stats.add_iterations(completed, dropped);
            stats.add_start_lags(lags_us);
        }
        self.keep(records, not_kept);
    }

    /// Keeps records up to the capacity; counts the rest, and `not_kept` more, as dropped.
    ///
    /// A flush at full rate hands over tens of thousands of records. They are taken in chunks,
    /// and between two chunks this thread offers its CPU to others, so that a worker thread
    /// sharing the CPU with the collector waits for one chunk at most (some 0.1 ms), not for
    /// the whole batch (bench/RESULTS.md section 12, timer lag).
    fn keep(&self, records: impl Iterator<Item = Record>, not_kept: u64) {
        let capacity = self.capacity();
        let mut records = records.peekable();
        let mut dropped = not_kept;
        loop {
            {
                let mut lists = self.lists.write();
                for record in records.by_ref().take(KEEP_CHUNK) {
                    if lists.successes.len() + lists.failures.len() >= capacity {
                        dropped += 1;
                    } else if record.error.is_none() {
                        lists.successes.push(record);
                    } else {
                        lists.failures.push(record);
                    }
                }
            }
            if records.peek().is_none() {
                break;
            }
            std::thread::yield_now();
        }
        if dropped == 0 {
            return;
        }
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        // A capacity of 0 turns records off on purpose: nothing to warn about.
        if capacity > 0 && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity,
                "the record store is full: further requests are counted in the statistics \
                 but not kept as records (raise the capacity with record_capacity)"
            );
        }
    }
}

/// How many records [`TestRecord::keep`] takes between two offers of its CPU.
pub(crate) const KEEP_CHUNK: usize = 2048;

impl RequestListener for TestRecord {
    fn on_requests(&self, events: &[RequestEvent]) {
        self.record_events(events);
    }

    fn on_iterations(&self, completed: u64, dropped: u64) {
        self.record_iterations(completed, dropped);
    }

    fn on_start_lags(&self, lags_us: &[u64]) {
        self.stats.lock().add_start_lags(lags_us);
    }
}

/// The process-wide record store (Python's `test_record_instance`).
pub fn test_record_instance() -> &'static Arc<TestRecord> {
    static INSTANCE: OnceLock<Arc<TestRecord>> = OnceLock::new();
    INSTANCE.get_or_init(|| Arc::new(TestRecord::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(error: Option<&str>, status: Option<u16>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from("/x"),
            url: Arc::from("http://h/x"),
            status,
            response_time: Duration::from_micros(12_500),
            response_length: 42,
            error: error.map(Arc::from),
            start_time: SystemTime::now(),
            start_delay: None,
        }
    }

    #[test]
    fn successes_and_failures_go_to_their_lists_with_status() {
        let store = TestRecord::default();
        store.record_events(&[event(None, Some(200)), event(Some("HTTP 503"), Some(503))]);
        assert_eq!(store.counts(), (1, 1));
        let failure = &store.error_record_list()[0];
        assert_eq!(failure.status_code, Some(503));
        let json = serde_json::to_value(failure).expect("serialize");
        assert_eq!(json["Method"], "GET");
        assert_eq!(json["status_code"], "503");
        assert_eq!(json["response_time_ms"], 12.5);
        assert_eq!(json["error"], "HTTP 503");
        let success = serde_json::to_value(&store.test_record_list()[0]).expect("serialize");
        assert!(success["error"].is_null());
    }

    #[test]
    fn capacity_counts_the_overflow_and_clear_resets() {
        let store = TestRecord::with_capacity(2);
        store.record_events(&[event(None, None), event(None, None), event(Some("e"), None)]);
        assert_eq!(store.counts(), (2, 0));
        assert_eq!(store.dropped(), 1);
        assert_eq!(store.stats().total().num_requests(), 3);
        store.clear_records();
        assert_eq!(store.stats().total().num_requests(), 0);
        assert_eq!(store.counts(), (0, 0));
        assert_eq!(store.dropped(), 0);
    }

    #[test]
    fn capacity_zero_keeps_no_records_and_does_not_warn() {
        let store = TestRecord::with_capacity(0);
        store.record_events(&[event(None, None), event(Some("e"), None)]);
        assert_eq!(store.counts(), (0, 0));
        assert_eq!(store.dropped(), 2);
        assert_eq!(store.stats().total().num_requests(), 2);
        assert!(!store.warned.load(Ordering::Relaxed));
        store.set_capacity(1);
        store.record_events(&[event(None, None), event(None, None)]);
        assert!(
            store.warned.load(Ordering::Relaxed),
            "a real cap still warns"
        );
    }
}
