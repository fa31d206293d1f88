//! The web UI: a live dashboard and Locust's HTTP API, served while a run goes.
//!
//! A run given `web_ui_dict` serves, for its whole life, on the address the dictionary names:
//!
//! - `GET /`: the dashboard (state, users, RPS, failure ratio, the statistics table, live
//!   charts of the whole run, failures, workers of a master, controls to stop the run and to
//!   change its user count). Everything it needs is built into the binary.
//! - `GET /events`: the server-sent events the dashboard listens to: one `init` event with the
//!   chart history, then one `update` about once a second, then a last one when the run ends.
//! - Locust's HTTP API, same paths, form fields and JSON shapes: `POST /swarm`, `POST /stop`,
//!   `POST /stats/reset`, `GET /stats/requests`, `GET /stats/requests/csv`,
//!   `GET /stats/failures/csv`, `GET /exceptions`, `GET /exceptions/csv`, `GET /worker-count`;
//!   plus `GET /stats/summary.json` (the summary report of this run).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: load_density::StartTest = serde_json::from_value(serde_json::json!({
//!     "user_count": 10,
//!     "test_time": null,
//!     "host": "http://127.0.0.1:8080",
//!     "web_ui_dict": {"host": "127.0.0.1", "port": 0},
//!     "tasks": [{"method": "get", "request_url": "/"}]
//! }))?;
//! let env = load_density::prepare_env(config).await?;
//! let addr = load_density::web::local_addr(&env).expect("the UI of this run");
//! println!("open http://{addr}/ ; stopping the run there ends it");
//! let summary = env.wait().await;
//! # let _ = summary; Ok(()) }
//! ```
//!
//! `web_ui_dict` keys: `host` (default `127.0.0.1`; `"*"` means every interface, IPv4 and
//! IPv6), `port` (default 8089; 0 picks a free port, see [`local_addr`] and
//! [`running_addresses`]), `username` with `password` to require HTTP basic authentication on
//! every route, and `allowed_hosts`.
//!
//! Against DNS rebinding (a page of another site whose name is made to resolve to this
//! machine), every request's `Host` must name this UI: an IP address, `localhost`, the
//! configured `host`, or a name listed in `allowed_hosts` (a list of host names, without
//! ports; `["*"]` allows any). Other requests get `403 Forbidden`. Add the names you reach the
//! UI by (`"allowed_hosts": ["loadtest.internal"]`) when it listens beyond this machine.
//!
//! `linger`: seconds (or a duration such as `"5m"`) to keep serving the finished run, `-1`
//! until Ctrl-C (default 0: the UI closes with the run, as the Python version's does). While
//! it lingers, the page shows the run stopped and its downloads, the API answers (a script
//! can `POST /stop` and then `GET /stats/requests/csv`), and `POST /quit` ends the linger
//! (so does Ctrl-C); `start_test` returns once the UI has closed.
//!
//! While it lingers, the page's "New run" button, or `POST /swarm` (Locust's fields
//! `user_count`, `spawn_rate`, `host`, `run_time`), starts another run of the same compiled plan
//! ([`RunPlan::for_new_run`](crate::RunPlan::for_new_run)), as Locust allows. The UI then shows
//! the new run: the page, `/stats/requests`, the CSV downloads and the summary follow it, and
//! the state goes `stopped` -> `running` -> `stopped`. A new run starts the measurement over
//! (statistics and record store); each run's summary and Locust CSV files are written as it
//! ends, and `start_test` returns the last run's summary. Only runs started by `start_test`
//! (local) can start new runs: a master's UI, or one started with [`WebUi::start`], refuses.
//!
//! Differences from Locust, on purpose: no cross-origin access (no CORS headers, and a
//! state-changing request from another site's page is refused); the run ends when it is
//! stopped, so `/swarm` after `/stop` is refused and the UI closes with the run, unless
//! `linger` keeps it up (then `/swarm` starts a new run, as above); `/swarm`
//! cannot change the host of a test; `/exceptions` is always empty (a failed request is
//! a failure, in `errors`, not an exception).

mod api;
mod guard;
mod listen;
use crate::history;
mod live;
mod metrics;
mod page;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use crate::history::{ChartHistory, ChartPoint, OLD_POINTS_CAP, RECENT_POINTS};

use crate::config::StartTest;
use crate::control::RunControl;
use crate::env::Environment;
use live::Live;

/// The web UI's default port (Locust's).
pub const DEFAULT_PORT: u16 = 8089;
/// The web UI's default address.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The keys `web_ui_dict` accepts.
pub const WEB_UI_KEYS: &[&str] = &[
    "host",
    "port",
    "username",
    "password",
    "allowed_hosts",
    "linger",
];
/// How long the server waits for requests in flight once the run has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why the web UI could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebUiError {
    /// `web_ui_dict` is not valid.
    #[error("web_ui_dict: {0}")]
    Settings(String),
    /// The address cannot be listened on.
    #[error("the web UI cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Basic-authentication credentials. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    username: String,
    password: String,
}

impl BasicAuth {
    /// Credentials that every request must present.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Where and how the web UI serves: what `web_ui_dict` says.
#[derive(Debug, Clone, PartialEq)]
pub struct WebUiSettings {
    host: String,
    port: u16,
    auth: Option<BasicAuth>,
    distributed: bool,
    allowed_hosts: Vec<String>,
    /// Seconds to keep serving the finished run: 0 closes at once (the Python default), a
    /// negative value serves until Ctrl-C or `POST /quit`.
    linger_s: f64,
}

/// The linger of runs whose `web_ui_dict` gives none (the CLI's `--web-ui-linger`), in
/// seconds as `f64` bits.
static DEFAULT_LINGER_BITS: AtomicU64 = AtomicU64::new(0);

/// Sets the linger of every web UI whose `web_ui_dict` gives no `linger` (the CLI's
/// `--web-ui-linger`): seconds to keep serving a finished run, `-1` until Ctrl-C or
/// `POST /quit`, 0 to close with the run (the default).
pub fn set_default_linger(seconds: f64) {
    DEFAULT_LINGER_BITS.store(seconds.to_bits(), Ordering::Relaxed);
}

fn default_linger() -> f64 {
    f64::from_bits(DEFAULT_LINGER_BITS.load(Ordering::Relaxed))
}

impl Default for WebUiSettings {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            auth: None,
            distributed: false,
            allowed_hosts: Vec::new(),
            linger_s: default_linger(),
        }
    }
}

impl WebUiSettings {
    /// Serves on `host:port` (port 0: any free port).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            ..Self::default()
        }
    }

    /// Requires HTTP basic authentication on every route.
    pub fn with_basic_auth(mut self, auth: BasicAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Also accepts requests whose `Host` is one of `names` (host names without ports; `"*"`
    /// accepts any); see the [module docs](self).
    pub fn with_allowed_hosts(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.allowed_hosts = names
            .into_iter()
            .map(|n| n.into().trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Marks the run as a distributed master's: the API then reports `workers` and
    /// `worker_count` as Locust's master does, and the page shows the workers tab.
    pub fn with_distributed(mut self, distributed: bool) -> Self {
        self.distributed = distributed;
        self
    }

    /// Reads a `web_ui_dict` (see the [module docs](self) for its keys).
    ///
    /// # Errors
    /// Not an object, an unknown key, a wrong type, a username without a password.
    pub fn from_value(value: &Value) -> Result<Self, WebUiError> {
        let invalid = |message: String| WebUiError::Settings(message);
        let Value::Object(map) = value else {
            return Err(invalid(format!(
                "must be an object like {{\"host\": \"127.0.0.1\", \"port\": 8089}}, got {value}"
            )));
        };
        if let Some(unknown) = map.keys().find(|k| !WEB_UI_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown key {unknown:?} (known keys: {})",
                WEB_UI_KEYS.join(", ")
            )));
        }
        let string = |key: &str| -> Result<Option<String>, WebUiError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(invalid(format!("{key} must be a string, got {other}"))),
            }
        };
        let mut settings = Self::default();
        if let Some(host) = string("host")? {
            let host = host.trim();
            settings.host = match host {
                "" | "*" => "*".to_owned(),
                other => other.to_owned(),
            };
        }
        match map.get("port") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                settings.port =
                    n.as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or_else(|| {
                            invalid(format!("port must be a whole number 0-65535, got {n}"))
                        })?;
            }
            Some(other) => {
                return Err(invalid(format!(
                    "port must be a whole number 0-65535, got {other}"
                )))
            }
        }
        match map.get("allowed_hosts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                let names = names
                    .iter()
                    .map(|n| n.as_str().filter(|n| !n.trim().is_empty()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        invalid(format!(
                            "allowed_hosts must be a list of host names, got {}",
                            Value::Array(names.clone())
                        ))
                    })?;
                settings = settings.with_allowed_hosts(names);
            }
            Some(other) => {
                return Err(invalid(format!(
                    "allowed_hosts must be a list of host names, got {other}"
                )))
            }
        }
        match map.get("linger") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x < 0.0) => {
                settings.linger_s = -1.0;
            }
            Some(value) => {
                settings.linger_s = load_density_core::task::values::seconds_of(value)
                    .map_err(|e| invalid(format!("linger: {e} (or -1 to serve until Ctrl-C)")))?;
            }
        }
        match (string("username")?, string("password")?) {
            (None, None) => {}
            (Some(username), Some(password)) if !username.is_empty() => {
                settings.auth = Some(BasicAuth::new(username, password));
            }
            (Some(_), Some(_)) => return Err(invalid("username must not be empty".to_owned())),
            _ => {
                return Err(invalid(
                    "username and password go together: give both or neither".to_owned(),
                ))
            }
        }
        Ok(settings)
    }

    /// The settings of a run's `web_ui_dict`: `None` when it has none, or when the run is a
    /// worker (a worker serves no UI; its master does).
    ///
    /// # Errors
    /// See [`from_value`](Self::from_value).
    pub fn from_config(config: &StartTest) -> Result<Option<Self>, WebUiError> {
        let Some(value) = &config.web_ui_dict else {
            return Ok(None);
        };
        let settings = Self::from_value(value)?;
        match config.runner_mode.as_str() {
            "worker" => {
                tracing::warn!("web_ui_dict is ignored on a worker: its master serves the UI");
                Ok(None)
            }
            mode => Ok(Some(settings.with_distributed(mode == "master"))),
        }
    }

    /// The host to listen on (`*`: every interface).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The names accepted in `Host` besides IP addresses, `localhost` and [`host`](Self::host).
    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }
    /// The port to listen on (0: any free port).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The credentials, when basic authentication is on.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }
    /// Whether the run is a distributed master's.
    pub fn distributed(&self) -> bool {
        self.distributed
    }
    /// Keeps serving the finished run for `seconds` (negative: until Ctrl-C or
    /// `POST /quit`; 0: close with the run).
    pub fn with_linger(mut self, seconds: f64) -> Self {
        self.linger_s = seconds;
        self
    }
    /// How long the finished run stays served: `None` until Ctrl-C or `POST /quit`.
    pub fn linger(&self) -> Option<Duration> {
        if self.linger_s < 0.0 {
            None
        } else {
            Some(Duration::try_from_secs_f64(self.linger_s).unwrap_or(Duration::MAX))
        }
    }
}

/// A request for a new run from a lingering UI (`POST /swarm` after the run ended), handed to
/// whoever started the run ([`crate::start_test`]); it answers with the new run.
pub(crate) struct NewRun {
    /// Users of the new run (`user_count`).
    pub(crate) user_count: u64,
    /// Users started per second (`spawn_rate`).
    pub(crate) spawn_rate: f64,
    /// Its `test_time`, in seconds (`run_time`), when given.
    pub(crate) run_time: Option<u64>,
    /// The new run, started, or why it could not start.
    pub(crate) reply: oneshot::Sender<Result<Arc<dyn RunControl>, String>>,
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) settings: WebUiSettings,
    pub(crate) live: Live,
    /// The stop scheduled by `/swarm`'s `run_time`.
    pub(crate) run_timer: Mutex<Option<JoinHandle<()>>>,
    /// `POST /quit`: ends the linger after the run.
    pub(crate) quit: watch::Sender<bool>,
    /// Where `POST /swarm` asks for a new run while the UI lingers (`None`: it cannot).
    pub(crate) relaunch: Option<mpsc::Sender<NewRun>>,
}

impl Shared {
    /// The run shown now (a new run started from the UI replaces the one before).
    pub(crate) fn control(&self) -> Arc<dyn RunControl> {
        self.live.control()
    }
}

/// A running web UI. It serves until the run it shows has stopped (or [`shutdown`] is
/// called), then sends its last update and closes. Dropping the handle does not stop it.
///
/// [`shutdown`]: WebUi::shutdown
#[derive(Debug, Clone)]
pub struct WebUi {
    addr: SocketAddr,
    close: watch::Sender<bool>,
    closed: watch::Receiver<bool>,
}

impl WebUi {
    /// Binds `settings`' address and serves the UI of `control`'s run on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// The address cannot be listened on.
    pub async fn start(
        control: Arc<dyn RunControl>,
        settings: WebUiSettings,
    ) -> Result<Self, WebUiError> {
        Self::start_keyed(control, settings, None, None).await
    }

    async fn start_keyed(
        control: Arc<dyn RunControl>,
        settings: WebUiSettings,
        key: Option<usize>,
        relaunch: Option<mpsc::Sender<NewRun>>,
    ) -> Result<Self, WebUiError> {
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = listen::listen(&settings.host, settings.port)
            .await
            .map_err(|source| WebUiError::Bind {
                address: address.clone(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| WebUiError::Bind { address, source })?;
        if !addr.ip().is_loopback() && settings.auth.is_none() {
            tracing::warn!(
                %addr,
                "the web UI listens beyond this machine without authentication; anyone who can \
                 reach it can stop the run (set web_ui_dict username and password)"
            );
        }
        let shared = Arc::new(Shared {
            live: Live::new(control, settings.distributed, relaunch.is_some()),
            settings,
            run_timer: Mutex::new(None),
            quit: watch::channel(false).0,
            relaunch,
        });
        let (close, close_rx) = watch::channel(false);
        let (closed_tx, closed) = watch::channel(false);
        let registration = Registration(register(addr, key));
        let app = router(shared.clone());
        let server_stop = shared.live.ended();
        let server = axum::serve(listener, app).with_graceful_shutdown(server_stop);
        tokio::spawn(async move {
            // Unregisters even when the runtime drops this task.
            let registration = registration;
            let server = tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(%error, "the web UI server failed");
                }
            });
            live::run(&shared, close_rx).await;
            if let Some(timer) = shared.run_timer.lock().take() {
                timer.abort();
            }
            let abort = server.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, server).await.is_err() {
                abort.abort();
            }
            drop(registration);
            tracing::info!(%addr, "web UI closed");
            closed_tx.send_replace(true);
        });
        tracing::info!(%addr, "web UI: http://{addr}/");
        Ok(Self {
            addr,
            close,
            closed,
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits until it has closed (after the run stopped).
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Closes it now, whatever the run does (the run goes on), and waits until it has closed.
    pub async fn shutdown(&self) {
        self.close.send_replace(true);
        self.closed().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/events", get(page::events))
        .route("/stats/summary.json", get(page::summary))
        .route("/swarm", post(api::swarm))
        .route("/stop", post(api::stop))
        .route("/quit", post(api::quit))
        .route("/stats/reset", post(api::reset))
        .route("/stats/requests", get(api::requests))
        .route("/stats/requests/csv", get(api::requests_csv))
        .route("/stats/failures/csv", get(api::failures_csv))
        .route("/exceptions", get(api::exceptions))
        .route("/exceptions/csv", get(api::exceptions_csv))
        .route("/worker-count", get(api::worker_count))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::guard,
        ))
        .with_state(shared)
}

struct Registered {
    id: u64,
    addr: SocketAddr,
    key: Option<usize>,
    ui: Option<WebUi>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn register(addr: SocketAddr, key: Option<usize>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    REGISTRY.lock().push(Registered {
        id,
        addr,
        key,
        ui: None,
    });
    id
}

/// A registry entry, removed when dropped.
struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        REGISTRY.lock().retain(|r| r.id != self.0);
    }
}

/// Identifies a run for the registry: the address of its configuration, which clones of an
/// [`Environment`] share and which lives as long as the run.
fn env_key(env: &Environment) -> usize {
    std::ptr::from_ref(env.config()) as usize
}

/// The addresses of every web UI running in this process, oldest first.
pub fn running_addresses() -> Vec<SocketAddr> {
    REGISTRY.lock().iter().map(|r| r.addr).collect()
}

/// The address of the web UI of a run started by [`prepare_env`](crate::prepare_env) (or
/// [`start_test`](crate::start_test)) with `web_ui_dict`, while it serves.
pub fn local_addr(env: &Environment) -> Option<SocketAddr> {
    let key = env_key(env);
    REGISTRY
        .lock()
        .iter()
        .find(|r| r.key == Some(key))
        .map(|r| r.addr)
}

/// Starts the UI of `env`'s run (by `prepare_env`), before the run starts. With `relaunch`,
/// `POST /swarm` on the lingering UI asks there for a new run (see [`NewRun`]).
pub(crate) async fn attach(
    env: &Environment,
    settings: WebUiSettings,
    relaunch: Option<mpsc::Sender<NewRun>>,
) -> Result<WebUi, WebUiError> {
    let key = env_key(env);
    let ui = WebUi::start_keyed(Arc::new(env.clone()), settings, Some(key), relaunch).await?;
    if let Some(entry) = REGISTRY.lock().iter_mut().find(|r| r.key == Some(key)) {
        entry.ui = Some(ui.clone());
    }
    Ok(ui)
}

/// Waits until the UI of `env`'s run, if it has one, has closed: called once the run has
/// stopped, so that the port is free again when `start_test` returns.
pub(crate) async fn closed(env: &Environment) {
    let key = env_key(env);
    let ui = REGISTRY
        .lock()
        .iter()
        .find(|r| r.key == Some(key))
        .and_then(|r| r.ui.clone());
    if let Some(ui) = ui {
        ui.closed().await;
    }
}
