//! A lingering web UI starts a new run of the same plan (`POST /swarm` after the run ended, the
//! page's "New run" button), as Locust allows: the second run's requests reach the target,
//! `/stats/requests`, the CSV download and the summary `start_test` returns count exactly
//! them, and the state goes stopped -> running -> stopped. (Its own test binary: it finds the
//! UI through the process's list of running UIs.)

mod web_support;

use std::time::{Duration, Instant};

use load_density::{start_test_async, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};
use web_support::{client, running_ui_address};

struct Ui {
    http: reqwest::Client,
    addr: std::net::SocketAddr,
}

impl Ui {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`, as text.
    async fn text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("the body of {path}: {e}"))
    }

    async fn requests(&self) -> Value {
        self.http
            .get(self.url("/stats/requests"))
            .send()
            .await
            .expect("GET /stats/requests")
            .json()
            .await
            .expect("JSON")
    }

    /// Polls `/stats/requests` until the run shown is stopped; returns the report, read once
    /// the API's copy of the statistics (at most 0.5 s old) is newer than the stop.
    async fn wait_stopped(&self) -> Value {
        let started = Instant::now();
        loop {
            if self.requests().await["state"] == "stopped" {
                tokio::time::sleep(Duration::from_millis(700)).await;
                return self.requests().await;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the run did not stop"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first event of `/events` (`init`): the latest update, as the page gets it.
    async fn init_update(&self) -> Value {
        let mut response = self
            .http
            .get(self.url("/events"))
            .send()
            .await
            .expect("GET /events");
        let mut text = String::new();
        let started = Instant::now();
        while !text.contains("\n\n") {
            assert!(started.elapsed() < Duration::from_secs(10), "no init event");
            let chunk = response
                .chunk()
                .await
                .expect("an event chunk")
                .expect("the stream goes on");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data:"))
            .expect("a data line");
        let init: Value = serde_json::from_str(data.trim()).expect("init JSON");
        init["update"].clone()
    }
}

fn aggregated(report: &Value) -> u64 {
    report["stats"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "Aggregated"))
        .and_then(|row| row["num_requests"].as_u64())
        .unwrap_or_else(|| panic!("no Aggregated row in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_ui_starts_a_new_run_of_the_same_plan() {
    let target = HttpTarget::start().await.expect("testkit target");
    let config: StartTest = serde_json::from_value(json!({
        "user_count": 2,
        "spawn_rate": 100,
        "test_time": 1,
        "print_stats": false,
        "host": target.base_url(),
        "wait_time": {"constant": 0.01},
        "web_ui_dict": {"host": "127.0.0.1", "port": 0, "linger": -1},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a valid configuration");
    let run = tokio::spawn(start_test_async(config));
    let addr = running_ui_address().await;
    let ui = Ui {
        http: client(),
        addr,
    };

    // The first run ends by itself (test_time); the UI lingers and offers a new run.
    let first = ui.wait_stopped().await;
    let first_count = aggregated(&first);
    assert!(first_count > 0, "{first}");
    assert_eq!(first_count, target.served(), "first run: {first}");
    let update = ui.init_update().await;
    assert_eq!(update["state"], "stopped", "{update}");
    assert_eq!(
        update["new_run"], true,
        "the page offers a new run: {update}"
    );
    let page = ui.text("/").await;
    assert!(
        page.contains("id=\"new-run-button\""),
        "the button is on the page"
    );
    assert!(!run.is_finished(), "start_test waits for the lingering UI");

    // A new run with no users is refused, and the UI goes on lingering.
    let refused: Value = ui
        .http
        .post(ui.url("/swarm"))
        .form(&[("user_count", "0"), ("spawn_rate", "1")])
        .send()
        .await
        .expect("POST /swarm")
        .json()
        .await
        .expect("JSON");
    assert_eq!(refused["success"], false, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("user_count: must be at least 1")),
        "{refused}"
    );
    assert_eq!(ui.init_update().await["new_run"], true, "still offered");

    // A new run, with Locust's form fields.
    target.reset_counts();
    let answer: Value = ui
        .http
        .post(ui.url("/swarm"))
        .form(&[
            ("user_count", "3"),
            ("spawn_rate", "100"),
            ("host", target.base_url().as_str()),
            ("run_time", "2s"),
        ])
        .send()
        .await
        .expect("POST /swarm")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["run_time"], 2, "{answer}");
    let during = ui.requests().await;
    assert!(
        matches!(during["state"].as_str(), Some("spawning" | "running")),
        "the new run runs: {during}"
    );
    let update = ui.init_update().await;
    assert_eq!(update["run"], 1, "the UI shows the second run: {update}");
    assert_eq!(update["new_run"], false, "{update}");

    let second = ui.wait_stopped().await;
    let second_count = aggregated(&second);
    let served = target.served();
    assert!(served > 0, "the second run's requests reach the target");
    assert_eq!(
        second_count, served,
        "/stats/requests counts exactly the second run: {second}"
    );
    let csv = ui.text("/stats/requests/csv").await;
    let total_line = csv
        .lines()
        .find(|l| l.contains("Aggregated"))
        .unwrap_or_else(|| panic!("no Aggregated line in {csv}"));
    let csv_count: u64 = total_line
        .split(',')
        .nth(2)
        .and_then(|c| c.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no count in {total_line}"));
    assert_eq!(csv_count, served, "the CSV follows the second run");
    assert_eq!(ui.init_update().await["new_run"], true, "offered again");

    // POST /quit ends the linger; start_test returns the last run's summary.
    let quit = ui
        .http
        .post(ui.url("/quit"))
        .send()
        .await
        .expect("POST /quit");
    assert_eq!(quit.status(), 200);
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("start_test returns once the UI has closed")
        .expect("the task")
        .expect("the run");
    assert_eq!(summary.user_count, 3, "the last run's summary: {summary:?}");
    assert_eq!(summary.totals.requests, served, "{summary:?}");
    assert!(load_density::web::running_addresses().is_empty());
}
