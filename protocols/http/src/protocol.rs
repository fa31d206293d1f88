//! Preparing a group: compiling its tasks, reading its options, building its TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::http::{HttpDefaults, HttpRequestPlan, HttpTask};
use load_density_core::tls::{self, TlsSettings};
use load_density_core::{async_trait, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate};
use serde_json::{Map, Value};

use crate::client::TlsConfigs;
use crate::user::HttpUser;

/// The timeout of a request when neither the task nor the group sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// ALPN protocols offered on every TLS connection: HTTP/2 when the server takes it.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The `http_user` protocol: validates a group's tasks and makes [`HttpUser`]s.
///
/// Registered under the name `"http_user"`; the runner finds it through the registry. Call
/// [`HttpProtocol::prepare_group`] directly to get the concrete factory type.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpProtocol;

/// What every user of a group shares: the compiled tasks and the TLS configurations.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) requests: Vec<HttpRequestPlan>,
    pub(crate) tls: TlsConfigs,
}

/// Makes the users of one prepared `http_user` group.
#[derive(Debug, Clone)]
pub struct HttpUserFactory {
    shared: Arc<GroupShared>,
}

impl HttpUserFactory {
    /// A new user with its own cookie jar and no connection yet.
    pub fn user(&self, user_id: u64) -> HttpUser {
        HttpUser::new(user_id, self.shared.clone())
    }

    /// Number of tasks in the group.
    pub fn task_count(&self) -> usize {
        self.shared.requests.len()
    }
}

impl UserFactory for HttpUserFactory {
    fn new_user(&self, user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(self.user(user_id))
    }
}

impl HttpProtocol {
    /// Validates every task of `plan` and builds what its users share.
    ///
    /// Group options read from [`GroupPlan::options`] (other keys are left to other parts of
    /// the run): `timeout` (positive number of seconds, the default for tasks without one),
    /// `verify` (boolean, the default for tasks without one) and `ca_file` (path of a PEM file
    /// with extra trusted CA certificates, read now).
    ///
    /// # Errors
    /// A [`PlanError::Task`] naming the task index and key for an invalid task, or a
    /// [`PlanError::Config`] naming the option for an invalid option, an unreadable `ca_file`
    /// or a client that cannot be built.
    pub async fn prepare_group(&self, plan: &GroupPlan) -> Result<HttpUserFactory, PlanError> {
        let options = plan.options();
        let defaults = HttpDefaults {
            host: plan.host().map(str::to_owned),
            timeout: option_timeout(options)?,
            verify: option_bool(options, "verify")?,
        };
        let ca_file = option_str(options, "ca_file")?;
        let extra_ca_pem = match ca_file {
            Some(path) => Some(read_ca_file(path).await?),
            None => None,
        };

        let tasks = plan.tasks().compile::<HttpTask>()?;
        let requests = plan
            .tasks()
            .tasks()
            .iter()
            .zip(&tasks)
            .map(|(def, task)| HttpRequestPlan::compile(def.index(), task, &defaults))
            .collect::<Result<Vec<_>, _>>()?;

        let alpn: Vec<Vec<u8>> = ALPN.iter().map(|p| p.to_vec()).collect();
        let verified = tls::client_config(&TlsSettings {
            insecure: false,
            extra_ca_pem,
            alpn: alpn.clone(),
        })
        .map_err(|e| match ca_file {
            Some(path) => PlanError::Config(format!("ca_file {path:?}: {e}")),
            None => PlanError::Config(format!("TLS configuration: {e}")),
        })?;
        let insecure = tls::client_config(&TlsSettings {
            insecure: true,
            extra_ca_pem: None,
            alpn,
        })
        .map_err(|e| PlanError::Config(format!("TLS configuration (verify: false): {e}")))?;
        let tls = TlsConfigs::new(verified, insecure);
        // Build each kind of client once now, so a client that cannot be built is a
        // configuration error before the run rather than a failure per request.
        tls.check()
            .map_err(|e| PlanError::Config(format!("cannot build the HTTP client: {e}")))?;

        Ok(HttpUserFactory {
            shared: Arc::new(GroupShared { requests, tls }),
        })
    }
}

#[async_trait]
impl Protocol for HttpProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        Ok(Arc::new(self.prepare_group(plan).await?))
    }
}

fn option<'a>(options: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    options.get(key).filter(|v| !v.is_null())
}

fn option_timeout(options: &Map<String, Value>) -> Result<Option<Duration>, PlanError> {
    match option(options, "timeout") {
        None => Ok(None),
        Some(value) => match value.as_f64() {
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            _ => Err(PlanError::Config(format!(
                "option \"timeout\" must be a positive number of seconds, got {value}"
            ))),
        },
    }
}

fn option_bool(options: &Map<String, Value>, key: &str) -> Result<Option<bool>, PlanError> {
    match option(options, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(PlanError::Config(format!(
            "option {key:?} must be true or false, got {other}"
        ))),
    }
}

fn option_str<'a>(
    options: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, PlanError> {
    match option(options, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(PlanError::Config(format!(
            "option {key:?} must be a file path (a string), got {other}"
        ))),
    }
}

async fn read_ca_file(path: &str) -> Result<String, PlanError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| PlanError::Config(format!("ca_file {path:?}: cannot read it: {e}")))
}
