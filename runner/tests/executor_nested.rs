//! `LD_execute_action`, `LD_execute_files` (nested, ordered results) and the error of
//! `LD_add_package_to_executor`.

use std::fs;

use load_density::executor::{self, error_chain, ActionResult};
use serde_json::{json, Value};

fn run(doc: Value) -> Vec<ActionResult> {
    executor::execute_document(&doc).expect("the document has a valid shape")
}

fn ok(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

fn serialized(result: &ActionResult) -> Value {
    serde_json::to_value(result).expect("serializes")
}

#[test]
fn execute_action_returns_nested_results_in_order_and_keeps_duplicates() {
    let results = run(json!([
        ["LD_execute_action", {"action_list": [
            ["LD_clear_resolver"],
            ["LD_clear_resolver"],
            ["LD_execute_action", [{"load_density": [["LD_clear_resolver"]]}]]
        ]}]
    ]));
    let nested = ok(&results[0]).as_array().expect("a list");
    assert_eq!(nested.len(), 3);
    for (index, item) in nested.iter().enumerate() {
        assert_eq!(item["index"], index);
    }
    assert_eq!(nested[0]["ok"], json!({"status": "cleared"}));
    assert_eq!(nested[1]["ok"], json!({"status": "cleared"}));
    assert_eq!(nested[2]["ok"][0]["ok"], json!({"status": "cleared"}));
}

#[test]
fn a_failing_nested_action_fails_the_outer_one_and_keeps_every_result() {
    let results = run(json!([
        ["LD_execute_action", [[["LD_no_such"], ["LD_clear_resolver"]]]],
        ["LD_execute_action", {"action_list": "not a document"}],
        ["LD_clear_resolver"]
    ]));
    let outer = serialized(&results[0]);
    assert!(
        outer["error"]
            .as_str()
            .expect("error")
            .contains("LD_execute_action: 1 of 2 failed"),
        "{outer}"
    );
    assert!(outer["results"][0]["error"]
        .as_str()
        .expect("nested error")
        .contains("unknown command \"LD_no_such\""));
    assert_eq!(outer["results"][1]["ok"], json!({"status": "cleared"}));
    let shape = serialized(&results[1]);
    assert!(
        shape["error"]
            .as_str()
            .expect("error")
            .contains("argument \"action_list\": invalid action document"),
        "{shape}"
    );
    assert!(results[2].is_ok(), "later actions still run");
}

#[test]
fn execute_files_runs_each_file_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    fs::write(&good, r#"[["LD_clear_resolver"], ["LD_clear_records"]]"#).expect("write");
    fs::write(&bad, "[[\"LD_clear_resolver\"").expect("write");
    let missing = dir.path().join("missing.json");
    let results = run(json!([
        ["LD_execute_files", {"execute_files_list": [good, good]}],
        ["LD_execute_files", [[good, bad, missing]]]
    ]));
    let both = ok(&results[0]).as_array().expect("a list");
    assert_eq!(both.len(), 2);
    assert_eq!(both[0]["file"], good.display().to_string());
    assert_eq!(both[1]["results"][1]["command"], "LD_clear_records");

    let mixed = serialized(&results[1]);
    assert!(mixed["error"]
        .as_str()
        .expect("error")
        .contains("2 of 3 failed"));
    assert_eq!(mixed["results"][0]["results"][0]["ok"]["status"], "cleared");
    assert!(mixed["results"][1]["error"]
        .as_str()
        .expect("error")
        .contains("invalid JSON"));
    assert!(mixed["results"][2]["error"]
        .as_str()
        .expect("error")
        .contains("cannot read action file"));
}

#[test]
fn a_file_that_runs_itself_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("self.json");
    let doc = json!([["LD_execute_files", [[file]]]]);
    fs::write(&file, doc.to_string()).expect("write");
    let results = run(doc);
    let text = serde_json::to_string(&serialized(&results[0])).expect("text");
    assert!(
        text.contains(&format!(
            "documents nest more than {} levels deep",
            executor::MAX_DEPTH
        )),
        "{text}"
    );
}

#[test]
fn add_package_to_executor_explains_the_rust_mechanism() {
    let results = run(json!([["LD_add_package_to_executor", {"package": "os"}]]));
    let error = error_chain(results[0].outcome.as_ref().expect_err("unsupported"));
    assert!(error.contains("register_command!"), "{error}");
    assert!(error.contains("\"os\""), "{error}");
    assert!(error.contains("examples/custom_command"), "{error}");
}

#[test]
fn every_command_is_listed_with_its_parameters() {
    let commands = executor::commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    assert_eq!(names, executor::known_commands());
    let nested = commands
        .iter()
        .find(|c| c.name == "LD_execute_files")
        .expect("listed");
    assert_eq!(nested.params, ["execute_files_list"]);
    let start = commands
        .iter()
        .find(|c| c.name == "LD_start_test")
        .expect("listed");
    assert!(start.more_keywords);
    assert_eq!(start.params[0], "user_detail_dict");
}
