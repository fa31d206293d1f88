//! The Prometheus exporter (`LD_start_prometheus_exporter`, `LD_stop_prometheus_exporter`).
//!
//! Serves the OpenMetrics text on every path of `addr:port` (conventionally `/metrics`) from
//! its own thread and runtime, so it outlives runs:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `loaddensity_requests_total` | counter | `request_type`, `name`, `outcome` (`success`/`failure`) |
//! | `loaddensity_request_latency_ms` | histogram, buckets 5 … 10000 ms | `request_type`, `name` |
//! | `loaddensity_response_bytes` | histogram, buckets 64 … 1048576 B | `request_type`, `name` |
//! | `loaddensity_users` | gauge: users running now | |
//! | `loaddensity_dropped_iterations_total` | counter (0: no workload model drops iterations yet) | |
//! | `loaddensity_request_latency_quantile_ms` | gauge from the HDR histograms | `request_type`, `name`, `quantile` (0.5, 0.9, 0.95, 0.99, 1) |
//! | `loaddensity_exporter_dropped_events_total` | counter: events lost because the exporter fell behind | |
//!
//! Unlike the Python exporter, [`stop_prometheus_exporter`] stops the HTTP server (the port is
//! free again), a restart works, and a start while running with other arguments is an error.
//! The web UI also serves `/metrics` while the exporter runs ([`encode_current`]).

pub mod metrics;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use metrics::{Metrics, BYTES_BUCKETS, CONTENT_TYPE, LATENCY_BUCKETS_MS};

use super::{hub, SinkError};

const EXPORTER: &str = "Prometheus exporter";

/// The default port (the Python default).
pub const DEFAULT_PORT: u16 = 9646;

struct Running {
    /// The arguments it was started with.
    asked: (u16, String),
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    feed_id: u64,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
    consumer: JoinHandle<()>,
}

fn state() -> &'static Mutex<Option<Running>> {
    static STATE: Mutex<Option<Running>> = Mutex::new(None);
    &STATE
}

/// Starts the exporter on `addr:port` and returns the port it listens on (the bound one when
/// `port` is 0). Starting it again with the same arguments returns the port and does nothing.
///
/// # Errors
/// [`SinkError::AlreadyRunning`] when it runs with other arguments, [`SinkError::Bind`] for a
/// port in use, [`SinkError::Invalid`] for an address that is not an IP address.
pub fn start_prometheus_exporter(port: u16, addr: &str) -> Result<u16, SinkError> {
    let mut state = state().lock();
    if let Some(running) = state.as_ref() {
        if running.asked == (port, addr.to_owned()) {
            return Ok(running.addr.port());
        }
        return Err(SinkError::AlreadyRunning {
            exporter: EXPORTER,
            running: format!("addr {:?}, port {}", running.asked.1, running.asked.0),
            asked: format!("addr {addr:?}, port {port}"),
        });
    }
    let ip: IpAddr = addr.parse().map_err(|_| {
        SinkError::Invalid(format!(
            "addr must be an IP address such as \"127.0.0.1\" or \"::1\", got {addr:?}"
        ))
    })?;
    let bind_addr = SocketAddr::new(ip, port);
    let listener = TcpListener::bind(bind_addr).map_err(|source| SinkError::Bind {
        addr: bind_addr.to_string(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| SinkError::Bind {
        addr: bind_addr.to_string(),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| SinkError::Bind {
            addr: bind_addr.to_string(),
            source,
        })?;
    let metrics = Arc::new(Metrics::new());
    let (shutdown, shutdown_rx) = oneshot::channel();
    let server = {
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("ld-prometheus".to_owned())
            .spawn(move || serve(listener, metrics, shutdown_rx))
            .map_err(|source| SinkError::Thread {
                exporter: EXPORTER,
                source,
            })?
    };
    let mut feed = hub().subscribe("prometheus");
    let feed_id = feed.id();
    let consumer = {
        let metrics = metrics.clone();
        let dropped = feed.dropped();
        std::thread::Builder::new()
            .name("ld-prometheus-feed".to_owned())
            .spawn(move || {
                let mut seen_dropped = 0;
                while let Some(batch) = feed.blocking_recv() {
                    metrics.observe(&batch);
                    let now = dropped.load(Ordering::Relaxed);
                    metrics.add_dropped_events(now - seen_dropped);
                    seen_dropped = now;
                }
                feed.report_dropped();
            })
            .map_err(|source| SinkError::Thread {
                exporter: EXPORTER,
                source,
            })?
    };
    tracing::info!(addr = %local, "Prometheus exporter listening");
    *state = Some(Running {
        asked: (port, addr.to_owned()),
        addr: local,
        metrics,
        feed_id,
        shutdown,
        server,
        consumer,
    });
    Ok(local.port())
}

/// Stops the exporter: no more events reach it and its HTTP server closes. Does nothing when
/// it is not running.
pub fn stop_prometheus_exporter() {
    let Some(running) = state().lock().take() else {
        return;
    };
    hub().unsubscribe(running.feed_id);
    let _ = running.shutdown.send(());
    if running.server.join().is_err() {
        tracing::error!("the Prometheus exporter's server thread panicked");
    }
    if running.consumer.join().is_err() {
        tracing::error!("the Prometheus exporter's feed thread panicked");
    }
    tracing::info!(addr = %running.addr, "Prometheus exporter stopped");
}

/// The address the exporter listens on, when it runs.
pub fn local_addr() -> Option<SocketAddr> {
    state().lock().as_ref().map(|r| r.addr)
}

/// The exporter's current OpenMetrics text, when it runs (the web UI's `/metrics`).
pub fn encode_current() -> Option<String> {
    let metrics = state().lock().as_ref().map(|r| r.metrics.clone())?;
    Some(metrics.encode(hub().users()))
}

fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the Prometheus exporter cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "the Prometheus exporter cannot listen");
                return;
            }
        };
        let app = axum::Router::new().fallback(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.encode(hub().users()),
                )
            }
        });
        let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = shutdown.await;
            let _ = stopping_tx.send(());
        });
        // Scrapers keep connections open: give them a moment to finish, then close anyway.
        let deadline = async move {
            let _ = stopping_rx.await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        tokio::select! {
            result = server => if let Err(error) = result {
                tracing::warn!(%error, "the Prometheus exporter's server stopped");
            },
            () = deadline => {}
        }
    });
}
