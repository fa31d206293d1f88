//! The task language end to end on the HTTP users: per-user extraction, CSV same-row
//! binding, assertions, weights, and validation before the run.

use std::collections::HashMap;
use std::time::Duration;

use load_density::{create_env, prepare_env, start_test_async, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

fn config(value: Value) -> StartTest {
    serde_json::from_value(value).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_keeps_the_token_it_extracted() {
    for user in ["fast_http_user", "http_user"] {
        let target = HttpTarget::start().await.expect("target");
        let env = prepare_env(config(json!({
            "user_detail_dict": {"user": user},
            "user_count": 4,
            "spawn_rate": 100,
            "test_time": null,
            "print_stats": false,
            "host": target.base_url(),
            "tasks": [
                {"method": "get", "request_url": "/token", "name": "token",
                 "extract": [{"var": "tok", "from": "json_path", "path": "token"}]},
                // Another user's extraction happens while this one waits.
                {"method": "get", "request_url": "/delay/30", "name": "wait"},
                {"method": "get", "request_url": "/anything/${var.tok}", "name": "use",
                 "assertions": [{"type": "json_path", "path": "url", "value": "/anything/${var.tok}"}]}
            ]
        })))
        .await
        .expect("env");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        env.stop();
        env.wait().await;
        let used: Vec<(String, u64)> = target
            .path_counts()
            .into_iter()
            .filter(|(path, _)| path.starts_with("/anything/"))
            .collect();
        let issued = target.served_path("/token");
        assert!(used.len() >= 8, "{user}: only {} tokens used", used.len());
        // Every token was used exactly once, by the user it was issued to: with a shared
        // scope, tokens would be used twice or never.
        assert!(used.iter().all(|(_, n)| *n == 1), "{user}: {used:?}");
        assert!(
            used.len() as u64 <= issued && issued - used.len() as u64 <= 4,
            "{user}"
        );
        let stats = env.stats();
        assert_eq!(
            stats.entry("GET", "use").map(|e| e.num_failures()),
            Some(0),
            "{user}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_columns_of_one_task_come_from_one_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("people.csv");
    let mut text = String::from("\u{feff}email,password\n");
    for i in 0..50 {
        text.push_str(&format!("user{i}@example.test,pw-{i}\n"));
    }
    std::fs::write(&path, text).expect("csv");
    let target = HttpTarget::start().await.expect("target");
    let summary = start_test_async(config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 3,
        "spawn_rate": 100,
        "test_time": 1,
        "print_stats": false,
        "host": target.base_url(),
        "csv_sources": [{"name": "people", "file_path": path}],
        "tasks": [{"method": "get", "name": "login",
                   "request_url": "/anything/${csv.people.email}/${csv.people.password}"}]
    })))
    .await
    .expect("run");
    assert!(
        summary.totals.requests > 50,
        "cycles past the end of the file"
    );
    assert_eq!(summary.totals.failures, 0);
    for (path, _) in target.path_counts() {
        let Some(rest) = path.strip_prefix("/anything/") else {
            continue;
        };
        let (email, password) = rest.split_once('/').expect("two segments");
        let n = email
            .trim_start_matches("user")
            .trim_end_matches("@example.test");
        assert_eq!(
            password,
            format!("pw-{n}"),
            "{path}: columns from different rows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_pass_and_fail_on_both_http_users() {
    for user in ["fast_http_user", "http_user"] {
        let target = HttpTarget::start().await.expect("target");
        let check = |name: &str, url: &str, assertion: Value| json!({"method": "get", "request_url": url, "name": name, "assertions": [assertion]});
        let tasks = json!([
            check(
                "status ok",
                "/status/201",
                json!({"type": "status_code", "value": 201})
            ),
            check(
                "status bad",
                "/get",
                json!({"type": "status_code", "value": 201})
            ),
            check(
                "404 asserted",
                "/status/404",
                json!({"type": "status_code", "value": 404})
            ),
            check(
                "contains ok",
                "/get?x=needle",
                json!({"type": "contains", "value": "needle"})
            ),
            check(
                "contains bad",
                "/get",
                json!({"type": "contains", "value": "needle"})
            ),
            check(
                "not_contains ok",
                "/get",
                json!({"type": "not_contains", "value": "needle"})
            ),
            check(
                "not_contains bad",
                "/get?x=needle",
                json!({"type": "not_contains", "value": "needle"})
            ),
            check(
                "json ok",
                "/get?a=1",
                json!({"type": "json_path", "path": "args.a", "value": "1"})
            ),
            check(
                "json bad",
                "/get?a=1",
                json!({"type": "json_path", "path": "args.a", "value": "2"})
            ),
            check(
                "header bad",
                "/token",
                json!({"type": "header", "name": "x-token", "value": "${var.never}"})
            ),
            check(
                "regex ok",
                "/token",
                json!({"type": "regex", "pattern": "tok-\\d+"})
            ),
            check(
                "regex bad",
                "/get",
                json!({"type": "regex", "pattern": "tok-\\d+"})
            ),
            check(
                "fast enough",
                "/get",
                json!({"type": "max_response_time_ms", "value": 5000})
            ),
            check(
                "too slow",
                "/delay/60",
                json!({"type": "max_response_time_ms", "value": 10})
            ),
            check(
                "503 unasserted",
                "/status/503",
                json!({"type": "not_contains", "value": "zzz"})
            )
        ]);
        let summary = start_test_async(config(json!({
            "user_detail_dict": {"user": user},
            "user_count": 1,
            "spawn_rate": 10,
            "test_time": 0.6,
            "print_stats": false,
            "host": target.base_url(),
            "tasks": tasks
        })))
        .await
        .expect("run");
        assert!(summary.totals.requests >= 15);
        let store = load_density::core::test_record_instance();
        let base = target.base_url();
        let mut outcome: HashMap<String, Option<String>> = HashMap::new();
        store.with_records(|ok, failed| {
            for r in ok
                .iter()
                .chain(failed)
                .filter(|r| r.test_url.starts_with(&base))
            {
                outcome.insert(r.name.to_string(), r.error.as_deref().map(str::to_owned));
            }
        });
        let error = |name: &str| {
            outcome
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{user}: no record for {name}"))
        };
        for passing in [
            "status ok",
            "404 asserted",
            "contains ok",
            "not_contains ok",
            "json ok",
            "regex ok",
            "fast enough",
        ] {
            assert_eq!(error(passing), None, "{user}: {passing}");
        }
        let expect = |name: &str, fragment: &str| {
            let message = error(name).unwrap_or_else(|| panic!("{user}: {name} should fail"));
            assert!(message.contains(fragment), "{user}: {name}: {message}");
        };
        expect("status bad", "status_code expected 201, got 200");
        expect("contains bad", "does not contain 'needle'");
        expect("not_contains bad", "unexpectedly contains 'needle'");
        expect("json bad", "json_path args.a expected");
        // The header differs from the never-resolved placeholder.
        expect("header bad", "header x-token");
        expect("regex bad", "tok-");
        expect("too slow", "exceeds 10 ms");
        expect("503 unasserted", "503");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_tasks_run_in_proportion_and_weight_zero_never() {
    let target = HttpTarget::start().await.expect("target");
    start_test_async(config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 4,
        "spawn_rate": 100,
        "test_time": 1,
        "print_stats": false,
        "host": target.base_url(),
        "tasks": {"mode": "weighted", "tasks": [
            {"method": "get", "request_url": "/anything/heavy", "weight": 3},
            {"method": "get", "request_url": "/anything/light", "weight": 1},
            {"method": "get", "request_url": "/anything/never", "weight": 0}
        ]}
    })))
    .await
    .expect("run");
    let heavy = target.served_path("/anything/heavy") as f64;
    let light = target.served_path("/anything/light") as f64;
    assert_eq!(target.served_path("/anything/never"), 0);
    assert!(heavy + light > 400.0, "{heavy} + {light}");
    let ratio = heavy / light;
    assert!((2.5..3.5).contains(&ratio), "ratio {ratio}");
}

#[tokio::test]
async fn invalid_task_language_is_rejected_before_the_run() {
    let cases = [
        (
            json!([{"method": "get", "url": "/", "assertions": [{"type": "smells_like", "value": 1}]}]),
            "tasks[0].assertions[0]",
        ),
        (
            json!([{"method": "get", "url": "/", "assertions": [{"type": "regex", "pattern": "(unclosed"}]}]),
            "tasks[0].assertions[0].pattern",
        ),
        (
            json!([{"method": "get", "url": "/"}, {"method": "get", "url": "/", "run_if": [1, 2]}]),
            "tasks[1].run_if",
        ),
        (
            json!({"mode": "weighted", "tasks": [{"method": "get", "url": "/", "weight": "many"}]}),
            "tasks[0].weight",
        ),
        (
            json!([{"method": "get", "url": "/", "extract": [{"var": "x", "from": "regex", "pattern": "no group"}]}]),
            "tasks[0].extract[0]",
        ),
        (
            json!([{"method": "get", "url": "/${csv.nowhere.col}"}]),
            "nowhere",
        ),
    ];
    for (tasks, expected) in cases {
        let error = create_env(config(json!({
            "user_detail_dict": {"user": "http_user"},
            "tasks": tasks
        })))
        .await
        .expect_err("invalid");
        let text = error.to_string();
        assert!(text.contains(expected), "{text} should name {expected}");
    }
}
