//! What the exporters cost per request, without a target: publishes `COUNT` synthetic request
//! events (batches of 10,000, as the collector hands over 100 ms at 100,000 requests per second)
//! to the sink hub with the exporter(s) of `MODE` running, then stops them (which drains their
//! feeds). Made to run under `valgrind --tool=callgrind`, whose instruction counts do not
//! depend on the machine's load: the cost of an exporter is the count of its mode minus the
//! count of `none`, divided by `COUNT` (see bench/RESULTS.md, "Exporters' cost").
//!
//! ```sh
//! cargo build --release -p load-density --example sink_cost
//! valgrind --tool=callgrind target/release/examples/sink_cost prometheus 200000
//! ```
//!
//! `MODE` is `none`, `prometheus`, `influxdb` (UDP to a loopback socket this program reads),
//! `otel` (OTLP to a loopback port nothing listens on) or `all`. `NAMES` (default 4) is how
//! many distinct request names the events rotate through.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use load_density::sinks;
use load_density_core::RequestEvent;

const BATCH: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "none".to_owned());
    let count: usize = args.next().as_deref().unwrap_or("200000").parse()?;
    let names: usize = args.next().as_deref().unwrap_or("4").parse()?;
    let on = |exporter: &str| mode == exporter || mode == "all";
    if !["none", "prometheus", "influxdb", "otel", "all"].contains(&mode.as_str()) {
        anyhow::bail!("unknown mode {mode:?}: none, prometheus, influxdb, otel or all");
    }
    // A UDP socket that takes the InfluxDB datagrams (and drops what overflows its buffer).
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let udp_port = udp.local_addr()?.port();
    if on("prometheus") {
        sinks::prometheus::start_prometheus_exporter(0, "127.0.0.1")?;
    }
    if on("influxdb") {
        sinks::influxdb::start_influxdb_sink(sinks::influxdb::InfluxSettings {
            host: "127.0.0.1".to_owned(),
            port: udp_port,
            ..sinks::influxdb::InfluxSettings::default()
        })?;
    }
    if on("otel") {
        let unused = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        sinks::otel::start_opentelemetry_exporter(sinks::otel::OtelSettings {
            endpoint: Some(format!("http://127.0.0.1:{unused}")),
            service_name: "sink_cost".to_owned(),
            export_interval_ms: 1000,
        })?;
    }
    let request_type: Arc<str> = Arc::from("GET");
    let name_list: Vec<(Arc<str>, Arc<str>)> = (0..names.max(1))
        .map(|i| {
            (
                Arc::from(format!("/api/item{i}").as_str()),
                Arc::from(format!("http://127.0.0.1:8080/api/item{i}").as_str()),
            )
        })
        .collect();
    let failure: Arc<str> = Arc::from("HTTP 503 Service Unavailable");
    let start = SystemTime::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..count {
        let (name, url) = &name_list[i % name_list.len()];
        batch.push(RequestEvent {
            request_type: request_type.clone(),
            name: name.clone(),
            url: url.clone(),
            status: Some(if i % 100 == 99 { 503 } else { 200 }),
            response_time: Duration::from_micros(150 + (i as u64 * 7919) % 5000),
            response_length: 612,
            error: (i % 100 == 99).then(|| failure.clone()),
            start_time: start + Duration::from_micros(i as u64 * 10),
            start_delay: None,
        });
        if batch.len() == BATCH {
            sinks::publish(&batch);
            batch.clear();
        }
    }
    sinks::publish(&batch);
    if on("prometheus") {
        sinks::prometheus::stop_prometheus_exporter();
    }
    if on("influxdb") {
        let (sent, failed) = sinks::influxdb::stop_influxdb_sink();
        println!("influxdb: {sent} points sent, {failed} failed");
    }
    if on("otel") {
        sinks::otel::stop_opentelemetry_exporter();
    }
    println!("{mode}: {count} events published");
    Ok(())
}
