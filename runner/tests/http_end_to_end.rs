//! Both HTTP users through the whole runner against the testkit server: every request the
//! server counted is in the statistics and in the records exactly once, including requests in
//! flight when the run stops.

use std::time::Duration;

use load_density::core::test_record_instance;
use load_density::{prepare_env, start_test_async, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::json;

fn records_for(base_url: &str) -> (usize, usize) {
    test_record_instance().with_records(|ok, failed| {
        (
            ok.iter()
                .filter(|r| r.test_url.starts_with(base_url))
                .count(),
            failed
                .iter()
                .filter(|r| r.test_url.starts_with(base_url))
                .count(),
        )
    })
}

async fn every_request_counted_once(user: &str) {
    let target = HttpTarget::start().await.expect("target");
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": user},
        "user_count": 6,
        "spawn_rate": 100,
        "test_time": 1.2,
        "host": target.base_url(),
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "/get", "params": {"u": user}},
            {"method": "post", "request_url": "/post", "json": {"n": 1}, "name": "post"},
            // In flight when the run stops: must finish and be recorded.
            {"method": "get", "request_url": "/delay/400", "name": "slow"},
            {"method": "get", "request_url": "/status/503", "name": "503"}
        ]
    }))
    .expect("config");
    let summary = start_test_async(config).await.expect("run");
    let served = target.served();
    assert!(served > 20, "{user}: only {served} requests");
    assert_eq!(summary.totals.requests, served, "{user}: stats vs server");
    let (ok, failed) = records_for(&target.base_url());
    assert_eq!((ok + failed) as u64, served, "{user}: records vs server");
    assert_eq!(
        failed as u64,
        target.served_path("/status/503"),
        "{user}: 503s are failures"
    );
    assert_eq!(summary.totals.failures, failed as u64);
    let failure = test_record_instance()
        .error_record_list()
        .into_iter()
        .find(|r| r.test_url.starts_with(&target.base_url()))
        .expect("a failure record");
    assert_eq!(failure.status_code, Some(503));
    assert!(failure.error.as_deref().unwrap_or("").contains("503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_http_user_every_request_counted_once() {
    every_request_counted_once("fast_http_user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_user_every_request_counted_once() {
    every_request_counted_once("http_user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_failures_and_the_run_goes_on() {
    let target = HttpTarget::start().await.expect("target");
    let dead = format!("http://127.0.0.1:{}", unused_local_port());
    for user in ["fast_http_user", "http_user"] {
        let config: StartTest = serde_json::from_value(json!({
            "user_detail_dict": {"user": user},
            "user_count": 2,
            "spawn_rate": 100,
            "test_time": null,
            "print_stats": false,
            "wait_time": {"constant": 0.05},
            "tasks": [
                {"method": "get", "request_url": format!("{dead}/nothing"), "name": "refused"},
                {"method": "get", "request_url": target.url("/"), "name": "alive"}
            ]
        }))
        .expect("config");
        let env = prepare_env(config).await.expect("env");
        tokio::time::sleep(Duration::from_millis(700)).await;
        env.stop();
        env.wait().await;
        let stats = env.stats();
        let refused = stats.entry("GET", "refused").expect("refused entry");
        let alive = stats.entry("GET", "alive").expect("alive entry");
        assert_eq!(refused.num_failures(), refused.num_requests(), "{user}");
        assert!(refused.num_requests() >= 2, "{user}");
        assert_eq!(alive.num_failures(), 0, "{user}");
        assert_eq!(
            alive.num_requests(),
            refused.num_requests(),
            "{user}: the run went on"
        );
        let message = stats
            .errors()
            .into_iter()
            .find(|e| &*e.name == "refused")
            .expect("error group")
            .message;
        assert!(
            message.to_lowercase().contains("refused"),
            "{user}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_pacing_sets_the_rate_seen_by_the_server() {
    let target = HttpTarget::start().await.expect("target");
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 4,
        "spawn_rate": 1000,
        "test_time": 2,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant_throughput": 5},
        "tasks": [{"method": "get", "request_url": "/"}]
    }))
    .expect("config");
    start_test_async(config).await.expect("run");
    // 4 users x 5 iterations/s x 2 s = 40 (+ the first iteration of each user).
    let served = target.served();
    assert!((36..=48).contains(&served), "served {served}");
}
