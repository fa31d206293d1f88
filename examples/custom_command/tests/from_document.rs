//! `LD_expect_requests`, registered by this crate, runs from an action document after a real
//! load test against an in-process HTTP target on 127.0.0.1.

use example_custom_command as _;
use load_density::executor::{self, error_chain, ActionResult};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

fn ok(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

fn err(result: &ActionResult) -> String {
    match &result.outcome {
        Ok(value) => panic!("action {} should have failed, got {value}", result.index),
        Err(error) => error_chain(error),
    }
}

#[test]
fn the_command_is_listed_with_its_crate_and_parameters() {
    let info = executor::commands()
        .into_iter()
        .find(|c| c.name == "LD_expect_requests")
        .expect("LD_expect_requests is registered");
    assert_eq!(info.params, ["min_requests", "max_failure_rate"]);
    assert!(
        info.provider.starts_with("example-custom-command ("),
        "{}",
        info.provider
    );
    assert!(executor::known_commands().contains(&"LD_expect_requests"));
}

#[test]
fn it_runs_from_an_action_document_after_a_load_test() {
    // `LD_start_test` blocks and builds its own runtime: the target gets one of its own.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let target = runtime.block_on(HttpTarget::start()).expect("HTTP target");
    let doc = json!({"load_density": [
        ["LD_clear_records"],
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 2, "spawn_rate": 50, "test_time": 1, "print_stats": false,
            "host": target.base_url(),
            "tasks": [{"method": "get", "request_url": "/get"}]
        }],
        ["LD_expect_requests", {"min_requests": 1, "max_failure_rate": 0.0}],
        ["LD_expect_requests", [1_000_000_000u64]],
        ["LD_expect_requests", {"min_requests": 1, "colour": "blue"}],
        ["LD_expect_requests", {"max_failure_rate": 2}],
        ["LD_execute_action", {"action_list": [["LD_expect_requests"]]}]
    ]});
    let results = executor::execute_document(&doc).expect("valid document");
    assert_eq!(results.len(), 7);
    let served = target.served();
    runtime.block_on(target.shutdown());

    let verdict = ok(&results[2]);
    assert_eq!(verdict["status"], "passed");
    assert_eq!(verdict["failures"], 0);
    assert!(verdict["requests"].as_u64().expect("requests") > 0);
    assert_eq!(verdict["requests"].as_u64(), Some(served));

    let too_few = err(&results[3]);
    assert!(
        too_few.contains("expected at least 1000000000 requests"),
        "{too_few}"
    );
    let unknown = err(&results[4]);
    assert!(unknown.contains("unknown argument \"colour\""), "{unknown}");
    assert!(
        unknown.contains("min_requests, max_failure_rate"),
        "{unknown}"
    );
    let bad_rate = err(&results[5]);
    assert!(
        bad_rate.contains("max_failure_rate must be between 0 and 1"),
        "{bad_rate}"
    );
    let nested = ok(&results[6]);
    assert_eq!(nested[0]["command"], "LD_expect_requests");
    assert_eq!(nested[0]["ok"]["status"], "passed");
}
