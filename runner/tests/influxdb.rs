//! The InfluxDB sink against a real InfluxDB 1.x (Debian package `influxdb`, started here
//! with a generated configuration on free loopback ports, HTTP and UDP listeners on): after a
//! run, `SELECT count(...)` equals the recorded requests, over HTTP and over UDP. Also the
//! argument errors, and an unreachable server counted as undelivered points.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain, ActionResult};
use load_density::sinks::influxdb::{self, InfluxSettings};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

/// The sink and the record store are process-wide: the tests take turns.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops the sink when a test ends, even by a failed assertion.
struct StopSink;

impl Drop for StopSink {
    fn drop(&mut self) {
        influxdb::stop_influxdb_sink();
    }
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

fn err_text(result: &ActionResult) -> String {
    match &result.outcome {
        Ok(value) => panic!("action {} should fail, got {value}", result.index),
        Err(error) => error_chain(error),
    }
}

fn run(doc: Value) -> Vec<ActionResult> {
    executor::execute_document(&doc).expect("a valid document")
}

/// An influxd we started; killed (by its PID) when dropped.
struct Influx {
    child: Child,
    http_port: u16,
    udp_port: u16,
}

impl Drop for Influx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_influx(dir: &Path) -> anyhow::Result<Influx> {
    let (rpc_port, http_port, udp_port) = (
        unused_local_port(),
        unused_local_port(),
        unused_local_port(),
    );
    let config = dir.join("influxdb.conf");
    let d = dir.display();
    std::fs::write(
        &config,
        format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http_port}\"\n  \
             log-enabled = false\n\
             [[udp]]\n  enabled = true\n  bind-address = \"127.0.0.1:{udp_port}\"\n  \
             database = \"udpdb\"\n  batch-size = 1000\n  batch-timeout = \"100ms\"\n"
        ),
    )?;
    let child = Command::new("influxd")
        .args(["run", "-config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("influxd.log"))?))
        .spawn()
        .context(
            "cannot start `influxd` (Debian package influxdb; .ci/install-deps installs it)",
        )?;
    Ok(Influx {
        child,
        http_port,
        udp_port,
    })
}

fn client() -> reqwest::Client {
    load_density::core::tls::crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

impl Influx {
    async fn query(&self, http: &reqwest::Client, db: &str, q: &str) -> anyhow::Result<Value> {
        let url = format!("http://127.0.0.1:{}/query", self.http_port);
        let response = http.post(url).form(&[("db", db), ("q", q)]).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("query {q}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// `count(latency_ms)` per name (`{}` when there is no point yet).
    async fn counts(
        &self,
        http: &reqwest::Client,
        db: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let body = self
            .query(
                http,
                db,
                "SELECT count(latency_ms) FROM loaddensity_request GROUP BY \"name\"",
            )
            .await?;
        let mut counts = std::collections::BTreeMap::new();
        for series in body["results"][0]["series"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = series["tags"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let count = series["values"][0][1].as_u64().context("a count")?;
            counts.insert(name, count);
        }
        Ok(counts)
    }
}

fn load_run(target: &HttpTarget) -> std::collections::BTreeMap<String, u64> {
    test_record_instance().clear_records();
    let results = run(json!([["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2, "spawn_rate": 20, "test_time": 2,
        "print_stats": false,
        "host": target.base_url(),
        "tasks": [
            {"method": "get", "request_url": "/delay/10", "name": "slow, with=tags"},
            {"method": "get", "request_url": "/status/503", "name": "broken"}
        ]
    }]]));
    ok_value(&results[0]);
    test_record_instance()
        .stats()
        .entries()
        .iter()
        .map(|e| (e.name().to_owned(), e.num_requests()))
        .collect()
}

#[test]
fn a_real_influxdb_counts_every_request_over_http_and_udp() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopSink;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let dir = tempfile::tempdir()?;
    let influx = start_influx(dir.path())?;
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime
        .block_on(influx.query(&http, "", "CREATE DATABASE httpdb"))
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "influxd did not start: {}",
                std::fs::read_to_string(dir.path().join("influxd.log"))?
            );
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    }
    runtime.block_on(influx.query(&http, "", "CREATE DATABASE udpdb"))?;

    // HTTP, InfluxDB 1.x's /write?db=.
    let url = format!("http://127.0.0.1:{}/write?db=httpdb", influx.http_port);
    ok_value(&run(json!([["LD_start_influxdb_sink", {"transport": "HTTP", "url": url}]]))[0]);
    let expected = load_run(&target);
    assert_eq!(expected.len(), 2);
    let (sent, failed) = influxdb::stop_influxdb_sink();
    assert_eq!((sent, failed), (expected.values().sum::<u64>(), 0));
    let counts = runtime.block_on(influx.counts(&http, "httpdb"))?;
    assert_eq!(counts, expected, "InfluxDB's counts per name over HTTP");
    let failures = runtime.block_on(influx.query(
        &http,
        "httpdb",
        "SELECT count(error) FROM loaddensity_request WHERE success = false",
    ))?;
    assert_eq!(
        failures["results"][0]["series"][0]["values"][0][1].as_u64(),
        Some(expected["broken"])
    );

    // UDP.
    ok_value(
        &run(json!([["LD_start_influxdb_sink", {
            "transport": "udp", "host": "127.0.0.1", "port": influx.udp_port
        }]]))[0],
    );
    let expected = load_run(&target);
    let (sent, failed) = influxdb::stop_influxdb_sink();
    assert_eq!((sent, failed), (expected.values().sum::<u64>(), 0));
    // The UDP listener writes in batches: wait for the counts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let counts = runtime.block_on(influx.counts(&http, "udpdb"))?;
        if counts == expected || Instant::now() > deadline {
            break counts;
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    };
    assert_eq!(counts, expected, "InfluxDB's counts per name over UDP");
    drop(influx);
    runtime.block_on(target.shutdown());
    Ok(())
}

#[test]
fn bad_arguments_and_conflicting_starts_are_errors() {
    let _guard = global_lock();
    let _stop = StopSink;
    let results = run(json!([
        ["LD_start_influxdb_sink", {"transport": "tcp"}],
        ["LD_start_influxdb_sink", {"transport": "http"}],
        ["LD_start_influxdb_sink", {"transport": "http", "url": "ftp://127.0.0.1/write"}],
        ["LD_start_influxdb_sink", {"transport": "http", "url": "http://127.0.0.1:1"}],
        ["LD_start_influxdb_sink", {"transport": "http", "url": "http://127.0.0.1:1/write?db=x", "timeout": 0}],
        ["LD_start_influxdb_sink", {"port": 9}],
        ["LD_start_influxdb_sink", [ "udp", "127.0.0.1", 9]],
        ["LD_start_influxdb_sink", {"port": 10}],
        ["LD_start_influxdb_sink", {"porte": 10}]
    ]));
    let expected = [
        "LD_start_influxdb_sink: unsupported transport: tcp",
        "LD_start_influxdb_sink: url required when transport=http",
        "LD_start_influxdb_sink: InfluxDB URL must use http:// or https://",
        "names no write endpoint",
        "timeout must be a positive number of seconds, got 0",
    ];
    for (result, text) in results.iter().zip(expected) {
        let error = err_text(result);
        assert!(error.contains(text), "{error} should contain {text}");
    }
    ok_value(&results[5]);
    ok_value(&results[6]);
    let conflict = err_text(&results[7]);
    assert!(
        conflict.contains("already running with transport udp, 127.0.0.1:9"),
        "{conflict}"
    );
    assert!(err_text(&results[8]).contains("unknown argument \"porte\""));
}

#[test]
fn an_unreachable_server_is_counted_not_fatal() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopSink;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    influxdb::start_influxdb_sink(InfluxSettings {
        transport: "http".into(),
        url: Some(format!(
            "http://127.0.0.1:{}/write?db=x",
            unused_local_port()
        )),
        timeout: 1.0,
        ..InfluxSettings::default()
    })?;
    let expected = load_run(&target);
    let (sent, failed) = influxdb::stop_influxdb_sink();
    assert_eq!(sent, 0);
    assert_eq!(failed, expected.values().sum::<u64>());
    assert_eq!(target.served(), failed, "the run itself went on");
    runtime.block_on(target.shutdown());
    Ok(())
}
