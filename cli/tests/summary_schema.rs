//! Real summary output matches the checked-in schema (runner/schema/summary.schema.json).
//!
//! Runs the binary against an in-process testkit server (2 users, 1.5 s), then validates both
//! what `LD_summary` printed and the file `LD_generate_summary_report` wrote.

use std::fs;
use std::process::Command;

use load_density::report::SUMMARY_SCHEMA;
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SUMMARY_SCHEMA).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON schema")
}

fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn real_summary_output_matches_the_schema() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let target = runtime
        .block_on(HttpTarget::start())
        .expect("target starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let report_base = dir.path().join("summary");
    let doc = json!([
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 2,
            "spawn_rate": 2,
            "test_time": 1.5,
            "host": target.base_url(),
            "print_stats": false,
            "tasks": [
                {"method": "get", "request_url": "/get", "name": "/get"},
                {"method": "post", "request_url": "/get", "name": "/get"},
                {"method": "get", "request_url": "/status/500", "name": "/boom"}
            ]
        }],
        ["LD_summary"],
        ["LD_generate_summary_report", {"report_name": report_base.to_str().expect("utf-8")}]
    ]);
    let output = Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(["run-str", &doc.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    runtime.block_on(target.shutdown());

    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a result line"))
        .collect();
    let summary = lines
        .iter()
        .find(|l| l["command"] == "LD_summary")
        .map(|l| l["ok"].clone())
        .expect("an LD_summary result");
    let path = lines
        .iter()
        .find(|l| l["command"] == "LD_generate_summary_report")
        .and_then(|l| l["ok"].as_str().map(str::to_owned))
        .expect("a report path");
    let written: Value =
        serde_json::from_str(&fs::read_to_string(&path).expect("report file")).expect("JSON");

    let validator = validator();
    // The run exercised every part of the schema: rows, failures, a name shared by two types.
    assert!(
        summary["totals"]["failures"].as_u64().expect("failures") > 0,
        "{summary}"
    );
    assert!(summary["per_name"]["POST /get"].is_object(), "{summary}");
    assert_eq!(
        violations(&validator, &summary),
        Vec::<String>::new(),
        "{summary}"
    );
    assert_eq!(
        violations(&validator, &written),
        Vec::<String>::new(),
        "{written}"
    );
}

#[test]
fn the_schema_rejects_what_the_summary_must_not_be() {
    let validator = validator();
    let valid = json!({
        "totals": {"requests": 1, "successes": 1, "failures": 0, "failure_rate": 0.0,
                   "iterations": 1, "dropped_iterations": 0},
        "latency_overall": {"count": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p95_ms": 1.0,
                            "p99_ms": 1.0, "max_ms": 1.0},
        "per_name": {"/": {"count": 1, "failures": 0, "min_ms": 1.0, "max_ms": 1.0,
                           "mean_ms": 1.0, "p50_ms": 1.0, "p90_ms": 1.0, "p95_ms": 1.0,
                           "p99_ms": 1.0}}
    });
    assert!(violations(&validator, &valid).is_empty());
    let mut missing_failures = valid.clone();
    missing_failures["per_name"]["/"]
        .as_object_mut()
        .expect("row")
        .remove("failures");
    let mut negative = valid.clone();
    negative["latency_overall"]["p99_ms"] = json!(-1.0);
    let mut extra = valid.clone();
    extra["totals"]["surprise"] = json!(1);
    let mut fractional_count = valid;
    fractional_count["totals"]["requests"] = json!(1.5);
    for invalid in [missing_failures, negative, extra, fractional_count] {
        assert!(!violations(&validator, &invalid).is_empty(), "{invalid}");
    }
}
