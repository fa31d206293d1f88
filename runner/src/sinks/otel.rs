//! The OpenTelemetry exporter (`LD_start_opentelemetry_exporter`,
//! `LD_stop_opentelemetry_exporter`): metrics over OTLP/gRPC.
//!
//! Metrics of the instrumentation scope `loaddensity`, with a resource whose `service.name` is
//! `<service_name>`, exported every `export_interval_ms` to `endpoint` (else
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `http://localhost:4317`, as the OpenTelemetry SDK defaults), with cumulative temporality.
//! Instruments, all with the attributes `request_type`, `name` and `outcome`
//! (`success`/`failure`):
//!
//! | instrument | kind | unit |
//! |---|---|---|
//! | `loaddensity.requests` | counter, +1 per request | `1` |
//! | `loaddensity.request.latency` | histogram | `ms` |
//! | `loaddensity.response.size` | histogram | `By` |
//!
//! The histograms have the OpenTelemetry SDK's default explicit buckets ([`BOUNDS`]), with
//! count, sum, min and max.
//!
//! The exporter aggregates itself and sends OTLP/gRPC with the published OTLP protobuf
//! definitions (`opentelemetry-proto` on the workspace's tonic) rather than recording each
//! request into the OpenTelemetry SDK: the SDK's `record` hashes the attribute set on every
//! call, which cost about 1,500 instructions per call, two calls per request, 30 % of a
//! fast_http request (bench/RESULTS.md, "Exporters' cost"). Here each series of a batch finds
//! its aggregate once, and each request costs a bucket scan (its size's bucket is reused
//! while the size repeats).
//!
//! Unlike the Python exporter, nothing is installed as a global meter provider (so a stop and
//! a restart are reliable), a start with other arguments while running is an error, and events
//! reach it through the sink hub's bounded feed, off every run's path. A failed export is
//! logged once (then counted); stop exports what is left.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use super::{hub, Feed, Series, SinkError};

const EXPORTER: &str = "OpenTelemetry exporter";

/// The histograms' bucket bounds (the OpenTelemetry SDK's default explicit buckets).
pub const BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// The endpoint when none is given or set in the environment.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

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
    exporter: JoinHandle<()>,
}

fn state() -> &'static Mutex<Option<Running>> {
    static STATE: Mutex<Option<Running>> = Mutex::new(None);
    &STATE
}

/// Starts the exporter; starting it again with the same settings does nothing.
///
/// # Errors
/// [`SinkError::Invalid`] for a bad endpoint or interval, [`SinkError::AlreadyRunning`] when
/// it runs with other settings, [`SinkError::Thread`] when its thread cannot start.
pub fn start_opentelemetry_exporter(settings: OtelSettings) -> Result<(), SinkError> {
    if settings.export_interval_ms == 0 {
        return Err(SinkError::Invalid(
            "export_interval_ms must be a positive number of milliseconds".into(),
        ));
    }
    let endpoint = settings.endpoint.clone().unwrap_or_else(|| {
        [
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
    });
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(SinkError::Invalid(format!(
            "endpoint must be an http:// or https:// URL such as \"http://127.0.0.1:4317\", \
             got {endpoint:?}"
        )));
    }
    let channel = Endpoint::from_shared(endpoint.clone())
        .map_err(|e| SinkError::Invalid(format!("endpoint {endpoint:?}: {e}")))?
        .connect_timeout(EXPORT_TIMEOUT)
        .timeout(EXPORT_TIMEOUT);
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
    let feed = hub().subscribe("opentelemetry");
    let feed_id = feed.id();
    let interval = Duration::from_millis(settings.export_interval_ms);
    let resource = Resource {
        attributes: vec![attribute("service.name", &settings.service_name)],
        ..Resource::default()
    };
    let exporter = std::thread::Builder::new()
        .name("ld-otel".to_owned())
        .spawn(move || export_loop(feed, channel, resource, interval))
        .map_err(|source| SinkError::Thread {
            exporter: EXPORTER,
            source,
        })?;
    *state = Some(Running {
        settings,
        feed_id,
        exporter,
    });
    Ok(())
}

/// Stops the exporter: exports what it has, then stops its thread. Does nothing when it is
/// not running.
pub fn stop_opentelemetry_exporter() {
    let Some(running) = state().lock().take() else {
        return;
    };
    hub().unsubscribe(running.feed_id);
    if running.exporter.join().is_err() {
        tracing::error!("the OpenTelemetry exporter's thread panicked");
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Count, sum, min, max and bucket counts of recorded values.
#[derive(Debug, Clone)]
struct Buckets {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    counts: [u64; BOUNDS.len() + 1],
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            counts: [0; BOUNDS.len() + 1],
        }
    }
}

impl Buckets {
    /// Bucket i holds (BOUNDS[i - 1], BOUNDS[i]]; the last one everything above. Most values
    /// fall in the first buckets: a scan from the start.
    fn bucket_of(value: f64) -> usize {
        BOUNDS
            .iter()
            .position(|bound| *bound >= value)
            .unwrap_or(BOUNDS.len())
    }

    /// Records `value`, which falls in `bucket` ([`Buckets::bucket_of`]).
    fn record(&mut self, value: f64, bucket: usize) {
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
        self.count += 1;
        self.sum += value;
        // The values are durations and sizes, never NaN: plain comparisons.
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
    }

    fn point(&self, attributes: Vec<KeyValue>, start: u64, now: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.counts.to_vec(),
            explicit_bounds: BOUNDS.to_vec(),
            min: Some(self.min),
            max: Some(self.max),
            ..HistogramDataPoint::default()
        }
    }
}

/// What one (series, outcome) recorded since the exporter started.
#[derive(Debug, Clone, Default)]
struct Aggregate {
    latency_ms: Buckets,
    size: Buckets,
}

/// Every series' aggregates: `[success, failure]`.
#[derive(Default)]
struct Aggregates {
    series: HashMap<(Arc<str>, Arc<str>), [Aggregate; 2]>,
}

impl Aggregates {
    fn add(&mut self, batch: &[Series]) {
        for series in batch {
            let key = (series.request_type.clone(), series.name.clone());
            let pair = self.series.entry(key).or_default();
            let mut last_length = None;
            let mut length_bucket = 0;
            for point in &series.points {
                let aggregate = &mut pair[usize::from(!point.is_success())];
                let ms = point.response_time.as_secs_f64() * 1000.0;
                aggregate.latency_ms.record(ms, Buckets::bucket_of(ms));
                // A series' responses often have one size: its bucket is found once.
                if last_length != Some(point.response_length) {
                    last_length = Some(point.response_length);
                    length_bucket = Buckets::bucket_of(point.response_length as f64);
                }
                aggregate
                    .size
                    .record(point.response_length as f64, length_bucket);
            }
        }
    }

    fn request(&self, resource: &Resource, start: u64) -> ExportMetricsServiceRequest {
        let now = now_ns();
        let (mut requests, mut latency, mut size) = (Vec::new(), Vec::new(), Vec::new());
        for ((request_type, name), pair) in &self.series {
            for (aggregate, outcome) in pair.iter().zip(["success", "failure"]) {
                if aggregate.latency_ms.count == 0 {
                    continue;
                }
                let attributes = vec![
                    attribute("request_type", request_type),
                    attribute("name", name),
                    attribute("outcome", outcome),
                ];
                requests.push(NumberDataPoint {
                    attributes: attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    value: Some(number_data_point::Value::AsInt(
                        i64::try_from(aggregate.latency_ms.count).unwrap_or(i64::MAX),
                    )),
                    ..NumberDataPoint::default()
                });
                latency.push(aggregate.latency_ms.point(attributes.clone(), start, now));
                size.push(aggregate.size.point(attributes, start, now));
            }
        }
        let cumulative = AggregationTemporality::Cumulative as i32;
        let histogram = |name: &str, unit: &str, data_points| Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: cumulative,
            })),
            ..Metric::default()
        };
        let metrics = vec![
            Metric {
                name: "loaddensity.requests".to_owned(),
                unit: "1".to_owned(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: requests,
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                })),
                ..Metric::default()
            },
            histogram("loaddensity.request.latency", "ms", latency),
            histogram("loaddensity.response.size", "By", size),
        ];
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "loaddensity".to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }
}

/// Sends the aggregates; logs the first failure, counts the others.
struct Exporter {
    channel: Endpoint,
    client: Option<MetricsServiceClient<Channel>>,
    failed: u64,
}

impl Exporter {
    async fn export(&mut self, request: ExportMetricsServiceRequest) {
        let client = self
            .client
            .get_or_insert_with(|| MetricsServiceClient::new(self.channel.connect_lazy()));
        if let Err(status) = client.export(request).await {
            self.failed += 1;
            if self.failed == 1 {
                tracing::warn!(
                    "OpenTelemetry export failed: {} (further failures are counted)",
                    status.message()
                );
            } else {
                tracing::debug!("OpenTelemetry export failed: {}", status.message());
            }
        }
    }
}

fn export_loop(mut feed: Feed, channel: Endpoint, resource: Resource, interval: Duration) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the OpenTelemetry exporter cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let start = now_ns();
        let mut aggregates = Aggregates::default();
        let mut exporter = Exporter {
            channel,
            client: None,
            failed: 0,
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                batch = feed.recv() => {
                    let Some(batch) = batch else { break };
                    aggregates.add(&batch);
                }
                _ = tick.tick() => {
                    if !aggregates.series.is_empty() {
                        exporter.export(aggregates.request(&resource, start)).await;
                    }
                }
            }
        }
        if !aggregates.series.is_empty() {
            exporter.export(aggregates.request(&resource, start)).await;
        }
        if exporter.failed > 1 {
            tracing::warn!(
                failed = exporter.failed,
                "OpenTelemetry exports that failed"
            );
        }
        feed.report_dropped();
    });
}
