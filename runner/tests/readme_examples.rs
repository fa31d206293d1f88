//! The examples of README.md run as documented: each JSON block is read from the README
//! itself and run against an in-process target (its address, and a shorter run, are the only
//! changes). The Rust quick start is compiled as a doc test (`ReadmeDoctests` in lib.rs).

use load_density::executor::execute_document;
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

/// The ```json blocks of the README, parsed, in order.
fn readme_json_blocks() -> Vec<Value> {
    let readme = include_str!("../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```json") => current = Some(String::new()),
            (Some(text), "```") => {
                let parsed = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("a README json block does not parse: {e}\n{text}"));
                blocks.push(parsed);
                current = None;
            }
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The `LD_start_test` arguments of an action.
fn start_test_args(action: &mut Value) -> &mut serde_json::Map<String, Value> {
    assert_eq!(action[0], "LD_start_test", "{action}");
    action[1].as_object_mut().expect("keyword arguments")
}

fn run(document: &Value) -> Vec<Value> {
    let results = execute_document(document).expect("a valid document");
    results
        .into_iter()
        .map(|result| match result.outcome {
            Ok(value) => value,
            Err(error) => panic!("action {} failed: {error}", result.index),
        })
        .collect()
}

#[test]
fn the_quick_start_document_runs() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let target = runtime.block_on(HttpTarget::start()).expect("a target");
    let dir = tempfile::tempdir().expect("temp dir");
    let blocks = readme_json_blocks();
    let mut document = blocks
        .iter()
        .find(|b| b.as_array().is_some_and(|a| a.len() == 3))
        .expect("the quick start document")
        .clone();
    let actions = document.as_array_mut().expect("a list");
    assert_eq!(actions[0][0], "LD_register_variable");
    actions[0][1]["value"] = json!(target.base_url());
    let args = start_test_args(&mut actions[1]);
    args.insert("test_time".into(), json!(2));
    args.insert("user_count".into(), json!(5));
    args.insert("spawn_rate".into(), json!(50));
    args.insert("print_stats".into(), json!(false));
    let report = dir.path().join("summary");
    actions[2][1]["report_name"] = json!(report.to_str().expect("utf-8 path"));
    let results = run(&document);
    let totals = &results[1]["totals"];
    assert!(totals["requests"].as_u64() > Some(0), "{totals}");
    assert_eq!(totals["failures"], 0, "{totals}");
    let written = results[2].as_str().expect("the report's path");
    assert!(std::path::Path::new(written).is_file(), "{written}");
    assert!(target.served_path("/post") > 0 && target.served_path("/get") > 0);
}

#[test]
fn the_web_ui_example_runs() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let target = runtime.block_on(HttpTarget::start()).expect("a target");
    let mut action = readme_json_blocks()
        .into_iter()
        .find(|b| b[0] == "LD_start_test" && b[1].get("web_ui_dict").is_some())
        .expect("the web UI example");
    let args = start_test_args(&mut action);
    assert_eq!(
        args["test_time"],
        Value::Null,
        "the README runs until stopped"
    );
    args.insert("test_time".into(), json!(1));
    args.insert("host".into(), json!(target.base_url()));
    args.insert("print_stats".into(), json!(false));
    args["web_ui_dict"]["port"] = json!(0);
    let results = run(&json!([action]));
    assert!(
        results[0]["totals"]["requests"].as_u64() > Some(0),
        "{}",
        results[0]
    );
}
