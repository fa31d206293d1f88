//! The dashboard in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver endpoints (plain HTTP). Chromium and chromedriver are the Debian packages
//! `.ci/install-deps` installs; without them these tests fail, they never skip.
//!
//! Screenshots land in `$CARGO_TARGET_TMPDIR/web_ui/`.

mod web_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use load_density::web::{ChartHistory, ChartPoint, WebUi, WebUiSettings};
use serde_json::{json, Value};
use web_support::{start, Fake};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(what: &str, candidates: &[&str], env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{what} is not installed (looked for {candidates:?}, or set {env_var}): run .ci/install-deps")
        })
}

/// chromedriver on a free local port, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session (a fresh profile), deleted on [`Session::quit`].
struct Session<'a> {
    driver: &'a Driver,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let chromedriver = find_program(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "LOAD_DENSITY_CHROMEDRIVER",
        );
        let port = load_density_testkit::unused_local_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: web_support::client(),
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
            {
                let status: Value = response.json().await.expect("status JSON");
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    async fn session(&self) -> Session<'_> {
        let chromium = find_program(
            "chromium",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "LOAD_DENSITY_CHROMIUM",
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1440,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let value = self
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args}
                }}})),
            )
            .await;
        let id = value["sessionId"].as_str().expect("a session id");
        Session {
            driver: self,
            url: format!("/session/{id}"),
            _profile: profile,
        }
    }
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("{}{path}", self.url), body)
            .await
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body; `arguments` as given) in the page.
    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        element[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the text of an input.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_ui");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Evaluates `script` until it returns something other than null/false, for `limit`.
    async fn wait_js(&self, what: &str, limit: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script).await;
            if !(value.is_null() || value == false) {
                return value;
            }
            assert!(started.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

const READ_TABLE: &str = r#"
    const rows = Array.from(document.querySelectorAll('#stats-body tr'));
    return rows.map(tr => [tr.cells[1].textContent, Number(tr.cells[2].textContent)]);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_run_and_stops_it() {
    let run = start(3, json!({})).await;
    let driver = Driver::start().await;
    let browser = driver.session().await;
    browser.open(&run.url("/")).await;

    // The table fills in with the task names and the run's state.
    browser
        .wait_js(
            "the table and state",
            Duration::from_secs(15),
            r#"return document.querySelectorAll('#stats-body tr').length === 3
                && document.getElementById('state').textContent === 'RUNNING'"#,
        )
        .await;
    let first = browser.js(READ_TABLE).await;
    let names: Vec<&str> = first
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["broken", "fast", "slow"]);
    assert_eq!(
        browser
            .js("return document.getElementById('host').textContent")
            .await,
        run.target.base_url()
    );

    // Counts grow with the pushed updates.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = browser.js(READ_TABLE).await;
    for (before, after) in first
        .as_array()
        .expect("rows")
        .iter()
        .zip(later.as_array().expect("rows"))
    {
        assert_eq!(before[0], after[0]);
        assert!(
            after[1].as_u64() > before[1].as_u64(),
            "{} did not grow: {} then {}",
            before[0],
            before[1],
            after[1]
        );
    }
    let updates = browser.js("return window.ldDashboard.updates").await;
    assert!(
        (2..=8).contains(&updates.as_u64().expect("count")),
        "about one update a second: {updates}"
    );
    let failures = browser
        .js("return document.querySelectorAll('#failures-body tr').length")
        .await;
    assert_eq!(failures, 1, "the 503s, grouped");

    // The charts have drawn points.
    let chart_points = browser
        .wait_js(
            "chart points",
            Duration::from_secs(10),
            // The series of arrival-rate runs (target and achieved iterations/s, the corrected
            // latency) stay hidden in this closed run.
            r#"const counts = Array.from(document.querySelectorAll('svg polyline.series'))
                   .filter(p => p.style.display !== 'none')
                   .map(p => p.points.numberOfItems);
               return counts.length === 5 && counts.every(n => n >= 3) ? counts : null"#,
        )
        .await;
    eprintln!("chart points per series: {chart_points}");
    let rps_max = browser
        .js(r#"return Math.min(...Array.from(document.querySelector('#chart-rps polyline').points).map(p => p.y))"#)
        .await;
    assert!(
        rps_max.as_f64().expect("y") < 200.0,
        "the RPS line rises above the axis: {rps_max}"
    );
    browser.screenshot("dashboard-statistics.png").await;
    browser.click(".tab[data-tab='charts']").await;
    browser.screenshot("dashboard-charts.png").await;
    browser.click(".tab[data-tab='stats']").await;

    // Edit: more users, ramped from where the run is.
    browser.click("#edit-button").await;
    browser.type_into("#edit-users", "5").await;
    browser.type_into("#edit-rate", "50").await;
    browser.click("#edit-submit").await;
    browser
        .wait_js(
            "five users on the page",
            Duration::from_secs(15),
            "return document.getElementById('users').textContent === '5'",
        )
        .await;
    assert_eq!(run.env.user_count(), 5);
    assert_eq!(run.env.target_user_count(), 5);

    // Stop: the state moves to stopped and the run ends with its summary.
    browser.click("#stop-button").await;
    browser
        .wait_js(
            "the stopped state",
            Duration::from_secs(15),
            r#"return document.getElementById('state').textContent === 'STOPPED'
                && !document.getElementById('banner').hidden"#,
        )
        .await;
    let summary = tokio::time::timeout(Duration::from_secs(10), run.env.wait())
        .await
        .expect("the run ended");
    assert_eq!(summary.totals.requests, run.target.served());
    let shown_total = browser
        .js("return Number(document.querySelector('#stats-total td:nth-child(3)').textContent)")
        .await;
    assert_eq!(
        shown_total.as_u64(),
        Some(summary.totals.requests),
        "the page shows the final count"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('stop-button').disabled")
            .await,
        true
    );
    browser.screenshot("dashboard-stopped.png").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_names_and_an_hour_of_history_stay_smooth() {
    let fake = Fake::with_names(500);
    let ui = WebUi::start(fake.clone(), WebUiSettings::new("127.0.0.1", 0))
        .await
        .expect("UI");
    let driver = Driver::start().await;
    let browser = driver.session().await;
    browser.open(&ui.url()).await;
    browser
        .wait_js(
            "500 rows and 3 updates",
            Duration::from_secs(20),
            r#"return document.querySelectorAll('#stats-body tr').length === 500
                && window.ldDashboard.updates >= 4"#,
        )
        .await;
    // Applying an update (500 rows, failures, charts) stays far below a frame budget; the first
    // one builds the rows.
    let apply_ms = browser
        .js("return window.ldDashboard.applyMs.slice(1)")
        .await;
    let apply_ms: Vec<f64> = apply_ms
        .as_array()
        .expect("times")
        .iter()
        .map(|v| v.as_f64().expect("ms"))
        .collect();
    eprintln!("update times with 500 names (ms): {apply_ms:?}");
    let worst = apply_ms.iter().copied().fold(0.0, f64::max);
    assert!(worst < 60.0, "an update took {worst} ms");
    browser.screenshot("dashboard-500-names.png").await;

    // An hour of one-second points, pushed into the page's history and into ours: the same
    // downsampled points, few enough to draw quickly.
    let hour: Vec<ChartPoint> = (0..3600u64)
        .map(|i| ChartPoint {
            time_s: 1_000_000 + i,
            width_s: 1,
            users: (i / 60) as f64,
            rps: 100.0 + (i % 17) as f64,
            fps: (i % 5) as f64,
            p50_ms: 10.0 + (i % 7) as f64,
            p95_ms: 40.0 + (i % 11) as f64,
            corrected_p95_ms: 60.0 + (i % 13) as f64,
            target_rate: 100.0,
            iteration_rate: 90.0 + (i % 19) as f64,
        })
        .collect();
    let mut ours = ChartHistory::new();
    for point in &hour {
        ours.push(*point);
    }
    let input = serde_json::to_string(&hour).expect("points");
    let page = browser
        .js(&format!(
            r#"const history = new window.LDChart.ChartHistory(null);
               for (const p of {input}) history.push(p);
               const svg = document.getElementById('chart-rps');
               const chart = new window.LDChart.LineChart(svg, [{{label: 'x', color: '#000', index: 3}}], null);
               const started = performance.now();
               chart.draw(history.points());
               return {{points: history.points(), drawMs: performance.now() - started}};"#
        ))
        .await;
    let page_points = page["points"].as_array().expect("points");
    let expected = serde_json::to_value(ours.points().collect::<Vec<_>>()).expect("json");
    assert_eq!(
        page_points.len(),
        ours.len(),
        "same downsampling in Rust and JS"
    );
    for (js, rust) in page_points.iter().zip(expected.as_array().expect("points")) {
        assert_eq!(js[0], rust[0], "time");
        assert_eq!(js[1], rust[1], "width");
        let close = |a: &Value, b: &Value| {
            (a.as_f64().expect("number") - b.as_f64().expect("number")).abs() < 0.01
        };
        assert!((2..7).all(|k| close(&js[k], &rust[k])), "{js} vs {rust}");
    }
    assert!(ours.len() <= 1500, "{} points for an hour", ours.len());
    let draw_ms = page["drawMs"].as_f64().expect("ms");
    assert!(draw_ms < 50.0, "drawing an hour took {draw_ms} ms");
    browser.quit().await;
    ui.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_page_lists_its_workers() {
    let now = std::time::SystemTime::now();
    let worker = |id: &str, state: &str, users: u64| load_density::WorkerInfo {
        id: id.to_owned(),
        state: state.to_owned(),
        user_count: users,
        cpu_percent: 37.5,
        memory_bytes: 52_000_000,
        last_heartbeat: now,
    };
    let fake = Fake::new(vec![
        worker("node-a_0f3c", "running", 4),
        worker("node-b_9e21", "running", 3),
    ]);
    let ui = WebUi::start(
        fake.clone(),
        WebUiSettings::new("127.0.0.1", 0).with_distributed(true),
    )
    .await
    .expect("UI");
    let driver = Driver::start().await;
    let browser = driver.session().await;
    browser.open(&ui.url()).await;
    browser
        .wait_js(
            "the workers tab",
            Duration::from_secs(15),
            "return !document.getElementById('workers-tab').hidden",
        )
        .await;
    browser.click(".tab[data-tab='workers']").await;
    let rows = browser
        .js(
            r#"return Array.from(document.querySelectorAll('#workers-body tr'))
                 .map(tr => Array.from(tr.cells).map(td => td.textContent))"#,
        )
        .await;
    assert_eq!(rows[0][0], "node-a_0f3c");
    assert_eq!(rows[0][1], "running");
    assert_eq!(rows[0][2], "4");
    assert_eq!(rows[0][3], "37.5");
    assert_eq!(rows[0][4], "52.0");
    assert_eq!(rows.as_array().expect("rows").len(), 2);
    browser.click(".tab[data-tab='failures']").await;
    let failures = browser
        .js(r#"return Array.from(document.querySelectorAll('#failures-body td')).map(td => td.textContent)"#)
        .await;
    assert_eq!(failures, json!(["10", "GET", "/b", "HTTP 500"]));
    browser.screenshot("dashboard-failures.png").await;
    browser.click(".tab[data-tab='workers']").await;
    browser.screenshot("dashboard-workers.png").await;
    browser.quit().await;
    ui.shutdown().await;
}

/// A port that was free a moment ago (the UI of a `start_test` run is found by its port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_run_button_of_a_lingering_ui_starts_another_run() {
    let target = load_density_testkit::HttpTarget::start()
        .await
        .expect("testkit target");
    let port = free_port();
    let config: load_density::StartTest = serde_json::from_value(json!({
        "user_count": 1,
        "spawn_rate": 100,
        "test_time": 1,
        "print_stats": false,
        "host": target.base_url(),
        "wait_time": {"constant": 0.02},
        "web_ui_dict": {"host": "127.0.0.1", "port": port, "linger": -1},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a valid configuration");
    let run = tokio::spawn(load_density::start_test_async(config));
    let driver = Driver::start().await;
    let browser = driver.session().await;
    let url = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let started = Instant::now();
    while http.get(&url).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no web UI");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.open(&url).await;

    // The run ends by itself; the page offers a new run.
    browser
        .wait_js(
            "the new-run button",
            Duration::from_secs(20),
            r#"return document.getElementById('state').textContent === 'STOPPED'
                && !document.getElementById('new-run-button').hidden
                && document.getElementById('stop-button').disabled"#,
        )
        .await;
    browser.screenshot("dashboard-new-run-offered.png").await;
    target.reset_counts();
    browser.click("#new-run-button").await;
    browser.type_into("#edit-users", "2").await;
    browser.type_into("#edit-rate", "100").await;
    browser.click("#edit-submit").await;
    browser
        .wait_js(
            "the new run running",
            Duration::from_secs(15),
            r#"return document.getElementById('state').textContent !== 'STOPPED'
                && document.getElementById('new-run-button').hidden"#,
        )
        .await;
    // It ends after the plan's test_time (1 s), and the page shows its count.
    browser
        .wait_js(
            "the new run stopped",
            Duration::from_secs(20),
            r#"return document.getElementById('state').textContent === 'STOPPED'
                && !document.getElementById('new-run-button').hidden"#,
        )
        .await;
    let served = target.served();
    assert!(served > 0, "the new run's requests reach the target");
    let shown = browser
        .wait_js(
            "the new run's count",
            Duration::from_secs(5),
            &format!(
                "const n = Number(document.querySelector('#stats-total td:nth-child(3)').textContent);
                 return n === {served} ? n : null"
            ),
        )
        .await;
    assert_eq!(shown.as_u64(), Some(served));
    browser.screenshot("dashboard-new-run-done.png").await;
    browser.quit().await;

    http.post(format!("{url}quit"))
        .send()
        .await
        .expect("POST /quit");
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("start_test returns")
        .expect("the task")
        .expect("the run");
    assert_eq!(summary.user_count, 2);
    assert_eq!(summary.totals.requests, served);
}
