//! Every invalid assertion, extractor and condition is rejected by `Scenario::new`, naming the
//! task index and the key.

mod support;

use serde_json::{json, Value};
use support::plan_error;

/// `(task keys, location, part of the message)`; each task is placed at index 1, after a valid
/// one.
fn check(cases: Vec<(Value, &str, &str)>) {
    for (task, location, message) in cases {
        let text = plan_error(&json!([{"method": "get"}, task]));
        assert!(
            text.starts_with(&format!("task 1 (tasks[1].{location}): ")),
            "{task}: {text}"
        );
        assert!(text.contains(message), "{task}: {text}");
    }
}

#[test]
fn invalid_assertions_name_the_task_and_key() {
    let one =
        |assertion: Value| json!({"assertions": [{"type": "contains", "value": "ok"}, assertion]});
    check(vec![
        (
            json!({"assertions": {"type": "contains"}}),
            "assertions",
            "must be a list",
        ),
        (
            json!({"assertions": "status_code"}),
            "assertions",
            "got a string",
        ),
        (
            one(json!("contains")),
            "assertions[1]",
            "an assertion must be an object",
        ),
        (
            one(json!({"value": 200})),
            "assertions[1].type",
            "\"type\" is required",
        ),
        (
            one(json!({"type": 5})),
            "assertions[1].type",
            "must be a string",
        ),
        (
            one(json!({"type": "body_equals", "value": "x"})),
            "assertions[1].type",
            "unknown assertion type \"body_equals\"",
        ),
        (
            one(json!({"type": "status_code"})),
            "assertions[1].value",
            "\"value\" is required",
        ),
        (
            one(json!({"type": "status_code", "value": 2.5})),
            "assertions[1].value",
            "whole number",
        ),
        (
            one(json!({"type": "status_code", "value": -1})),
            "assertions[1].value",
            "whole number",
        ),
        (
            one(json!({"type": "status_code", "value": 70000})),
            "assertions[1].value",
            "whole number",
        ),
        (
            one(json!({"type": "status_code", "value": "-1"})),
            "assertions[1].value",
            "whole number",
        ),
        (
            one(json!({"type": "status_code", "value": ""})),
            "assertions[1].value",
            "whole number",
        ),
        (
            one(json!({"type": "status_code", "value": true})),
            "assertions[1].value",
            "got a boolean",
        ),
        (
            one(json!({"type": "status_code", "value": 200, "valeu": 201})),
            "assertions[1].valeu",
            "unknown key \"valeu\"",
        ),
        (
            one(json!({"type": "contains"})),
            "assertions[1].value",
            "\"value\" is required",
        ),
        (
            one(json!({"type": "contains", "value": null})),
            "assertions[1].value",
            "\"value\" is required",
        ),
        (
            one(json!({"type": "contains", "value": ["a"]})),
            "assertions[1].value",
            "got a list",
        ),
        (
            one(json!({"type": "not_contains", "value": ""})),
            "assertions[1].value",
            "must not be empty",
        ),
        (
            one(json!({"type": "json_path", "value": 1})),
            "assertions[1].path",
            "\"path\" is required",
        ),
        (
            one(json!({"type": "json_path", "path": 3, "value": 1})),
            "assertions[1].path",
            "must be a string",
        ),
        (
            one(json!({"type": "json_path", "path": "a"})),
            "assertions[1].value",
            "\"value\" is required",
        ),
        (
            one(json!({"type": "header", "value": "x"})),
            "assertions[1].name",
            "\"name\" is required",
        ),
        (
            one(json!({"type": "header", "name": "", "value": "x"})),
            "assertions[1].name",
            "must not be empty",
        ),
        (
            one(json!({"type": "header", "name": "X", "value": {"a": 1}})),
            "assertions[1].value",
            "got an object",
        ),
        (
            one(json!({"type": "regex", "pattern": "a(b"})),
            "assertions[1].pattern",
            "invalid regex \"a(b\"",
        ),
        (
            one(json!({"type": "regex", "pattern": "(?<=a)b"})),
            "assertions[1].pattern",
            "invalid regex",
        ),
        (
            one(json!({"type": "regex", "value": "a"})),
            "assertions[1].pattern",
            "\"pattern\" is required",
        ),
        (
            one(json!({"type": "max_response_time_ms", "value": 0})),
            "assertions[1].value",
            "greater than 0",
        ),
        (
            one(json!({"type": "max_response_time_ms", "value": -5})),
            "assertions[1].value",
            "greater than 0",
        ),
        (
            one(json!({"type": "max_response_time_ms", "value": "fast"})),
            "assertions[1].value",
            "greater than 0",
        ),
        (
            one(json!({"type": "max_response_time_ms", "value": [500]})),
            "assertions[1].value",
            "got a list",
        ),
    ]);
}

#[test]
fn invalid_extractors_name_the_task_and_key() {
    let one = |extractor: Value| json!({"extract": [{"var": "ok", "path": "a"}, extractor]});
    check(vec![
        (
            json!({"extract": {"var": "x"}}),
            "extract",
            "must be a list",
        ),
        (
            one(json!(["x"])),
            "extract[1]",
            "an extractor must be an object",
        ),
        (
            one(json!({"path": "a"})),
            "extract[1].var",
            "\"var\" is required",
        ),
        (
            one(json!({"var": 1, "path": "a"})),
            "extract[1].var",
            "must be a string",
        ),
        (
            one(json!({"var": "${token}", "path": "a"})),
            "extract[1].var",
            "plain variable name",
        ),
        (
            one(json!({"var": "my token", "path": "a"})),
            "extract[1].var",
            "plain variable name",
        ),
        (
            one(json!({"var": "t", "from": 1})),
            "extract[1].from",
            "must be a string",
        ),
        (
            one(json!({"var": "t", "from": "body"})),
            "extract[1].from",
            "unknown extractor source \"body\"",
        ),
        (
            one(json!({"var": "t"})),
            "extract[1].path",
            "\"path\" is required",
        ),
        (
            one(json!({"var": "t", "path": ["a"]})),
            "extract[1].path",
            "must be a string",
        ),
        (
            one(json!({"var": "t", "from": "header"})),
            "extract[1].name",
            "\"name\" is required",
        ),
        (
            one(json!({"var": "t", "from": "header", "name": "h", "path": "a"})),
            "extract[1].path",
            "unknown key \"path\"",
        ),
        (
            one(json!({"var": "t", "from": "status_code", "name": "h"})),
            "extract[1].name",
            "unknown key \"name\"",
        ),
        (
            one(json!({"var": "t", "from": "regex", "pattern": r"\d+"})),
            "extract[1].pattern",
            "needs a capture group",
        ),
        (
            one(json!({"var": "t", "from": "regex", "pattern": "(?:x)"})),
            "extract[1].pattern",
            "needs a capture group",
        ),
        (
            one(json!({"var": "t", "from": "regex", "pattern": "(x"})),
            "extract[1].pattern",
            "invalid regex",
        ),
    ]);
}

#[test]
fn invalid_conditions_name_the_task_and_key() {
    check(vec![
        (json!({"run_if": ["a"]}), "run_if", "got a list"),
        (json!({"skip_if": {}}), "skip_if", "exactly one key"),
        (
            json!({"run_if": {"equals": 1}}),
            "run_if.equals",
            "a list of two values",
        ),
        (
            json!({"skip_if": {"not_equals": [1, 2, 3]}}),
            "skip_if.not_equals",
            "a list of 3",
        ),
        (
            json!({"run_if": {"in": ["a", true]}}),
            "run_if.in",
            "container",
        ),
        (
            json!({"run_if": {"matches": ["a", "b"]}}),
            "run_if.matches",
            "unknown condition operator",
        ),
    ]);
}

#[test]
fn valid_shapes_are_accepted() {
    let tasks = json!({"mode": "conditional", "tasks": [{
        "run_if": {"Equals": ["${var.a}", 1]},
        "skip_if": "${var.done}",
        "assertions": [
            {"type": "status_code", "value": "NOT_FOUND"},
            {"type": "status_code", "value": "${var.code}"},
            {"type": "json_path", "path": "", "value": null},
            {"type": "contains", "value": true},
            {"type": "max_response_time_ms", "value": "250.5"},
            {"type": "max_response_time_ms", "value": "${var.sla}"},
            {"type": "regex", "pattern": "^$"},
        ],
        "extract": [
            {"var": "a", "path": ""},
            {"var": "b", "from": "regex", "pattern": "(a)(b)"},
            {"var": "c", "from": "json_path", "path": "x", "name": null},
        ],
    }]});
    let list = load_density_core::task::TaskList::from_json(&tasks).expect("tasks");
    let scenario = load_density_core::scenario::Scenario::new(&list).expect("valid");
    let checks = scenario.checks(0).expect("checks");
    assert_eq!(checks.assertion_count(), 7);
    assert_eq!(checks.extractor_count(), 3);
    assert!(checks.needs_body());
}
