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

mod commands;
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

use self::commands::{
    command, create_project, generate_reports, import_har, no_arguments, run_action_json, wrap,
};
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
        let plan = crate::plan::RunPlan::compile(config)
            .map_err(|e| format!("{tool}: {}", error_chain(&e)))?;
        if plan.mode() != crate::plan::RunnerMode::Local {
            let summary = crate::distributed::run_plan(plan, false)
                .await
                .map_err(|e| format!("{tool}: {}", error_chain(&e)))?;
            return serde_json::to_value(summary).map_err(|e| e.to_string());
        }
        let test_time = plan.end().map(|end| end.as_secs_f64());
        let env = crate::prepare_plan(plan)
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
