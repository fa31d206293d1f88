//! The OpenTelemetry exporter against an OTLP/gRPC receiver built here on the published OTLP
//! protobuf definitions (`opentelemetry-proto`'s generated tonic server): the instruments,
//! their units and attributes, the resource's service name, and counts equal to the run's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain, ActionResult};
use load_density::sinks::otel;
use load_density_testkit::HttpTarget;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde_json::{json, Value};

fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops the exporter when a test ends, even by a failed assertion.
struct StopExporter;

impl Drop for StopExporter {
    fn drop(&mut self) {
        otel::stop_opentelemetry_exporter();
    }
}

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

type Key = (String, String, String);

#[test]
fn an_otlp_receiver_gets_the_instruments_and_the_counts() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopExporter;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let receiver = Receiver::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let server = {
        let receiver = receiver.clone();
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(receiver))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        })
    };

    test_record_instance().clear_records();
    let endpoint = format!("http://127.0.0.1:{port}");
    let results = executor::execute_document(&json!([
        ["LD_start_opentelemetry_exporter", {"endpoint": endpoint, "service_name": "ld-test",
                                             "export_interval_ms": 500}],
        ["LD_start_opentelemetry_exporter", [endpoint, "ld-test", 500]],
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 2, "spawn_rate": 20, "test_time": 2, "print_stats": false,
            "host": target.base_url(),
            "tasks": [
                {"method": "get", "request_url": "/bytes/100", "name": "bytes"},
                {"method": "get", "request_url": "/status/500", "name": "broken"}
            ]
        }],
        ["LD_start_opentelemetry_exporter", {"endpoint": endpoint, "service_name": "other"}],
        ["LD_stop_opentelemetry_exporter"]
    ]))?;
    assert_eq!(ok_value(&results[0]), &json!(true));
    assert_eq!(
        ok_value(&results[1]),
        &json!(true),
        "the same start is a no-op"
    );
    ok_value(&results[2]);
    match &results[3].outcome {
        Err(error) => assert!(error_chain(error).contains("already running"), "{error}"),
        Ok(value) => panic!("a conflicting start succeeded: {value}"),
    }

    let stats = test_record_instance().stats();
    let mut expected: BTreeMap<Key, u64> = BTreeMap::new();
    for entry in stats.entries() {
        for (outcome, count) in [
            ("success", entry.num_successes()),
            ("failure", entry.num_failures()),
        ] {
            if count > 0 {
                expected.insert(
                    ("GET".into(), entry.name().to_owned(), outcome.into()),
                    count,
                );
            }
        }
    }
    assert_eq!(expected.len(), 2, "{expected:?}");

    // Cumulative temporality: the last data point of each attribute set is the total.
    let requests = receiver
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(!requests.is_empty(), "no export arrived");
    let mut counts: BTreeMap<Key, u64> = BTreeMap::new();
    let mut latency_counts: BTreeMap<Key, u64> = BTreeMap::new();
    let mut size_sums: BTreeMap<Key, f64> = BTreeMap::new();
    let mut units = BTreeMap::new();
    for request in &requests {
        for resource_metrics in &request.resource_metrics {
            let resource = resource_metrics.resource.as_ref().context("a resource")?;
            assert_eq!(
                attribute(&resource.attributes, "service.name").as_deref(),
                Some("ld-test")
            );
            for scope in &resource_metrics.scope_metrics {
                assert_eq!(
                    scope.scope.as_ref().map(|s| s.name.as_str()),
                    Some("loaddensity")
                );
                for metric in &scope.metrics {
                    units.insert(metric.name.clone(), metric.unit.clone());
                    match &metric.data {
                        Some(metric::Data::Sum(sum)) => {
                            assert_eq!(metric.name, "loaddensity.requests");
                            assert!(sum.is_monotonic);
                            for point in &sum.data_points {
                                let key = key_of(&point.attributes)?;
                                let value = match point.value {
                                    Some(number_data_point::Value::AsInt(v)) => v as u64,
                                    Some(number_data_point::Value::AsDouble(v)) => v as u64,
                                    None => 0,
                                };
                                counts.insert(key, value);
                            }
                        }
                        Some(metric::Data::Histogram(histogram)) => {
                            for point in &histogram.data_points {
                                let key = key_of(&point.attributes)?;
                                if metric.name == "loaddensity.request.latency" {
                                    latency_counts.insert(key, point.count);
                                } else {
                                    size_sums.insert(key, point.sum.unwrap_or_default());
                                }
                            }
                        }
                        other => panic!("unexpected data for {}: {other:?}", metric.name),
                    }
                }
            }
        }
    }
    assert_eq!(counts, expected, "loaddensity.requests per attribute set");
    assert_eq!(
        latency_counts, expected,
        "loaddensity.request.latency counts"
    );
    let bytes_key: Key = ("GET".into(), "bytes".into(), "success".into());
    let bytes_total = stats
        .entries()
        .iter()
        .find(|e| e.name() == "bytes")
        .map(|e| e.total_content_length())
        .context("bytes entry")?;
    assert_eq!(size_sums.get(&bytes_key).copied(), Some(bytes_total as f64));
    assert_eq!(
        units,
        BTreeMap::from([
            ("loaddensity.request.latency".to_owned(), "ms".to_owned()),
            ("loaddensity.requests".to_owned(), "1".to_owned()),
            ("loaddensity.response.size".to_owned(), "By".to_owned()),
        ])
    );
    server.abort();
    runtime.block_on(target.shutdown());
    Ok(())
}

fn key_of(attributes: &[KeyValue]) -> anyhow::Result<Key> {
    Ok((
        attribute(attributes, "request_type").context("request_type")?,
        attribute(attributes, "name").context("name")?,
        attribute(attributes, "outcome").context("outcome")?,
    ))
}

#[test]
fn bad_arguments_are_errors() {
    let _guard = global_lock();
    let _stop = StopExporter;
    let results = executor::execute_document(&json!([
        ["LD_start_opentelemetry_exporter", {"endpoint": "127.0.0.1:4317"}],
        ["LD_start_opentelemetry_exporter", {"export_interval_ms": 0}]
    ]))
    .expect("a valid document");
    for (result, text) in results.iter().zip([
        "endpoint must be an http:// or https:// URL",
        "export_interval_ms must be a positive number",
    ]) {
        match &result.outcome {
            Err(error) => assert!(error_chain(error).contains(text), "{error}"),
            Ok(value) => panic!("accepted: {value}"),
        }
    }
}
