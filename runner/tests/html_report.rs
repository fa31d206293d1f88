//! The HTML run report in real headless Chromium (chromedriver's W3C WebDriver endpoints,
//! the Debian packages `.ci/install-deps` installs; without them this test fails, it never
//! skips): opened from a file, no console errors, no network requests, every chart drawn,
//! the tables holding the run's counts. Also a distributed (master) run's report.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use load_density::core::test_record_instance;
use load_density::distributed::Worker;
use load_density::{executor, start_test_async, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

/// Tests here share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn program(what: &str, candidates: &[&str], env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{what} is not installed ({candidates:?}): run .ci/install-deps"))
}

/// chromedriver with one headless Chromium session; both ended on drop.
struct Browser {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = program(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "LOAD_DENSITY_CHROMEDRIVER",
        );
        let chromium = program(
            "chromium",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "LOAD_DENSITY_CHROMIUM",
        );
        let port = unused_local_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile");
        let mut browser = Browser {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            _profile: profile,
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
            {
                let status: Value = response.json().await.expect("status JSON");
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let value = browser
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"}
                }}})),
            )
            .await;
        browser.session = format!(
            "/session/{}",
            value["sessionId"].as_str().expect("session id")
        );
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver request");
        let status = response.status();
        let value: Value = response.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    async fn open(&self, url: &str) {
        let path = format!("{}/url", self.session);
        self.call(reqwest::Method::POST, &path, Some(json!({"url": url})))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        let path = format!("{}/execute/sync", self.session);
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The browser console's entries so far (chromedriver's log endpoint).
    async fn console(&self) -> Vec<Value> {
        let path = format!("{}/se/log", self.session);
        let value = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({"type": "browser"})),
            )
            .await;
        value.as_array().cloned().unwrap_or_default()
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, &self.session, None)
            .await;
    }
}

/// What the page shows, read in the browser.
const READ_PAGE: &str = r#"
    const cells = sel => Array.from(document.querySelectorAll(sel)).map(td => td.textContent);
    const charts = Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
        id: svg.id,
        paths: Array.from(svg.querySelectorAll('path')).map(p => ({
            length: p.getTotalLength(),
            points: (p.getAttribute('d').match(/[ML]/g) || []).length
        }))
    }));
    const names = Array.from(document.querySelectorAll('#names tr')).slice(1)
        .map(tr => [tr.cells[1].textContent, Number(tr.cells[2].textContent), Number(tr.cells[3].textContent)]);
    return {
        totals: cells('#totals td').slice(0, 3).map(Number),
        names: names,
        charts: charts,
        verdict: (document.getElementById('verdict') || {}).textContent || null,
        thresholds: document.querySelectorAll('#thresholds tr').length - 1,
        errors: document.querySelectorAll('#errors tr').length - 1,
        failures: document.querySelectorAll('#failures tr').length - 1,
        resources: performance.getEntriesByType('resource').length,
        workers: Array.from(document.querySelectorAll('#run tr'))
            .filter(tr => tr.cells[0].textContent === 'Workers').map(tr => tr.cells[1].textContent)
    };
"#;

/// Writes the report through the executor, opens it in Chromium and checks what every
/// report must hold; returns the page's reading.
async fn check_report(dir: &Path, expected_charts: usize) -> Value {
    let name = dir.join("report").display().to_string();
    let document = json!([["LD_generate_html_report", {"html_name": name}]]);
    let results = executor::execute_document(&document).expect("document");
    let path = results[0]
        .outcome
        .as_ref()
        .expect("written")
        .as_str()
        .expect("path")
        .to_owned();
    let text = std::fs::read_to_string(&path).expect("read the report");
    assert!(!text.contains("<script"), "no script");
    assert!(!text.contains(" src="), "nothing loaded");
    // The run's plan and load model are stated.
    for row in [
        "<th class=\"l\">Plan</th>",
        "<th class=\"l\">Load model</th>",
    ] {
        assert!(text.contains(row), "{row} missing from the run table");
    }

    let browser = Browser::start().await;
    browser.open(&format!("file://{path}")).await;
    let page = browser.js(READ_PAGE).await;
    // The console log is read for real: a probe error shows up in it.
    browser.js("console.error('ld-probe'); return null").await;
    let mut console = browser.console().await;
    let probes = console.len();
    console.retain(|e| {
        !e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ld-probe")
    });
    assert_eq!(
        console.len() + 1,
        probes,
        "the probe is in the console log: {console:?}"
    );
    browser.quit().await;

    let severe: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    assert_eq!(page["resources"], 0, "network requests: {page}");

    let charts = page["charts"].as_array().expect("charts");
    assert_eq!(charts.len(), expected_charts, "{page}");
    for chart in charts {
        let paths = chart["paths"].as_array().expect("paths");
        assert!(!paths.is_empty(), "{chart}");
        for path in paths {
            assert!(path["points"].as_u64() >= Some(2), "a drawn line: {chart}");
            assert!(
                path["length"].as_f64() > Some(0.0),
                "a visible line: {chart}"
            );
        }
    }

    let stats = test_record_instance().stats();
    let total = stats.total();
    assert_eq!(
        page["totals"],
        json!([
            total.num_requests(),
            total.num_successes(),
            total.num_failures()
        ]),
        "{page}"
    );
    let names = page["names"].as_array().expect("names");
    assert_eq!(
        names.len(),
        stats.entries().len() + 1,
        "a row per name and the total"
    );
    for entry in stats.entries() {
        let row = names
            .iter()
            .find(|r| r[0] == entry.name())
            .unwrap_or_else(|| panic!("no row for {}: {page}", entry.name()));
        assert_eq!(row[1], entry.num_requests());
        assert_eq!(row[2], entry.num_failures());
    }
    page
}

fn config(value: Value) -> StartTest {
    serde_json::from_value(value).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_runs_report_opens_in_chromium_with_its_charts_and_counts() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("target");
    let summary = start_test_async(config(json!({
        "user_count": 3,
        "spawn_rate": 3,
        "test_time": 4,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/status/503"}
        ],
        "thresholds": {"requests": ["count>0"], "failure_rate": ["rate<0.01"]}
    })))
    .await
    .expect("run");
    assert!(summary.totals.failures > 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let page = check_report(dir.path(), 4).await;
    if let Some(copy) = std::env::var_os("LOAD_DENSITY_KEEP_REPORT") {
        let _ = std::fs::copy(dir.path().join("report.html"), copy);
    }
    assert_eq!(page["verdict"], "failed");
    assert_eq!(page["thresholds"], 2);
    assert_eq!(page["errors"], 1, "the 503s, grouped: {page}");
    assert!(page["failures"].as_u64() >= Some(1));
    assert_eq!(page["workers"], json!(["0"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_masters_report_covers_its_workers() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("target");
    let port = unused_local_port();
    let master = tokio::spawn(start_test_async(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": 2,
        "expected_workers_timeout": 20,
        "user_count": 4,
        "spawn_rate": 4,
        "test_time": 4,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))));
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            Worker::start(config(json!({
                "runner_mode": "worker",
                "master_host": "127.0.0.1",
                "master_port": port,
                "master_timeout": 20,
            })))
            .await
            .expect("worker"),
        );
    }
    let summary = tokio::time::timeout(Duration::from_secs(60), master)
        .await
        .expect("the master ends")
        .expect("join")
        .expect("master run");
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(20), worker.wait()).await;
    }
    assert!(summary.totals.requests > 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let page = check_report(dir.path(), 4).await;
    assert_eq!(page["totals"][0], summary.totals.requests, "{page}");
    assert_eq!(page["workers"], json!(["2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_shows_the_live_threshold_results() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    let config = config(json!({
        "user_count": 2,
        "spawn_rate": 2,
        "test_time": 30,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "web_ui_dict": {"host": "127.0.0.1", "port": 0},
        "tasks": [{"method": "get", "request_url": "/get"}],
        "thresholds": {"requests": ["count>0", "count<1"]}
    }));
    let settings = load_density::monitor::MonitorSettings::of(&config);
    let env = load_density::prepare_env(config).await.expect("run");
    let monitor =
        load_density::monitor::start(std::sync::Arc::new(env.clone()), settings).expect("monitor");
    let addr = load_density::web::local_addr(&env).expect("the web UI listens");
    let browser = Browser::start().await;
    browser.open(&format!("http://{addr}/")).await;
    let started = Instant::now();
    let rows = loop {
        let rows = browser
            .js(
                r#"return document.getElementById('thresholds-box').hidden ? null
                   : Array.from(document.querySelectorAll('#thresholds-body tr'))
                       .map(tr => Array.from(tr.cells).map(td => td.textContent))"#,
            )
            .await;
        if rows.as_array().is_some_and(|r| r.len() == 2) {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no thresholds shown: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    browser.quit().await;
    env.stop();
    let mut summary = env.wait().await;
    monitor.finish(&mut summary);
    assert_eq!(rows[0][0], "requests");
    assert_eq!(rows[0][1], "count>0");
    assert_eq!(rows[0][3], "pass");
    assert_eq!(rows[1][3], "fail");
    assert!(
        rows[0][2].as_str().and_then(|v| v.parse::<f64>().ok()) > Some(0.0),
        "{rows}"
    );
    assert_eq!(
        summary.verdict,
        Some(load_density::thresholds::Verdict::Failed)
    );
}
