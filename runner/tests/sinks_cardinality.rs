//! Exporter series are capped as the statistics tables are: 20,000 distinct names (URLs with
//! ids) reach the exporters as the first 10,000 plus one `(other)` series that carries the
//! rest, in the hub's batches, in Prometheus' text and in InfluxDB's points, and every total
//! stays exact. The hub and the exporters are process-wide: this file has one test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use load_density::sinks::{self, influxdb, prometheus, DEFAULT_MAX_NAMES, OTHER};
use load_density_core::RequestEvent;

const DISTINCT: usize = 20_000;

fn event(name: &str, failed: bool) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(format!("http://127.0.0.1:9{name}").as_str()),
        status: Some(if failed { 500 } else { 200 }),
        response_time: Duration::from_micros(1_500),
        response_length: 10,
        error: failed.then(|| Arc::from("HTTP 500")),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

/// `loaddensity_requests_total` per name label, from the OpenMetrics text.
fn prometheus_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("loaddensity_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").expect("labels, then the value");
        let name = labels
            .split("name=\"")
            .nth(1)
            .and_then(|after| after.split('"').next())
            .expect("a name label");
        *counts.entry(name.to_owned()).or_default() +=
            value.trim().parse::<u64>().expect("a count");
    }
    counts
}

#[test]
fn twenty_thousand_names_reach_the_exporters_as_ten_thousand_and_other() -> anyhow::Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(1_000)))?;
    let udp_port = udp.local_addr()?.port();
    // Reads the InfluxDB datagrams as they come, until a second passes without one.
    let reader = std::thread::spawn(move || {
        let mut buffer = vec![0u8; 1 << 16];
        let mut text = Vec::new();
        let mut started = false;
        loop {
            match udp.recv(&mut buffer) {
                Ok(length) => {
                    started = true;
                    text.extend_from_slice(&buffer[..length]);
                }
                Err(_) if started => break,
                Err(_) => {}
            }
        }
        String::from_utf8(text).unwrap_or_default()
    });
    let mut feed = sinks::hub().subscribe("test");
    prometheus::start_prometheus_exporter(0, "127.0.0.1")?;
    influxdb::start_influxdb_sink(influxdb::InfluxSettings {
        host: "127.0.0.1".to_owned(),
        port: udp_port,
        ..influxdb::InfluxSettings::default()
    })?;

    // Every name twice (the second time in a later batch), one in ten failing.
    let names: Vec<String> = (0..DISTINCT).map(|i| format!("/items/{i}")).collect();
    let mut published = 0u64;
    let mut failures = 0u64;
    for round in 0..2 {
        for chunk in names.chunks(5_000) {
            let batch: Vec<RequestEvent> = chunk
                .iter()
                .enumerate()
                .map(|(i, name)| event(name, round == 1 && i % 10 == 0))
                .collect();
            failures += batch.iter().filter(|e| e.error.is_some()).count() as u64;
            published += batch.len() as u64;
            sinks::publish(&batch);
        }
    }
    assert_eq!(published, 2 * DISTINCT as u64);

    // The hub's batches: never more than the cap plus (other), and every request in them.
    let mut series_seen = BTreeSet::new();
    let mut points = 0;
    let mut other_points = 0;
    for _ in 0..8 {
        let batch = feed.blocking_recv().expect("a batch");
        for series in batch.iter() {
            series_seen.insert((series.request_type.to_string(), series.name.to_string()));
            points += series.points.len();
            if &*series.name == OTHER {
                assert_eq!(
                    &*series.request_type, "",
                    "the overflow series has no request type"
                );
                other_points += series.points.len();
            }
        }
    }
    assert_eq!(points as u64, published);
    assert_eq!(series_seen.len(), DEFAULT_MAX_NAMES + 1);
    assert_eq!(other_points, 2 * (DISTINCT - DEFAULT_MAX_NAMES));
    assert_eq!(
        sinks::overflowed(),
        2 * (DISTINCT - DEFAULT_MAX_NAMES) as u64
    );

    // Prometheus: 10,000 names and (other), and the counts add up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counts = tokio::runtime::Runtime::new()?.block_on(async {
        loop {
            let text = prometheus::encode_current().expect("the exporter runs");
            let counts = prometheus_counts(&text);
            if counts.values().sum::<u64>() == published || std::time::Instant::now() > deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(
        counts.values().sum::<u64>(),
        published,
        "every request counted"
    );
    assert_eq!(counts.len(), DEFAULT_MAX_NAMES + 1);
    assert_eq!(
        counts.get(OTHER),
        Some(&(2 * (DISTINCT - DEFAULT_MAX_NAMES) as u64))
    );
    assert_eq!(counts.get("/items/0"), Some(&2));
    assert!(!counts.contains_key(&format!("/items/{}", DEFAULT_MAX_NAMES)));

    // InfluxDB: one point per request, at most 10,001 distinct name tags.
    let (sent, failed) = influxdb::stop_influxdb_sink();
    assert_eq!((sent, failed), (published, 0));
    let received = reader.join().expect("the UDP reader");
    let mut lines = 0u64;
    let mut failed_lines = 0u64;
    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for line in received.lines() {
        lines += 1;
        failed_lines += u64::from(line.contains("success=false"));
        let name = line
            .split(",name=")
            .nth(1)
            .and_then(|after| after.split(' ').next())
            .unwrap_or("(no name tag)");
        *tags.entry(name.to_owned()).or_default() += 1;
    }
    // Loopback UDP may drop a datagram when the reader falls behind: what arrived is checked,
    // and when everything arrived, exactly.
    assert!(lines > 0);
    assert!(
        tags.len() <= DEFAULT_MAX_NAMES + 1,
        "{} name tags",
        tags.len()
    );
    if lines == published {
        assert_eq!(tags.len(), DEFAULT_MAX_NAMES + 1);
        assert_eq!(
            tags.get("(other)"),
            Some(&(2 * (DISTINCT - DEFAULT_MAX_NAMES) as u64))
        );
        assert_eq!(failed_lines, failures);
    }
    prometheus::stop_prometheus_exporter();
    sinks::hub().unsubscribe(feed.id());
    Ok(())
}
