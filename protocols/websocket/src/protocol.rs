//! Preparing a group: options, task compilation, the shared TLS configurations.

use std::sync::Arc;

use load_density_core::task::options::{option_bytes, with_common_options};
use load_density_core::task::url::parse_host;
use load_density_core::{
    async_trait, GroupOptions, GroupPlan, GroupTls, PlanError, Protocol, Unboxed, UserFactory,
    UserTemplate,
};
use url::Url;

use crate::task::{resolve_ws_url, CompiledTask, Defaults, WsTask};
use crate::user::WebSocketUser;
use crate::{DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT};

/// The group options this protocol reads: the common ones and `max_message_size`.
const OPTION_NAMES: &[&str] = &with_common_options::<4>(&["max_message_size"]);

/// The `websocket_user` protocol: validates a group's WebSocket tasks and makes
/// [`websocket_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSocketProtocol;

/// What every user of a group shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tasks: Vec<CompiledTask>,
    pub(crate) base: Option<Url>,
    pub(crate) tls: GroupTls,
    /// The group's `max_message_size`: the largest message (and frame) a user accepts.
    pub(crate) max_message_size: usize,
}

struct WebSocketFactory {
    shared: Arc<Shared>,
}

impl UserFactory for WebSocketFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        // Unboxed: no boxed future per message (see `StaticUser`).
        Box::new(Unboxed::new(WebSocketUser::new(self.shared.clone())))
    }
}

#[async_trait]
impl Protocol for WebSocketProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = GroupOptions::from_plan(plan)?;
        let max_message_size = option_bytes(plan.options(), "max_message_size")?
            .map_or(DEFAULT_MAX_MESSAGE_SIZE, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
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
            timeout: options.timeout().unwrap_or(DEFAULT_TIMEOUT),
            verify: options.verify().unwrap_or(true),
        };
        let compiled = plan
            .tasks()
            .compile_each(|index, task: WsTask| CompiledTask::compile(index, task, &defaults))?;

        // HTTP/1.1 is what a WebSocket handshake speaks: offer it, so an HTTP/2-capable server
        // does not pick h2. Same settings as fast_http_user, so the configuration is shared.
        let tls = options.group_tls(compiled.iter().map(|t| t.verify), &[b"http/1.1"])?;
        Ok(Arc::new(WebSocketFactory {
            shared: Arc::new(Shared {
                tasks: compiled,
                base,
                tls,
                max_message_size,
            }),
        }))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
    }

    fn binds_source_address(&self) -> bool {
        true
    }
}
