//! Preparing a group: options and task compilation. Every key is checked here, before the
//! run; what has no placeholder is parsed or decoded once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::options::{option_seconds, task_seconds};
use load_density_core::template::Template;
use load_density_core::variables::UserVariables;
use load_density_core::{
    async_trait, GroupPlan, PlanError, Protocol, RequestMeta, Unboxed, UserFactory, UserTemplate,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{escaped, SocketError};
use crate::payload::{decode, Payload};
use crate::target::{Target, Transport};
use crate::user::SocketUser;
use crate::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TARGET, DEFAULT_TIMEOUT, MAX_REPLY_BYTES};

/// The `socket_user` protocol: validates a group's socket tasks and makes
/// [`socket_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketProtocol;

/// One task as written. Null values are removed by core before this sees them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketTask {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    target: Option<Template>,
    #[serde(default)]
    host: Option<Template>,
    #[serde(default)]
    payload: Option<Payload>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_whole"
    )]
    expect_bytes: Option<u64>,
    #[serde(default)]
    read_until: Option<Template>,
    #[serde(default)]
    expect_substring: Option<Template>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_seconds"
    )]
    connect_timeout: Option<f64>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_seconds"
    )]
    timeout: Option<f64>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    keep_alive: Option<bool>,
    #[serde(default)]
    name: Option<Template>,
}

/// The group options this protocol reads.
#[derive(Debug, Clone, Copy)]
struct Options {
    connect_timeout: Duration,
    timeout: Duration,
}

impl Options {
    fn from_map(options: &Map<String, Value>) -> Result<Self, PlanError> {
        let read = |key: &str, default: Duration| {
            option_seconds(options, key).map(|secs| secs.unwrap_or(default))
        };
        Ok(Self {
            connect_timeout: read("connect_timeout", DEFAULT_CONNECT_TIMEOUT)?,
            timeout: read("timeout", DEFAULT_TIMEOUT)?,
        })
    }
}

/// A target known at prepare time, or a template rendered per request.
#[derive(Debug)]
enum TargetSpec {
    Fixed(Target),
    Dynamic(Template),
}

/// A payload decoded at prepare time, or a template rendered and decoded per request.
#[derive(Debug)]
enum PayloadSpec {
    Fixed(Box<[u8]>),
    Dynamic(Payload),
}

/// When a TCP read is complete.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule<'a> {
    /// Exactly this many bytes.
    Bytes(usize),
    /// Up to and including the first occurrence of these bytes.
    Until(&'a [u8]),
}

/// A task's reply expectations, rendered for one request.
#[derive(Debug)]
pub(crate) struct Expect<'a> {
    pub(crate) expect_bytes: Option<usize>,
    pub(crate) read_until: Option<Cow<'a, str>>,
    pub(crate) substring: Option<Cow<'a, str>>,
}

impl Expect<'_> {
    /// How a TCP reply is framed; `None` when no reply is read.
    pub(crate) fn rule(&self) -> Option<Rule<'_>> {
        if let Some(n) = self.expect_bytes {
            Some(Rule::Bytes(n))
        } else if let Some(delimiter) = &self.read_until {
            Some(Rule::Until(delimiter.as_bytes()))
        } else {
            self.substring.as_ref().map(|s| Rule::Until(s.as_bytes()))
        }
    }

    /// Whether a reply is awaited at all.
    pub(crate) fn wants_reply(&self) -> bool {
        self.rule().is_some()
    }

    /// Why a received reply fails the task's expectations, if it does. A UDP datagram is
    /// also checked against `expect_bytes` and `read_until` (a TCP reply meets them by the
    /// way it was read).
    pub(crate) fn check(&self, transport: Transport, reply: &[u8]) -> Option<String> {
        if transport == Transport::Udp {
            if let Some(n) = self.expect_bytes {
                if reply.len() < n {
                    return Some(format!(
                        "expected {n} bytes, got a datagram of {} bytes",
                        reply.len()
                    ));
                }
            }
            if let Some(delimiter) = &self.read_until {
                if !contains(reply, delimiter.as_bytes()) {
                    return Some(format!(
                        "expected '{}' in the reply datagram, got '{}'",
                        escaped(delimiter.as_bytes()),
                        crate::error::excerpt(reply, EXCERPT_CHARS)
                    ));
                }
            }
        }
        let substring = self.substring.as_ref()?;
        if contains(reply, substring.as_bytes()) {
            return None;
        }
        Some(format!(
            "expected '{}' in reply, got '{}'",
            escaped(substring.as_bytes()),
            crate::error::excerpt(reply, EXCERPT_CHARS)
        ))
    }
}

/// How much of a reply a failure message shows.
const EXCERPT_CHARS: usize = 64;

/// Whether `needle` occurs in `haystack` (an empty needle always does).
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// One task, ready to run.
#[derive(Debug)]
pub(crate) struct CompiledTask {
    pub(crate) transport: Transport,
    target: TargetSpec,
    payload: PayloadSpec,
    expect_bytes: Option<usize>,
    read_until: Option<Template>,
    expect_substring: Option<Template>,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) keep_alive: bool,
    name: Option<Template>,
    /// Set when neither the target nor the name has placeholders.
    fixed_meta: Option<RequestMeta>,
    /// What a failure to render the target is recorded under: the templates as written.
    pub(crate) fallback_meta: RequestMeta,
}

fn meta(transport: Transport, name: &str, target: &str) -> RequestMeta {
    RequestMeta::new(
        transport.upper(),
        name,
        format!("{}://{target}", transport.lower()),
    )
}

fn default_name(transport: Transport, target: &str) -> String {
    format!("{}:{target}", transport.lower())
}

/// A constant template's text must not be empty.
fn not_empty(index: usize, key: &str, template: &Option<Template>) -> Result<(), PlanError> {
    match template.as_ref().and_then(Template::as_constant) {
        Some("") => Err(PlanError::task(
            index,
            key,
            format!("{key} must not be empty"),
        )),
        _ => Ok(()),
    }
}

impl CompiledTask {
    fn compile(
        index: usize,
        task: SocketTask,
        options: Options,
        group_host: Option<&str>,
    ) -> Result<Self, PlanError> {
        let err = |key: &str, message: String| PlanError::task(index, key, message);
        let transport = match &task.protocol {
            None => Transport::Tcp,
            Some(name) => Transport::parse(name).ok_or_else(|| {
                err(
                    "protocol",
                    format!("unsupported protocol {name:?} (expected tcp or udp)"),
                )
            })?,
        };
        let (target_key, target_template, from_group) = match (task.target, task.host) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "host",
                    "give target or host, not both (they mean the same)".to_owned(),
                ))
            }
            (Some(t), None) => ("target", t, None),
            (None, Some(h)) => ("host", h, None),
            (None, None) => {
                let host = group_host.unwrap_or(DEFAULT_TARGET);
                ("target", Template::parse(host), group_host)
            }
        };
        let target = match target_template.as_constant() {
            Some(text) => {
                TargetSpec::Fixed(Target::parse(text, transport).map_err(
                    |reason| match from_group {
                        Some(host) => err(
                            target_key,
                            format!(
                                "no target given, and the group's host {host:?} is not \
                             host:port: {reason}"
                            ),
                        ),
                        None => err(target_key, format!("invalid target {text:?}: {reason}")),
                    },
                )?)
            }
            None => TargetSpec::Dynamic(target_template.clone()),
        };
        let payload = match task.payload {
            None => PayloadSpec::Fixed(Box::default()),
            Some(payload) => match payload.template.as_constant() {
                Some(text) => PayloadSpec::Fixed(
                    decode(payload.encoding, text)
                        .map_err(|e| err("payload", e))?
                        .into_boxed_slice(),
                ),
                None => PayloadSpec::Dynamic(payload),
            },
        };
        let expect_bytes = match task.expect_bytes {
            // 0 means "read nothing", as in the Python version.
            None | Some(0) => None,
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= MAX_REPLY_BYTES => Some(n),
                _ => {
                    return Err(err(
                        "expect_bytes",
                        format!("expect_bytes must be at most {MAX_REPLY_BYTES}, got {n}"),
                    ))
                }
            },
        };
        if expect_bytes.is_some() && task.read_until.is_some() {
            return Err(err(
                "read_until",
                "give expect_bytes or read_until, not both".to_owned(),
            ));
        }
        not_empty(index, "read_until", &task.read_until)?;
        not_empty(index, "expect_substring", &task.expect_substring)?;
        not_empty(index, "name", &task.name)?;
        let connect_timeout = match task.connect_timeout {
            None => options.connect_timeout,
            Some(_) if transport == Transport::Udp => {
                return Err(err(
                    "connect_timeout",
                    "connect_timeout applies to tcp only (UDP has no handshake)".to_owned(),
                ))
            }
            Some(secs) => task_seconds(index, "connect_timeout", secs)?,
        };
        let timeout = match task.timeout {
            None => options.timeout,
            Some(secs) => task_seconds(index, "timeout", secs)?,
        };
        let keep_alive = match task.keep_alive {
            None => true,
            Some(_) if transport == Transport::Udp => {
                return Err(err(
                    "keep_alive",
                    "keep_alive applies to tcp only (a user keeps one UDP socket per target)"
                        .to_owned(),
                ))
            }
            Some(keep) => keep,
        };
        let fixed_meta = match (&target, task.name.as_ref().map(Template::as_constant)) {
            (TargetSpec::Fixed(target), None) => Some(meta(
                transport,
                &default_name(transport, target.text()),
                target.text(),
            )),
            (TargetSpec::Fixed(target), Some(Some(name))) => {
                Some(meta(transport, name, target.text()))
            }
            _ => None,
        };
        let target_source = target_template.source();
        let fallback_meta = meta(
            transport,
            &task.name.as_ref().map_or_else(
                || default_name(transport, target_source),
                |n| n.source().to_owned(),
            ),
            target_source,
        );
        Ok(Self {
            transport,
            target,
            payload,
            expect_bytes,
            read_until: task.read_until,
            expect_substring: task.expect_substring,
            connect_timeout,
            timeout,
            keep_alive,
            name: task.name,
            fixed_meta,
            fallback_meta,
        })
    }

    /// The target of this request.
    pub(crate) fn target(&self, vars: &UserVariables) -> Result<Cow<'_, Target>, SocketError> {
        match &self.target {
            TargetSpec::Fixed(target) => Ok(Cow::Borrowed(target)),
            TargetSpec::Dynamic(template) => {
                let text = template.render(vars);
                Target::parse(&text, self.transport)
                    .map(Cow::Owned)
                    .map_err(|reason| SocketError::InvalidTarget {
                        target: text.into_owned(),
                        reason,
                    })
            }
        }
    }

    /// What this request is recorded under; `Err` carries the metadata to record the error
    /// under.
    pub(crate) fn meta(
        &self,
        target: &Target,
        vars: &UserVariables,
    ) -> Result<Cow<'_, RequestMeta>, (RequestMeta, SocketError)> {
        if let Some(fixed) = &self.fixed_meta {
            return Ok(Cow::Borrowed(fixed));
        }
        let default = || default_name(self.transport, target.text());
        match &self.name {
            None => Ok(Cow::Owned(meta(self.transport, &default(), target.text()))),
            Some(template) => {
                let name = template.render(vars);
                if name.is_empty() {
                    let meta = meta(self.transport, &default(), target.text());
                    return Err((meta, SocketError::EmptyKey { key: "name" }));
                }
                Ok(Cow::Owned(meta(self.transport, &name, target.text())))
            }
        }
    }

    /// The bytes this request sends.
    pub(crate) fn payload(&self, vars: &UserVariables) -> Result<Cow<'_, [u8]>, SocketError> {
        match &self.payload {
            PayloadSpec::Fixed(bytes) => Ok(Cow::Borrowed(bytes)),
            PayloadSpec::Dynamic(payload) => {
                decode(payload.encoding, &payload.template.render(vars))
                    .map(Cow::Owned)
                    .map_err(SocketError::InvalidPayload)
            }
        }
    }

    /// The reply expectations of this request.
    pub(crate) fn expect(&self, vars: &UserVariables) -> Result<Expect<'_>, SocketError> {
        Ok(Expect {
            expect_bytes: self.expect_bytes,
            read_until: render_not_empty(self.read_until.as_ref(), "read_until", vars)?,
            substring: render_not_empty(self.expect_substring.as_ref(), "expect_substring", vars)?,
        })
    }
}

/// Renders an optional template that must not render empty.
fn render_not_empty<'a>(
    template: Option<&'a Template>,
    key: &'static str,
    vars: &UserVariables,
) -> Result<Option<Cow<'a, str>>, SocketError> {
    match template {
        None => Ok(None),
        Some(template) => {
            let text = template.render(vars);
            if text.is_empty() {
                Err(SocketError::EmptyKey { key })
            } else {
                Ok(Some(text))
            }
        }
    }
}

#[async_trait]
impl Protocol for SocketProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = Options::from_map(plan.options())?;
        for task in plan.tasks().tasks() {
            if task.keys().contains_key("method") {
                return Err(PlanError::task(
                    task.index(),
                    "method",
                    "socket_user tasks have no method: give a list of task objects with \
                     protocol, target, payload, ...",
                ));
            }
        }
        let tasks = plan.tasks().compile_each(|index, task: SocketTask| {
            CompiledTask::compile(index, task, options, plan.host())
        })?;
        Ok(Arc::new(SocketFactory {
            tasks: tasks.into(),
        }))
    }

    fn option_names(&self) -> &'static [&'static str] {
        &["connect_timeout", "timeout"]
    }

    fn binds_source_address(&self) -> bool {
        true
    }
}

/// Makes `socket_user` users sharing one group's compiled tasks.
struct SocketFactory {
    tasks: Arc<[CompiledTask]>,
}

impl UserFactory for SocketFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        // Unboxed: no boxed future per request (see `StaticUser`).
        Box::new(Unboxed::new(SocketUser::new(self.tasks.clone())))
    }
}
