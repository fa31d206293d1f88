//! Process-wide exporters fed from every run's batched request stream.
//!
//! Exporters (Prometheus, InfluxDB) are started and stopped by commands, independently of
//! runs, as in the Python version: an exporter started before `LD_start_test` sees that run and
//! every later one. Each run's event bus hands its batches to the [`SinkHub`] (one more
//! [`RequestListener`], on the collector, never on the request path). The hub passes each batch,
//! shared, to every subscribed exporter through a bounded channel: an exporter that falls behind
//! loses batches, which are counted ([`Feed::dropped`]) and logged when it stops; it never slows
//! the run or the other outputs.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use load_density_core::{RequestEvent, RequestListener};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::env::{Environment, RunState};

/// Batches an exporter may have queued before further batches are dropped.
pub const FEED_CAPACITY: usize = 1024;

/// One batch of finished requests, shared by every exporter.
pub type Batch = Arc<[RequestEvent]>;

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
    pub fn unsubscribe(&self, id: u64) {
        self.outlets.write().retain(|outlet| outlet.id != id);
        load_density_core::event::listeners_changed();
    }

    /// Users running now, over every run not yet stopped.
    pub fn users(&self) -> u64 {
        let mut runs = self.runs.lock();
        runs.retain(|run| run.state() != RunState::Stopped);
        runs.iter().map(Environment::user_count).sum()
    }
}

impl RequestListener for SinkHub {
    fn wants_events(&self) -> bool {
        !self.outlets.read().is_empty()
    }

    fn on_requests(&self, events: &[RequestEvent]) {
        let outlets = self.outlets.read();
        if outlets.is_empty() {
            return;
        }
        let batch: Batch = Arc::from(events);
        for outlet in outlets.iter() {
            if outlet.sender.try_send(batch.clone()).is_err() {
                let before = outlet
                    .dropped
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
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
