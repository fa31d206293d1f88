//! Preparing a group: options, task compilation, shared TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::http::{HttpDefaults, HttpRequestPlan, HttpTask};
use load_density_core::task::options::{option_bytes, with_common_options};
use load_density_core::{
    async_trait, GroupOptions, GroupPlan, GroupTls, PlanError, Protocol, RequestMeta, Unboxed,
    UserFactory, UserTemplate,
};
use tokio_rustls::TlsConnector;

use crate::conn::Origin;
use crate::request::{check_header, encode, valid_header_name, valid_header_value};
use crate::user::FastHttpUser;
use crate::{DEFAULT_MAX_BODY_SIZE, DEFAULT_TIMEOUT};

/// The `fast_http_user` protocol: validates a group's HTTP tasks and makes
/// [`fast_http_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHttpProtocol;

/// The TLS connectors a group's users share: one verifying, one not, each built only when a
/// task needs it.
#[derive(Clone, Default)]
pub(crate) struct TlsConnectors {
    secure: Option<TlsConnector>,
    insecure: Option<TlsConnector>,
}

impl TlsConnectors {
    fn new(tls: &GroupTls) -> Self {
        let connector = |verify| tls.get(verify).cloned().map(TlsConnector::from);
        Self {
            secure: connector(true),
            insecure: connector(false),
        }
    }

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
    /// The group's `max_body_size`: the most body bytes kept for assertions and extractors.
    pub(crate) max_body_size: u64,
    /// What a render error is recorded under: the task's templates as written.
    pub(crate) fallback_meta: RequestMeta,
    /// Set for tasks without placeholders.
    pub(crate) fixed: Option<Fixed>,
}

impl CompiledTask {
    fn compile(
        index: usize,
        task: &HttpTask,
        defaults: &HttpDefaults,
        max_body_size: u64,
    ) -> Result<Self, PlanError> {
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
        let timeout = plan.timeout().unwrap_or(DEFAULT_TIMEOUT);
        let fixed = match plan.constant() {
            Some(request) => {
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
            None => None,
        };
        Ok(Self {
            plan,
            timeout,
            max_body_size,
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
        // Unboxed: the user's task futures are not boxed one per request (see `StaticUser`).
        Box::new(Unboxed::new(FastHttpUser::new(
            self.tasks.clone(),
            self.tls.clone(),
        )))
    }
}

#[async_trait]
impl Protocol for FastHttpProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = GroupOptions::from_plan(plan)?;
        let max_body_size = max_body_size(plan.options())?;
        let defaults = HttpDefaults::from_plan(plan, &options);
        let compiled = plan.tasks().compile_each(|index, task: HttpTask| {
            CompiledTask::compile(index, &task, &defaults, max_body_size)
        })?;
        let tls = options.group_tls(compiled.iter().map(|t| t.plan.verify()), &[b"http/1.1"])?;
        Ok(Arc::new(FastHttpFactory {
            tasks: compiled.into(),
            tls: TlsConnectors::new(&tls),
        }))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
    }

    fn binds_source_address(&self) -> bool {
        true
    }
}

/// The group options this protocol reads: the common ones and `max_body_size`.
const OPTION_NAMES: &[&str] = &with_common_options::<4>(&["max_body_size"]);

/// The `max_body_size` option, [`DEFAULT_MAX_BODY_SIZE`] when not given.
fn max_body_size(options: &serde_json::Map<String, serde_json::Value>) -> Result<u64, PlanError> {
    Ok(option_bytes(options, "max_body_size")?.unwrap_or(DEFAULT_MAX_BODY_SIZE))
}
