//! The first hour of a new user: durations as Locust writes them, distributed options in a
//! local run, type errors in words, and a master whose workers never come.

use std::time::{Duration, Instant};

use load_density::{start_test_async, RunError, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::json;

fn config(value: serde_json::Value) -> StartTest {
    serde_json::from_value(value).expect("a valid configuration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_takes_duration_strings_and_ignores_distributed_options() {
    let target = HttpTarget::start().await.expect("testkit target");
    let started = Instant::now();
    let summary = start_test_async(config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2,
        "spawn_rate": 100,
        "test_time": "1s",
        "stop_timeout": "5s",
        "distributed_records": "errors",
        "print_stats": 0,
        "host": target.base_url(),
        "tasks": [{"method": "get", "request_url": "${var.base}/get"}],
        "variables": {"base": target.base_url()}
    })))
    .await
    .expect("the run");
    assert_eq!(summary.test_time, Some(1.0));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(summary.totals.requests > 0, "{summary:?}");
    // `${var.base}/get` is named by its path, as the quick start promises.
    let records = load_density::core::test_record_instance().stats();
    assert!(
        records.entry("GET", "/get").is_some(),
        "{:?}",
        records.entries()
    );
}

#[test]
fn type_errors_say_what_was_expected_in_words() {
    for (json, words) in [
        (json!({"user_count": "ten"}), "a whole number"),
        (json!({"user_count": 2.5}), "a whole number"),
        (json!({"test_time": "soon"}), "not a duration"),
        (json!({"test_time": true}), "a number of seconds"),
        (json!({"spawn_rate": "fast"}), "expected a number"),
    ] {
        let error = serde_json::from_value::<StartTest>(json.clone())
            .expect_err("refused")
            .to_string();
        assert!(error.contains(words), "{json}: {error}");
        assert!(!error.contains("u64") && !error.contains("f64"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_workers_never_come_fails() {
    let port = unused_local_port();
    let result = start_test_async(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": 1,
        "expected_workers_timeout": 0.5,
        "test_time": 0.5,
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "http://127.0.0.1:1/"}]
    })))
    .await;
    match result {
        Err(RunError::Distributed(error)) => {
            assert!(error.to_string().contains("no worker joined"), "{error}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
