//! Preparing a group: options, task compilation, shared TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::http::{HttpDefaults, HttpRequestPlan, HttpTask};
use load_density_core::tls::{client_config, TlsSettings};
use load_density_core::variables::UserVariables;
use load_density_core::{
    async_trait, GroupPlan, PlanError, Protocol, RequestMeta, UserFactory, UserTemplate,
};
use serde_json::{Map, Value};
use tokio_rustls::TlsConnector;

use crate::conn::Origin;
use crate::request::{check_header, encode, valid_header_name, valid_header_value};
use crate::user::FastHttpUser;
use crate::DEFAULT_TIMEOUT;

/// The `fast_http_user` protocol: validates a group's HTTP tasks and makes
/// [`fast_http_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHttpProtocol;

/// The group options this protocol reads.
#[derive(Debug, Default)]
struct Options {
    timeout: Option<Duration>,
    verify: Option<bool>,
    ca_file: Option<(String, String)>,
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

fn config_type(key: &str, expected: &str, got: impl std::fmt::Display) -> PlanError {
    PlanError::Config(format!("option {key:?} must be {expected}, got {got}"))
}

/// The TLS connectors a group's users share: one verifying, one not, each built only when a
/// task needs it.
#[derive(Clone, Default)]
pub(crate) struct TlsConnectors {
    secure: Option<TlsConnector>,
    insecure: Option<TlsConnector>,
}

impl TlsConnectors {
    /// The connector for a task's `verify` setting.
    pub(crate) fn get(&self, verify: bool) -> Option<&TlsConnector> {
        if verify {
            self.secure.as_ref()
        } else {
            self.insecure.as_ref()
        }
    }
}

/// What a static task sends, computed once.
pub(crate) struct Fixed {
    pub(crate) meta: RequestMeta,
    /// The whole request: head and body.
    pub(crate) wire: Box<[u8]>,
}

/// One task, ready to run.
pub(crate) struct CompiledTask {
    pub(crate) plan: HttpRequestPlan,
    pub(crate) timeout: Duration,
    pub(crate) head_request: bool,
    /// What a render error is recorded under: the task's templates as written.
    pub(crate) fallback_meta: RequestMeta,
    /// Set for tasks without placeholders.
    pub(crate) fixed: Option<Fixed>,
}

impl CompiledTask {
    fn compile(index: usize, task: &HttpTask, defaults: &HttpDefaults) -> Result<Self, PlanError> {
        let plan = HttpRequestPlan::compile(index, task, defaults)?;
        // Header names are never templated: check them all now, and constant values too.
        for (name, value) in task.headers.iter().flat_map(|pairs| pairs.0.iter()) {
            let path = format!("headers.{name}");
            if !valid_header_name(name) {
                return Err(PlanError::task(
                    index,
                    path,
                    format!("invalid header name {name:?}"),
                ));
            }
            if value.as_constant().is_some_and(|v| !valid_header_value(v)) {
                return Err(PlanError::task(
                    index,
                    path,
                    "control characters (CR, LF, ...) are not allowed in header values",
                ));
            }
        }
        let url_source = task
            .request_url
            .as_ref()
            .or(task.url.as_ref())
            .map(|t| t.source())
            .unwrap_or_default();
        let name_source = task.name.as_ref().map_or(url_source, |t| t.source());
        let fallback_meta = RequestMeta::new(plan.method().clone(), name_source, url_source);
        let head_request = &**plan.method() == "HEAD";
        let timeout = plan.timeout().unwrap_or(DEFAULT_TIMEOUT);
        let fixed = match plan.render(&UserVariables::default()) {
            Ok(std::borrow::Cow::Borrowed(request)) => {
                for (name, value) in &request.headers {
                    check_header(name, value).map_err(|e| PlanError::task(index, "", e))?;
                }
                Origin::of(&request.url, plan.verify()).ok_or_else(|| {
                    PlanError::task(index, "request_url", format!("{} has no host", request.url))
                })?;
                let mut wire = Vec::new();
                encode(
                    &mut wire,
                    &request.method,
                    &request.url,
                    request
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    request.body.as_ref().map(|b| &*b.bytes),
                );
                Some(Fixed {
                    meta: RequestMeta {
                        request_type: request.method.clone(),
                        name: request.name.clone(),
                        url: request.url_text.clone(),
                    },
                    wire: wire.into_boxed_slice(),
                })
            }
            // Dynamic: rendered per request (errors show up then).
            _ => None,
        };
        Ok(Self {
            plan,
            timeout,
            head_request,
            fallback_meta,
            fixed,
        })
    }
}

/// Makes users of one group; every user shares the compiled tasks and TLS connectors.
struct FastHttpFactory {
    tasks: Arc<[CompiledTask]>,
    tls: TlsConnectors,
}

impl UserFactory for FastHttpFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(FastHttpUser::new(self.tasks.clone(), self.tls.clone()))
    }
}

fn connector(settings: &TlsSettings, what: &str) -> Result<TlsConnector, PlanError> {
    client_config(settings)
        .map(TlsConnector::from)
        .map_err(|e| PlanError::Config(format!("{what}: {e}")))
}

#[async_trait]
impl Protocol for FastHttpProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = Options::from_map(plan.options()).await?;
        let defaults = HttpDefaults {
            host: plan.host().map(str::to_owned),
            timeout: options.timeout,
            verify: options.verify,
        };
        let tasks = plan.tasks().compile::<HttpTask>()?;
        let compiled = plan
            .tasks()
            .tasks()
            .iter()
            .zip(&tasks)
            .map(|(def, task)| CompiledTask::compile(def.index(), task, &defaults))
            .collect::<Result<Vec<_>, _>>()?;

        let alpn = vec![b"http/1.1".to_vec()];
        let mut tls = TlsConnectors::default();
        if compiled.iter().any(|t| t.plan.verify()) || options.ca_file.is_some() {
            let (what, extra_ca_pem) = match &options.ca_file {
                Some((path, pem)) => (format!("option \"ca_file\" ({path})"), Some(pem.clone())),
                None => ("TLS configuration".to_owned(), None),
            };
            tls.secure = Some(connector(
                &TlsSettings {
                    insecure: false,
                    extra_ca_pem,
                    alpn: alpn.clone(),
                },
                &what,
            )?);
        }
        if compiled.iter().any(|t| !t.plan.verify()) {
            tls.insecure = Some(connector(
                &TlsSettings {
                    insecure: true,
                    extra_ca_pem: None,
                    alpn,
                },
                "TLS configuration",
            )?);
        }
        Ok(Arc::new(FastHttpFactory {
            tasks: compiled.into(),
            tls,
        }))
    }
}
