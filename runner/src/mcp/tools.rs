//! The tools' names, descriptions and input schemas: the Python server's eleven, plus
//! `load_density.stop`.

use serde_json::{json, Map, Value};

/// Tool names.
pub(super) const RUN_TEST: &str = "load_density.run_test";
pub(super) const RUN_ACTION_JSON: &str = "load_density.run_action_json";
pub(super) const CREATE_PROJECT: &str = "load_density.create_project";
pub(super) const LIST_EXECUTOR_COMMANDS: &str = "load_density.list_executor_commands";
pub(super) const IMPORT_HAR: &str = "load_density.import_har";
pub(super) const GENERATE_REPORTS: &str = "load_density.generate_reports";
pub(super) const SUMMARY: &str = "load_density.summary";
pub(super) const PERSIST_RECORDS: &str = "load_density.persist_records";
pub(super) const LIST_RUNS: &str = "load_density.list_runs";
pub(super) const FETCH_RUN: &str = "load_density.fetch_run";
pub(super) const CLEAR_RECORDS: &str = "load_density.clear_records";
pub(super) const STOP: &str = "load_density.stop";

/// The report formats of `generate_reports`, in order.
pub const REPORT_FORMATS: [&str; 6] = ["html", "json", "xml", "csv", "junit", "summary"];

/// One tool: name, description, input schema.
pub(super) struct ToolSpec {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) schema: Value,
}

fn object(properties: Value, required: &[&str]) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    Value::Object(schema)
}

/// Every tool, in the order they are listed.
pub(super) fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: RUN_TEST,
            description: "Run a load test (start_test) and return its summary. Sends progress \
                          notifications about once a second (users, requests per second, \
                          failures) when the call has a progress token; load_density.stop ends \
                          it early.",
            schema: object(
                json!({
                    "user_detail_dict": {"type": "object", "description": "{\"user\": \"fast_http_user\" | \"http_user\" | ...}"},
                    "user_count": {"type": "integer", "default": 50},
                    "spawn_rate": {"type": "integer", "default": 10},
                    "test_time": {"type": "integer", "default": 60},
                    "tasks": {"description": "the task list (any accepted shape)"},
                    "variables": {"type": "object"},
                    "csv_sources": {"type": "array"},
                    "runner_mode": {"type": "string", "default": "local"},
                    "web_ui_dict": {"type": "object"}
                }),
                &["user_detail_dict"],
            ),
        },
        ToolSpec {
            name: RUN_ACTION_JSON,
            description: "Execute an action document (a JSON string, a list of actions, or \
                          {\"load_density\": [...]}) and return each action's result, in order.",
            schema: object(
                json!({"actions": {"type": ["string", "array", "object"]}}),
                &["actions"],
            ),
        },
        ToolSpec {
            name: CREATE_PROJECT,
            description: "Write a project template under PATH/LoadDensity (keyword JSON files \
                          pointed at the built-in demo target, README.md, run.sh).",
            schema: object(
                json!({
                    "path": {"type": "string"},
                    "force": {"type": "boolean", "default": false, "description": "overwrite existing files"}
                }),
                &["path"],
            ),
        },
        ToolSpec {
            name: LIST_EXECUTOR_COMMANDS,
            description: "List the executor's LD_* commands.",
            schema: object(json!({}), &[]),
        },
        ToolSpec {
            name: IMPORT_HAR,
            description: "Turn a HAR file into an action document that replays its requests.",
            schema: object(
                json!({
                    "file_path": {"type": "string"},
                    "user": {"type": "string", "default": "fast_http_user"},
                    "user_count": {"type": "integer", "default": 10},
                    "spawn_rate": {"type": "integer", "default": 5},
                    "test_time": {"type": "integer", "default": 60},
                    "include": {"type": "array", "items": {"type": "string"}},
                    "exclude": {"type": "array", "items": {"type": "string"}}
                }),
                &["file_path"],
            ),
        },
        ToolSpec {
            name: GENERATE_REPORTS,
            description: "Write reports of the recorded requests; returns format -> path(s).",
            schema: object(
                json!({
                    "base_name": {"type": "string", "default": "loaddensity"},
                    "formats": {"type": "array", "items": {"type": "string", "enum": REPORT_FORMATS},
                                "default": REPORT_FORMATS}
                }),
                &[],
            ),
        },
        ToolSpec {
            name: SUMMARY,
            description: "The summary of the recorded requests.",
            schema: object(json!({}), &[]),
        },
        ToolSpec {
            name: PERSIST_RECORDS,
            description: "Store the recorded requests in an SQLite database; returns the run id.",
            schema: object(
                json!({
                    "database_path": {"type": "string"},
                    "label": {"type": "string"},
                    "metadata": {"type": "object"}
                }),
                &["database_path"],
            ),
        },
        ToolSpec {
            name: LIST_RUNS,
            description: "List the runs stored in an SQLite database.",
            schema: object(
                json!({
                    "database_path": {"type": "string"},
                    "limit": {"type": "integer", "default": 20}
                }),
                &["database_path"],
            ),
        },
        ToolSpec {
            name: FETCH_RUN,
            description: "Fetch the records of one stored run.",
            schema: object(
                json!({
                    "database_path": {"type": "string"},
                    "run_id": {"type": "integer"}
                }),
                &["database_path", "run_id"],
            ),
        },
        ToolSpec {
            name: CLEAR_RECORDS,
            description: "Forget every recorded request.",
            schema: object(json!({}), &[]),
        },
        ToolSpec {
            name: STOP,
            description: "Stop the test load_density.run_test is running; requests in flight \
                          finish and are recorded, and run_test returns its summary.",
            schema: object(json!({}), &[]),
        },
    ]
}
