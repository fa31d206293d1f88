//! The MCP server (`load-density mcp`): an AI assistant drives LoadDensity over the Model
//! Context Protocol, on stdio, through the official Rust SDK (`rmcp`).
//!
//! The server is named `loaddensity` and offers the Python version's eleven tools, with the
//! same names and input schemas: `load_density.run_test`, `run_action_json`, `create_project`,
//! `list_executor_commands`, `import_har`, `generate_reports`, `summary`, `persist_records`,
//! `list_runs`, `fetch_run` and `clear_records`; plus `load_density.stop`. Each returns one
//! text item: a string as is, anything else as JSON.
//!
//! What it adds to the Python server:
//! - `run_test` sends a progress notification about once a second while the test runs (when
//!   the call carries a progress token): `progress` is the seconds elapsed, `total` the test
//!   time, and the message gives users, requests per second and failures;
//! - `load_density.stop` stops that test; `run_test` then returns its summary;
//! - every failure is a tool error (`isError: true`) whose text names what was wrong (an
//!   unknown tool, a bad argument, an unknown user type, a test already running); a panic in a
//!   tool becomes a tool error too, and the server goes on;
//! - one test at a time ([`crate::run_slot`]), shared with the control socket.
//!
//! `import_har`, `generate_reports`, `persist_records`, `list_runs` and `fetch_run` call the
//! executor's commands (`LD_load_har` and `LD_har_to_action_json`, `LD_generate_*_report`,
//! `LD_persist_records`, `LD_list_runs`, `LD_fetch_run_records`); a build without one of them
//! answers with a tool error saying which command is not available.
//!
//! Differences from Python: `run_action_json` returns the ordered list of results (see
//! [`crate::executor`]) instead of a dict keyed by each action's text; `create_project` does
//! not overwrite files unless given `"force": true`.

mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{json, Map, Value};

use crate::env::Environment;
use crate::executor::{self, error_chain};
use crate::{run_slot, StartTest};

pub use tools::REPORT_FORMATS;

/// The name the server reports to clients.
pub const SERVER_NAME: &str = "loaddensity";

/// Why the MCP server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The async runtime could not start.
    #[error("could not start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The session could not be set up (the client's `initialize` failed).
    #[error("MCP session: {0}")]
    Session(String),
}

/// A tool's failure: the text of the tool error.
type ToolResult = Result<Value, String>;

/// The server: its tools and the test `run_test` is running.
#[derive(Clone, Default)]
pub struct LoadDensityMcp {
    running: Arc<Mutex<Option<Environment>>>,
}

impl std::fmt::Debug for LoadDensityMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadDensityMcp").finish_non_exhaustive()
    }
}

/// Serves MCP on stdin/stdout until the client closes them. Logs must go to stderr.
///
/// # Errors
/// When the runtime cannot start or the session cannot be set up.
pub fn serve_stdio() -> Result<(), McpError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::env::worker_threads())
        .enable_all()
        .build()
        .map_err(McpError::Runtime)?;
    runtime.block_on(async {
        let service = LoadDensityMcp::default()
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        service
            .waiting()
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        Ok(())
    })
}

impl ServerHandler for LoadDensityMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "LoadDensity load tests. load_density.run_test runs one and returns its \
                 summary; load_density.list_executor_commands lists the action commands \
                 load_density.run_action_json can run.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = tools::specs()
            .into_iter()
            .map(|spec| {
                let schema = match spec.schema {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                Tool::new(spec.name, spec.description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let arguments = request.arguments.unwrap_or_default();
        let progress = context.meta.get_progress_token().or_else(|| {
            request
                .meta
                .as_ref()
                .and_then(|meta| meta.get_progress_token())
        });
        let this = self.clone();
        let peer = context.peer.clone();
        let tool = name.clone();
        // A panic in a tool ends its task, not the server.
        let mut task =
            tokio::spawn(async move { this.call(&tool, arguments, progress, peer).await });
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = context.ct.cancelled() => {
                // The client cancelled the call: a test it started stops (and is recorded).
                if name == tools::RUN_TEST {
                    if let Some(env) = self.running.lock().as_ref() {
                        env.stop();
                    }
                }
                task.await
            }
        };
        let outcome =
            joined.unwrap_or_else(|error| Err(format!("{name} failed unexpectedly: {error}")));
        let result = match outcome {
            Ok(Value::String(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Ok(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
            Err(message) => {
                tracing::warn!(tool = %name, %message, "MCP tool error");
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        };
        Ok(result.into())
    }
}

impl LoadDensityMcp {
    async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        progress: Option<ProgressToken>,
        peer: Peer<RoleServer>,
    ) -> ToolResult {
        match name {
            tools::RUN_TEST => self.run_test(arguments, progress, peer).await,
            tools::RUN_ACTION_JSON => run_action_json(arguments).await,
            tools::CREATE_PROJECT => create_project(arguments),
            tools::LIST_EXECUTOR_COMMANDS => {
                no_arguments(name, &arguments)?;
                let commands: Vec<&str> = executor::known_commands()
                    .into_iter()
                    .filter(|c| c.starts_with("LD_"))
                    .collect();
                Ok(json!({ "commands": commands }))
            }
            tools::IMPORT_HAR => import_har(arguments).await,
            tools::GENERATE_REPORTS => generate_reports(arguments).await,
            tools::SUMMARY => {
                no_arguments(name, &arguments)?;
                Ok(crate::report::build_summary())
            }
            tools::PERSIST_RECORDS => {
                let value = command("LD_persist_records", name, arguments).await?;
                Ok(wrap("run_id", value))
            }
            tools::LIST_RUNS => {
                let value = command("LD_list_runs", name, arguments).await?;
                Ok(wrap("runs", value))
            }
            tools::FETCH_RUN => {
                let value = command("LD_fetch_run_records", name, arguments).await?;
                Ok(wrap("records", value))
            }
            tools::CLEAR_RECORDS => {
                no_arguments(name, &arguments)?;
                command("LD_clear_records", name, Map::new()).await
            }
            tools::STOP => {
                no_arguments(name, &arguments)?;
                match self.running.lock().as_ref() {
                    Some(env) => {
                        env.stop();
                        Ok(json!({"status": "stopping"}))
                    }
                    None => Err(format!(
                        "{name}: no test started by {} is running",
                        tools::RUN_TEST
                    )),
                }
            }
            other => Err(format!("unknown tool: {other}")),
        }
    }

    async fn run_test(
        &self,
        arguments: Map<String, Value>,
        progress: Option<ProgressToken>,
        peer: Peer<RoleServer>,
    ) -> ToolResult {
        let tool = tools::RUN_TEST;
        let config: StartTest = serde_json::from_value(Value::Object(arguments))
            .map_err(|e| format!("{tool}: invalid arguments: {e}"))?;
        let _slot = run_slot::try_start(format!("the MCP tool {tool}"))
            .map_err(|busy| format!("{tool}: {busy}"))?;
        if crate::distributed::is_distributed(&config) {
            let summary = crate::start_test_async(config)
                .await
                .map_err(|e| format!("{tool}: {}", error_chain(&e)))?;
            return serde_json::to_value(summary).map_err(|e| e.to_string());
        }
        let test_time = config.test_time;
        let env = crate::prepare_env(config)
            .await
            .map_err(|e| format!("{tool}: {}", error_chain(&e)))?;
        *self.running.lock() = Some(env.clone());
        let ticker = progress
            .map(|token| tokio::spawn(report_progress(env.clone(), token, test_time, peer)));
        let summary = env.wait().await;
        #[cfg(feature = "web-ui")]
        crate::web::closed(&env).await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        *self.running.lock() = None;
        serde_json::to_value(summary).map_err(|e| e.to_string())
    }
}

/// Sends one progress notification a second until aborted or the client goes away.
async fn report_progress(
    env: Environment,
    token: ProgressToken,
    test_time: Option<f64>,
    peer: Peer<RoleServer>,
) {
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    let (mut last_at, mut last_requests) = (started, 0u64);
    loop {
        interval.tick().await;
        let stats = env.stats();
        let total = stats.total();
        let (requests, failures) = (total.num_requests(), total.num_failures());
        let now = Instant::now();
        let seconds = now.duration_since(last_at).as_secs_f64().max(1e-3);
        let rps = requests.saturating_sub(last_requests) as f64 / seconds;
        (last_at, last_requests) = (now, requests);
        let message = format!(
            "users {}, {rps:.1} requests/s, {failures} failures ({requests} requests)",
            env.user_count()
        );
        let mut param =
            ProgressNotificationParam::new(token.clone(), started.elapsed().as_secs_f64())
                .with_message(message);
        if let Some(total) = test_time {
            param = param.with_total(total);
        }
        if peer.notify_progress(param).await.is_err() {
            break;
        }
    }
}

fn no_arguments(tool: &str, arguments: &Map<String, Value>) -> Result<(), String> {
    match arguments.keys().next() {
        None => Ok(()),
        Some(key) => Err(format!("{tool}: unknown argument {key:?}; it takes none")),
    }
}

/// `{key: value}` unless the command already returned an object holding `key`.
fn wrap(key: &str, value: Value) -> Value {
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
async fn command(name: &'static str, tool: &str, arguments: Map<String, Value>) -> ToolResult {
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

async fn run_action_json(mut arguments: Map<String, Value>) -> ToolResult {
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

fn create_project(mut arguments: Map<String, Value>) -> ToolResult {
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

async fn import_har(mut arguments: Map<String, Value>) -> ToolResult {
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

async fn generate_reports(mut arguments: Map<String, Value>) -> ToolResult {
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
