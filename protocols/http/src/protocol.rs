//! Preparing a group: compiling its tasks, reading its options, building its TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::http::{HttpDefaults, HttpRequestPlan, HttpTask};
use load_density_core::task::options::{option_bytes, with_common_options};
use load_density_core::{
    async_trait, GroupOptions, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate,
};

use crate::client::TlsConfigs;
use crate::user::HttpUser;

/// The group options this protocol reads: the common ones and `max_body_size`.
const OPTION_NAMES: &[&str] = &with_common_options::<4>(&["max_body_size"]);

/// The largest response body kept for a task's assertions and extractors when the group sets
/// no `max_body_size` (64 MiB). Bodies nothing reads are counted and dropped, whatever their
/// size.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 64 * 1024 * 1024;

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
    /// The group's `max_body_size`: the most body bytes kept for assertions and extractors.
    pub(crate) max_body_size: u64,
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
        let options = GroupOptions::from_plan(plan)?;
        let max_body_size =
            option_bytes(plan.options(), "max_body_size")?.unwrap_or(DEFAULT_MAX_BODY_SIZE);
        let defaults = HttpDefaults::from_plan(plan, &options);

        let requests = plan.tasks().compile_each(|index, task: HttpTask| {
            HttpRequestPlan::compile(index, &task, &defaults)
        })?;

        let verified = options.tls_config(true, &ALPN)?;
        let insecure = options.tls_config(false, &ALPN)?;
        let tls = TlsConfigs::new(verified, insecure);
        // Build each kind of client once now, so a client that cannot be built is a
        // configuration error before the run rather than a failure per request.
        tls.check()
            .map_err(|e| PlanError::Config(format!("cannot build the HTTP client: {e}")))?;

        Ok(HttpUserFactory {
            shared: Arc::new(GroupShared {
                requests,
                tls,
                max_body_size,
            }),
        })
    }
}

#[async_trait]
impl Protocol for HttpProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        Ok(Arc::new(self.prepare_group(plan).await?))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
    }

    fn binds_source_address(&self) -> bool {
        true
    }
}
