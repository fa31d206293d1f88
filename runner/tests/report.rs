//! The summary report: totals, percentiles from the HDR histograms, per-name rows (failures
//! included), type-qualified keys for shared names, and the written file.

use std::fs;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use load_density::core::{test_record_instance, RequestEvent, RequestStats};
use load_density::report::{self, ReportError};
use serde_json::{json, Value};

fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn event(request_type: &str, name: &str, us: u64, error: Option<&str>) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from(request_type),
        name: Arc::from(name),
        url: Arc::from(format!("http://127.0.0.1{name}")),
        status: Some(if error.is_some() { 500 } else { 200 }),
        response_time: Duration::from_micros(us),
        response_length: 1,
        error: error.map(Arc::from),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

#[test]
fn empty_stats_give_zeros() {
    let summary = report::summary_of(&RequestStats::new());
    assert_eq!(
        summary,
        json!({
            "totals": {"requests": 0, "successes": 0, "failures": 0, "failure_rate": 0.0,
                       "iterations": 0, "dropped_iterations": 0},
            "latency_overall": {"count": 0, "p50_ms": 0.0, "p90_ms": 0.0, "p95_ms": 0.0,
                                "p99_ms": 0.0, "max_ms": 0.0},
            "per_name": {}
        })
    );
}

#[test]
fn totals_percentiles_and_rows_count_failures() {
    let mut stats = RequestStats::new();
    // /fast: 1..=100 ms successes; /slow: two failures at 500 ms and 700 ms.
    for ms in 1..=100 {
        stats.add(&event("GET", "/fast", ms * 1000, None));
    }
    stats.add(&event("GET", "/slow", 500_000, Some("HTTP 500")));
    stats.add(&event("GET", "/slow", 700_000, Some("HTTP 500")));
    let summary = report::summary_of(&stats);

    let totals = &summary["totals"];
    assert_eq!(totals["requests"], 102);
    assert_eq!(totals["successes"], 100);
    assert_eq!(totals["failures"], 2);
    assert!((number(&totals["failure_rate"]) - 2.0 / 102.0).abs() < 1e-12);

    let overall = &summary["latency_overall"];
    assert_eq!(overall["count"], 102);
    assert_eq!(number(&overall["max_ms"]), 700.0);
    // HDR keeps three significant digits: within 0.1 % of the exact rank.
    let p50 = number(&overall["p50_ms"]);
    assert!((p50 - 51.0).abs() <= 0.1, "p50 {p50}");
    let p99 = number(&overall["p99_ms"]);
    assert!((p99 - 500.0).abs() <= 0.5, "p99 {p99}");

    let fast = &summary["per_name"]["/fast"];
    assert_eq!(fast["count"], 100);
    assert_eq!(fast["failures"], 0);
    assert_eq!(number(&fast["min_ms"]), 1.0);
    assert_eq!(number(&fast["max_ms"]), 100.0);
    assert!((number(&fast["mean_ms"]) - 50.5).abs() < 1e-9);
    let p90 = number(&fast["p90_ms"]);
    assert!((p90 - 90.0).abs() <= 0.1, "p90 {p90}");

    let slow = &summary["per_name"]["/slow"];
    assert_eq!(slow["count"], 2, "failures are counted in their row");
    assert_eq!(slow["failures"], 2);
    assert_eq!(number(&slow["mean_ms"]), 600.0);
    let keys: Vec<&String> = summary["per_name"]
        .as_object()
        .expect("per_name is an object")
        .keys()
        .collect();
    assert_eq!(keys, ["/fast", "/slow"], "rows in name order");
}

#[test]
fn percentiles_never_exceed_the_maximum() {
    let mut stats = RequestStats::new();
    // 12 345 us falls inside an HDR bucket whose upper edge is above it.
    stats.add(&event("GET", "/one", 12_345, None));
    let summary = report::summary_of(&stats);
    let row = &summary["per_name"]["/one"];
    for key in ["p50_ms", "p90_ms", "p95_ms", "p99_ms"] {
        assert_eq!(number(&row[key]), 12.345, "{key}");
        assert_eq!(number(&summary["latency_overall"][key]), 12.345, "{key}");
    }
}

#[test]
fn request_types_sharing_a_name_get_typed_keys() {
    let mut stats = RequestStats::new();
    stats.add(&event("POST", "/x", 2000, None));
    stats.add(&event("GET", "/x", 1000, None));
    stats.add(&event("GET", "/x", 1000, None));
    stats.add(&event("PUT", "/x", 3000, Some("boom")));
    stats.add(&event("GET", "", 1000, None));
    let summary = report::summary_of(&stats);
    let rows = summary["per_name"].as_object().expect("object");
    let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(keys, ["unknown", "/x", "POST /x", "PUT /x"]);
    assert_eq!(
        rows["/x"]["count"], 2,
        "GET sorts first and keeps the plain name"
    );
    assert_eq!(rows["POST /x"]["count"], 1);
    assert_eq!(rows["PUT /x"]["failures"], 1);
}

#[test]
fn build_summary_reads_the_record_store_and_the_file_matches() {
    let _guard = global_lock();
    let store = test_record_instance();
    store.clear_records();
    store.record_events(&[
        event("GET", "/r", 10_000, None),
        event("GET", "/r", 30_000, Some("HTTP 503")),
    ]);
    let summary = report::build_summary();
    assert_eq!(summary["totals"]["requests"], 2);
    assert_eq!(summary["per_name"]["/r"]["failures"], 1);
    assert_eq!(number(&summary["totals"]["failure_rate"]), 0.5);

    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("summary");
    let path = report::generate_summary_report(base.to_str().expect("utf-8")).expect("written");
    assert_eq!(path, dir.path().join("summary.json"));
    let text = fs::read_to_string(&path).expect("read report");
    assert!(
        !text.ends_with('\n'),
        "no trailing newline, like the Python version"
    );
    assert!(
        text.starts_with("{\n  \"totals\": {\n    \"requests\": 2,"),
        "indent 2: {text}"
    );
    let written: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(written, summary);
    store.clear_records();
}

#[test]
fn report_errors_name_the_problem() {
    let _guard = global_lock();
    assert!(matches!(
        report::generate_summary_report(""),
        Err(ReportError::EmptyName)
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("no-such-dir").join("summary");
    let error = report::generate_summary_report(base.to_str().expect("utf-8"))
        .expect_err("the parent directory is missing");
    assert!(matches!(error, ReportError::Write { .. }));
    assert!(error.to_string().contains("no-such-dir"), "{error}");
}

#[test]
fn the_checked_in_schema_is_the_one_the_crate_exposes() {
    let on_disk = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/summary.schema.json"
    ))
    .expect("schema file");
    assert_eq!(on_disk, report::SUMMARY_SCHEMA);
    let schema: Value = serde_json::from_str(report::SUMMARY_SCHEMA).expect("schema is JSON");
    // The schema names exactly the keys build_summary writes.
    let summary = report::summary_of(&RequestStats::new());
    for section in ["totals", "latency_overall"] {
        let mut required: Vec<&str> = schema["properties"][section]["required"]
            .as_array()
            .expect("required list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut written: Vec<&str> = summary[section]
            .as_object()
            .expect("section")
            .keys()
            .map(String::as_str)
            .collect();
        required.sort_unstable();
        written.sort_unstable();
        assert_eq!(required, written, "{section}");
    }
}
