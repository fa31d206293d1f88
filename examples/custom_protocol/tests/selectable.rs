//! A protocol registered from outside `protocols/` is selectable by name in `start_test`.

use std::sync::atomic::Ordering;

use example_custom_protocol::start_echo_server;
use load_density::core::registry;
use load_density::{start_test_async, StartTest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_echo_user_is_registered_and_runs() {
    assert!(registry::known_user_types().contains(&"line_echo_user"));
    let (addr, answered) = start_echo_server().await.expect("echo server");
    let config: StartTest = serde_json::from_value(serde_json::json!({
        "user_detail_dict": {"user": "line_echo_user"},
        "user_count": 3,
        "spawn_rate": 50,
        "test_time": 1,
        "print_stats": false,
        "tasks": [{"target": addr.to_string(), "line": "ping ${var.n}", "name": "custom-ping"}],
        "variables": {"n": 7},
    }))
    .expect("config");
    let summary = start_test_async(config).await.expect("run");
    assert!(summary.totals.requests > 0);
    assert_eq!(summary.totals.failures, 0);
    assert_eq!(summary.totals.requests, answered.load(Ordering::Relaxed));
    let records = load_density::core::test_record_instance().test_record_list();
    assert!(records
        .iter()
        .any(|r| &*r.name == "custom-ping" && &*r.method == "LINE"));
}

#[tokio::test]
async fn its_tasks_are_validated() {
    let config: StartTest = serde_json::from_value(serde_json::json!({
        "user_detail_dict": {"user": "line_echo_user"},
        "tasks": [{"target": "127.0.0.1:1", "line": "x", "colour": "blue"}],
    }))
    .expect("config");
    let error = load_density::create_env(config)
        .await
        .expect_err("unknown key");
    assert!(error.to_string().contains("tasks[0].colour"), "{error}");
}

#[tokio::test]
async fn a_protocol_that_does_not_bind_refuses_source_addresses() {
    // `line_echo_user` does not say it binds a source address (`Protocol::binds_source_address`
    // keeps its default), so the option is refused before anything runs.
    let config: StartTest = serde_json::from_value(serde_json::json!({
        "user_detail_dict": {"user": "line_echo_user"},
        "test_time": 1,
        "print_stats": false,
        "source_addresses": "127.0.0.2",
        "tasks": [{"target": "127.0.0.1:1", "line": "x"}],
    }))
    .expect("config");
    let error = start_test_async(config).await.expect_err("refused");
    assert!(
        error.to_string().contains(
            "source_addresses: user type \"line_echo_user\" cannot bind its connections to a source address"
        ),
        "{error}"
    );
}
