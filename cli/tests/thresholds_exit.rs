//! The CLI's exit status with thresholds: 0 when they hold, 99 when one fails (the actions
//! after the run still run), 1 for errors, including a bad `thresholds` key.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn load_density(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

/// A loopback port nothing listens on: every request fails fast, and counts as a request.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn run_test(thresholds: Value, after: Value) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit").display().to_string();
    let mut actions = vec![json!(["LD_start_test", {
        "user_count": 1,
        "spawn_rate": 1,
        "test_time": 1,
        "host": format!("http://127.0.0.1:{}", closed_port()),
        "wait_time": {"constant": 0.1},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/"}],
        "thresholds": thresholds,
    }])];
    actions.push(json!(["LD_generate_junit_report", {"report_name": junit}]));
    if !after.is_null() {
        actions.push(after);
    }
    let output = load_density(&["run-str", &Value::Array(actions).to_string()]);
    (output, dir)
}

#[test]
fn thresholds_that_hold_exit_0() {
    let (output, _dir) = run_test(json!({"requests": ["count>0"]}), Value::Null);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("Verdict: PASSED"));
}

#[test]
fn a_failed_threshold_exits_99_and_later_actions_still_run() {
    let (output, dir) = run_test(json!({"requests": ["count<1"]}), Value::Null);
    assert_eq!(
        output.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("FAIL requests count<1") && stderr.contains("Verdict: FAILED"),
        "{stderr}"
    );
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("json");
    assert_eq!(first["ok"]["verdict"], "failed");
    assert!(
        dir.path().join("junit.xml").exists(),
        "the report after the run was written"
    );
}

#[test]
fn an_error_exits_1_even_when_a_threshold_failed() {
    let (output, _dir) = run_test(json!({"requests": ["count<1"]}), json!(["LD_frobnicate"]));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_bad_threshold_exits_1_before_any_request() {
    let (output, _dir) = run_test(json!({"requests": ["p(99)<1"]}), Value::Null);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("thresholds.\\\"requests[0]\\\"") || stderr.contains("requests[0]"),
        "{stderr}"
    );
}

/// Two groups, each with its own `thresholds`: the exit status follows the group's verdict.
fn run_groups(second_group_thresholds: Value) -> Output {
    let group = |name: &str, thresholds: Value| {
        json!({
            "name": name,
            "user": "fast_http_user",
            "host": format!("http://127.0.0.1:{}", closed_port()),
            "tasks": [{"method": "get", "request_url": "/"}],
            "thresholds": thresholds,
        })
    };
    let actions = json!([["LD_start_test", {
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 1,
        "wait_time": {"constant": 0.1},
        "print_stats": false,
        "user_groups": [
            group("a", json!({"requests": ["count>0"], "failure_rate": ["rate<=1"]})),
            group("b", second_group_thresholds),
        ],
    }]]);
    load_density(&["run-str", &actions.to_string()])
}

#[test]
fn a_group_threshold_that_fails_exits_99_and_one_that_holds_exits_0() {
    let failed = run_groups(json!({"requests": ["count<1"]}));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(99), "{stderr}");
    assert!(
        stderr.contains("PASS requests{group:a} count>0")
            && stderr.contains("FAIL requests{group:b} count<1")
            && stderr.contains("Verdict: FAILED"),
        "{stderr}"
    );
    let held = run_groups(json!({"requests": ["count>=1"]}));
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert_eq!(held.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PASS requests{group:b} count>=1") && stderr.contains("Verdict: PASSED"),
        "{stderr}"
    );
}
