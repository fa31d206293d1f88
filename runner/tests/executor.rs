//! The action-document executor: document and action shapes, the command table, argument
//! checking, files and directories.

use std::fs;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use load_density::core::{test_record_instance, RequestEvent};
use load_density::executor::{self, error_chain, ActionResult, ExecutorError};
use load_density::globals::{registered_csv_sources, registered_variables};
use serde_json::{json, Value};

/// The record store, variables and CSV sources are process-wide: tests touching them take turns.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run(doc: Value) -> Vec<ActionResult> {
    executor::execute_document(&doc).expect("the document has a valid shape")
}

fn error_text(result: &ActionResult) -> String {
    match &result.outcome {
        Ok(value) => panic!("action {} should have failed, got {value}", result.index),
        Err(error) => error_chain(error),
    }
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

fn event(name: &str, ms: u64, error: Option<&str>) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(format!("http://127.0.0.1/{name}")),
        status: Some(if error.is_some() { 503 } else { 200 }),
        response_time: Duration::from_millis(ms),
        response_length: 10,
        error: error.map(Arc::from),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

#[test]
fn known_commands_are_sorted_and_include_the_documented_ones() {
    let known = executor::known_commands();
    let mut sorted = known.clone();
    sorted.sort_unstable();
    assert_eq!(known, sorted);
    for name in [
        "LD_start_test",
        "LD_register_variable",
        "LD_register_variables",
        "LD_register_csv_source",
        "LD_register_csv_sources",
        "LD_clear_records",
        "LD_summary",
        "LD_generate_summary_report",
    ] {
        assert!(known.contains(&name), "{name} missing from {known:?}");
    }
}

#[test]
fn unknown_command_lists_the_known_ones_and_later_actions_still_run() {
    let _guard = global_lock();
    let results = run(json!([["LD_no_such_thing"], ["LD_summary"]]));
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].command.as_deref(), Some("LD_no_such_thing"));
    assert!(matches!(
        results[0].outcome,
        Err(ExecutorError::UnknownCommand { .. })
    ));
    let message = error_text(&results[0]);
    assert!(message.contains("\"LD_no_such_thing\""), "{message}");
    let listed = executor::known_commands().join(", ");
    assert!(message.ends_with(&listed), "{message}");
    assert!(results[1].is_ok(), "the action after a failure runs");
}

#[test]
fn document_shapes() {
    let cases = [
        (json!("LD_summary"), "got a string"),
        (json!(42), "got a number"),
        (json!([]), "the action list is empty"),
        (json!({"actions": []}), "no \"load_density\" key"),
        (
            json!({"load_density": {"a": 1}}),
            "must be a list of actions, got an object",
        ),
        (json!({"load_density": []}), "the action list is empty"),
    ];
    for (doc, expected) in cases {
        let error = executor::execute_document(&doc).expect_err("invalid document");
        assert!(
            matches!(error, ExecutorError::Document { .. }),
            "{doc}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(expected), "{doc}: {message}");
    }
}

#[test]
fn object_document_ignores_other_keys() {
    let _guard = global_lock();
    let results = run(json!({"comment": "x", "load_density": [["LD_clear_records"]]}));
    assert_eq!(results.len(), 1);
    assert_eq!(ok_value(&results[0]), &json!({"status": "cleared"}));
}

#[test]
fn action_shape_errors_name_the_index() {
    let _guard = global_lock();
    let results = run(json!([
        "LD_summary",
        [],
        ["LD_summary", {}, {}],
        [7, {}],
        ["LD_summary"],
    ]));
    assert_eq!(results.len(), 5);
    let expectations = [
        (0, "action 0: expected [\"LD_command\"]", None),
        (1, "action 1: the action is empty", None),
        (
            2,
            "action 2: expected [command] or [command, arguments], got 3 elements",
            Some("LD_summary"),
        ),
        (
            3,
            "action 3: the command name must be a string, got a number",
            None,
        ),
    ];
    for (index, expected, command) in expectations {
        let result = &results[index];
        assert_eq!(result.index, index);
        assert_eq!(result.command.as_deref(), command);
        assert!(
            matches!(result.outcome, Err(ExecutorError::Action { index: i, .. }) if i == index),
            "{:?}",
            result.outcome
        );
        let message = error_text(result);
        assert!(message.starts_with(expected), "{message}");
    }
    assert!(results[4].is_ok());
}

#[test]
fn duplicate_actions_are_kept_in_order() {
    let _guard = global_lock();
    let results = run(json!([
        ["LD_clear_records"],
        ["LD_register_variable", {"name": "dup", "value": 1}],
        ["LD_clear_records"],
        ["LD_register_variable", {"name": "dup", "value": 1}],
    ]));
    let seen: Vec<(usize, Option<&str>)> = results
        .iter()
        .map(|r| (r.index, r.command.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Some("LD_clear_records")),
            (1, Some("LD_register_variable")),
            (2, Some("LD_clear_records")),
            (3, Some("LD_register_variable")),
        ]
    );
    assert!(results.iter().all(ActionResult::is_ok));
}

#[test]
fn action_results_serialize_as_ok_or_error() {
    let _guard = global_lock();
    let results = run(json!([["LD_clear_records"], ["LD_nope"]]));
    let ok = serde_json::to_value(&results[0]).expect("serialize");
    assert_eq!(
        ok,
        json!({"index": 0, "command": "LD_clear_records", "ok": {"status": "cleared"}})
    );
    let failed = serde_json::to_value(&results[1]).expect("serialize");
    assert_eq!(failed["index"], 1);
    assert_eq!(failed["command"], "LD_nope");
    assert!(failed.get("ok").is_none());
    let message = failed["error"].as_str().expect("error is a string");
    assert!(
        message.starts_with("unknown command \"LD_nope\""),
        "{message}"
    );
}

#[test]
fn register_variable_by_keyword_and_by_position() {
    let _guard = global_lock();
    let results = run(json!([
        ["LD_register_variable", {"name": "exec_kw", "value": {"n": 5}}],
        ["LD_register_variable", ["exec_pos", [1, 2]]],
    ]));
    assert_eq!(ok_value(&results[0]), &Value::Null);
    assert_eq!(ok_value(&results[1]), &Value::Null);
    let variables = registered_variables();
    assert_eq!(variables.get("exec_kw"), Some(&json!({"n": 5})));
    assert_eq!(variables.get("exec_pos"), Some(&json!([1, 2])));
}

#[test]
fn register_variables_and_clear_resolver() {
    let _guard = global_lock();
    let results = run(json!([
        ["LD_register_variables", {"variables": {"exec_a": "x", "exec_b": 2}}],
    ]));
    assert!(results[0].is_ok());
    assert_eq!(registered_variables().get("exec_b"), Some(&json!(2)));
    let results = run(json!([["LD_clear_resolver"]]));
    assert_eq!(ok_value(&results[0]), &json!({"status": "cleared"}));
    assert_eq!(registered_variables().get("exec_a"), None);
}

#[test]
fn wrong_arguments_name_the_command_and_the_argument() {
    let _guard = global_lock();
    let results = run(json!([
        ["LD_register_variable", {"name": "x", "value": 1, "colour": "red"}],
        ["LD_register_variable", {"value": 1}],
        ["LD_register_variable", {"name": 5, "value": 1}],
        ["LD_register_variables", {"variables": [1, 2]}],
        ["LD_register_csv_source", {"name": "n", "file_path": "f.csv", "cycle": "yes"}],
        ["LD_register_variable", "name"],
        ["LD_register_variable", ["a", 1, "extra"]],
        ["LD_summary", {"verbose": true}],
        ["LD_start_test", {"user_count": "many"}],
    ]));
    let expectations = [
        "LD_register_variable: unknown argument \"colour\" (accepted: name, value)",
        "LD_register_variable: missing argument \"name\" (accepted: name, value)",
        "LD_register_variable: argument \"name\": invalid type: integer `5`, expected a string",
        "LD_register_variables: argument \"variables\": invalid type: sequence, expected a map",
        "LD_register_csv_source: argument \"cycle\": invalid type: string \"yes\", expected a boolean",
        "LD_register_variable: arguments must be an object (keyword arguments) or a list \
         (positional arguments), got a string",
        "LD_register_variable: takes at most 2 positional arguments (accepted: name, value), got 3",
        "LD_summary: unknown argument \"verbose\" (it takes no arguments)",
        "LD_start_test: argument \"user_count\": expected a whole number (0 or more), got \"many\"",
    ];
    assert_eq!(results.len(), expectations.len());
    for (result, expected) in results.iter().zip(expectations) {
        assert!(
            matches!(result.outcome, Err(ExecutorError::Arguments { .. })),
            "{}: {:?}",
            result.index,
            result.outcome
        );
        let message = error_text(result);
        assert!(message.starts_with(expected), "{}: {message}", result.index);
    }
    assert_eq!(registered_variables().get("x"), None, "nothing registered");
}

#[test]
fn csv_sources_are_checked_and_registered() {
    let _guard = global_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users.csv");
    fs::write(&users, "email,password\na@x,1\nb@x,2\n").expect("write csv");
    let missing = dir.path().join("missing.csv");
    let users = users.to_str().expect("utf-8 path");
    let missing = missing.to_str().expect("utf-8 path");
    let results = run(json!([
        ["LD_register_csv_source", {"name": "exec_users", "file_path": users}],
        ["LD_register_csv_source", ["exec_once", users, false]],
        ["LD_register_csv_source", {"name": "exec_missing", "file_path": missing}],
        ["LD_register_csv_sources", {"sources": [{"name": "exec_list", "file_path": users, "cycle": false}]}],
        ["LD_register_csv_sources", {"sources": [{"name": "exec_no_path"}]}],
    ]));
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    let missing_message = error_text(&results[2]);
    assert!(missing_message.contains(missing), "{missing_message}");
    let no_path = error_text(&results[4]);
    assert!(no_path.contains("csv_sources[0]"), "{no_path}");
    let sources = registered_csv_sources();
    let find = |name: &str| sources.iter().find(|s| s.name == name);
    let cycling = find("exec_users").expect("exec_users registered");
    assert!(cycling.cycle);
    assert_eq!(cycling.columns, ["email", "password"]);
    assert!(!find("exec_once").expect("exec_once registered").cycle);
    assert!(!find("exec_list").expect("exec_list registered").cycle);
    assert!(find("exec_missing").is_none());
}

#[test]
fn clear_records_and_summary_read_the_record_store() {
    let _guard = global_lock();
    let store = test_record_instance();
    store.clear_records();
    store.record_events(&[
        event("/a", 10, None),
        event("/a", 20, None),
        event("/b", 30, Some("HTTP 503")),
    ]);
    let results = run(json!([
        ["LD_summary"],
        ["LD_clear_records"],
        ["LD_summary"]
    ]));
    let before = ok_value(&results[0]);
    assert_eq!(before["totals"]["requests"], 3);
    assert_eq!(before["totals"]["failures"], 1);
    assert_eq!(before["per_name"]["/a"]["count"], 2);
    assert_eq!(before["per_name"]["/b"]["failures"], 1);
    assert_eq!(ok_value(&results[1]), &json!({"status": "cleared"}));
    let after = ok_value(&results[2]);
    assert_eq!(after["totals"]["requests"], 0);
    assert_eq!(after["per_name"], json!({}));
    assert_eq!(store.counts(), (0, 0));
}

#[test]
fn generate_summary_report_writes_the_file_and_returns_its_path() {
    let _guard = global_lock();
    let store = test_record_instance();
    store.clear_records();
    store.record_events(&[event("/report", 12, None)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("exec-summary");
    let results = run(json!([
        ["LD_generate_summary_report", {"report_name": base.to_str().expect("utf-8 path")}],
        ["LD_generate_summary_report", {"report_name": ""}],
    ]));
    let path = ok_value(&results[0]).as_str().expect("a path string");
    assert_eq!(path, format!("{}.json", base.display()));
    let written: Value =
        serde_json::from_str(&fs::read_to_string(path).expect("report file")).expect("JSON");
    assert_eq!(written["per_name"]["/report"]["count"], 1);
    assert!(error_text(&results[1]).contains("the report name is empty"));
    store.clear_records();
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.json");
    let error = executor::execute_file(&path).expect_err("missing file");
    assert!(matches!(error, ExecutorError::ReadFile { .. }));
    let message = error_chain(&error);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("No such file"), "{message}");
}

#[test]
fn malformed_json_names_path_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.json");
    fs::write(&path, "[\n  [\"LD_summary\"],\n  [\"LD_summary\" {}]\n]\n").expect("write");
    let error = executor::execute_file(&path).expect_err("malformed JSON");
    match &error {
        ExecutorError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 17)),
        other => panic!("expected a JSON error, got {other:?}"),
    }
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "{}: invalid JSON at line 3, column 17: expected `,` or `]`",
            path.display()
        )
    );
    let error = executor::execute_str("[[\"LD_summary\"],").expect_err("truncated");
    assert_eq!(
        error.to_string(),
        "invalid JSON at line 1, column 16: EOF while parsing a value"
    );
}

#[test]
fn document_errors_from_files_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("empty-list.json");
    fs::write(&path, "[]").expect("write");
    let error = executor::execute_file(&path).expect_err("empty list");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: invalid action document: the action list is empty",
            path.display()
        )
    );
}

#[test]
fn run_str_accepts_double_encoded_json() {
    let _guard = global_lock();
    let inner = r#"[["LD_clear_records"]]"#;
    let outer = serde_json::to_string(inner).expect("encode");
    let results = executor::execute_str(&outer).expect("double-encoded document");
    assert_eq!(ok_value(&results[0]), &json!({"status": "cleared"}));
}

#[test]
fn directories_run_every_json_file_in_path_order() {
    let _guard = global_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(dir.path().join("b.json"), r#"[["LD_clear_records"]]"#).expect("write");
    fs::write(
        dir.path().join("a.json"),
        r#"[["LD_summary"], ["LD_nope"]]"#,
    )
    .expect("write");
    fs::write(dir.path().join("sub/c.json"), "not json").expect("write");
    fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    fs::write(dir.path().join("upper.JSON"), "ignored").expect("write");
    let files = executor::execute_dir(dir.path()).expect("a readable directory");
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(dir.path())
                .expect("under dir")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["a.json", "b.json", "sub/c.json"]);
    let a = files[0].outcome.as_ref().expect("a.json runs");
    assert_eq!(a.len(), 2);
    assert!(a[0].is_ok() && !a[1].is_ok());
    assert!(!files[0].all_ok());
    assert!(files[1].all_ok());
    assert!(matches!(
        files[2].outcome,
        Err(ExecutorError::Json { line: 1, .. })
    ));

    let missing = dir.path().join("missing");
    let error = executor::execute_dir(&missing).expect_err("missing directory");
    assert!(error.to_string().contains(&missing.display().to_string()));
    let empty = tempfile::tempdir().expect("temp dir");
    let error = executor::execute_dir(empty.path()).expect_err("no action files");
    assert!(matches!(error, ExecutorError::NoActionFiles { .. }));
}
