//! `web_ui_dict.linger`: the UI keeps serving the finished run, so a script can `POST /stop`
//! and then download the CSV, as Locust users do; `POST /quit` ends the linger. (Its own test
//! binary: it finds the UI through the process's list of running UIs.)

mod web_support;

use std::time::Duration;

use load_density::{start_test_async, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};
use web_support::{client, running_ui_address};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_ui_serves_the_stopped_run_until_quit() {
    let target = HttpTarget::start().await.expect("testkit target");
    let config: StartTest = serde_json::from_value(json!({
        "user_count": 2,
        "spawn_rate": 100,
        "test_time": null,
        "print_stats": false,
        "host": target.base_url(),
        "web_ui_dict": {"host": "127.0.0.1", "port": 0, "linger": -1},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a valid configuration");
    let run = tokio::spawn(start_test_async(config));
    let addr = running_ui_address().await;
    let http = client();
    let url = |path: &str| format!("http://{addr}{path}");
    tokio::time::sleep(Duration::from_millis(800)).await;

    let stop = http.post(url("/stop")).send().await.expect("POST /stop");
    assert_eq!(stop.status(), 200);
    // The run has ended, and the UI still answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report: Value = http
        .get(url("/stats/requests"))
        .send()
        .await
        .expect("GET /stats/requests")
        .json()
        .await
        .expect("JSON");
    assert_eq!(report["state"], "stopped", "{report}");
    let csv = http
        .get(url("/stats/requests/csv"))
        .send()
        .await
        .expect("GET /stats/requests/csv while lingering");
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.expect("CSV text");
    assert!(text.contains("Aggregated"), "{text}");
    let page = http.get(url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(!run.is_finished(), "start_test waits for the lingering UI");

    let quit = http.post(url("/quit")).send().await.expect("POST /quit");
    assert_eq!(quit.status(), 200);
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("start_test returns once the UI has closed")
        .expect("the task")
        .expect("the run");
    assert!(summary.totals.requests > 0, "{summary:?}");
    assert!(load_density::web::running_addresses().is_empty());
}
