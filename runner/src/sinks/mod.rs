//! Process-wide exporters fed from every run's batched request stream.
//!
//! Exporters (Prometheus, InfluxDB) are started and stopped by commands, independently of
//! runs, as in the Python version: an exporter started before `LD_start_test` sees that run and
//! every later one. Each run's event bus hands its requests to the [`SinkHub`] (one more
//! [`RequestListener`], on the collector, never on the request path) already grouped by
//! series per worker thread ([`RequestListener::on_series`]: no event is built per request).
//! The hub merges each flush's series by request type and name into a [`Batch`] of
//! [`Series`], each with its requests' [`Point`]s, so that no exporter looks a name up, hashes
//! it or copies it per request, and
//! passes it, shared, to every subscribed exporter through a bounded channel: an exporter that
//! falls behind loses batches, which are counted ([`Feed::dropped`]) and logged when it stops;
//! it never slows the run or the other outputs.
//!
//! Names are capped as the statistics tables cap them
//! ([`load_density_core::cardinality`]): at most [`DEFAULT_MAX_NAMES`] distinct
//! `(request type, name)` series reach the exporters (see [`set_max_names`]); requests of any
//! later series are counted under the one overflow series `("", "(other)")`
//! ([`OTHER`]), so Prometheus, InfluxDB and OpenTelemetry series stay bounded while totals stay
//! exact. The first overflow is logged once; [`overflowed`] counts the requests moved.
//!
//! | exporter | cargo feature | commands |
//! |---|---|---|
//! | [`prometheus`] | `prometheus` | `LD_start_prometheus_exporter`, `LD_stop_prometheus_exporter` |
//! | [`influxdb`] | `influxdb` | `LD_start_influxdb_sink`, `LD_stop_influxdb_sink` |
//! | [`otel`] | `opentelemetry` | `LD_start_opentelemetry_exporter`, `LD_stop_opentelemetry_exporter` |

#[cfg(feature = "influxdb")]
pub mod influxdb;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub use load_density_core::cardinality::{DEFAULT_MAX_NAMES, OTHER};
pub use load_density_core::series::{Point, Series};
use load_density_core::{RequestEvent, RequestListener};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::env::{Environment, RunState};

/// Batches an exporter may have queued before further batches are dropped.
pub const FEED_CAPACITY: usize = 1024;

/// One batch of finished requests grouped by series, shared by every exporter.
pub type Batch = Arc<[Series]>;

struct Outlet {
    id: u64,
    name: &'static str,
    sender: mpsc::Sender<Batch>,
    dropped: Arc<AtomicU64>,
}

/// Fans every run's request batches out to the running exporters.
pub struct SinkHub {
    outlets: RwLock<Vec<Outlet>>,
    next_id: AtomicU64,
    runs: Mutex<Vec<Environment>>,
    grouper: Mutex<Grouper>,
    max_names: AtomicUsize,
    overflowed: AtomicU64,
}

/// A hasher for a pair of pointers (already well spread: one multiply and a rotation).
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(26) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type PtrKey = (usize, usize);

/// Groups events by series, and keeps the set of series admitted under the cap.
#[derive(Default)]
struct Grouper {
    /// Series admitted so far (by content), at most the cap.
    admitted: HashSet<(Arc<str>, Arc<str>)>,
    /// Per batch: series index by the events' `Arc` pointers (events of one task share them).
    by_ptr: HashMap<PtrKey, usize, BuildHasherDefault<PtrHasher>>,
    /// Per batch: series index by content, for names built per request.
    by_content: HashMap<(Arc<str>, Arc<str>), usize>,
    /// Per batch: each event's series index (kept to reuse its allocation).
    indices: Vec<usize>,
    /// Per batch: requests per series, so that each series' points are allocated once.
    counts: Vec<usize>,
    warned: bool,
}

fn ptr_key(event: &RequestEvent) -> PtrKey {
    (
        Arc::as_ptr(&event.request_type).cast::<u8>() as usize,
        Arc::as_ptr(&event.name).cast::<u8>() as usize,
    )
}

/// Slots of the grouper's per-batch cache of pointer pairs (a power of two).
const RECENT: usize = 16;

/// The cache slot of a pointer pair (no `Arc` has a null pointer: `(0, 0)` marks a free slot).
fn recent_slot(key: PtrKey) -> usize {
    let mixed = (key.0 as u64 ^ (key.1 as u64).rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 60) as usize % RECENT
}

impl Grouper {
    /// The batch's series: one lookup per event by pointer (in a small cache first), by
    /// content once per distinct pointer pair. Two passes: the first
    /// finds every event's series and counts them, the second copies the points into vectors
    /// of the right size (growing them as they fill was a third of the hub's cost).
    fn group(
        &mut self,
        events: &[RequestEvent],
        max_names: usize,
        overflowed: &AtomicU64,
    ) -> Batch {
        let mut series: Vec<Series> = Vec::new();
        self.start_batch();
        self.indices.reserve(events.len());
        // A small direct-mapped cache of pointer pairs in front of the map: the names of a
        // batch are usually few, and a hit costs a multiply and a compare.
        let mut recent = [((0, 0), 0); RECENT];
        for event in events {
            let key = ptr_key(event);
            let slot = recent_slot(key);
            let index = match recent[slot] {
                (recent_key, index) if recent_key == key => index,
                _ => {
                    let index = match self.by_ptr.get(&key) {
                        Some(&index) => index,
                        None => {
                            let index = self.resolve(
                                &event.request_type,
                                &event.name,
                                max_names,
                                &mut series,
                            );
                            self.by_ptr.insert(key, index);
                            if self.counts.len() < series.len() {
                                self.counts.resize(series.len(), 0);
                            }
                            index
                        }
                    };
                    recent[slot] = (key, index);
                    index
                }
            };
            self.indices.push(index);
            if let Some(count) = self.counts.get_mut(index) {
                *count += 1;
            }
        }
        let moved = reserve_counted(&mut series, &self.counts);
        for (event, &index) in events.iter().zip(&self.indices) {
            if let Some(target) = series.get_mut(index) {
                target.points.push(Point::started_at(
                    event.start_time,
                    event.response_time,
                    event.response_length,
                    event.error.clone(),
                ));
            }
        }
        if moved > 0 {
            overflowed.fetch_add(moved, Ordering::Relaxed);
        }
        Arc::from(series)
    }

    /// Forgets the previous batch's lookups and counts.
    fn start_batch(&mut self) {
        self.by_ptr.clear();
        self.by_content.clear();
        self.indices.clear();
        self.counts.clear();
    }

    /// Merges a flush's series (one per name and worker thread) into one series per name
    /// admitted under the cap: one lookup per series, and its points copied once into a
    /// vector of the right size.
    fn merge(&mut self, lent: &[Series], max_names: usize, overflowed: &AtomicU64) -> Batch {
        let mut series: Vec<Series> = Vec::new();
        self.start_batch();
        for source in lent {
            let key = (
                Arc::as_ptr(&source.request_type).cast::<u8>() as usize,
                Arc::as_ptr(&source.name).cast::<u8>() as usize,
            );
            let index = match self.by_ptr.get(&key) {
                Some(&index) => index,
                None => {
                    let index =
                        self.resolve(&source.request_type, &source.name, max_names, &mut series);
                    self.by_ptr.insert(key, index);
                    index
                }
            };
            if self.counts.len() < series.len() {
                self.counts.resize(series.len(), 0);
            }
            self.indices.push(index);
            if let Some(count) = self.counts.get_mut(index) {
                *count += source.points.len();
            }
        }
        let moved = reserve_counted(&mut series, &self.counts);
        for (source, &index) in lent.iter().zip(&self.indices) {
            if let Some(target) = series.get_mut(index) {
                target.points.extend_from_slice(&source.points);
            }
        }
        if moved > 0 {
            overflowed.fetch_add(moved, Ordering::Relaxed);
        }
        Arc::from(series)
    }

    /// The series index of a request type and name whose pointers this batch has not seen yet.
    fn resolve(
        &mut self,
        request_type: &Arc<str>,
        name: &Arc<str>,
        max_names: usize,
        series: &mut Vec<Series>,
    ) -> usize {
        let content = (request_type.clone(), name.clone());
        let is_other = content.0.is_empty() && &*content.1 == OTHER;
        let key = if is_other || self.admitted.contains(&content) {
            content
        } else if self.admitted.len() < max_names {
            self.admitted.insert(content.clone());
            content
        } else {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!(
                    "exporters: {max_names} distinct request names reached; new ones (the first: \
                     {} {:?}) are exported under \"{OTHER}\", as the statistics count them. \
                     Give tasks whose URL varies a fixed `name`",
                    request_type,
                    name
                );
            }
            (Arc::from(""), Arc::from(OTHER))
        };
        if let Some(&index) = self.by_content.get(&key) {
            return index;
        }
        series.push(Series {
            request_type: key.0.clone(),
            name: key.1.clone(),
            points: Vec::new(),
        });
        self.by_content.insert(key, series.len() - 1);
        series.len() - 1
    }
}

/// Gives each series room for its `counts` points at once; returns how many of them go to the
/// overflow series.
fn reserve_counted(series: &mut [Series], counts: &[usize]) -> u64 {
    let mut moved = 0;
    for (target, &count) in series.iter_mut().zip(counts) {
        target.points.reserve_exact(count);
        if target.request_type.is_empty() && &*target.name == OTHER {
            moved += count as u64;
        }
    }
    moved
}

/// Sets how many distinct `(request type, name)` series the exporters keep before counting
/// new ones under [`OTHER`] (default [`DEFAULT_MAX_NAMES`], the statistics' cap; at least 1).
/// Series already admitted stay.
pub fn set_max_names(max_names: usize) {
    hub().max_names.store(max_names.max(1), Ordering::Relaxed);
}

/// Requests counted under the overflow series so far, because their name came past the cap.
pub fn overflowed() -> u64 {
    hub().overflowed.load(Ordering::Relaxed)
}

impl std::fmt::Debug for SinkHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHub")
            .field("exporters", &self.outlets.read().len())
            .finish_non_exhaustive()
    }
}

/// The process-wide hub.
pub fn hub() -> &'static Arc<SinkHub> {
    static HUB: OnceLock<Arc<SinkHub>> = OnceLock::new();
    HUB.get_or_init(|| {
        Arc::new(SinkHub {
            outlets: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
            runs: Mutex::new(Vec::new()),
            grouper: Mutex::new(Grouper::default()),
            max_names: AtomicUsize::new(DEFAULT_MAX_NAMES),
            overflowed: AtomicU64::new(0),
        })
    })
}

/// Connects a run to the exporters: its request batches reach them, and its users count in
/// `loaddensity_users`. Called for every run the runner creates.
pub fn register_run(env: &Environment) {
    let hub = hub();
    env.add_listener(hub.clone() as Arc<dyn RequestListener>);
    let mut runs = hub.runs.lock();
    runs.retain(|run| run.state() != RunState::Stopped);
    runs.push(env.clone());
}

/// Logs, once per run, what each running exporter lost so far: events dropped because it fell
/// behind, and (InfluxDB) points its server did not take. Called when a run ends.
pub fn run_ended() {
    for outlet in hub().outlets.read().iter() {
        let dropped = outlet.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                exporter = outlet.name,
                dropped,
                "events this exporter dropped so far because it fell behind"
            );
        }
    }
    #[cfg(feature = "influxdb")]
    influxdb::report_failures();
}

/// Hands events that reached this process by another way than a run's bus to the exporters:
/// a distributed master publishes its workers' requests (the records they ship, with the
/// default `distributed_records: "all"`, or a Locust worker's numbers rebuilt as events).
pub fn publish(events: &[RequestEvent]) {
    if !events.is_empty() {
        hub().on_requests(events);
    }
}

impl SinkHub {
    /// Subscribes an exporter: it receives every batch from now on, until the [`Feed`] is
    /// dropped or [`SinkHub::unsubscribe`]d.
    pub fn subscribe(&self, name: &'static str) -> Feed {
        let (sender, receiver) = mpsc::channel(FEED_CAPACITY);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        self.outlets.write().push(Outlet {
            id,
            name,
            sender,
            dropped: dropped.clone(),
        });
        load_density_core::event::listeners_changed();
        Feed {
            id,
            name,
            receiver,
            dropped,
        }
    }

    /// Stops sending to feed `id`: its receiver sees the end once it has read what is queued.
    /// When no exporter is left, the series admitted under the cap are forgotten: the next
    /// exporter started counts its own.
    pub fn unsubscribe(&self, id: u64) {
        let mut outlets = self.outlets.write();
        outlets.retain(|outlet| outlet.id != id);
        if outlets.is_empty() {
            let mut grouper = self.grouper.lock();
            grouper.admitted.clear();
            grouper.warned = false;
        }
        drop(outlets);
        load_density_core::event::listeners_changed();
    }

    /// Users running now, over every run not yet stopped.
    pub fn users(&self) -> u64 {
        let mut runs = self.runs.lock();
        runs.retain(|run| run.state() != RunState::Stopped);
        runs.iter().map(Environment::user_count).sum()
    }
}

impl SinkHub {
    /// Sends one batch of `requests` requests to every exporter, counting it as dropped for
    /// those that fell behind.
    fn send(&self, outlets: &[Outlet], batch: Batch, requests: u64) {
        for outlet in outlets {
            if outlet.sender.try_send(batch.clone()).is_err() {
                let before = outlet.dropped.fetch_add(requests, Ordering::Relaxed);
                if before == 0 {
                    tracing::warn!(
                        exporter = outlet.name,
                        "the exporter falls behind: request batches are dropped (counted, \
                         reported when it stops)"
                    );
                }
            }
        }
    }
}

impl RequestListener for SinkHub {
    /// Runs' buses hand the hub series, not events ([`publish`] hands it events).
    fn wants_events(&self) -> bool {
        false
    }

    fn wants_series(&self) -> bool {
        !self.outlets.read().is_empty()
    }

    fn on_series(&self, series: &[Series]) {
        let outlets = self.outlets.read();
        if outlets.is_empty() {
            return;
        }
        let batch = self.grouper.lock().merge(
            series,
            self.max_names.load(Ordering::Relaxed),
            &self.overflowed,
        );
        let requests = batch.iter().map(|s| s.points.len() as u64).sum();
        self.send(&outlets, batch, requests);
    }

    fn on_requests(&self, events: &[RequestEvent]) {
        let outlets = self.outlets.read();
        if outlets.is_empty() {
            return;
        }
        let batch = self.grouper.lock().group(
            events,
            self.max_names.load(Ordering::Relaxed),
            &self.overflowed,
        );
        self.send(&outlets, batch, events.len() as u64);
    }
}

/// An exporter's end of the hub: batches in arrival order.
#[derive(Debug)]
pub struct Feed {
    id: u64,
    name: &'static str,
    receiver: mpsc::Receiver<Batch>,
    dropped: Arc<AtomicU64>,
}

impl Feed {
    /// The subscription id (for [`SinkHub::unsubscribe`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next batch; `None` once unsubscribed and drained.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.receiver.recv().await
    }

    /// The next batch, blocking the thread; `None` once unsubscribed and drained.
    pub fn blocking_recv(&mut self) -> Option<Batch> {
        self.receiver.blocking_recv()
    }

    /// A counter of the events dropped because this feed was full.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Logs the dropped events, if any (when the exporter stops).
    pub fn report_dropped(&self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                exporter = self.name,
                dropped,
                "events the exporter dropped because it fell behind"
            );
        }
    }
}

/// Why an exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The exporter already runs with other arguments (the Python version ignored this).
    #[error(
        "the {exporter} is already running with {running}; stop it before starting it with {asked}"
    )]
    AlreadyRunning {
        /// Which exporter.
        exporter: &'static str,
        /// Its current arguments.
        running: String,
        /// The arguments of this start.
        asked: String,
    },
    /// The listening address cannot be bound (a port in use, an address not of this host).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An argument is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The exporter's thread or runtime could not start.
    #[error("cannot start the {exporter}'s thread")]
    Thread {
        /// Which exporter.
        exporter: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
