//! Preparing a group: options, task compilation, the shared TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::http::parse_host;
use load_density_core::tls::{client_config, TlsSettings};
use load_density_core::{async_trait, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate};
use rustls::ClientConfig;
use serde_json::{Map, Value};
use url::Url;

use crate::task::{resolve_ws_url, CompiledTask, Defaults, WsTask};
use crate::user::WebSocketUser;
use crate::DEFAULT_TIMEOUT;

/// The `websocket_user` protocol: validates a group's WebSocket tasks and makes
/// [`websocket_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSocketProtocol;

/// The group options this protocol reads.
pub(crate) const OPTION_NAMES: &[&str] = &["ca_file", "timeout", "verify"];

#[derive(Debug, Default)]
struct Options {
    timeout: Option<Duration>,
    verify: Option<bool>,
    ca_file: Option<(String, String)>,
}

fn config_type(key: &str, expected: &str, got: impl std::fmt::Display) -> PlanError {
    PlanError::Config(format!("option {key:?} must be {expected}, got {got}"))
}

impl Options {
    async fn from_map(options: &Map<String, Value>) -> Result<Self, PlanError> {
        let timeout = match options.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
                _ => return Err(config_type("timeout", "a positive number of seconds", n)),
            },
            Some(other) => {
                return Err(config_type(
                    "timeout",
                    "a positive number of seconds",
                    other,
                ))
            }
        };
        let verify = match options.get("verify") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => return Err(config_type("verify", "true or false", other)),
        };
        let ca_file = match options.get("ca_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(path)) => {
                let pem = tokio::fs::read_to_string(path).await.map_err(|e| {
                    PlanError::Config(format!("option \"ca_file\": cannot read {path:?}: {e}"))
                })?;
                Some((path.clone(), pem))
            }
            Some(other) => return Err(config_type("ca_file", "a file path", other)),
        };
        Ok(Self {
            timeout,
            verify,
            ca_file,
        })
    }
}

/// The TLS configurations a group's users share: one verifying, one not, each built only when
/// a task needs it (and shared process-wide through core's cache).
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsConfigs {
    secure: Option<Arc<ClientConfig>>,
    insecure: Option<Arc<ClientConfig>>,
}

impl TlsConfigs {
    /// The configuration for a task's `verify` setting.
    pub(crate) fn get(&self, verify: bool) -> Option<&Arc<ClientConfig>> {
        if verify {
            self.secure.as_ref()
        } else {
            self.insecure.as_ref()
        }
    }
}

/// What every user of a group shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tasks: Vec<CompiledTask>,
    pub(crate) base: Option<Url>,
    pub(crate) tls: TlsConfigs,
}

struct WebSocketFactory {
    shared: Arc<Shared>,
}

impl UserFactory for WebSocketFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(WebSocketUser::new(self.shared.clone()))
    }
}

fn tls_config(settings: &TlsSettings, what: &str) -> Result<Arc<ClientConfig>, PlanError> {
    client_config(settings).map_err(|e| PlanError::Config(format!("{what}: {e}")))
}

#[async_trait]
impl Protocol for WebSocketProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = Options::from_map(plan.options()).await?;
        let base = match plan.host() {
            None => None,
            Some(host) => {
                let parsed = parse_host(host)?;
                // Check the scheme now: `ftp://...` is no WebSocket host.
                resolve_ws_url(Some(&parsed), "/")
                    .map_err(|e| PlanError::Config(format!("host: {e}")))?;
                Some(parsed)
            }
        };
        let defaults = Defaults {
            base: base.clone(),
            timeout: options.timeout.unwrap_or(DEFAULT_TIMEOUT),
            verify: options.verify.unwrap_or(true),
        };
        let tasks = plan.tasks().compile::<WsTask>()?;
        let compiled = plan
            .tasks()
            .tasks()
            .iter()
            .zip(tasks)
            .map(|(def, task)| CompiledTask::compile(def.index(), task, &defaults))
            .collect::<Result<Vec<_>, _>>()?;

        // HTTP/1.1 is what a WebSocket handshake speaks: offer it, so an HTTP/2-capable server
        // does not pick h2. Same settings as fast_http_user, so the configuration is shared.
        let alpn = vec![b"http/1.1".to_vec()];
        let mut tls = TlsConfigs::default();
        if compiled.iter().any(|t| t.verify) || options.ca_file.is_some() {
            let (what, extra_ca_pem) = match &options.ca_file {
                Some((path, pem)) => (format!("option \"ca_file\" ({path})"), Some(pem.clone())),
                None => ("TLS configuration".to_owned(), None),
            };
            tls.secure = Some(tls_config(
                &TlsSettings {
                    insecure: false,
                    extra_ca_pem,
                    alpn: alpn.clone(),
                },
                &what,
            )?);
        }
        if compiled.iter().any(|t| !t.verify) {
            tls.insecure = Some(tls_config(
                &TlsSettings {
                    insecure: true,
                    extra_ca_pem: None,
                    alpn,
                },
                "TLS configuration",
            )?);
        }
        Ok(Arc::new(WebSocketFactory {
            shared: Arc::new(Shared {
                tasks: compiled,
                base,
                tls,
            }),
        }))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
    }
}
