//! The metric families, fed from request batches, and their OpenMetrics text.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use hdrhistogram::Histogram as Hdr;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::sinks::Series;

/// Latency buckets in milliseconds (the Python exporter's).
pub const LATENCY_BUCKETS_MS: [f64; 11] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Response size buckets in bytes (the Python exporter's).
pub const BYTES_BUCKETS: [f64; 8] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
];
/// The quantiles exported per name from the HDR histograms.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 1.0];

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    request_type: String,
    name: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    request_type: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    request_type: String,
    name: String,
    quantile: String,
}

fn new_hdr() -> Hdr<u64> {
    // 3 significant digits, auto-resizing: valid constant arguments.
    let mut histogram = Hdr::new(3).expect("3 significant digits is a valid HDR setting");
    histogram.auto(true);
    histogram
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_MS)
}

fn bytes_histogram() -> Histogram {
    Histogram::new(BYTES_BUCKETS)
}

/// (request type, name) -> latencies in microseconds.
type LatencyHistograms = HashMap<(Arc<str>, Arc<str>), Hdr<u64>>;

/// Every metric of the exporter.
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    latency: Family<NameLabels, Histogram>,
    bytes: Family<NameLabels, Histogram>,
    users: Gauge,
    dropped_iterations: Counter,
    dropped_events: Counter,
    quantiles: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    /// Latencies per (request type, name), microseconds, for the quantile gauges.
    hdr: Mutex<LatencyHistograms>,
    encoding: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::<NameLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let bytes = Family::<NameLabels, Histogram>::new_with_constructor(
            bytes_histogram as fn() -> Histogram,
        );
        let users = Gauge::default();
        let dropped_iterations = Counter::default();
        let dropped_events = Counter::default();
        let quantiles = Family::<QuantileLabels, Gauge<f64, AtomicU64>>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "loaddensity_requests",
            "Finished requests by outcome",
            requests.clone(),
        );
        registry.register(
            "loaddensity_request_latency_ms",
            "Request latency in milliseconds",
            latency.clone(),
        );
        registry.register(
            "loaddensity_response_bytes",
            "Response size in bytes",
            bytes.clone(),
        );
        registry.register("loaddensity_users", "Users running now", users.clone());
        registry.register(
            "loaddensity_dropped_iterations",
            "Iterations an open workload model could not start in time",
            dropped_iterations.clone(),
        );
        registry.register(
            "loaddensity_exporter_dropped_events",
            "Request events this exporter dropped because it fell behind",
            dropped_events.clone(),
        );
        registry.register(
            "loaddensity_request_latency_quantile_ms",
            "Latency quantiles in milliseconds from the HDR histogram of every request since \
             the exporter started",
            quantiles.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            bytes,
            users,
            dropped_iterations,
            dropped_events,
            quantiles,
            hdr: Mutex::new(HashMap::new()),
            encoding: Mutex::new(()),
        }
    }

    /// Counts one batch: each series' label sets are looked up once per batch, and each
    /// request costs its observations only.
    pub fn observe(&self, batch: &[Series]) {
        let mut hdr = self.hdr.lock();
        for series in batch {
            let labels = NameLabels {
                request_type: series.request_type.to_string(),
                name: series.name.to_string(),
            };
            let histogram = match hdr.get_mut(&(series.request_type.clone(), series.name.clone())) {
                Some(histogram) => histogram,
                None => hdr
                    .entry((series.request_type.clone(), series.name.clone()))
                    .or_insert_with(new_hdr),
            };
            let latency = self.latency.get_or_create(&labels);
            let bytes = self.bytes.get_or_create(&labels);
            let mut failures = 0;
            for point in &series.points {
                // Auto-resizing: recording cannot fail for a value >= 1.
                let us = u64::try_from(point.response_time.as_micros()).unwrap_or(u64::MAX);
                let _ = histogram.record(us.max(1));
                latency.observe(point.response_time.as_secs_f64() * 1000.0);
                bytes.observe(point.response_length as f64);
                failures += u64::from(!point.is_success());
            }
            let successes = series.points.len() as u64 - failures;
            for (outcome, count) in [("success", successes), ("failure", failures)] {
                if count > 0 {
                    self.requests
                        .get_or_create(&OutcomeLabels {
                            request_type: labels.request_type.clone(),
                            name: labels.name.clone(),
                            outcome,
                        })
                        .inc_by(count);
                }
            }
        }
    }

    /// The number of `(request type, name)` series the exporter holds.
    pub fn series(&self) -> usize {
        self.hdr.lock().len()
    }

    /// Adds events dropped on the way to this exporter.
    pub fn add_dropped_events(&self, count: u64) {
        self.dropped_events.inc_by(count);
    }

    /// The OpenMetrics text, with the gauges (users, quantiles) brought up to date.
    pub fn encode(&self, users: u64) -> String {
        let _one_at_a_time = self.encoding.lock();
        self.users.set(i64::try_from(users).unwrap_or(i64::MAX));
        {
            let hdr = self.hdr.lock();
            for ((request_type, name), histogram) in hdr.iter() {
                for quantile in QUANTILES {
                    // The exact largest value for 1, a bucket's edge otherwise.
                    let us = if quantile >= 1.0 {
                        histogram.max()
                    } else {
                        histogram.value_at_quantile(quantile).min(histogram.max())
                    };
                    self.quantiles
                        .get_or_create(&QuantileLabels {
                            request_type: request_type.to_string(),
                            name: name.to_string(),
                            quantile: quantile.to_string(),
                        })
                        .set(us as f64 / 1000.0);
                }
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// The dropped-iterations counter (no run model produces dropped iterations yet).
    pub fn dropped_iterations(&self) -> &Counter {
        &self.dropped_iterations
    }
}

/// Shared metrics.
pub type SharedMetrics = Arc<Metrics>;
