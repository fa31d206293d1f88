//! The Prometheus exporter, scraped by a real Prometheus (Debian package `prometheus`, started
//! here on free loopback ports with a 1 s scrape interval): its query API reports the same
//! request count per name as the run's statistics. Also: stop frees the port, a second start
//! with other arguments is an error, a port in use is an error, and the web UI serves
//! `/metrics` while the exporter runs.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain, ActionResult};
use load_density::sinks::prometheus;
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

/// The exporter and the record store are process-wide: the tests take turns.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Stops the exporter when a test ends, even by a failed assertion.
struct StopExporter;

impl Drop for StopExporter {
    fn drop(&mut self) {
        prometheus::stop_prometheus_exporter();
    }
}

/// A Prometheus server we started; killed (by its PID) when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, exporter_port: u16) -> anyhow::Result<Prometheus> {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: loaddensity\n    scrape_interval: 1s\n    static_configs:\n      \
             - targets: ['127.0.0.1:{exporter_port}']\n"
        ),
    )?;
    let port = unused_local_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.join("prometheus.log"),
        )?))
        .spawn()
        .context(
            "cannot start `prometheus` (Debian package prometheus; .ci/install-deps installs it)",
        )?;
    Ok(Prometheus { child, port })
}

fn client() -> reqwest::Client {
    load_density::core::tls::crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// `sum by (name) (loaddensity_requests_total)` from Prometheus's query API.
async fn counts_in_prometheus(
    http: &reqwest::Client,
    prometheus: &Prometheus,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let url = format!("http://127.0.0.1:{}/api/v1/query", prometheus.port);
    let answer: Value = http
        .get(url)
        .query(&[("query", "sum by (name) (loaddensity_requests_total)")])
        .send()
        .await?
        .json()
        .await?;
    let mut counts = BTreeMap::new();
    for series in answer["data"]["result"].as_array().into_iter().flatten() {
        let name = series["metric"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let value: f64 = series["value"][1].as_str().unwrap_or("0").parse()?;
        counts.insert(name, value as u64);
    }
    Ok(counts)
}

#[test]
fn a_real_prometheus_scrapes_the_same_counts_as_the_run() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopExporter;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let dir = tempfile::tempdir()?;
    test_record_instance().clear_records();

    let started = run(json!([["LD_start_prometheus_exporter", {"port": 0}]]));
    let port = ok_value(&started[0]).as_u64().context("a port")? as u16;
    assert_ne!(port, 0);
    let prometheus = start_prometheus(dir.path(), port)?;
    let http = client();

    // Prometheus is up once its query API answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime
        .block_on(counts_in_prometheus(&http, &prometheus))
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "prometheus did not start: {}",
                std::fs::read_to_string(dir.path().join("prometheus.log"))?
            );
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    }

    let results = run(json!([["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 3, "spawn_rate": 30, "test_time": 2,
        "print_stats": false,
        "host": target.base_url(),
        "tasks": [
            {"method": "get", "request_url": "/get", "name": "fast"},
            {"method": "get", "request_url": "/delay/20", "name": "slow"},
            {"method": "get", "request_url": "/status/503", "name": "broken"}
        ]
    }]]));
    let summary = ok_value(&results[0]);
    let stats = test_record_instance().stats();
    let expected: BTreeMap<String, u64> = stats
        .entries()
        .iter()
        .map(|e| (e.name().to_owned(), e.num_requests()))
        .collect();
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(
        expected.values().sum::<u64>(),
        summary["totals"]["requests"].as_u64().context("requests")?
    );
    assert_eq!(target.served(), expected.values().sum::<u64>());

    // Scrapes every second: wait until Prometheus has the final counts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen;
    loop {
        seen = runtime.block_on(counts_in_prometheus(&http, &prometheus))?;
        if seen == expected || Instant::now() > deadline {
            break;
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    }
    assert_eq!(seen, expected, "Prometheus's counts per name vs the run's");

    // The exposition itself: buckets, failures, quantiles from the HDR histograms.
    let text = runtime.block_on(async {
        http.get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await?
            .text()
            .await
    })?;
    let broken = expected["broken"];
    for line in [
        format!(
            "loaddensity_requests_total{{request_type=\"GET\",name=\"broken\",outcome=\"failure\"}} {broken}"
        ),
        "loaddensity_request_latency_ms_bucket{le=\"2500.0\",request_type=\"GET\",name=\"slow\"}"
            .to_owned(),
        "loaddensity_response_bytes_bucket{le=\"1048576.0\",request_type=\"GET\",name=\"fast\"}"
            .to_owned(),
        "loaddensity_request_latency_quantile_ms{request_type=\"GET\",name=\"slow\",quantile=\"0.99\"}"
            .to_owned(),
        "loaddensity_users 0".to_owned(),
        "loaddensity_dropped_iterations_total 0".to_owned(),
        "loaddensity_exporter_dropped_events_total 0".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    let p50_slow = text
        .lines()
        .find(|l| l.starts_with("loaddensity_request_latency_quantile_ms{request_type=\"GET\",name=\"slow\",quantile=\"0.5\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .context("slow p50")?
        .parse::<f64>()?;
    assert!(
        p50_slow >= 20.0,
        "/delay/20 takes 20 ms at least: {p50_slow}"
    );

    drop(prometheus);
    run(json!([["LD_stop_prometheus_exporter"]]));
    runtime.block_on(target.shutdown());
    Ok(())
}

#[test]
fn stop_frees_the_port_and_conflicting_starts_are_errors() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopExporter;
    let port = unused_local_port();
    let results = run(json!([
        ["LD_start_prometheus_exporter", {"port": port, "addr": "127.0.0.1"}],
        ["LD_start_prometheus_exporter", [port, "127.0.0.1"]],
        ["LD_start_prometheus_exporter", {"port": port, "addr": "::1"}]
    ]));
    assert_eq!(ok_value(&results[0]), &json!(port));
    assert_eq!(
        ok_value(&results[1]),
        &json!(port),
        "the same start is a no-op"
    );
    let conflict = err_text(&results[2]);
    assert!(
        conflict.contains("LD_start_prometheus_exporter")
            && conflict.contains("already running")
            && conflict.contains(&port.to_string()),
        "{conflict}"
    );
    assert!(prometheus::local_addr().is_some());

    run(json!([["LD_stop_prometheus_exporter"]]));
    assert!(prometheus::local_addr().is_none());
    // The server is gone: the port can be bound again, and a restart works.
    let held = TcpListener::bind(("127.0.0.1", port)).context("the port is free after stop")?;
    let in_use = run(json!([["LD_start_prometheus_exporter", {"port": port}]]));
    let error = err_text(&in_use[0]);
    assert!(
        error.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{error}"
    );
    drop(held);
    let again = run(json!([
        ["LD_start_prometheus_exporter", {"port": port}],
        ["LD_stop_prometheus_exporter"],
        ["LD_start_prometheus_exporter", {"addr": "localhost"}]
    ]));
    assert_eq!(ok_value(&again[0]), &json!(port));
    assert!(err_text(&again[2]).contains("addr must be an IP address"));
    Ok(())
}

#[test]
fn the_web_ui_serves_metrics_while_the_exporter_runs() -> anyhow::Result<()> {
    let _guard = global_lock();
    let _stop = StopExporter;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let target = HttpTarget::start().await?;
        let config = serde_json::from_value(json!({
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 2, "spawn_rate": 100, "test_time": null,
            "host": target.base_url(), "print_stats": false,
            "web_ui_dict": {"host": "127.0.0.1", "port": 0},
            "tasks": [{"method": "get", "request_url": "/get", "name": "ui"}]
        }))?;
        let env = load_density::prepare_env(config).await?;
        let addr = load_density::web::local_addr(&env).context("web UI address")?;
        let http = client();
        let url = format!("http://{addr}/metrics");
        let before = http.get(&url).send().await?;
        assert_eq!(before.status(), 404);
        prometheus::start_prometheus_exporter(0, "127.0.0.1")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = http.get(&url).send().await?.text().await?;
            if text.contains("loaddensity_users 2")
                && text.contains("name=\"ui\",outcome=\"success\"")
            {
                break text;
            }
            if Instant::now() > deadline {
                bail!("no users or requests in /metrics:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(text.ends_with("# EOF\n"), "{text}");
        prometheus::stop_prometheus_exporter();
        env.stop();
        env.wait().await;
        target.shutdown().await;
        Ok(())
    })
}
