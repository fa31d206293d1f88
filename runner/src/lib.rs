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
//! ## Embedding
//!
//! [`create_env`] validates a configuration and returns an [`Environment`] without starting
//! it; [`prepare_env`] also starts it. An environment can be stopped, and read while it runs.

pub mod config;
pub mod console;
pub mod control;
pub mod distributed;
pub mod env;
pub mod error;
pub mod executor;
pub mod globals;
pub mod groups;
pub mod import;
pub mod report;
pub mod sinks;
#[cfg(feature = "sqlite")]
pub mod store;
#[cfg(feature = "web-ui")]
pub mod web;

pub use config::{StartTest, Summary, Totals};
pub use control::{RunControl, WorkerInfo};
pub use env::{Environment, RunState};
pub use error::RunError;
pub use globals::{
    clear_variables, register_csv_source, register_csv_sources, register_variable,
    register_variables,
};
pub use load_density_core as core;

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
/// invalid task (naming its index and key), an unknown option, an invalid `web_ui_dict`.
pub async fn create_env(config: StartTest) -> Result<Environment, RunError> {
    distributed::check_local(&config)?;
    web_ui_settings(&config)?;
    let env = Environment::create(config).await?;
    sinks::register_run(&env);
    Ok(env)
}

/// Like [`create_env`], then starts the run on the current runtime (Python's `prepare_env`).
///
/// With `web_ui_dict`, the web UI starts listening before the run starts and serves until the
/// run has stopped ([`web::local_addr`] gives its address).
pub async fn prepare_env(config: StartTest) -> Result<Environment, RunError> {
    distributed::check_local(&config)?;
    #[cfg(feature = "web-ui")]
    let web_ui = web_ui_settings(&config)?;
    #[cfg(not(feature = "web-ui"))]
    web_ui_settings(&config)?;
    let env = Environment::create(config).await?;
    sinks::register_run(&env);
    #[cfg(feature = "web-ui")]
    if let Some(settings) = web_ui {
        web::attach(&env, settings)
            .await
            .map_err(|e| RunError::Config(executor::error_chain(&e)))?;
    }
    env.start();
    Ok(env)
}

/// Runs a test to its end on the current runtime and returns its summary.
///
/// `runner_mode` `"master"` and `"worker"` run a [`distributed::Master`] or
/// [`distributed::Worker`].
pub async fn start_test_async(config: StartTest) -> Result<Summary, RunError> {
    if distributed::is_distributed(&config) {
        return distributed::run(config, false).await;
    }
    let env = prepare_env(config).await?;
    let summary = env.wait().await;
    sinks::run_ended();
    #[cfg(feature = "web-ui")]
    web::closed(&env).await;
    Ok(summary)
}

#[cfg(feature = "web-ui")]
fn web_ui_settings(config: &StartTest) -> Result<Option<web::WebUiSettings>, RunError> {
    web::WebUiSettings::from_config(config).map_err(|e| RunError::Config(executor::error_chain(&e)))
}

#[cfg(not(feature = "web-ui"))]
fn web_ui_settings(config: &StartTest) -> Result<(), RunError> {
    match config.web_ui_dict {
        None => Ok(()),
        Some(_) => Err(RunError::Config(
            "web_ui_dict needs the web UI, which this build leaves out (cargo feature `web-ui`)"
                .to_owned(),
        )),
    }
}

/// Runs a test to its end and returns its summary (Python's `start_test`).
///
/// Builds a multi-threaded tokio runtime with one worker per CPU this process may use, and
/// stops gracefully on Ctrl-C. Call [`start_test_async`] from async code instead.
///
/// # Errors
/// See [`create_env`]; also when the runtime cannot start.
pub fn start_test(config: StartTest) -> Result<Summary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env::worker_threads())
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        if distributed::is_distributed(&config) {
            return distributed::run(config, true).await;
        }
        let env = prepare_env(config).await?;
        let on_ctrl_c = env.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("Ctrl-C: stopping; requests in flight finish and are recorded");
                on_ctrl_c.stop();
            }
        });
        let summary = env.wait().await;
        sinks::run_ended();
        ctrl_c.abort();
        #[cfg(feature = "web-ui")]
        web::closed(&env).await;
        Ok(summary)
    })
}
