//! Helpers shared by the web UI tests: a run against the testkit HTTP target with its web UI on
//! a free port, and an HTTP client for the UI.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use load_density::core::{RequestEvent, RequestStats};
use load_density::{
    prepare_env, Environment, RunControl, RunError, RunState, StartTest, WorkerInfo,
};
use load_density_testkit::HttpTarget;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// A run in progress with its web UI.
pub struct Run {
    pub target: HttpTarget,
    pub env: Environment,
    pub addr: SocketAddr,
}

impl Run {
    /// `http://<ui address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The default run: `users` users without end, a fast task, a slow one and a failing one.
pub fn config(target: &HttpTarget, users: u64, web_ui: Value) -> StartTest {
    serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": users,
        "spawn_rate": 100,
        "test_time": null,
        "host": target.base_url(),
        "print_stats": false,
        "web_ui_dict": web_ui,
        "tasks": [
            {"method": "get", "request_url": "/delay/10", "name": "fast"},
            {"method": "get", "request_url": "/delay/40", "name": "slow"},
            {"method": "get", "request_url": "/status/503", "name": "broken"}
        ]
    }))
    .expect("a valid configuration")
}

/// Starts a run with its UI on 127.0.0.1 and a free port (plus `extra_ui` keys).
pub async fn start(users: u64, extra_ui: Value) -> Run {
    let target = HttpTarget::start().await.expect("testkit target");
    let mut ui = json!({"host": "127.0.0.1", "port": 0});
    if let (Some(ui), Value::Object(extra)) = (ui.as_object_mut(), extra_ui) {
        ui.extend(extra);
    }
    let env = prepare_env(config(&target, users, ui))
        .await
        .expect("run starts");
    let addr = load_density::web::local_addr(&env).expect("the run's web UI address");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0);
    Run { target, env, addr }
}

/// A client for the UI (no proxy, bounded timeouts).
pub fn client() -> reqwest::Client {
    load_density::core::tls::crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(70))
        .build()
        .expect("reqwest client")
}

/// `GET` a JSON route.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.expect("a JSON body")
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The address of the process's first running web UI, once one runs (for a test that starts
/// its UI through `start_test`, alone in its test binary), waiting at most 30 s.
pub async fn running_ui_address() -> SocketAddr {
    wait_for("the web UI", Duration::from_secs(30), || async {
        load_density::web::running_addresses().first().copied()
    })
    .await
}

/// The total request count `/stats/requests` reports (its Aggregated row).
pub fn total_requests(report: &Value) -> u64 {
    let rows = report["stats"].as_array().expect("stats rows");
    let total = rows.last().expect("the Aggregated row");
    assert_eq!(total["name"], "Aggregated");
    total["num_requests"].as_u64().expect("num_requests")
}

/// A [`RunControl`] without a real run (as a distributed master provides one): fixed users,
/// statistics of `names` request names that grow by one request per name each time they are
/// read, and the workers given.
pub struct Fake {
    pub state: Mutex<RunState>,
    pub users: AtomicU64,
    pub target: AtomicU64,
    pub set_calls: AtomicU64,
    pub stops: AtomicU64,
    stats: Mutex<RequestStats>,
    names: Vec<Arc<str>>,
    grow: bool,
    workers: Vec<WorkerInfo>,
}

fn event(name: &Arc<str>, i: u64, failed: bool) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: name.clone(),
        url: Arc::from("http://127.0.0.1:1/"),
        status: Some(if failed { 500 } else { 200 }),
        response_time: Duration::from_millis(5 + i % 50),
        response_length: 100,
        error: failed.then(|| Arc::from("HTTP 500")),
        start_time: SystemTime::now() - Duration::from_millis(1500),
        start_delay: None,
    }
}

impl Fake {
    /// Statistics of `/a` (30 requests) and `/b` (10 failures), and these workers.
    pub fn new(workers: Vec<WorkerInfo>) -> Arc<Self> {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("/a"), Arc::from("/b"));
        let mut stats = RequestStats::new();
        for i in 0..40u64 {
            let failed = i % 4 == 0;
            stats.add(&event(if failed { &b } else { &a }, i, failed));
        }
        Self::build(stats, Vec::new(), false, workers)
    }

    /// `names` request names (`/page/000`...) that each grow by a request per read.
    pub fn with_names(names: usize) -> Arc<Self> {
        let names = (0..names)
            .map(|i| Arc::from(format!("/page/{i:03}")))
            .collect();
        Self::build(RequestStats::new(), names, true, Vec::new())
    }

    fn build(
        stats: RequestStats,
        names: Vec<Arc<str>>,
        grow: bool,
        workers: Vec<WorkerInfo>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(RunState::Running),
            users: AtomicU64::new(7),
            target: AtomicU64::new(7),
            set_calls: AtomicU64::new(0),
            stops: AtomicU64::new(0),
            stats: Mutex::new(stats),
            names,
            grow,
            workers,
        })
    }
}

impl RunControl for Fake {
    fn state(&self) -> RunState {
        *self.state.lock()
    }
    fn stats(&self) -> RequestStats {
        let mut stats = self.stats.lock();
        if self.grow {
            let round = stats.total().num_requests();
            for (i, name) in self.names.iter().enumerate() {
                stats.add(&event(name, round + i as u64, i % 50 == 7));
            }
        }
        stats.clone()
    }
    fn user_count(&self) -> u64 {
        self.users.load(Ordering::Relaxed)
    }
    fn target_user_count(&self) -> u64 {
        self.target.load(Ordering::Relaxed)
    }
    fn set_user_count(&self, user_count: u64, _spawn_rate: f64) -> Result<(), RunError> {
        self.set_calls.fetch_add(1, Ordering::Relaxed);
        self.target.store(user_count, Ordering::Relaxed);
        Ok(())
    }
    fn stop(&self) {
        self.stops.fetch_add(1, Ordering::Relaxed);
        *self.state.lock() = RunState::Stopped;
    }
    fn reset_stats(&self) {
        self.stats.lock().reset();
    }
    fn host(&self) -> Option<String> {
        Some("http://127.0.0.1:1".to_owned())
    }
    fn workers(&self) -> Vec<WorkerInfo> {
        self.workers.clone()
    }
}
