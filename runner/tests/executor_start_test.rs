//! `LD_start_test` through the executor, against an in-process testkit server on 127.0.0.1
//! (a few users, one or two seconds).

use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain, ActionResult, ExecutorError};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

/// Runs the target on its own runtime: `LD_start_test` blocks and builds its own.
fn start_target() -> (tokio::runtime::Runtime, HttpTarget) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("target runtime");
    let target = runtime
        .block_on(HttpTarget::start())
        .expect("testkit target starts");
    (runtime, target)
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

// One test function: the record store is process-wide and each step reads it.
#[test]
fn start_test_runs_records_and_reports_errors() {
    let (runtime, target) = start_target();
    let doc = json!({"load_density": [
        ["LD_clear_records"],
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 3,
            "spawn_rate": 3,
            "test_time": 1.5,
            "host": target.base_url(),
            "tasks": [
                {"method": "get", "request_url": "/get", "name": "/get"},
                {"method": "get", "request_url": "/status/503", "name": "/fail"}
            ]
        }],
        ["LD_summary"],
        ["LD_start_test", [{"user": "no_such_user"}, 1, 1, 1]],
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "test_time": "soon"}],
    ]});
    let results = executor::execute_document(&doc).expect("valid document");
    assert_eq!(results.len(), 5);

    let run = ok_value(&results[1]);
    assert_eq!(run["user_count"], 3);
    assert_eq!(run["runner_mode"], "local");
    assert_eq!(run["user_detail"], json!({"user": "fast_http_user"}));
    let requests = run["totals"]["requests"].as_u64().expect("request count");
    assert!(requests >= 2, "some requests were made: {run}");
    assert!(run["totals"]["failures"].as_u64().expect("failures") >= 1);

    let summary = ok_value(&results[2]);
    assert_eq!(summary["totals"]["requests"], requests);
    assert_eq!(
        summary["totals"]["requests"].as_u64(),
        Some(target.served())
    );
    let get = &summary["per_name"]["/get"];
    let fail = &summary["per_name"]["/fail"];
    assert_eq!(get["failures"], 0);
    assert_eq!(fail["failures"], fail["count"]);
    assert_eq!(
        get["count"].as_u64().expect("count") + fail["count"].as_u64().expect("count"),
        requests
    );

    let unknown = error_chain(results[3].outcome.as_ref().expect_err("unknown user type"));
    assert!(unknown.contains("no_such_user"), "{unknown}");
    assert!(
        unknown.contains("fast_http_user"),
        "lists the known types: {unknown}"
    );

    assert!(matches!(
        results[4].outcome,
        Err(ExecutorError::Arguments {
            command: "LD_start_test",
            ..
        })
    ));
    let bad_time = error_chain(results[4].outcome.as_ref().expect_err("bad test_time"));
    assert!(bad_time.contains("argument \"test_time\""), "{bad_time}");

    test_record_instance().clear_records();
    runtime.block_on(target.shutdown());
}
