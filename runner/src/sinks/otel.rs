//! The OpenTelemetry exporter (`LD_start_opentelemetry_exporter`,
//! `LD_stop_opentelemetry_exporter`): metrics over OTLP/gRPC.
//!
//! A meter named `loaddensity` on a meter provider whose resource has
//! `service.name=<service_name>`, read every `export_interval_ms` and exported to `endpoint`
//! (the SDK's default, `OTEL_EXPORTER_OTLP_ENDPOINT` or `http://localhost:4317`, when none is
//! given). Instruments, all with the attributes `request_type`, `name` and `outcome`
//! (`success`/`failure`):
//!
//! | instrument | kind | unit |
//! |---|---|---|
//! | `loaddensity.requests` | counter, +1 per request | `1` |
//! | `loaddensity.request.latency` | histogram | `ms` |
//! | `loaddensity.response.size` | histogram | `By` |
//!
//! Unlike the Python exporter, the provider is not installed as the global meter provider
//! (so a stop and a restart are reliable), a start with other arguments while running is an
//! error, and events reach it through the sink hub's bounded feed, off every run's path. Stop
//! exports what is left and shuts the provider down.

use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;

use super::{hub, Feed, SinkError};

const EXPORTER: &str = "OpenTelemetry exporter";

/// `LD_start_opentelemetry_exporter`'s arguments (defaults as in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelSettings {
    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`; the SDK default when `None`.
    pub endpoint: Option<String>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Milliseconds between exports.
    pub export_interval_ms: u64,
}

impl Default for OtelSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "loaddensity".to_owned(),
            export_interval_ms: 5000,
        }
    }
}

struct Running {
    settings: OtelSettings,
    feed_id: u64,
    provider: SdkMeterProvider,
    consumer: JoinHandle<()>,
    /// Keeps the runtime the gRPC channel runs on alive until stop.
    runtime: tokio::runtime::Runtime,
}

fn state() -> &'static Mutex<Option<Running>> {
    static STATE: Mutex<Option<Running>> = Mutex::new(None);
    &STATE
}

struct Instruments {
    requests: Counter<u64>,
    latency: Histogram<f64>,
    size: Histogram<u64>,
}

/// Starts the exporter; starting it again with the same settings does nothing.
///
/// # Errors
/// [`SinkError::Invalid`] for a bad endpoint or interval, [`SinkError::AlreadyRunning`] when
/// it runs with other settings, [`SinkError::Thread`] when its runtime cannot start.
pub fn start_opentelemetry_exporter(settings: OtelSettings) -> Result<(), SinkError> {
    if settings.export_interval_ms == 0 {
        return Err(SinkError::Invalid(
            "export_interval_ms must be a positive number of milliseconds".into(),
        ));
    }
    if let Some(endpoint) = &settings.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(SinkError::Invalid(format!(
                "endpoint must be an http:// or https:// URL such as \"http://127.0.0.1:4317\", \
                 got {endpoint:?}"
            )));
        }
    }
    let mut state = state().lock();
    if let Some(running) = state.as_ref() {
        if running.settings == settings {
            return Ok(());
        }
        return Err(SinkError::AlreadyRunning {
            exporter: EXPORTER,
            running: format!("{:?}", running.settings),
            asked: format!("{settings:?}"),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ld-otel")
        .enable_all()
        .build()
        .map_err(|source| SinkError::Thread {
            exporter: EXPORTER,
            source,
        })?;
    // The tonic channel spawns its worker on the runtime it is built in.
    let provider = {
        let _entered = runtime.enter();
        let mut builder = MetricExporter::builder().with_tonic();
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let exporter = builder
            .build()
            .map_err(|e| SinkError::Invalid(format!("OTel exporter init failed: {e}")))?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_millis(settings.export_interval_ms))
            .build();
        SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build()
    };
    let meter = provider.meter("loaddensity");
    let instruments = Instruments {
        requests: meter
            .u64_counter("loaddensity.requests")
            .with_unit("1")
            .build(),
        latency: meter
            .f64_histogram("loaddensity.request.latency")
            .with_unit("ms")
            .build(),
        size: meter
            .u64_histogram("loaddensity.response.size")
            .with_unit("By")
            .build(),
    };
    let feed = hub().subscribe("opentelemetry");
    let feed_id = feed.id();
    let consumer = std::thread::Builder::new()
        .name("ld-otel-feed".to_owned())
        .spawn(move || consume(feed, &instruments))
        .map_err(|source| SinkError::Thread {
            exporter: EXPORTER,
            source,
        })?;
    *state = Some(Running {
        settings,
        feed_id,
        provider,
        consumer,
        runtime,
    });
    Ok(())
}

/// Stops the exporter: exports what it has, then shuts the provider down. Does nothing when it
/// is not running.
pub fn stop_opentelemetry_exporter() {
    let Some(running) = state().lock().take() else {
        return;
    };
    hub().unsubscribe(running.feed_id);
    if running.consumer.join().is_err() {
        tracing::error!("the OpenTelemetry exporter's feed thread panicked");
    }
    if let Err(error) = running.provider.shutdown() {
        tracing::warn!(%error, "OpenTelemetry exporter: the last export failed");
    }
    running.runtime.shutdown_timeout(Duration::from_secs(2));
}

fn consume(mut feed: Feed, instruments: &Instruments) {
    while let Some(batch) = feed.blocking_recv() {
        // One attribute set per (series, outcome) of the batch.
        for series in batch.iter() {
            let attributes = |success: bool| {
                [
                    KeyValue::new("request_type", series.request_type.to_string()),
                    KeyValue::new("name", series.name.to_string()),
                    KeyValue::new("outcome", if success { "success" } else { "failure" }),
                ]
            };
            let (ok, failed) = (attributes(true), attributes(false));
            let mut failures = 0;
            for point in &series.points {
                let attributes = if point.is_success() {
                    &ok
                } else {
                    failures += 1;
                    &failed
                };
                instruments
                    .latency
                    .record(point.response_time.as_secs_f64() * 1000.0, attributes);
                instruments.size.record(point.response_length, attributes);
            }
            let successes = series.points.len() as u64 - failures;
            if successes > 0 {
                instruments.requests.add(successes, &ok);
            }
            if failures > 0 {
                instruments.requests.add(failures, &failed);
            }
        }
    }
    feed.report_dropped();
}
