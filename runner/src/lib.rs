//! # load-density
//!
//! LoadDensity runs load tests described as data. You name a user type and its tasks; the
//! runner spawns simulated users at a given rate, runs their tasks against the target, records
//! every request and reports what it measured.
//!
//! ```no_run
//! use load_density::{start_test, StartTest};
//!
//! let config: StartTest = serde_json::from_value(serde_json::json!({
//!     "user_detail_dict": {"user": "fast_http_user"},
//!     "user_count": 10,
//!     "spawn_rate": 5,
//!     "test_time": 5,
//!     "host": "http://127.0.0.1:8080",
//!     "tasks": [
//!         {"method": "get", "request_url": "/"},
//!         {"method": "post", "request_url": "/post", "json": {"hello": "world"}}
//!     ]
//! }))?;
//! let summary = start_test(config)?;
//! println!("{} requests, {} failures", summary.totals.requests, summary.totals.failures);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Features
//!
//! | feature | default | user type |
//! |---|---|---|
//! | `fast-http` | yes | `fast_http_user`: lean HTTP/1.1 keep-alive client |
//! | `http` | yes | `http_user`: reqwest with cookies, redirects and HTTP/2 |
//! | `websocket` | yes | `websocket_user`: ws:// and wss:// with text and binary frames |
//! | `socket` | yes | `socket_user`: raw TCP (kept connections, framing) and UDP |
//! | `mqtt` | yes | `mqtt_user`: publish, subscribe, receive; end-to-end latency of stamped messages |
//! | `grpc` | yes | `grpc_user`: any gRPC service from .proto files, a descriptor set or server reflection |
//! | `web-ui` | yes | the web UI and Locust's HTTP API of a run given `web_ui_dict` ([`web`]) |
//! | `mcp` | yes | the MCP server on stdio ([`mcp`], `load-density mcp`) |
//! | `sqlite` | yes | `LD_persist_records`, `LD_list_runs`, `LD_fetch_run_records`, `LD_compare_runs` ([`store`]; rusqlite, bundled SQLite) |
//! | `prometheus` | yes | `LD_start_prometheus_exporter` ([`sinks::prometheus`]; prometheus-client) |
//! | `influxdb` | yes | `LD_start_influxdb_sink` ([`sinks::influxdb`]; UDP or HTTP via reqwest) |
//! | `opentelemetry` | yes | `LD_start_opentelemetry_exporter` ([`sinks::otel`]; OTLP/gRPC) |
//!
//! HAR and OpenAPI import ([`import`]) are always built.
//!
//! Protocol crates outside this list register themselves with
//! [`load_density_core::register_user!`]; linking the crate is enough to make its user type
//! selectable by name.
//!
//! ## Load models
//!
//! `load_model` picks how load is applied: closed users (`constant_users`, the default, and
//! `ramping_users`), arrival rates (`constant_arrival_rate`, `ramping_arrival_rate`: iterations
//! start on a schedule whatever the target's speed) or a number of iterations
//! (`per_user_iterations`, `shared_iterations`). Runs with a schedule also measure the
//! *corrected* latency, from each iteration's due time ([`Summary::latency_overall`]).
//!
//! ```no_run
//! use load_density::{start_test, StartTest};
//!
//! let config: StartTest = serde_json::from_value(serde_json::json!({
//!     "user_detail_dict": {"user": "fast_http_user"},
//!     "host": "http://127.0.0.1:8080",
//!     "test_time": 60,
//!     "load_model": {"type": "constant_arrival_rate", "rate": 200, "duration": 30,
//!                    "pre_allocated_users": 20, "max_users": 100},
//!     "tasks": [{"method": "get", "request_url": "/"}]
//! }))?;
//! let summary = start_test(config)?;
//! println!("{} iterations, {} dropped", summary.totals.iterations, summary.totals.dropped_iterations);
//! if let Some(latency) = &summary.latency_overall {
//!     println!("corrected p99 {} ms", latency.corrected.p99_ms);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every keyword is compiled once into a [`RunPlan`] ([`plan`]), which reports every mistake
//! before anything starts, naming its JSON path.
//!
//! ## Reports and verdicts
//!
//! [`reports`] writes the Python LoadDensity's reports (JSON, XML, CSV, JUnit, HTML) from the
//! record store, streaming, plus Locust's CSV files during a run (`csv_prefix`).
//! [`thresholds`] makes a run pass or fail (`thresholds`, in k6's syntax): the summary carries
//! each condition's result and a `verdict`, and an `abort_on_fail` condition stops the run.
//! [`monitor`] is the per-second task behind both.
//!
//! ## Embedding
//!
//! [`create_env`] validates a configuration and returns an [`Environment`] without starting
//! it; [`prepare_env`] also starts it. An environment can be stopped, and read while it runs.
//!
//! ## Control surfaces
//!
//! - [`executor`]: action documents (`[["LD_start_test", {...}], ...]`), with nested documents
//!   (`LD_execute_action`, `LD_execute_files`) and commands that other crates add with
//!   [`register_command!`] ([`executor::plugin`]);
//! - [`socket_server`]: the control socket (`LD_start_socket_server`), the Python version's
//!   protocol over TCP or TLS;
//! - `mcp` (feature `mcp`): the MCP server on stdio, for AI assistants;
//! - [`project`]: the project template of `load-density init`;
//! - [`run_slot`]: one test at a time for the socket and MCP.

pub mod config;
pub mod console;
pub mod control;
pub mod distributed;
pub mod env;
pub mod error;
pub mod executor;
pub mod globals;
pub mod groups;
pub mod history;
pub mod import;
pub mod interrupt;
pub mod limits;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod monitor;
pub mod output_dir;
pub mod plan;
pub mod project;
pub mod report;
pub mod reports;
mod run;
pub mod run_slot;
pub mod sinks;
pub mod socket_server;
mod spawn;
#[cfg(feature = "sqlite")]
pub mod store;
pub mod thresholds;
#[cfg(feature = "web-ui")]
pub mod web;

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use config::{Generator, NameLatency, OverallLatency, Percentiles, StartTest, Summary, Totals};
pub use control::{RunControl, WorkerInfo};
pub use env::{Environment, RunState};
pub use error::RunError;
pub use globals::{
    clear_variables, register_csv_source, register_csv_sources, register_variable,
    register_variables,
};
pub use load_density_core as core;
pub use plan::RunPlan;
pub use run::Share;

/// What [`register_command!`] expands to needs; not public API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}

// Name the protocol crates so the linker keeps their registrations.
#[cfg(feature = "fast-http")]
pub use load_density_fast_http as fast_http;
#[cfg(feature = "grpc")]
pub use load_density_grpc as grpc;
#[cfg(feature = "http")]
pub use load_density_http as http;
#[cfg(feature = "mqtt")]
pub use load_density_mqtt as mqtt;
#[cfg(feature = "socket")]
pub use load_density_socket as socket;
#[cfg(feature = "websocket")]
pub use load_density_websocket as websocket;

/// Validates `config` and prepares its users without starting them (Python's `create_env`).
///
/// # Errors
/// Everything wrong with the configuration: an unknown user type (listing the known ones), an
/// invalid task (naming its index and key), an unknown option, an invalid `web_ui_dict`, an
/// invalid load model (naming its JSON path); see [`RunPlan::compile`].
pub async fn create_env(config: StartTest) -> Result<Environment, RunError> {
    let plan = RunPlan::compile(config)?;
    distributed::check_local_plan(&plan)?;
    let env = Environment::from_plan(plan).await?;
    sinks::register_run(&env);
    Ok(env)
}

/// Like [`create_env`], then starts the run on the current runtime (Python's `prepare_env`).
///
/// With `web_ui_dict`, the web UI starts listening before the run starts and serves until the
/// run has stopped ([`web::local_addr`] gives its address).
pub async fn prepare_env(config: StartTest) -> Result<Environment, RunError> {
    prepare_plan(RunPlan::compile(config)?).await
}

/// [`prepare_env`] for a compiled plan.
pub async fn prepare_plan(plan: RunPlan) -> Result<Environment, RunError> {
    Ok(prepare_plan_with(plan, None).await?.0)
}

/// The web UI of a run, when it has one.
#[cfg(feature = "web-ui")]
type RunUi = Option<web::WebUi>;
#[cfg(not(feature = "web-ui"))]
type RunUi = Option<std::convert::Infallible>;

/// Where a lingering web UI asks for new runs.
#[cfg(feature = "web-ui")]
type Relaunch = Option<tokio::sync::mpsc::Sender<web::NewRun>>;
#[cfg(not(feature = "web-ui"))]
type Relaunch = Option<std::convert::Infallible>;

/// [`prepare_plan`], also returning the run's web UI; with `relaunch`, its `POST /swarm`
/// after the run asks there for a new run.
async fn prepare_plan_with(
    plan: RunPlan,
    relaunch: Relaunch,
) -> Result<(Environment, RunUi), RunError> {
    distributed::check_local_plan(&plan)?;
    #[cfg(feature = "web-ui")]
    let web_ui = plan.web_ui().cloned();
    let env = Environment::from_plan(plan).await?;
    sinks::register_run(&env);
    #[cfg(feature = "web-ui")]
    let ui = match web_ui {
        Some(settings) => Some(
            web::attach(&env, settings, relaunch)
                .await
                .map_err(|e| RunError::Config(executor::error_chain(&e)))?,
        ),
        None => None,
    };
    #[cfg(not(feature = "web-ui"))]
    let ui = relaunch.and(None);
    env.start();
    Ok((env, ui))
}

/// Runs a test to its end on the current runtime and returns its summary.
///
/// `runner_mode` `"master"` and `"worker"` run a [`distributed::Master`] or
/// [`distributed::Worker`].
pub async fn start_test_async(config: StartTest) -> Result<Summary, RunError> {
    let plan = RunPlan::compile(config)?;
    if plan.mode() != plan::RunnerMode::Local {
        return distributed::run_plan(plan, false).await;
    }
    run_local(plan, false).await
}

/// Runs a local plan to its end with its monitor (thresholds, report history, Locust CSV
/// files); with `on_ctrl_c`, Ctrl-C stops it gracefully.
///
/// While its web UI lingers (`web_ui_dict.linger`), `POST /swarm` starts a new run of the
/// same plan, which runs to its end the same way: each run's summary is remembered for the
/// reports and its Locust CSV files are written when it ends (a new run starts the
/// measurement over: statistics and the record store), and the summary returned is the last
/// run's.
async fn run_local(plan: RunPlan, on_ctrl_c: bool) -> Result<Summary, RunError> {
    #[cfg(feature = "web-ui")]
    let (relaunch, mut new_runs) = {
        let (sender, receiver) = tokio::sync::mpsc::channel::<web::NewRun>(1);
        (Some(sender), Some(receiver))
    };
    #[cfg(not(feature = "web-ui"))]
    let (relaunch, mut new_runs): (Relaunch, NewRuns) = (None, None);
    let mut settings = monitor::MonitorSettings::of(plan.source());
    let (mut env, ui) = prepare_plan_with(plan.clone(), relaunch).await?;
    loop {
        let monitor = match start_monitor(&env, settings.clone()) {
            Ok(monitor) => Some(monitor),
            Err(error) => {
                env.stop();
                return Err(error);
            }
        };
        let ctrl_c = on_ctrl_c.then(|| {
            let env = env.clone();
            tokio::spawn(async move {
                interrupt::wait().await;
                env.stop();
            })
        });
        let summary = finish_run(env.wait().await, monitor);
        sinks::run_ended();
        if let Some(ctrl_c) = ctrl_c {
            ctrl_c.abort();
        }
        match next_run(&plan, ui.as_ref(), &mut new_runs).await {
            Some((next_env, next_settings)) => {
                env = next_env;
                settings = next_settings;
            }
            None => return Ok(summary),
        }
    }
}

/// Where a lingering web UI's requests for new runs arrive.
#[cfg(feature = "web-ui")]
type NewRuns = Option<tokio::sync::mpsc::Receiver<web::NewRun>>;
#[cfg(not(feature = "web-ui"))]
type NewRuns = Option<std::convert::Infallible>;

/// After a run: while its web UI lingers, waits for it to ask for a new run of `plan` and
/// starts it; `None` once the UI has closed (or without a UI).
#[cfg(feature = "web-ui")]
async fn next_run(
    plan: &RunPlan,
    ui: Option<&web::WebUi>,
    new_runs: &mut NewRuns,
) -> Option<(Environment, monitor::MonitorSettings)> {
    let (ui, new_runs) = (ui?, new_runs.as_mut()?);
    loop {
        let asked = tokio::select! {
            asked = new_runs.recv() => asked,
            _ = ui.closed() => None,
        }?;
        let started = match plan.for_new_run(asked.user_count, asked.spawn_rate, asked.run_time) {
            Ok(plan) => start_new_run(plan).await,
            Err(error) => Err(error),
        };
        match started {
            Ok(new) => {
                let control: std::sync::Arc<dyn RunControl> = std::sync::Arc::new(new.0.clone());
                if asked.reply.send(Ok(control)).is_err() {
                    new.0.stop();
                }
                return Some(new);
            }
            Err(error) => {
                let _ = asked.reply.send(Err(executor::error_chain(&error)));
            }
        }
    }
}

/// Without the web UI there is no new run.
#[cfg(not(feature = "web-ui"))]
async fn next_run(
    _plan: &RunPlan,
    _ui: Option<&std::convert::Infallible>,
    _new_runs: &mut NewRuns,
) -> Option<(Environment, monitor::MonitorSettings)> {
    None
}

/// Starts a new run of `plan` (from a lingering web UI): a fresh environment, counted in the
/// exporters, and a record store that starts over.
#[cfg(feature = "web-ui")]
async fn start_new_run(plan: RunPlan) -> Result<(Environment, monitor::MonitorSettings), RunError> {
    let settings = monitor::MonitorSettings::of(plan.source());
    let env = Environment::from_plan(plan).await?;
    load_density_core::test_record_instance().clear_records();
    sinks::register_run(&env);
    env.start();
    Ok((env, settings))
}

/// Starts the run monitor (thresholds, report history, Locust CSV files).
fn start_monitor<C: RunControl + Clone>(
    run: &C,
    settings: monitor::MonitorSettings,
) -> Result<monitor::RunMonitor, RunError> {
    monitor::start(std::sync::Arc::new(run.clone()), settings)
}

/// The summary of a finished run, with its thresholds' verdict; remembered, with its history,
/// for the reports.
pub(crate) fn finish_run(mut summary: Summary, monitor: Option<monitor::RunMonitor>) -> Summary {
    let recording = monitor.map(|m| m.finish(&mut summary)).unwrap_or_default();
    reports::set_last_run(&summary, recording);
    summary
}

/// Runs a test to its end and returns its summary (Python's `start_test`).
///
/// Builds a multi-threaded tokio runtime with one worker per CPU this process may use, and
/// stops gracefully on Ctrl-C (a second Ctrl-C exits the process; see [`interrupt`]). Call
/// [`start_test_async`] from async code instead.
///
/// # Errors
/// See [`create_env`]; also when the runtime cannot start.
pub fn start_test(config: StartTest) -> Result<Summary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env::worker_threads())
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    interrupt::install();
    let plan = RunPlan::compile(config)?;
    runtime.block_on(async {
        if plan.mode() != plan::RunnerMode::Local {
            return distributed::run_plan(plan, true).await;
        }
        run_local(plan, true).await
    })
}
