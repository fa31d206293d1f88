//! Stopping a run from its web UI ends it like the end of `test_time`: `start_test` returns its
//! summary with every request in flight recorded, the UI closes, and the next action of the
//! document runs. (One test in this binary, so the one web UI running is this run's.)

mod web_support;

use std::time::Duration;

use load_density::executor;
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};
use web_support::{client, get_json, running_ui_address, total_requests, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_from_the_ui_ends_start_test_and_the_document_goes_on() {
    let target = HttpTarget::start().await.expect("target");
    let document = json!([
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 4,
            "spawn_rate": 100,
            "test_time": null,
            "host": target.base_url(),
            "print_stats": false,
            "web_ui_dict": {"host": "127.0.0.1", "port": 0},
            "tasks": [
                {"method": "get", "request_url": "/get", "name": "quick"},
                // Most users are inside this one when the stop comes: it must finish and count.
                {"method": "get", "request_url": "/delay/400", "name": "slow"}
            ]
        }],
        ["LD_summary"]
    ])
    .to_string();
    // start_test builds its own runtime: run the document on a plain thread.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(executor::execute_str(&document));
    });

    let addr = running_ui_address().await;
    let http = client();
    let stats_url = format!("http://{addr}/stats/requests");
    wait_for("some requests", Duration::from_secs(20), || async {
        let report = get_json(&http, &stats_url).await;
        (report["state"] == "running" && total_requests(&report) >= 8).then_some(())
    })
    .await;

    let answer: Value = http
        .post(format!("http://{addr}/stop"))
        .send()
        .await
        .expect("POST /stop")
        .json()
        .await
        .expect("json");
    assert_eq!(answer, json!({"message": "Test stopped", "success": true}));

    let results = tokio::time::timeout(Duration::from_secs(20), done_rx)
        .await
        .expect("start_test returns after the stop")
        .expect("the document thread answers")
        .expect("the document runs");
    assert_eq!(results.len(), 2);
    let summary = results[0]
        .outcome
        .as_ref()
        .expect("LD_start_test succeeded");
    let requests = summary["totals"]["requests"].as_u64().expect("requests");
    assert_eq!(
        requests,
        target.served(),
        "every request the target received, in flight at the stop included, is recorded"
    );
    assert!(target.served_path("/delay/400") >= 4, "slow requests ran");
    assert_eq!(results[1].command.as_deref(), Some("LD_summary"));
    let after = results[1].outcome.as_ref().expect("the next action ran");
    assert!(after["totals"]["requests"].as_u64().expect("requests") >= requests);

    // The UI closed with the run, and its port is free again.
    assert!(load_density::web::running_addresses().is_empty());
    assert!(
        http.get(&stats_url).send().await.is_err(),
        "nothing listens"
    );
    std::net::TcpListener::bind(addr).expect("the port is free once start_test returns");
}
