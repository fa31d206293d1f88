//! The metric families, fed from request batches, and their OpenMetrics text.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use hdrhistogram::Histogram as Hdr;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
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

/// Count, sum and per-bucket counts of observed values, with the buckets and the arithmetic
/// of `prometheus-client`'s `Histogram` (a value goes to the first bucket whose upper bound is
/// at least the value; the sum adds the values in the order observed), kept as plain numbers
/// and updated under the lock of the series map once per batch instead of a lock per value.
#[derive(Debug, Clone)]
struct Buckets<const N: usize> {
    sum: f64,
    count: u64,
    /// Per bucket, the last one above every bound (`+Inf`).
    counts: [u64; N],
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self {
            sum: 0.0,
            count: 0,
            counts: [0; N],
        }
    }
}

impl<const N: usize> Buckets<N> {
    /// Counts `value` in `bucket`.
    fn add(&mut self, value: f64, bucket: usize) {
        self.sum += value;
        self.count += 1;
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
    }

    /// Encodes it as `prometheus-client` encodes a `Histogram` with these upper bounds.
    fn encode(
        &self,
        bounds: &[f64],
        labels: &NameLabels,
        encoder: &mut MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.counts)
            .collect();
        encoder
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }
}

/// The first bucket whose upper bound is at least `value` (`bounds.len()` for none: the
/// `+Inf` bucket). The buckets are few and most values fall in the first ones: a scan.
fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds
        .iter()
        .position(|bound| *bound >= value)
        .unwrap_or(bounds.len())
}

/// What the exporter keeps per `(request type, name)`.
#[derive(Debug)]
struct SeriesStats {
    labels: NameLabels,
    /// Latencies in microseconds, for the quantile gauges.
    hdr: Hdr<u64>,
    latency: Buckets<{ LATENCY_BUCKETS_MS.len() + 1 }>,
    bytes: Buckets<{ BYTES_BUCKETS.len() + 1 }>,
}

/// Every series' statistics.
type SeriesMap = HashMap<(Arc<str>, Arc<str>), SeriesStats>;

/// One of the two histogram families (`loaddensity_request_latency_ms`,
/// `loaddensity_response_bytes`) over the series map, registered as a metric so that it is
/// encoded in its place among the families, exactly as a `Family<NameLabels, Histogram>`.
#[derive(Debug)]
struct HistogramFamily {
    series: Arc<Mutex<SeriesMap>>,
    latency: bool,
}

impl EncodeMetric for HistogramFamily {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for stats in self.series.lock().values() {
            if self.latency {
                stats
                    .latency
                    .encode(&LATENCY_BUCKETS_MS, &stats.labels, &mut encoder)?;
            } else {
                stats
                    .bytes
                    .encode(&BYTES_BUCKETS, &stats.labels, &mut encoder)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    fn is_empty(&self) -> bool {
        self.series.lock().is_empty()
    }
}

/// Every metric of the exporter.
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    users: Gauge,
    dropped_iterations: Counter,
    dropped_events: Counter,
    quantiles: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    /// Per (request type, name): the HDR histogram and the two histograms' numbers.
    series: Arc<Mutex<SeriesMap>>,
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
        let series = Arc::new(Mutex::new(SeriesMap::new()));
        let latency = HistogramFamily {
            series: series.clone(),
            latency: true,
        };
        let bytes = HistogramFamily {
            series: series.clone(),
            latency: false,
        };
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
            latency,
        );
        registry.register(
            "loaddensity_response_bytes",
            "Response size in bytes",
            bytes,
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
            users,
            dropped_iterations,
            dropped_events,
            quantiles,
            series,
            encoding: Mutex::new(()),
        }
    }

    /// Counts one batch: each series finds its statistics and label sets once per batch,
    /// under one lock, and each request costs an HDR record and two bucket counts.
    pub fn observe(&self, batch: &[Series]) {
        let mut map = self.series.lock();
        for series in batch {
            let stats = match map.get_mut(&(series.request_type.clone(), series.name.clone())) {
                Some(stats) => stats,
                None => map
                    .entry((series.request_type.clone(), series.name.clone()))
                    .or_insert_with(|| SeriesStats {
                        labels: NameLabels {
                            request_type: series.request_type.to_string(),
                            name: series.name.to_string(),
                        },
                        hdr: new_hdr(),
                        latency: Buckets::default(),
                        bytes: Buckets::default(),
                    }),
            };
            let mut failures = 0;
            let mut last_length = None;
            let mut length_bucket = 0;
            for point in &series.points {
                // Auto-resizing: recording cannot fail for a value >= 1.
                let us = u64::try_from(point.response_time.as_micros()).unwrap_or(u64::MAX);
                let _ = stats.hdr.record(us.max(1));
                let ms = point.response_time.as_secs_f64() * 1000.0;
                stats.latency.add(ms, bucket_of(&LATENCY_BUCKETS_MS, ms));
                // A series' responses often have one size: its bucket is found once.
                if last_length != Some(point.response_length) {
                    last_length = Some(point.response_length);
                    length_bucket = bucket_of(&BYTES_BUCKETS, point.response_length as f64);
                }
                stats.bytes.add(point.response_length as f64, length_bucket);
                failures += u64::from(!point.is_success());
            }
            let successes = series.points.len() as u64 - failures;
            for (outcome, count) in [("success", successes), ("failure", failures)] {
                if count > 0 {
                    self.requests
                        .get_or_create(&OutcomeLabels {
                            request_type: stats.labels.request_type.clone(),
                            name: stats.labels.name.clone(),
                            outcome,
                        })
                        .inc_by(count);
                }
            }
        }
    }

    /// The number of `(request type, name)` series the exporter holds.
    pub fn series(&self) -> usize {
        self.series.lock().len()
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
            let series = self.series.lock();
            for ((request_type, name), stats) in series.iter() {
                let histogram = &stats.hdr;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::Point;
    use prometheus_client::metrics::histogram::Histogram;
    use std::time::Duration;

    #[test]
    fn the_histograms_encode_as_prometheus_client_histograms_do() {
        let mut points: Vec<Point> = (0..5000u64)
            .map(|i| Point {
                response_time: Duration::from_nanos(i * i * 7919 % 20_000_000_000),
                response_length: if i % 3 == 0 {
                    612
                } else {
                    i * i * 31 % 3_000_000
                },
                end_ns: 0,
                error: None,
            })
            .collect();
        // Values on the bounds themselves.
        for ms in [5, 10, 10_000] {
            points.push(Point {
                response_time: Duration::from_millis(ms),
                response_length: ms * 1024 / 10,
                ..points[0].clone()
            });
        }
        for length in [64, 1024, 1_048_576] {
            points.push(Point {
                response_length: length,
                ..points[0].clone()
            });
        }
        let series = |points: &[Point]| Series {
            request_type: Arc::from("GET"),
            name: Arc::from("/x y"),
            points: points.to_vec(),
        };
        let metrics = Metrics::new();
        let (first, second) = points.split_at(2000);
        metrics.observe(&[series(first)]);
        metrics.observe(&[series(second)]);
        let text = metrics.encode(0);

        let mut registry = Registry::default();
        let latency = Family::<NameLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS_MS)
        });
        let bytes =
            Family::<NameLabels, Histogram>::new_with_constructor(|| Histogram::new(BYTES_BUCKETS));
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
        let labels = NameLabels {
            request_type: "GET".to_owned(),
            name: "/x y".to_owned(),
        };
        for point in &points {
            latency
                .get_or_create(&labels)
                .observe(point.response_time.as_secs_f64() * 1000.0);
            bytes
                .get_or_create(&labels)
                .observe(point.response_length as f64);
        }
        let mut reference = String::new();
        encode(&mut reference, &registry).expect("encoding into a String");
        let reference = reference
            .strip_suffix("# EOF\n")
            .expect("the text ends with # EOF");
        assert!(
            reference.contains("le=\"+Inf\"") && reference.contains(" 5006\n"),
            "{reference}"
        );
        assert!(text.contains(reference), "{text}\n---\n{reference}");
        assert!(text.starts_with("# HELP loaddensity_requests "), "{text}");
    }
}
