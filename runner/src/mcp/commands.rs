//! The tools that run executor commands and documents.

use serde_json::{json, Map, Value};

use super::tools::{self, REPORT_FORMATS};
use super::ToolResult;
use crate::executor::{self, error_chain};
use crate::run_slot;

pub(super) fn no_arguments(tool: &str, arguments: &Map<String, Value>) -> Result<(), String> {
    match arguments.keys().next() {
        None => Ok(()),
        Some(key) => Err(format!("{tool}: unknown argument {key:?}; it takes none")),
    }
}

/// `{key: value}` unless the command already returned an object holding `key`.
pub(super) fn wrap(key: &str, value: Value) -> Value {
    match value {
        Value::Object(map) if map.contains_key(key) => Value::Object(map),
        other => json!({ key: other }),
    }
}

/// Runs an action document on a thread of its own (`LD_start_test` builds its own runtime).
async fn execute(document: Value) -> Result<Vec<Value>, String> {
    if names(&document, "LD_start_socket_server") {
        return Err(
            "LD_start_socket_server cannot run under MCP: it blocks until the socket \
                    stops and announces itself on stdout, which carries the MCP messages"
                .to_owned(),
        );
    }
    let (done, result) = tokio::sync::oneshot::channel();
    let guard = if run_slot::may_start_a_test(&document) {
        Some(
            run_slot::try_start(format!("the MCP tool {}", tools::RUN_ACTION_JSON))
                .map_err(|busy| busy.to_string())?,
        )
    } else {
        None
    };
    std::thread::Builder::new()
        .name("ld-mcp-document".to_owned())
        .spawn(move || {
            let outcome = executor::execute_document(&document)
                .map(|results| {
                    results
                        .iter()
                        .map(|r| {
                            serde_json::to_value(r)
                                .unwrap_or_else(|e| json!({"error": e.to_string()}))
                        })
                        .collect()
                })
                .map_err(|e| error_chain(&e));
            drop(guard);
            let _ = done.send(outcome);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    result
        .await
        .unwrap_or_else(|_| Err("the document's thread ended without a result".to_owned()))
}

/// Whether `document` holds the string `name` anywhere.
fn names(document: &Value, name: &str) -> bool {
    match document {
        Value::String(text) => text == name,
        Value::Array(items) => items.iter().any(|item| names(item, name)),
        Value::Object(map) => map.values().any(|value| names(value, name)),
        _ => false,
    }
}

/// Runs one executor command; its failure is the tool's error.
pub(super) async fn command(
    name: &'static str,
    tool: &str,
    arguments: Map<String, Value>,
) -> ToolResult {
    available(tool, &[name])?;
    let results = execute(json!([[name, arguments]]))
        .await
        .map_err(|e| format!("{tool}: {e}"))?;
    let result = results.into_iter().next().unwrap_or(Value::Null);
    match result.get("error") {
        Some(error) => Err(format!("{tool}: {}", error.as_str().unwrap_or_default())),
        None => Ok(result.get("ok").cloned().unwrap_or(Value::Null)),
    }
}

/// Fails unless every command exists in this build.
fn available(tool: &str, commands: &[&str]) -> Result<(), String> {
    let known = executor::known_commands();
    let missing: Vec<&str> = commands
        .iter()
        .copied()
        .filter(|c| !known.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{tool} is not available: this build of LoadDensity has no {} command",
        missing.join(" / ")
    ))
}

pub(super) async fn run_action_json(mut arguments: Map<String, Value>) -> ToolResult {
    let tool = tools::RUN_ACTION_JSON;
    let actions = arguments
        .remove("actions")
        .ok_or_else(|| format!("{tool}: missing argument \"actions\""))?;
    no_arguments(tool, &arguments)?;
    let document = match actions {
        Value::String(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{tool}: \"actions\" is not valid JSON: {e}"))?,
        other => other,
    };
    let results = execute(document)
        .await
        .map_err(|e| format!("{tool}: {e}"))?;
    Ok(Value::Array(results))
}

pub(super) fn create_project(mut arguments: Map<String, Value>) -> ToolResult {
    let tool = tools::CREATE_PROJECT;
    let path = match arguments.remove("path") {
        Some(Value::String(path)) => path,
        Some(_) => return Err(format!("{tool}: \"path\" must be a string")),
        None => return Err(format!("{tool}: missing argument \"path\"")),
    };
    let force = match arguments.remove("force") {
        None => false,
        Some(Value::Bool(force)) => force,
        Some(_) => return Err(format!("{tool}: \"force\" must be a boolean")),
    };
    no_arguments(tool, &arguments)?;
    crate::project::create_project(std::path::Path::new(&path), force)
        .map_err(|e| format!("{tool}: {}", error_chain(&e)))?;
    Ok(json!({"path": path, "status": "created"}))
}

pub(super) async fn import_har(mut arguments: Map<String, Value>) -> ToolResult {
    let tool = tools::IMPORT_HAR;
    available(tool, &["LD_load_har", "LD_har_to_action_json"])?;
    let file_path = arguments
        .remove("file_path")
        .ok_or_else(|| format!("{tool}: missing argument \"file_path\""))?;
    let har = command(
        "LD_load_har",
        tool,
        Map::from_iter([("file_path".to_owned(), file_path)]),
    )
    .await?;
    let mut convert = Map::new();
    convert.insert("har".to_owned(), har);
    for (key, default) in [
        ("user", json!("fast_http_user")),
        ("user_count", json!(10)),
        ("spawn_rate", json!(5)),
        ("test_time", json!(60)),
    ] {
        convert.insert(key.to_owned(), arguments.remove(key).unwrap_or(default));
    }
    for key in ["include", "exclude"] {
        if let Some(value) = arguments.remove(key) {
            convert.insert(key.to_owned(), value);
        }
    }
    no_arguments(tool, &arguments)?;
    command("LD_har_to_action_json", tool, convert).await
}

/// Each format's command and its keyword arguments for `base`.
fn report_command(format: &str, base: &str) -> Option<(&'static str, Value)> {
    Some(match format {
        "html" => ("LD_generate_html_report", json!({"html_name": base})),
        "json" => ("LD_generate_json_report", json!({"json_file_name": base})),
        "xml" => ("LD_generate_xml_report", json!({"xml_file_name": base})),
        "csv" => ("LD_generate_csv_report", json!({"csv_name": base})),
        "junit" => (
            "LD_generate_junit_report",
            json!({"report_name": format!("{base}-junit")}),
        ),
        "summary" => (
            "LD_generate_summary_report",
            json!({"report_name": format!("{base}-summary")}),
        ),
        _ => return None,
    })
}

pub(super) async fn generate_reports(mut arguments: Map<String, Value>) -> ToolResult {
    let tool = tools::GENERATE_REPORTS;
    let base = match arguments.remove("base_name") {
        None => "loaddensity".to_owned(),
        Some(Value::String(base)) => base,
        Some(_) => return Err(format!("{tool}: \"base_name\" must be a string")),
    };
    let formats: Vec<String> = match arguments.remove("formats") {
        None => REPORT_FORMATS.iter().map(|f| (*f).to_owned()).collect(),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| format!("{tool}: \"formats\" must be a list of strings: {e}"))?,
    };
    no_arguments(tool, &arguments)?;
    let mut commands = Vec::new();
    for format in &formats {
        let (name, args) = report_command(format, &base).ok_or_else(|| {
            format!(
                "{tool}: unknown format {format:?} (known: {})",
                REPORT_FORMATS.join(", ")
            )
        })?;
        commands.push((format.clone(), name, args));
    }
    let names: Vec<&str> = commands.iter().map(|(_, name, _)| *name).collect();
    available(tool, &names)?;
    let mut paths = Map::new();
    for (format, name, args) in commands {
        let args = match args {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        paths.insert(format, command(name, tool, args).await?);
    }
    Ok(Value::Object(paths))
}
