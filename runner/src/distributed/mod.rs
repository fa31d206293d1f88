//! Distributed runs: a master and its workers, speaking Locust's own master/worker protocol
//! (ZeroMQ ROUTER/DEALER, msgpack), so either side can be Locust itself.
//!
//! - [`Master`] (`runner_mode: "master"`) binds `master_bind_host:master_bind_port` (`*`, the
//!   default, is every interface, IPv4 and IPv6; accepted connections use TCP keepalive), waits for
//!   `expected_workers`, splits `user_count` over the workers at `spawn_rate` (absolute
//!   per-worker, per-class targets, ramped in steps, as Locust's dispatcher does), answers every
//!   heartbeat, marks a silent worker missing and gives its users to the others, accepts
//!   workers joining mid-run, and stops everyone after `test_time`. It implements
//!   [`RunControl`](crate::RunControl), so a front end can watch and steer it.
//! - [`Worker`] (`runner_mode: "worker"`) connects to `master_host:master_port` with node id
//!   `<host>_<32 hex>`, runs the users its master gives it and reports every 3 s. A LoadDensity
//!   master sends it the whole test plan; a Locust master does not, so a worker joining one
//!   runs the plan it was started with.
//!
//! Trust: with a [`ClusterToken`] (`cluster_token`, env `LOAD_DENSITY_CLUSTER_TOKEN`), a master
//! admits, and sends its plan to, only LoadDensity workers that prove the token (an HMAC
//! challenge, see [`token`]); Locust workers cannot, so use no token with them. With or without a
//! token, reports from peers never admitted are dropped ([`Master::dropped_reports`]) and gone
//! workers are forgotten. A worker reads CSV data only from its master's shipped files and
//! expands `${env.NAME}` in its master's plan only for names in its `allow_env` list.
//!
//! At the end, each worker gives its tasks in flight `stop_timeout`, then cuts them off, each
//! recorded as a failure "stopped by the end of the test"
//! ([`CANCELLED_BY_STOP`](load_density_core::context::CANCELLED_BY_STOP)); the master waits (up
//! to `stop_timeout` + 5 s) for every worker's last report before it writes the summary.
//!
//! Each user group of the plan is a Locust user class of the same name (a plan without
//! `user_groups` is one class named after its user type, e.g. `fast_http_user`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), load_density::RunError> {
//! use load_density::distributed::{Master, Worker};
//! use load_density::{RunControl, StartTest};
//!
//! let plan: StartTest = serde_json::from_value(serde_json::json!({
//!     "runner_mode": "master", "master_bind_host": "127.0.0.1", "master_bind_port": 5557,
//!     "expected_workers": 1, "user_count": 10, "spawn_rate": 5, "test_time": 10,
//!     "tasks": [{"method": "get", "request_url": "http://127.0.0.1:8080/"}]
//! })).expect("plan");
//! let master = Master::start(plan).await?;
//! let worker = Worker::start(serde_json::from_value(serde_json::json!({
//!     "runner_mode": "worker", "master_host": "127.0.0.1", "master_port": 5557
//! })).expect("worker")).await?;
//! let summary = master.wait().await;
//! println!("{} requests over {} workers", summary.totals.requests, master.workers().len());
//! worker.wait().await?;
//! # Ok(()) }
//! ```
//!
//! Options (keyword arguments of `start_test`, taken out before the plan's groups see them):
//!
//! | key | default | side | meaning |
//! |---|---|---|---|
//! | `expected_workers_timeout` | 60 | master | seconds to wait for `expected_workers` before starting anyway |
//! | `stop_timeout` | 10 | master | seconds workers give tasks in flight at the end before cutting them off as failures (sent in `spawn`) |
//! | `distributed_records` | `"all"` | master | records workers send: `"all"`, `"errors"` or `"none"` |
//! | `master_timeout` | 60 | worker | seconds without a heartbeat reply before a worker gives up |
//! | `allow_env` | none | worker | environment variables `${env.NAME}` in the master's plan may read (list, or comma-separated) |
//! | `cluster_token` | env `LOAD_DENSITY_CLUSTER_TOKEN` | both | shared secret LoadDensity workers prove before they are admitted (see [`token`]) |
//! | `max_message_size` | 33554432 (32 MiB) | both | largest message accepted from a peer, in bytes; a peer whose frame claims more is disconnected with a warning |
//! | `max_peers` | 1000 | master | peers the master keeps state for: open connections, and admitted workers plus pending challenges; more are refused |
//!
//! Whatever a peer sends, no buffer is sized from a length or count it claims: messages above
//! `max_message_size` are dropped before decoding, a Locust report may claim at most
//! [`locust_stats::MAX_REQUESTS_PER_REPORT`] requests, and the HDR histograms of one report
//! may allocate at most [`locust_stats::HISTOGRAM_BYTES_PER_REPORT`] bytes of counters (plus
//! a multiple of the report's size).
//! That holds for ZeroMQ frames too: the transport is this crate's own ZMTP 3 codec
//! ([`zmtp`]), which compares each frame length a peer claims with `max_message_size` before
//! reading the frame, and disconnects the peer (one log line, [`Master::dropped_connections`])
//! when it is larger. A master keeps state for at most `max_peers` peers (connections, admitted
//! workers and pending challenges together); more are refused, counted
//! ([`Master::over_capacity_peers`]) and logged once.

pub mod dispatch;
pub mod group_stats;
pub mod locust_stats;
mod master;
mod plan;
pub(crate) mod sysinfo;
pub mod token;
pub mod wire;
mod worker;
pub mod zmtp;

use std::time::Duration;

use serde_json::Value;

pub use locust_stats::RecordShipping;
pub use master::Master;
pub use plan::{FILE_OPTIONS, MAX_SHIPPED_FILE, MAX_SHIPPED_PROTO_FILES};
pub use token::ClusterToken;
pub use worker::Worker;

use crate::config::StartTest;
use crate::error::RunError;
use crate::plan::{RunPlan, RunnerMode};

/// The Locust version our peers announce (the protocol was checked against it).
pub const LOCUST_VERSION: &str = "2.47.0";
/// A worker's heartbeat period, and the master's liveness tick.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Heartbeats a worker may miss before its master marks it missing.
pub const HEARTBEAT_LIVENESS: u32 = 3;
/// A worker's statistics report period.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(3);
/// A worker resends `client_ready` this often until it gets an `ack`.
pub const CONNECT_RETRY: Duration = Duration::from_secs(5);
/// How long a master keeps a missing worker before forgetting it.
pub const MISSING_FORGET_AFTER: Duration = Duration::from_secs(60);
/// The custom message carrying the test plan from a LoadDensity master to its workers.
pub const PLAN_MESSAGE: &str = "ld_plan";
/// The custom message giving a LoadDensity worker its share of the arrival-rate schedules:
/// `{"index", "count", "elapsed", "from"}` (every `count`-th iteration from `index`, of those
/// due from `from` seconds into the run on; the run is `elapsed` seconds old), and the
/// `stop_timeout` its tasks in flight get at the end.
pub const SHARE_MESSAGE: &str = "ld_share";

/// The keys [`DistributedOptions`] reads.
pub const DISTRIBUTED_OPTION_KEYS: &[&str] = &[
    "expected_workers_timeout",
    "stop_timeout",
    "distributed_records",
    "master_timeout",
    "cluster_token",
    "allow_env",
    "max_message_size",
    "max_peers",
];

/// The default of `max_peers`.
pub const DEFAULT_MAX_PEERS: usize = 1000;

/// The environment variable a master or worker reads its cluster token from when the
/// configuration gives none.
pub const CLUSTER_TOKEN_ENV: &str = "LOAD_DENSITY_CLUSTER_TOKEN";

/// Why a distributed run failed.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The master could not listen.
    #[error("the master cannot listen on {address}: {source}")]
    Bind {
        /// `host:port`.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The worker's master stopped answering.
    #[error(
        "the master at {address} has not answered for {silent_s:.0} s (master_timeout); \
         this worker gives up"
    )]
    MasterLost {
        /// `host:port`.
        address: String,
        /// Seconds without a heartbeat reply.
        silent_s: f64,
    },
    /// The worker cannot run what it was given.
    #[error("{0}")]
    Plan(String),
    /// A master's expected workers never came, so the run made no request.
    #[error(
        "no worker joined the master (expected {expected}): the run made no request; start \
         the workers (load-density worker --master-host ...) or raise expected_workers_timeout"
    )]
    NoWorkers {
        /// `expected_workers`.
        expected: u32,
    },
}

/// The distributed options of one `start_test` call (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedOptions {
    /// How long a master waits for `expected_workers`.
    pub expected_workers_timeout: Duration,
    /// Seconds workers give running tasks to finish at the end.
    pub stop_timeout: f64,
    /// Records workers ship.
    pub records: RecordShipping,
    /// How long a worker waits for a silent master.
    pub master_timeout: Duration,
    /// The secret LoadDensity workers prove before their master admits them (see
    /// [`token`]); `None` admits every peer, Locust workers included.
    pub cluster_token: Option<ClusterToken>,
    /// On a worker: the environment variables `${env.NAME}` in its master's plan may read
    /// (none by default).
    pub allow_env: Vec<String>,
    /// The largest message accepted from a peer, in bytes.
    pub max_message_size: usize,
    /// Peers a master keeps state for: open connections, and admitted workers plus pending
    /// challenges (each counted separately against it).
    pub max_peers: usize,
}

impl Default for DistributedOptions {
    fn default() -> Self {
        Self {
            expected_workers_timeout: Duration::from_secs(60),
            stop_timeout: 10.0,
            records: RecordShipping::All,
            master_timeout: Duration::from_secs(60),
            cluster_token: None,
            allow_env: Vec::new(),
            max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
            max_peers: DEFAULT_MAX_PEERS,
        }
    }
}

/// `allow_env`: a list of names, or one string of comma-separated names.
fn env_names(value: &Value) -> Result<Vec<String>, RunError> {
    let invalid = || {
        RunError::Config(format!(
            "allow_env must be a list of environment variable names (or one comma-separated \
             string), got {value}"
        ))
    };
    let names: Vec<String> = match value {
        Value::String(text) => text.split(',').map(|n| n.trim().to_owned()).collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(|n| n.trim().to_owned()).ok_or_else(invalid))
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid()),
    };
    Ok(names.into_iter().filter(|n| !n.is_empty()).collect())
}

fn seconds(key: &str, value: &Value) -> Result<Duration, RunError> {
    // A number, or a duration as Locust writes them ("30s", "1m30s").
    load_density_core::task::values::seconds_of(value)
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            RunError::Config(format!(
                "{key} must be a number of seconds >= 0 or a duration such as \"30s\", got {value}"
            ))
        })
}

impl DistributedOptions {
    /// Takes the distributed options out of `config` (its keyword arguments and
    /// `user_detail_dict`), so the plan's groups never see them.
    pub fn take_from(config: &mut StartTest) -> Result<Self, RunError> {
        let mut options = Self::default();
        for key in DISTRIBUTED_OPTION_KEYS {
            let from_extra = config.extra.remove(*key);
            let from_detail = config.user_detail_dict.remove(*key);
            let Some(value) = from_extra.or(from_detail) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            match *key {
                "expected_workers_timeout" => {
                    options.expected_workers_timeout = seconds(key, &value)?
                }
                "stop_timeout" => options.stop_timeout = seconds(key, &value)?.as_secs_f64(),
                "master_timeout" => options.master_timeout = seconds(key, &value)?,
                "max_message_size" => {
                    options.max_message_size = value
                        .as_u64()
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            RunError::Config(format!(
                                "max_message_size must be a positive whole number of bytes, got {value}"
                            ))
                        })?;
                }
                "max_peers" => {
                    options.max_peers = value
                        .as_u64()
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            RunError::Config(format!(
                                "max_peers must be a positive whole number, got {value}"
                            ))
                        })?;
                }
                "distributed_records" => {
                    options.records = value
                        .as_str()
                        .and_then(RecordShipping::parse)
                        .ok_or_else(|| {
                            RunError::Config(format!(
                                "distributed_records must be \"all\", \"errors\" or \"none\", got {value}"
                            ))
                        })?;
                }
                "allow_env" => options.allow_env = env_names(&value)?,
                "cluster_token" => {
                    let text = value.as_str().ok_or_else(|| {
                        RunError::Config(format!("cluster_token must be a string, got {value}"))
                    })?;
                    options.cluster_token = ClusterToken::new(text);
                }
                _ => {}
            }
        }
        if options.cluster_token.is_none() {
            options.cluster_token = std::env::var(CLUSTER_TOKEN_ENV)
                .ok()
                .and_then(ClusterToken::new);
        }
        Ok(options)
    }
}

/// A node id as Locust makes them: `<hostname>_<32 hex digits>`.
pub fn new_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // The identity must stay under 256 bytes; keep whole characters.
    let host: String = host
        .chars()
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= 200).then_some(c)
        })
        .collect();
    format!("{host}_{:032x}", rand::random::<u128>())
}

/// Splits `host:port` for messages.
fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether `config` asks for a master or a worker.
pub fn is_distributed(config: &StartTest) -> bool {
    matches!(config.runner_mode.as_str(), "master" | "worker")
}

/// Rejects a master or worker configuration where a local
/// [`Environment`](crate::Environment) is expected (`create_env`, `prepare_env`).
pub fn check_local(config: &StartTest) -> Result<(), RunError> {
    match config.runner_mode.as_str() {
        "master" => check_local_mode(RunnerMode::Master),
        "worker" => check_local_mode(RunnerMode::Worker),
        _ => Ok(()),
    }
}

/// [`check_local`] for a compiled plan.
pub fn check_local_plan(plan: &RunPlan) -> Result<(), RunError> {
    check_local_mode(plan.mode())
}

fn check_local_mode(mode: RunnerMode) -> Result<(), RunError> {
    match mode {
        RunnerMode::Master => Err(RunError::Config(
            "runner_mode \"master\" makes no local environment: run it with start_test, or \
             embed it with distributed::Master::start"
                .to_owned(),
        )),
        RunnerMode::Worker => Err(RunError::Config(
            "runner_mode \"worker\" makes no local environment: run it with start_test, or \
             embed it with distributed::Worker::start"
                .to_owned(),
        )),
        RunnerMode::Local => Ok(()),
    }
}

/// Runs a master or a worker to its end (what `start_test` does for those modes). With
/// `on_ctrl_c`, Ctrl-C stops it gracefully.
pub async fn run(config: StartTest, on_ctrl_c: bool) -> Result<crate::Summary, RunError> {
    run_plan(RunPlan::compile(config)?, on_ctrl_c).await
}

/// [`run`] for a compiled plan.
pub async fn run_plan(plan: RunPlan, on_ctrl_c: bool) -> Result<crate::Summary, RunError> {
    if on_ctrl_c {
        crate::interrupt::install();
    }
    if plan.mode() == RunnerMode::Master {
        let expected = plan.source().expected_workers;
        #[cfg(feature = "web-ui")]
        let web_ui = plan.web_ui().cloned();
        let settings = crate::monitor::MonitorSettings::of(plan.source());
        let master = Master::from_plan(plan).await?;
        // The master samples its merged statistics: thresholds (an abort stops every worker),
        // the report history and the Locust CSV files.
        let monitor = match crate::monitor::start(std::sync::Arc::new(master.clone()), settings) {
            Ok(monitor) => monitor,
            Err(error) => {
                crate::RunControl::stop(&master);
                return Err(error);
            }
        };
        // The web UI shows and steers the master through RunControl, until the run stops.
        #[cfg(feature = "web-ui")]
        let web_ui = match web_ui {
            Some(settings) => Some(
                crate::web::WebUi::start(std::sync::Arc::new(master.clone()), settings)
                    .await
                    .map_err(|e| RunError::Config(crate::executor::error_chain(&e)))?,
            ),
            None => None,
        };
        let ctrl_c = on_ctrl_c.then(|| {
            let master = master.clone();
            tokio::spawn(async move {
                if crate::interrupt::ctrl_c().await {
                    tracing::warn!("Ctrl-C: stopping the workers; their last reports follow");
                    crate::RunControl::stop(&master);
                }
            })
        });
        let summary = crate::finish_run(master.wait().await, Some(monitor));
        if let Some(task) = ctrl_c {
            task.abort();
        }
        #[cfg(feature = "web-ui")]
        if let Some(web_ui) = web_ui {
            web_ui.closed().await;
        }
        // A run that could not start (its workers never came) is a failure, not a success.
        if expected > 0 && summary.users_spawned == 0 && summary.totals.requests == 0 {
            return Err(DistributedError::NoWorkers { expected }.into());
        }
        Ok(summary)
    } else {
        let worker = Worker::from_plan(plan).await?;
        let ctrl_c = on_ctrl_c.then(|| {
            let stop = worker.stopper();
            tokio::spawn(async move {
                if crate::interrupt::ctrl_c().await {
                    tracing::warn!("Ctrl-C: stopping; the last report goes to the master");
                    stop();
                }
            })
        });
        let result = worker.wait().await;
        if let Some(task) = ctrl_c {
            task.abort();
        }
        result
    }
}
