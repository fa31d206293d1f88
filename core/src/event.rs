//! Request events: one per finished request, success or failure, whatever the protocol.
//!
//! Users record requests into an [`EventBus`]. The bus keeps one buffer per runtime worker
//! thread (a shard), so recording costs one uncontended lock and no global lock. Each shard
//! aggregates its requests into its own statistics, keyed by the addresses of the task's
//! strings (no string is hashed or cloned per request), and keeps them as compact records when
//! a record store is attached. The runner drains every shard periodically with
//! [`EventBus::flush`], off the worker threads: the shards' statistics are merged into the
//! attached [`SharedStats`] and record store, exactly as if one collector had added every
//! request, and the registered [`RequestListener`]s get batches of [`RequestEvent`]s, built
//! only while some listener reads them ([`RequestListener::wants_events`]).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::record::TestRecord;
use crate::series::{Origin, Series, ShardSeries};
use crate::shard::{Sample, ShardRecords, ShardStats};
use crate::stats::SharedStats;

/// One finished request.
///
/// Strings are shared (`Arc<str>`): a task's request type, name and URL are allocated once
/// when the task is compiled and cloned by reference count per request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    /// Protocol verb: `GET`, `POST`, `WS`, `MQTT`, `TCP`, ...
    pub request_type: Arc<str>,
    /// The name statistics are grouped under.
    pub name: Arc<str>,
    /// The full target URL or address.
    pub url: Arc<str>,
    /// The protocol status code, when a response was received.
    pub status: Option<u16>,
    /// Time from the (scheduled) start of the request to its end.
    pub response_time: Duration,
    /// Bytes received (plus bytes sent, for protocols that count both).
    pub response_length: u64,
    /// Why the request failed; `None` for a success.
    pub error: Option<Arc<str>>,
    /// Wall-clock time at which the request started.
    pub start_time: SystemTime,
    /// How late the iteration this request belongs to started compared with its due time,
    /// when it had one (an arrival-rate load model, or `constant_pacing` /
    /// `constant_throughput` pacing); `None` otherwise. The corrected latency is
    /// `response_time + start_delay` ([`RequestEvent::corrected_time`]).
    pub start_delay: Option<Duration>,
}

impl RequestEvent {
    /// Whether this request succeeded.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Response time in whole microseconds (saturating).
    pub fn response_time_us(&self) -> u64 {
        u64::try_from(self.response_time.as_micros()).unwrap_or(u64::MAX)
    }

    /// The latency measured from the intended start: the response time plus the delay with
    /// which the request's iteration started. `None` when the iteration had no due time.
    pub fn corrected_time(&self) -> Option<Duration> {
        self.start_delay
            .map(|delay| self.response_time.saturating_add(delay))
    }
}

/// Receives batches of finished requests.
///
/// Listeners run on the collector, off the request path. A listener that panics is logged and
/// the others still run.
pub trait RequestListener: Send + Sync + 'static {
    /// Called with every batch of events, in emission order per worker thread.
    fn on_requests(&self, events: &[RequestEvent]);

    /// Called on each flush that counted iterations: `completed` passes over a group's
    /// scenario that ran, and `dropped` iterations a schedule wanted but that never started
    /// (see [`EventBus::count_iterations`]). The default ignores them.
    fn on_iterations(&self, _completed: u64, _dropped: u64) {}

    /// Called on each flush with the start lags measured since the previous one: how late
    /// (in microseconds) a schedule's timer fired against an iteration's due time, when the
    /// generator itself (not a busy user) made it late. The default ignores them.
    fn on_start_lags(&self, _lags_us: &[u64]) {}

    /// Whether this listener reads the requests ([`on_requests`](Self::on_requests)) now.
    /// Requests become events only while some listener wants them; a flush asks again, so a
    /// listener may change its answer as it goes (an exporter hub with no exporter says no).
    /// The default says yes.
    fn wants_events(&self) -> bool {
        true
    }

    /// Whether this listener reads the requests grouped by series
    /// ([`on_series`](Self::on_series)) now. Asked as [`wants_events`](Self::wants_events)
    /// is; the default says no.
    ///
    /// Series are the cheap way to read every request: a shard appends a request's numbers
    /// to its name's vector, with no event built and no string cloned on the request path.
    fn wants_series(&self) -> bool {
        false
    }

    /// Called on each flush, while some listener [wants series](Self::wants_series), with the
    /// requests since the previous flush grouped by request type and name: one series per name
    /// and worker thread (a name may come once per thread), each in the order its thread made
    /// its requests. The default ignores them.
    fn on_series(&self, _series: &[Series]) {}
}

impl<F> RequestListener for F
where
    F: Fn(&[RequestEvent]) + Send + Sync + 'static,
{
    fn on_requests(&self, events: &[RequestEvent]) {
        self(events)
    }
}

/// What one shard buffers between flushes.
#[derive(Default)]
struct ShardBuffer {
    /// The statistics of the requests made on this thread since the last flush.
    stats: ShardStats,
    /// The requests as events, only while some listener reads the event stream.
    events: Vec<RequestEvent>,
    /// The requests as records, only while a record store is attached.
    records: ShardRecords,
    /// The requests grouped by series, only while some listener reads series.
    series: ShardSeries,
    iterations: u64,
    dropped: u64,
    start_lags: Vec<u64>,
}

impl ShardBuffer {
    fn is_idle(&self) -> bool {
        self.stats.requests() == 0
            && self.iterations == 0
            && self.dropped == 0
            && self.start_lags.is_empty()
    }

    fn add(&mut self, sample: &Sample<'_>, wants: u8) {
        let entry = self.stats.add(sample);
        if wants & WANTS_RECORDS != 0 {
            self.records.push(sample);
        }
        if wants & WANTS_SERIES != 0 {
            self.series.push(entry, sample);
        }
        if wants & WANTS_EVENTS != 0 {
            self.events.push(sample.to_event());
        }
    }

    /// Adds a protocol's own event (kept as is for the event stream).
    fn add_event(&mut self, event: RequestEvent, wants: u8) {
        self.add(&Sample::of_event(&event), wants & !WANTS_EVENTS);
        if wants & WANTS_EVENTS != 0 {
            self.events.push(event);
        }
    }
}

/// A shard buffer, padded so that two shards never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<ShardBuffer>);

const WANTS_EVENTS: u8 = 1;
const WANTS_RECORDS: u8 = 2;
const WANTS_SERIES: u8 = 4;

/// Bumped whenever some listener may have changed its [`RequestListener::wants_events`] or
/// [`RequestListener::wants_series`], or a record store its capacity or content.
static WANTS_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Tells every bus that some listener may have changed its answer to
/// [`RequestListener::wants_events`] or [`RequestListener::wants_series`] (an exporter
/// subscribed), or that a record store was cleared or resized: each bus asks its listeners
/// and its record store again before its next request.
pub fn listeners_changed() {
    WANTS_EPOCH.fetch_add(1, Ordering::Release);
}

/// What a flush works with, kept between flushes to reuse its memory: one spare buffer per
/// shard (swapped with the shard's, so a worker thread waits only for the swap), the batch of
/// events for the listeners, the series lent to them and where each came from, the start
/// lags.
#[derive(Default)]
struct Flushing {
    spares: Vec<ShardBuffer>,
    batch: Vec<RequestEvent>,
    series: Vec<Series>,
    origins: Vec<Origin>,
    lags: Vec<u64>,
}

/// The sharded event buffer of one run, with its listeners.
///
/// Each runtime worker thread aggregates its own requests into its shard's statistics, keyed
/// by the addresses of the task's strings (see the `shard` module); a flush merges the shards
/// into the attached [`SharedStats`] ([`EventBus::attach_stats`]) and record store
/// ([`EventBus::attach_record_store`]). Requests become [`RequestEvent`]s only while some
/// listener reads the event stream ([`RequestListener::wants_events`]).
pub struct EventBus {
    shards: Box<[Shard]>,
    listeners: RwLock<Vec<Arc<dyn RequestListener>>>,
    stats: RwLock<Vec<SharedStats>>,
    record_store: RwLock<Option<Arc<TestRecord>>>,
    /// `WANTS_EVENTS` | `WANTS_RECORDS` | `WANTS_SERIES`, read on every request.
    wants: AtomicU8,
    /// The [`WANTS_EPOCH`] `wants` was computed at.
    wants_epoch: AtomicU64,
    flushing: Mutex<Flushing>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("shards", &self.shards.len())
            .field("listeners", &self.listeners.read().len())
            .finish()
    }
}

thread_local! {
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_slot() -> usize {
    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    THREAD_SLOT.with(|slot| {
        let value = slot.get();
        if value != usize::MAX {
            return value;
        }
        let value = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        slot.set(value);
        value
    })
}

impl EventBus {
    /// A bus with `shards` buffers (at least one); use the number of runtime worker threads.
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Shard(Mutex::new(ShardBuffer::default())))
            .collect();
        Self {
            shards,
            listeners: RwLock::new(Vec::new()),
            stats: RwLock::new(Vec::new()),
            record_store: RwLock::new(None),
            wants: AtomicU8::new(0),
            wants_epoch: AtomicU64::new(WANTS_EPOCH.load(Ordering::Acquire)),
            flushing: Mutex::new(Flushing::default()),
        }
    }

    /// Adds a listener; it sees every batch flushed from now on.
    pub fn add_listener(&self, listener: Arc<dyn RequestListener>) {
        if listener.wants_events() {
            self.wants.fetch_or(WANTS_EVENTS, Ordering::Relaxed);
        }
        if listener.wants_series() {
            self.wants.fetch_or(WANTS_SERIES, Ordering::Relaxed);
        }
        self.listeners.write().push(listener);
    }

    /// Aggregates this bus's requests into `stats`, per worker thread, merged into it at each
    /// [`flush`](Self::flush): no event per request is built for them. Equivalent to adding
    /// `stats` as a listener, and cheaper.
    pub fn attach_stats(&self, stats: SharedStats) {
        self.stats.write().push(stats);
    }

    /// Keeps this bus's requests in `store` (records and statistics), handed over at each
    /// [`flush`](Self::flush). Equivalent to adding `store` as a listener, and cheaper. One
    /// store per bus: a second call replaces the first.
    pub fn attach_record_store(&self, store: Arc<TestRecord>) {
        *self.record_store.write() = Some(store);
        self.refresh_wants();
    }

    /// What the requests must be kept as besides statistics (`WANTS_*`).
    fn wants(&self) -> u8 {
        let epoch = WANTS_EPOCH.load(Ordering::Acquire);
        if self.wants_epoch.load(Ordering::Relaxed) != epoch {
            self.wants_epoch.store(epoch, Ordering::Relaxed);
            self.refresh_wants();
        }
        self.wants.load(Ordering::Relaxed)
    }

    /// Asks the listeners again whether they read events and series, and the record store
    /// whether it has room for records (when it has none, the worker threads keep no record
    /// and a flush counts their requests as dropped).
    fn refresh_wants(&self) {
        let listeners = self.listeners.read();
        let store_has_room = self
            .record_store
            .read()
            .as_ref()
            .is_some_and(|store| store.has_room());
        for (flag, wanted) in [
            (WANTS_EVENTS, listeners.iter().any(|l| l.wants_events())),
            (WANTS_SERIES, listeners.iter().any(|l| l.wants_series())),
            (WANTS_RECORDS, store_has_room),
        ] {
            if wanted {
                self.wants.fetch_or(flag, Ordering::Relaxed);
            } else {
                self.wants.fetch_and(!flag, Ordering::Relaxed);
            }
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[thread_slot() % self.shards.len()]
    }

    /// Aggregates one request in the calling thread's shard and counts `iterations` finished
    /// iterations with it (the fast path of [`crate::UserContext`]).
    pub(crate) fn record(&self, sample: Sample<'_>, iterations: u64) {
        let wants = self.wants();
        let mut buffer = self.shard().0.lock();
        buffer.add(&sample, wants);
        buffer.iterations += iterations;
    }

    /// Buffers one event in the calling thread's shard (the way for a protocol that builds
    /// its own events; [`crate::UserContext`] records cheaper).
    pub fn emit(&self, event: RequestEvent) {
        self.emit_counting(event, 0);
    }

    /// Buffers one event in shard `shard` (modulo the shard count) rather than the calling
    /// thread's: for an embedder that routes requests to shards itself, and for tests.
    pub fn emit_on(&self, shard: usize, event: RequestEvent) {
        let wants = self.wants();
        let mut buffer = self.shards[shard % self.shards.len()].0.lock();
        buffer.add_event(event, wants);
    }

    /// Buffers one event and counts `iterations` finished iterations with it, under one
    /// lock (a user's context counts its iterations and hands them over with its next
    /// request).
    pub fn emit_counting(&self, event: RequestEvent, iterations: u64) {
        let wants = self.wants();
        let mut buffer = self.shard().0.lock();
        buffer.add_event(event, wants);
        buffer.iterations += iterations;
    }

    /// Counts finished iterations (passes over a group's scenario) in the calling thread's
    /// shard; listeners see the counts at the next flush ([`RequestListener::on_iterations`]).
    pub fn count_iterations(&self, iterations: u64) {
        if iterations == 0 {
            return;
        }
        self.shard().0.lock().iterations += iterations;
    }

    /// Counts finished iterations in shard `shard` (modulo the shard count); see
    /// [`emit_on`](Self::emit_on).
    pub fn count_iterations_on(&self, shard: usize, iterations: u64) {
        if iterations == 0 {
            return;
        }
        self.shards[shard % self.shards.len()].0.lock().iterations += iterations;
    }

    /// Records how late a schedule's timer fired, in microseconds
    /// ([`RequestListener::on_start_lags`]).
    pub fn record_start_lag(&self, lag_us: u64) {
        self.shard().0.lock().start_lags.push(lag_us);
    }

    /// Counts `dropped` iterations that a schedule wanted but that never started.
    pub fn count_dropped(&self, dropped: u64) {
        if dropped == 0 {
            return;
        }
        self.shard().0.lock().dropped += dropped;
    }

    /// Drains every shard: merges its statistics into the attached statistics and record
    /// store, and delivers its events to the listeners. Returns how many requests were
    /// drained. Concurrent flushes are serialised, so listeners see one batch at a time.
    ///
    /// A worker thread waits for a flush only while its shard's buffer is swapped with a
    /// spare: the merge works on the spare.
    pub fn flush(&self) -> usize {
        let mut guard = self.flushing.lock();
        let flushing = &mut *guard;
        if flushing.spares.len() != self.shards.len() {
            flushing
                .spares
                .resize_with(self.shards.len(), ShardBuffer::default);
        }
        let stats = self.stats.read().clone();
        let store = self.record_store.read().clone();
        let (mut iterations, mut dropped, mut drained) = (0u64, 0u64, 0u64);
        for (index, (shard, spare)) in self
            .shards
            .iter()
            .zip(flushing.spares.iter_mut())
            .enumerate()
        {
            {
                let mut buffer = shard.0.lock();
                if buffer.is_idle() {
                    continue;
                }
                std::mem::swap(&mut *buffer, spare);
            }
            spare.stats.settle();
            drained += spare.stats.requests();
            iterations += spare.iterations;
            dropped += spare.dropped;
            for target in &stats {
                target.with(|s| {
                    s.absorb_shard(&spare.stats);
                    s.add_iterations(spare.iterations, spare.dropped);
                    s.add_start_lags(&spare.start_lags);
                });
            }
            if let Some(store) = &store {
                // Requests aggregated while the store had no room came without a record.
                let not_kept = spare.stats.requests().saturating_sub(spare.records.len());
                store.absorb_shard(
                    &spare.stats,
                    spare.records.drain(),
                    not_kept,
                    (spare.iterations, spare.dropped),
                    &spare.start_lags,
                );
            }
            spare.records.clear();
            lend_series(spare, index, &mut flushing.series, &mut flushing.origins);
            flushing.lags.append(&mut spare.start_lags);
            if flushing.batch.is_empty() {
                // The first shard's events become the batch without a copy (its spare takes
                // the batch's empty buffer); later shards' are appended after them.
                std::mem::swap(&mut flushing.batch, &mut spare.events);
            } else {
                flushing.batch.append(&mut spare.events);
            }
            spare.stats.clear();
            spare.iterations = 0;
            spare.dropped = 0;
        }
        let (batch, lags, series) = (&mut flushing.batch, &mut flushing.lags, &flushing.series);
        let listeners = self.listeners.read().clone();
        if !batch.is_empty()
            || !series.is_empty()
            || iterations > 0
            || dropped > 0
            || !lags.is_empty()
        {
            for listener in &listeners {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    if iterations > 0 || dropped > 0 {
                        listener.on_iterations(iterations, dropped);
                    }
                    if !lags.is_empty() {
                        listener.on_start_lags(lags);
                    }
                    if !batch.is_empty() {
                        listener.on_requests(batch);
                    }
                    if !series.is_empty() {
                        listener.on_series(series);
                    }
                }));
                if outcome.is_err() {
                    tracing::error!("a request listener panicked; the other listeners still ran");
                }
            }
        }
        // Events are built only while some listener reads them (an exporter may subscribe or
        // leave while the run goes on).
        self.refresh_wants();
        batch.clear();
        lags.clear();
        // Keep the allocation bounded: a burst should not pin a huge buffer forever.
        if batch.capacity() > 1 << 16 {
            batch.shrink_to(1 << 12);
        }
        if lags.capacity() > 1 << 16 {
            lags.shrink_to(1 << 12);
        }
        take_back_series(flushing);
        for spare in &mut flushing.spares {
            if spare.events.capacity() > 1 << 16 {
                spare.events.shrink_to(1 << 12);
            }
        }
        usize::try_from(drained).unwrap_or(usize::MAX)
    }

    /// Requests aggregated and not yet flushed.
    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|s| usize::try_from(s.0.lock().stats.requests()).unwrap_or(usize::MAX))
            .sum()
    }
}

/// Lends shard `index`'s series (just swapped out into `spare`) to the flush: the points of
/// each entry touched since the last flush, then those of spilled names.
fn lend_series(
    spare: &mut ShardBuffer,
    index: usize,
    series: &mut Vec<Series>,
    origins: &mut Vec<Origin>,
) {
    for touch in spare.stats.touched() {
        if let crate::shard::Touch::Entry(id) = *touch {
            let points = spare.series.take(id);
            if points.is_empty() {
                spare.series.give_back(id, points);
                continue;
            }
            let entry = spare.stats.entry(id);
            series.push(Series {
                request_type: entry.request_type_arc().clone(),
                name: entry.name_arc().clone(),
                points,
            });
            origins.push(Origin::Entry { shard: index, id });
        }
    }
    for spilled in spare.series.take_spilled() {
        series.push(spilled);
        origins.push(Origin::Spilled);
    }
}

/// Takes the lent series' vectors back into the spares they came from, emptied.
fn take_back_series(flushing: &mut Flushing) {
    for (lent, origin) in flushing.series.drain(..).zip(flushing.origins.drain(..)) {
        if let Origin::Entry { shard, id } = origin {
            if let Some(spare) = flushing.spares.get_mut(shard) {
                spare.series.give_back(id, lent.points);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from(name),
            url: Arc::from("http://x/"),
            status: Some(200),
            response_time: Duration::from_millis(3),
            response_length: 10,
            error: None,
            start_time: SystemTime::now(),
            start_delay: None,
        }
    }

    #[test]
    fn iteration_counts_reach_every_listener_once() {
        let bus = EventBus::new(2);
        let seen = Arc::new(Mutex::new((0u64, 0u64)));
        let s = seen.clone();
        struct Counter(Arc<Mutex<(u64, u64)>>);
        impl RequestListener for Counter {
            fn on_requests(&self, _: &[RequestEvent]) {}
            fn on_iterations(&self, completed: u64, dropped: u64) {
                let mut seen = self.0.lock();
                seen.0 += completed;
                seen.1 += dropped;
            }
        }
        bus.add_listener(Arc::new(Counter(s)));
        for _ in 0..3 {
            bus.count_iterations(1);
        }
        bus.emit_counting(event("a"), 2);
        bus.count_dropped(3);
        bus.count_dropped(0);
        assert_eq!(bus.flush(), 1);
        assert_eq!(bus.flush(), 0);
        assert_eq!(*seen.lock(), (5, 3));
    }

    #[test]
    fn flush_delivers_every_event_once_to_every_listener() {
        let bus = Arc::new(EventBus::new(4));
        let seen_a = Arc::new(Mutex::new(Vec::new()));
        let seen_b = Arc::new(AtomicUsize::new(0));
        {
            let seen_a = seen_a.clone();
            bus.add_listener(Arc::new(move |events: &[RequestEvent]| {
                seen_a
                    .lock()
                    .extend(events.iter().map(|e| e.name.to_string()))
            }));
            let seen_b = seen_b.clone();
            bus.add_listener(Arc::new(move |events: &[RequestEvent]| {
                seen_b.fetch_add(events.len(), Ordering::Relaxed);
            }));
        }
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        bus.emit(event(&format!("{t}-{i}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("emitter thread");
        }
        assert_eq!(bus.pending(), 4000);
        assert_eq!(bus.flush(), 4000);
        assert_eq!(bus.flush(), 0);
        let mut names = seen_a.lock().clone();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4000);
        assert_eq!(seen_b.load(Ordering::Relaxed), 4000);
    }

    #[test]
    fn events_are_built_only_while_a_listener_wants_them() {
        struct Switch(std::sync::atomic::AtomicBool, AtomicUsize);
        impl RequestListener for Switch {
            fn on_requests(&self, events: &[RequestEvent]) {
                self.1.fetch_add(events.len(), Ordering::Relaxed);
            }
            fn wants_events(&self) -> bool {
                self.0.load(Ordering::Relaxed)
            }
        }
        let bus = EventBus::new(2);
        let stats = SharedStats::new();
        bus.attach_stats(stats.clone());
        let switch = Arc::new(Switch(false.into(), AtomicUsize::new(0)));
        bus.add_listener(switch.clone());
        bus.emit(event("a"));
        bus.flush();
        assert_eq!(switch.1.load(Ordering::Relaxed), 0, "nobody wanted events");
        // An exporter subscribes: the very next request is an event.
        switch.0.store(true, Ordering::Relaxed);
        listeners_changed();
        bus.emit(event("b"));
        bus.flush();
        assert_eq!(switch.1.load(Ordering::Relaxed), 1);
        switch.0.store(false, Ordering::Relaxed);
        listeners_changed();
        bus.emit(event("c"));
        bus.flush();
        assert_eq!(switch.1.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.snapshot().total().num_requests(),
            3,
            "statistics see all"
        );
    }

    fn records_in_shard(bus: &EventBus) -> u64 {
        bus.shards.iter().map(|s| s.0.lock().records.len()).sum()
    }

    #[test]
    fn worker_threads_keep_records_only_while_the_store_has_room() {
        let bus = EventBus::new(1);
        let store = Arc::new(TestRecord::with_capacity(3));
        bus.attach_record_store(store.clone());
        bus.emit(event("a0"));
        bus.emit(event("a1"));
        bus.flush();
        assert_eq!((store.counts(), store.dropped()), ((2, 0), 0));
        // Room for one more when these are made: all three are kept by the thread, and the
        // flush drops the two past the capacity.
        for name in ["b0", "b1", "b2"] {
            bus.emit(event(name));
        }
        assert_eq!(records_in_shard(&bus), 3);
        bus.flush();
        assert_eq!((store.counts(), store.dropped()), ((3, 0), 2));
        // Full: the thread keeps no record, the flush counts the requests as dropped.
        for name in ["c0", "c1", "c2", "c3"] {
            bus.emit(event(name));
        }
        assert_eq!(records_in_shard(&bus), 0);
        bus.flush();
        assert_eq!((store.counts(), store.dropped()), ((3, 0), 6));
        assert_eq!(
            store.stats().total().num_requests(),
            9,
            "statistics see all"
        );
        // Emptied: records are kept again from the next request on.
        store.clear_records();
        bus.emit(event("d0"));
        assert_eq!(records_in_shard(&bus), 1);
        bus.flush();
        assert_eq!((store.counts(), store.dropped()), ((1, 0), 0));
        // Resized to nothing: no record is kept, every request is counted.
        store.set_capacity(0);
        bus.emit(event("e0"));
        assert_eq!(records_in_shard(&bus), 0);
        bus.flush();
        assert_eq!((store.counts(), store.dropped()), ((1, 0), 1));
    }

    #[test]
    fn a_large_flush_keeps_every_record_in_order() {
        let bus = EventBus::new(1);
        let store = Arc::new(TestRecord::with_capacity(10_000));
        bus.attach_record_store(store.clone());
        let count = 3 * crate::record::KEEP_CHUNK + 5;
        for i in 0..count {
            bus.emit(event(&format!("r{i}")));
        }
        bus.flush();
        let names: Vec<String> = store
            .test_record_list()
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        let expected: Vec<String> = (0..count).map(|i| format!("r{i}")).collect();
        assert_eq!(names, expected);
        assert_eq!(store.dropped(), 0);
    }

    #[test]
    fn a_panicking_listener_does_not_stop_the_others() {
        let bus = EventBus::new(1);
        let count = Arc::new(AtomicUsize::new(0));
        bus.add_listener(Arc::new(|_: &[RequestEvent]| panic!("listener bug")));
        let c = count.clone();
        bus.add_listener(Arc::new(move |events: &[RequestEvent]| {
            c.fetch_add(events.len(), Ordering::Relaxed);
        }));
        bus.emit(event("a"));
        bus.flush();
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}
