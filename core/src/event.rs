//! Request events: one per finished request, success or failure, whatever the protocol.
//!
//! Users emit events into an [`EventBus`]. The bus keeps one buffer per runtime worker thread
//! (a shard), so emitting costs one uncontended lock and a `Vec::push`; no global lock is taken
//! per request. The runner drains every shard periodically with [`EventBus::flush`] and hands
//! each batch to the registered [`RequestListener`]s (the record store and the statistics by
//! default), so listeners see batches, never one call per request from the hot path.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

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
    events: Vec<RequestEvent>,
    iterations: u64,
    dropped: u64,
    start_lags: Vec<u64>,
}

/// A shard buffer, padded so that two shards never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<ShardBuffer>);

/// The sharded event buffer of one run, with its listeners.
pub struct EventBus {
    shards: Box<[Shard]>,
    listeners: RwLock<Vec<Arc<dyn RequestListener>>>,
    flushing: Mutex<(Vec<RequestEvent>, Vec<u64>)>,
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
            .map(|_| {
                Shard(Mutex::new(ShardBuffer {
                    events: Vec::with_capacity(256),
                    ..ShardBuffer::default()
                }))
            })
            .collect();
        Self {
            shards,
            listeners: RwLock::new(Vec::new()),
            flushing: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    /// Adds a listener; it sees every batch flushed from now on.
    pub fn add_listener(&self, listener: Arc<dyn RequestListener>) {
        self.listeners.write().push(listener);
    }

    /// Buffers one event in the calling thread's shard.
    pub fn emit(&self, event: RequestEvent) {
        let shard = &self.shards[thread_slot() % self.shards.len()];
        shard.0.lock().events.push(event);
    }

    /// Buffers one event and counts `iterations` finished iterations with it, under one
    /// lock (a user's context counts its iterations and hands them over with its next
    /// request).
    pub fn emit_counting(&self, event: RequestEvent, iterations: u64) {
        let shard = &self.shards[thread_slot() % self.shards.len()];
        let mut buffer = shard.0.lock();
        buffer.events.push(event);
        buffer.iterations += iterations;
    }

    /// Counts finished iterations (passes over a group's scenario) in the calling thread's
    /// shard; listeners see the counts at the next flush ([`RequestListener::on_iterations`]).
    pub fn count_iterations(&self, iterations: u64) {
        if iterations == 0 {
            return;
        }
        let shard = &self.shards[thread_slot() % self.shards.len()];
        shard.0.lock().iterations += iterations;
    }

    /// Records how late a schedule's timer fired, in microseconds
    /// ([`RequestListener::on_start_lags`]).
    pub fn record_start_lag(&self, lag_us: u64) {
        let shard = &self.shards[thread_slot() % self.shards.len()];
        shard.0.lock().start_lags.push(lag_us);
    }

    /// Counts `dropped` iterations that a schedule wanted but that never started.
    pub fn count_dropped(&self, dropped: u64) {
        if dropped == 0 {
            return;
        }
        let shard = &self.shards[thread_slot() % self.shards.len()];
        shard.0.lock().dropped += dropped;
    }

    /// Drains every shard and delivers the events to the listeners. Returns how many events
    /// were delivered. Concurrent flushes are serialised, so listeners see one batch at a time.
    pub fn flush(&self) -> usize {
        let mut flushing = self.flushing.lock();
        let (batch, lags) = &mut *flushing;
        batch.clear();
        lags.clear();
        let (mut iterations, mut dropped) = (0, 0);
        for shard in self.shards.iter() {
            let mut buffer = shard.0.lock();
            iterations += std::mem::take(&mut buffer.iterations);
            dropped += std::mem::take(&mut buffer.dropped);
            lags.append(&mut buffer.start_lags);
            if batch.is_empty() {
                std::mem::swap(batch, &mut buffer.events);
            } else {
                batch.append(&mut buffer.events);
            }
        }
        let delivered = batch.len();
        if delivered > 0 || iterations > 0 || dropped > 0 || !lags.is_empty() {
            let listeners = self.listeners.read().clone();
            for listener in listeners {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    if iterations > 0 || dropped > 0 {
                        listener.on_iterations(iterations, dropped);
                    }
                    if !lags.is_empty() {
                        listener.on_start_lags(lags);
                    }
                    if delivered > 0 {
                        listener.on_requests(batch);
                    }
                }));
                if outcome.is_err() {
                    tracing::error!("a request listener panicked; the other listeners still ran");
                }
            }
        }
        batch.clear();
        lags.clear();
        // Keep the allocation bounded: a burst should not pin a huge buffer forever.
        if batch.capacity() > 1 << 16 {
            batch.shrink_to(1 << 12);
        }
        if lags.capacity() > 1 << 16 {
            lags.shrink_to(1 << 12);
        }
        delivered
    }

    /// Events buffered and not yet flushed.
    pub fn pending(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().events.len()).sum()
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
