//! Thresholds end to end: pass and fail at the end, an abort after its delay (local and
//! distributed), validation errors naming the key, and the JUnit thresholds suite read by
//! the real `junitparser` (PyPI).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use load_density::core::test_record_instance;
use load_density::distributed::Worker;
use load_density::thresholds::Verdict;
use load_density::{executor, start_test_async, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

/// Tests here share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(value: Value) -> StartTest {
    serde_json::from_value(value).expect("a valid start_test configuration")
}

fn local(target: &HttpTarget, test_time: f64, thresholds: Value) -> StartTest {
    config(json!({
        "user_count": 2,
        "spawn_rate": 2,
        "test_time": test_time,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}],
        "thresholds": thresholds,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_that_hold_pass_and_the_summary_lists_each() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    let summary = start_test_async(local(
        &target,
        2.0,
        json!({
            "requests": ["count>0", "rate>0"],
            "failure_rate": ["rate<0.5"],
            "response_time{name:/get}": ["p(95)<5000", "avg<5000"],
        }),
    ))
    .await
    .expect("run");
    assert_eq!(summary.verdict, Some(Verdict::Passed));
    let results = summary.thresholds.expect("results");
    assert_eq!(results.len(), 5);
    assert!(
        results.iter().all(|r| r.ok && r.value.is_some()),
        "{results:?}"
    );
    assert_eq!(results[0].value, Some(summary.totals.requests as f64));
    let json = serde_json::to_value(&results[0]).expect("json");
    assert_eq!(
        json.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "metric".into(),
            "condition".into(),
            "value".into(),
            "ok".into()
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_condition_fails_the_verdict_but_the_run_goes_to_its_end() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    let started = Instant::now();
    let summary = start_test_async(local(
        &target,
        2.0,
        json!({"requests": ["count<1"], "failure_rate": ["rate==0"]}),
    ))
    .await
    .expect("a failed threshold is a verdict, not an error");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(summary.verdict, Some(Verdict::Failed));
    let results = summary.thresholds.expect("results");
    assert!(!results[0].ok && results[1].ok, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_after_its_delay() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    let started = Instant::now();
    let summary = start_test_async(local(
        &target,
        60.0,
        json!({"requests": [{"threshold": "count<1", "abort_on_fail": true, "delay_abort_eval": "2s"}]}),
    ))
    .await
    .expect("run");
    let took = started.elapsed();
    assert_eq!(summary.verdict, Some(Verdict::Aborted));
    assert!(
        took >= Duration::from_secs(2),
        "aborted before its delay: {took:?}"
    );
    assert!(took < Duration::from_secs(30), "not aborted: {took:?}");
    assert!(!summary.thresholds.expect("results")[0].ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_abort_stops_every_worker() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("target");
    let port = unused_local_port();
    let master_config = config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": 2,
        "expected_workers_timeout": 20,
        "user_count": 4,
        "spawn_rate": 4,
        "test_time": 60,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}],
        "thresholds": {"response_time": [{"threshold": "max<0", "abort_on_fail": true, "delay_abort_eval": 1}]},
    }));
    let started = Instant::now();
    let master = tokio::spawn(start_test_async(master_config));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let worker = config(json!({
            "runner_mode": "worker",
            "master_host": "127.0.0.1",
            "master_port": port,
            "master_timeout": 20,
        }));
        workers.push(Worker::start(worker).await.expect("worker"));
    }
    let summary = tokio::time::timeout(Duration::from_secs(40), master)
        .await
        .expect("the master stopped")
        .expect("join")
        .expect("master run");
    assert_eq!(summary.verdict, Some(Verdict::Aborted));
    assert!(started.elapsed() < Duration::from_secs(40));
    for worker in workers {
        let s = tokio::time::timeout(Duration::from_secs(20), worker.wait())
            .await
            .expect("every worker stops when the master aborts")
            .expect("worker summary");
        assert!(s.totals.requests > 0);
    }
    assert!(summary.totals.requests > 0);
}

#[test]
fn bad_thresholds_are_errors_before_the_run_naming_the_key() {
    for (thresholds, expected) in [
        (json!({"latency": ["avg<1"]}), "unknown metric"),
        (json!({"response_time": ["p(101)<1"]}), "outside 0-100"),
        (json!({"response_time": ["p95<1"]}), "unknown aggregation"),
        (
            json!({"response_time{host:x}": ["avg<1"]}),
            "unknown filter",
        ),
        (json!({"failure_rate": ["rate 0.1"]}), "malformed condition"),
    ] {
        let key = thresholds
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("a key");
        let document = json!([["LD_start_test", {"test_time": 1, "thresholds": thresholds}]]);
        let results = executor::execute_document(&document).expect("a document");
        let error = executor::error_chain(results[0].outcome.as_ref().expect_err("rejected"));
        assert!(
            error.contains("thresholds") && error.contains(&key) && error.contains(expected),
            "{error}"
        );
    }
}

fn python() -> PathBuf {
    std::env::var_os("LOAD_DENSITY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ld-venv/bin/python3"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_with_thresholds_has_a_thresholds_suite_that_junitparser_reads() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("target");
    start_test_async(local(
        &target,
        1.5,
        json!({"requests": ["count>0", "count<1"]}),
    ))
    .await
    .expect("run");
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir.path().join("junit").display().to_string();
    let document = json!([["LD_generate_junit_report", {"report_name": name}]]);
    let results = executor::execute_document(&document).expect("document");
    let path = results[0]
        .outcome
        .as_ref()
        .expect("written")
        .as_str()
        .expect("a path")
        .to_owned();
    let requests = test_record_instance().counts();
    let script = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
suites = {}
for suite in xml:
    cases = [{"name": c.name, "classname": c.classname,
              "failed": any(r._tag == "failure" for r in c.result)} for c in suite]
    suites[suite.name] = {"tests": suite.tests, "failures": suite.failures, "cases": cases}
print(json.dumps(suites))
"#;
    let output = std::process::Command::new(python())
        .args(["-c", script, &path])
        .output()
        .expect("run the venv's python (bash .ci/install-deps installs junitparser)");
    assert!(
        output.status.success(),
        "junitparser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let suites: Value = serde_json::from_slice(&output.stdout).expect("json");
    let records = &suites["loaddensity"];
    assert_eq!(records["tests"], (requests.0 + requests.1) as u64);
    let thresholds = &suites["thresholds"];
    assert_eq!(thresholds["tests"], 2);
    assert_eq!(thresholds["failures"], 1);
    assert_eq!(thresholds["cases"][0]["name"], "count>0");
    assert_eq!(thresholds["cases"][0]["classname"], "requests");
    assert_eq!(thresholds["cases"][0]["failed"], false);
    assert_eq!(thresholds["cases"][1]["failed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_is_the_share_of_assertions_that_passed() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    let summary = start_test_async(config(json!({
        "user_count": 2,
        "spawn_rate": 2,
        "test_time": 2,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "/get",
             "assertions": [{"type": "status_code", "value": 200}, {"type": "contains", "value": "{"}]},
            {"method": "get", "request_url": "/status/503",
             "assertions": [{"type": "status_code", "value": 200}]}
        ],
        "thresholds": {"checks": ["rate>0.99", "rate>0.5"]},
    })))
    .await
    .expect("run");
    let results = summary.thresholds.expect("results");
    // Per iteration: two assertions pass on /get, one fails on /status/503.
    let rate = results[0].value.expect("assertions ran");
    assert!((0.55..0.78).contains(&rate), "{results:?}");
    assert!(!results[0].ok && results[1].ok, "{results:?}");
    assert_eq!(summary.verdict, Some(Verdict::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_latency_and_dropped_iterations_are_judged_from_the_schedule() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("target");
    // 40 iterations due over 1 s; two users of 100 ms each run about 20: the rest is dropped.
    let summary = start_test_async(config(json!({
        "test_time": 20,
        "host": target.base_url(),
        "print_stats": false,
        "load_model": {"type": "constant_arrival_rate", "rate": 40, "duration": 1,
                       "pre_allocated_users": 2, "max_users": 2, "when_busy": "drop"},
        "tasks": [{"method": "get", "request_url": "/delay/100", "name": "slow"}],
        "thresholds": {
            "dropped_iterations": ["count==0"],
            "corrected_response_time{name:slow}": ["p(99)<60000", "max>=100"],
            // The single-group shorthand's group is named after its user type.
            "dropped_iterations{group:fast_http_user}": ["count==0"],
            "corrected_response_time{group:fast_http_user}": ["max>=100"],
        },
    })))
    .await
    .expect("run");
    let dropped = summary.totals.dropped_iterations;
    assert!(dropped >= 10, "{:?}", summary.totals);
    assert_eq!(summary.verdict, Some(Verdict::Failed));
    let results = summary.thresholds.expect("results");
    assert_eq!(results.len(), 5, "{results:?}");
    // The group keeps its own statistics: the same drops and corrected latency.
    assert_eq!(results[3].value, Some(dropped as f64), "{results:?}");
    assert!(!results[3].ok, "{results:?}");
    assert!(results[4].ok && results[4].value.is_some(), "{results:?}");
    // The dropped count is the summary's, and it fails `count==0`.
    assert_eq!(results[0].value, Some(dropped as f64), "{results:?}");
    assert!(!results[0].ok, "{results:?}");
    // The corrected latency has data (the run had a schedule) and holds.
    let p99 = results[1].value.expect("corrected p99 has data");
    assert!(p99 >= 100.0, "{results:?}");
    assert!(results[1].ok && results[2].ok, "{results:?}");
}

/// Two groups on two targets: `fast` (200s) and `failing` (503s), each with its own
/// `thresholds`, and the run's `thresholds` on top.
fn two_groups(
    fast: &HttpTarget,
    failing: &HttpTarget,
    fast_thresholds: Value,
    failing_thresholds: Value,
    top: Value,
) -> StartTest {
    config(json!({
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 2,
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "user_groups": [
            {"name": "fast", "user": "fast_http_user", "host": fast.base_url(),
             "tasks": [{"method": "get", "request_url": "/get"}],
             "thresholds": fast_thresholds},
            {"name": "failing", "user": "fast_http_user", "host": failing.base_url(),
             "tasks": [{"method": "get", "request_url": "/status/503"}],
             "thresholds": failing_thresholds}
        ],
        "thresholds": top,
    }))
}

fn result<'a>(
    results: &'a [load_density::thresholds::ThresholdResult],
    metric: &str,
    condition: &str,
) -> &'a load_density::thresholds::ThresholdResult {
    results
        .iter()
        .find(|r| r.metric == metric && r.condition == condition)
        .unwrap_or_else(|| panic!("no {metric} {condition} in {results:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_thresholds_judge_each_group_on_its_own_statistics() {
    let _serial = SERIAL.lock().await;
    let fast = HttpTarget::start().await.expect("target");
    let failing = HttpTarget::start().await.expect("target");
    let summary = start_test_async(two_groups(
        &fast,
        &failing,
        json!({"failure_rate": ["rate<0.01"], "requests": ["count>0"],
               "response_time": ["p(95)<5000"]}),
        json!({"failure_rate": ["rate<0.01"], "requests{type:GET}": ["count>0"]}),
        json!({"requests{group:fast}": ["count>=1"], "failure_rate": ["rate<1"]}),
    ))
    .await
    .expect("run");
    let results = summary.thresholds.clone().expect("results");
    let (fast_count, failing_count) = (fast.served() as f64, failing.served() as f64);
    assert!(fast_count > 0.0 && failing_count > 0.0);
    assert_eq!(
        fast_count + failing_count,
        summary.totals.requests as f64,
        "every request reached a target"
    );
    // The group's own condition and the top-level {group:fast} one share a key.
    let fast_requests = result(&results, "requests{group:fast}", "count>0");
    assert_eq!(fast_requests.value, Some(fast_count), "{results:?}");
    assert!(fast_requests.ok);
    assert_eq!(
        result(&results, "requests{group:fast}", "count>=1").value,
        Some(fast_count)
    );
    let fast_failures = result(&results, "failure_rate{group:fast}", "rate<0.01");
    assert_eq!(fast_failures.value, Some(0.0));
    assert!(fast_failures.ok);
    assert!(
        result(&results, "response_time{group:fast}", "p(95)<5000")
            .value
            .is_some(),
        "{results:?}"
    );
    let failing_failures = result(&results, "failure_rate{group:failing}", "rate<0.01");
    assert_eq!(failing_failures.value, Some(1.0));
    assert!(
        !failing_failures.ok,
        "the failing group fails its threshold"
    );
    assert_eq!(
        result(&results, "requests{type:GET,group:failing}", "count>0").value,
        Some(failing_count)
    );
    let overall = result(&results, "failure_rate", "rate<1");
    assert!(overall.ok, "the run as a whole: {overall:?}");
    assert_eq!(summary.verdict, Some(Verdict::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_thresholds_that_hold_pass_the_run() {
    let _serial = SERIAL.lock().await;
    let fast = HttpTarget::start().await.expect("target");
    let failing = HttpTarget::start().await.expect("target");
    let summary = start_test_async(two_groups(
        &fast,
        &failing,
        json!({"failure_rate": ["rate==0"]}),
        json!({"failure_rate": ["rate>0.99"]}),
        Value::Null,
    ))
    .await
    .expect("run");
    let results = summary.thresholds.clone().expect("results");
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(
        result(&results, "failure_rate{group:failing}", "rate>0.99").value,
        Some(1.0)
    );
    assert_eq!(
        result(&results, "failure_rate{group:fast}", "rate==0").value,
        Some(0.0)
    );
    assert_eq!(summary.verdict, Some(Verdict::Passed), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_thresholds_are_errors_naming_their_json_path() {
    let fast = HttpTarget::start().await.expect("target");
    let failing = HttpTarget::start().await.expect("target");
    let cases = [
        (
            json!({}),
            json!({"failure_rate": ["p(95)<1"]}),
            Value::Null,
            "user_groups[1].thresholds.\"failure_rate[0]\"",
        ),
        (
            json!({"checks": ["rate>0.9"]}),
            json!({}),
            Value::Null,
            "user_groups[0].thresholds.\"checks\": checks are counted for the whole run",
        ),
        (
            json!({"requests{group:failing}": ["count>0"]}),
            json!({}),
            Value::Null,
            "user_groups[0].thresholds.\"requests{group:failing}\": filters group \"failing\"",
        ),
        (
            json!({}),
            json!({}),
            json!({"requests{group:nope}": ["count>0"]}),
            "thresholds.\"requests{group:nope}\": no user group named \"nope\" (groups: fast, failing)",
        ),
    ];
    for (fast_thresholds, failing_thresholds, top, expected) in cases {
        let error = load_density::RunPlan::compile(two_groups(
            &fast,
            &failing,
            fast_thresholds,
            failing_thresholds,
            top,
        ))
        .expect_err("refused before the run")
        .to_string();
        assert!(
            error.contains(expected),
            "{error}\nshould contain {expected}"
        );
    }
    assert_eq!(fast.served() + failing.served(), 0);
}
