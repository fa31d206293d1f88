//! A `grpc_user` task: its keys as written ([`GrpcTask`]), checked in two steps (what needs no
//! descriptors, then the method and payloads), and the compiled form every user shares.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use load_density_core::checks::TaskChecks;
use load_density_core::task::options::task_seconds;
use load_density_core::template::Template;
use load_density_core::variables::UserVariables;
use load_density_core::{JsonTemplate, PlanError, RequestMeta};
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor};
use serde::Deserialize;
use serde_json::Value;
use tonic::metadata::{
    AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, BinaryMetadataValue, MetadataMap,
};

use crate::channel::Target;
use crate::descriptors::{find_method, find_service};
use crate::payload::Payload;

/// The request type of call events.
pub(crate) const REQUEST_TYPE: &str = "GRPC";
/// The request type of per-message events (`each_message_event`).
pub(crate) const MESSAGE_REQUEST_TYPE: &str = "GRPC_MSG";

/// The most messages `count` may ask for in one call.
const MAX_COUNT: u64 = 100_000;

// A `grpc-timeout` header carries at most 8 digits of hours; core's cap on timeouts stays below
// that, so every accepted timeout can be sent (tonic panics on larger ones).
const _: () = assert!(load_density_core::task::options::MAX_SECONDS <= 99_999_999.0 * 3600.0);

/// The keys of one task, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrpcTask {
    #[serde(default, alias = "host")]
    target: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    call: Option<String>,
    #[serde(default)]
    payload: Option<JsonTemplate>,
    #[serde(default)]
    messages: Option<Vec<JsonTemplate>>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_whole"
    )]
    count: Option<u64>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_seconds"
    )]
    timeout: Option<f64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    each_message_event: Option<bool>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    verify: Option<bool>,
    #[serde(default)]
    compression: Option<String>,
}

/// Group-level defaults for the task keys.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub(crate) target: String,
    pub(crate) timeout: Duration,
    pub(crate) verify: bool,
    pub(crate) gzip: bool,
}

/// The four call shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl CallKind {
    fn of(method: &MethodDescriptor) -> Self {
        match (method.is_client_streaming(), method.is_server_streaming()) {
            (false, false) => Self::Unary,
            (false, true) => Self::ServerStreaming,
            (true, false) => Self::ClientStreaming,
            (true, true) => Self::Bidi,
        }
    }

    /// Whether the client sends a stream.
    pub(crate) fn streams_request(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::Bidi)
    }

    /// Whether the server answers with a stream.
    pub(crate) fn streams_response(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::Bidi)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Unary => "a unary",
            Self::ServerStreaming => "a server-streaming",
            Self::ClientStreaming => "a client-streaming",
            Self::Bidi => "a bidirectional-streaming",
        }
    }
}

/// A metadata key: ASCII, or binary for keys ending in `-bin`.
#[derive(Debug, Clone)]
enum MetaKey {
    Ascii(AsciiMetadataKey),
    Binary(BinaryMetadataKey),
}

/// The metadata of a task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metadata {
    entries: Vec<(MetaKey, Template)>,
    /// The whole map, when no value has placeholders.
    constant: Option<MetadataMap>,
}

impl Metadata {
    /// The metadata of one call.
    pub(crate) fn render(&self, vars: &UserVariables) -> Result<MetadataMap, String> {
        if let Some(map) = &self.constant {
            return Ok(map.clone());
        }
        let mut map = MetadataMap::with_capacity(self.entries.len());
        for (key, value) in &self.entries {
            insert(&mut map, key, &value.render(vars))?;
        }
        Ok(map)
    }
}

fn insert(map: &mut MetadataMap, key: &MetaKey, value: &str) -> Result<(), String> {
    match key {
        MetaKey::Ascii(key) => {
            let value = AsciiMetadataValue::try_from(value).map_err(|_| key.as_str().to_owned())?;
            map.append(key.clone(), value);
        }
        MetaKey::Binary(key) => {
            map.append_bin(
                key.clone(),
                BinaryMetadataValue::from_bytes(value.as_bytes()),
            );
        }
    }
    Ok(())
}

/// A task after the checks that need no descriptors.
#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub(crate) index: usize,
    pub(crate) target: Target,
    pub(crate) verify: bool,
    /// The service name, and the key it came from (`service` or `call`).
    pub(crate) service: (String, &'static str),
    /// The method name, and the key it came from (`method` or `call`).
    method: (String, &'static str),
    payload: Option<JsonTemplate>,
    messages: Option<Vec<JsonTemplate>>,
    count: Option<u64>,
    metadata: Metadata,
    timeout: Duration,
    name: Option<String>,
    each_message_event: bool,
    gzip: bool,
}

fn task_error(index: usize, key: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError::task(index, key, message)
}

/// Reads `"gzip"` / `"identity"` (or `"none"`): whether to compress requests.
pub(crate) fn parse_compression(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "gzip" => Ok(true),
        "identity" | "none" | "" => Ok(false),
        other => Err(format!(
            "unsupported compression {other:?} (expected \"gzip\" or \"identity\")"
        )),
    }
}

impl TaskSpec {
    /// Checks what needs no descriptors: target, call name, timeout, metadata, compression.
    pub(crate) fn new(
        index: usize,
        task: GrpcTask,
        defaults: &Defaults,
    ) -> Result<Self, PlanError> {
        let (target_key, target_text) = match &task.target {
            Some(target) => ("target", target.as_str()),
            None => ("", defaults.target.as_str()),
        };
        let target = Target::parse(target_text).map_err(|message| {
            if target_key.is_empty() {
                PlanError::Config(format!("target: {message}"))
            } else {
                task_error(index, target_key, message)
            }
        })?;
        let (service, method) = match (&task.call, &task.service, &task.method) {
            (Some(call), None, None) => {
                let trimmed = call.trim().trim_start_matches('/');
                match trimmed.rsplit_once('/') {
                    Some((service, method)) if !service.is_empty() && !method.is_empty() && !service.contains('/') => (
                        (service.to_owned(), "call"),
                        (method.to_owned(), "call"),
                    ),
                    _ => {
                        return Err(task_error(
                            index,
                            "call",
                            format!("expected \"package.Service/Method\", got {call:?}"),
                        ))
                    }
                }
            }
            (Some(_), _, _) => {
                let key = if task.service.is_some() { "service" } else { "method" };
                return Err(task_error(
                    index,
                    key,
                    format!("give either \"call\" or \"service\" and \"method\", not both (\"{key}\" beside \"call\")"),
                ));
            }
            (None, Some(service), Some(method)) if !service.trim().is_empty() && !method.trim().is_empty() => {
                ((service.trim().to_owned(), "service"), (method.trim().to_owned(), "method"))
            }
            (None, Some(_), None) => {
                return Err(task_error(index, "method", "\"service\" needs \"method\""))
            }
            (None, None, Some(_)) => {
                return Err(task_error(index, "service", "\"method\" needs \"service\""))
            }
            (None, Some(service), Some(_)) => {
                let key = if service.trim().is_empty() { "service" } else { "method" };
                return Err(task_error(index, key, format!("\"{key}\" must not be empty")));
            }
            (None, None, None) => {
                return Err(task_error(
                    index,
                    "",
                    "a grpc task needs \"call\" (\"package.Service/Method\") or \"service\" and \"method\"",
                ))
            }
        };
        let timeout = match task.timeout {
            None => defaults.timeout,
            Some(secs) => task_seconds(index, "timeout", secs)?,
        };
        let metadata = match &task.metadata {
            None => Metadata::default(),
            Some(value) => compile_metadata(index, value)?,
        };
        let gzip = match &task.compression {
            None => defaults.gzip,
            Some(text) => {
                parse_compression(text).map_err(|m| task_error(index, "compression", m))?
            }
        };
        if task.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(task_error(index, "name", "\"name\" must not be empty"));
        }
        Ok(Self {
            index,
            verify: task.verify.unwrap_or(defaults.verify),
            target,
            service,
            method,
            payload: task.payload,
            messages: task.messages,
            count: task.count,
            metadata,
            timeout,
            name: task.name,
            each_message_event: task.each_message_event.unwrap_or(false),
            gzip,
        })
    }

    /// Resolves the method in `pool` and compiles the payloads.
    pub(crate) fn compile(
        self,
        pool: &DescriptorPool,
        listed: Option<&[String]>,
        endpoint: usize,
        url_origin: &str,
        checks: Option<Arc<TaskChecks>>,
    ) -> Result<CompiledTask, PlanError> {
        let index = self.index;
        let service = find_service(pool, &self.service.0).map_err(|message| {
            let message = match listed {
                Some(listed) => format!(
                    "unknown service {:?}: the server's reflection lists {}",
                    self.service.0,
                    if listed.is_empty() {
                        "no services".to_owned()
                    } else {
                        listed.join(", ")
                    }
                ),
                None => message,
            };
            task_error(index, self.service.1, message)
        })?;
        let method = find_method(&service, &self.method.0)
            .map_err(|m| task_error(index, self.method.1, m))?;
        let kind = CallKind::of(&method);
        let input = method.input();
        let output = method.output();

        let payload_error = |key: String, error: crate::payload::PayloadError| {
            let path = if error.path.is_empty() || error.path == "." {
                key
            } else {
                format!("{key}.{}", error.path)
            };
            task_error(index, path, error.message)
        };
        let (payloads, repeat) = if kind.streams_request() {
            match (self.messages, self.payload) {
                (Some(_), Some(_)) => {
                    return Err(task_error(
                        index,
                        "messages",
                        "give either \"messages\" (a list of payloads) or \"payload\" (with \"count\"), not both",
                    ))
                }
                (Some(_), None) if self.count.is_some() => {
                    return Err(task_error(index, "count", "\"count\" repeats \"payload\"; it does not apply to \"messages\""))
                }
                (Some(messages), None) => {
                    let payloads = messages
                        .into_iter()
                        .enumerate()
                        .map(|(position, template)| {
                            Payload::compile(template, &input)
                                .map_err(|e| payload_error(format!("messages[{position}]"), e))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    (payloads, 1)
                }
                (None, _) if self.count.is_some_and(|count| count > MAX_COUNT) => {
                    return Err(task_error(
                        index,
                        "count",
                        format!("count must be at most {MAX_COUNT} (messages are rendered before the call)"),
                    ))
                }
                (None, payload) => {
                    let template = payload.unwrap_or_else(|| JsonTemplate::new(Value::Object(Default::default())));
                    let payload = Payload::compile(template, &input)
                        .map_err(|e| payload_error("payload".to_owned(), e))?;
                    (vec![payload], self.count.unwrap_or(1))
                }
            }
        } else {
            if self.messages.is_some() {
                return Err(task_error(
                    index,
                    "messages",
                    format!(
                        "{} is {} call: it sends one message; use \"payload\"",
                        method.full_name(),
                        kind.describe()
                    ),
                ));
            }
            if self.count.is_some() {
                return Err(task_error(
                    index,
                    "count",
                    format!(
                        "{} is {} call: it sends one message",
                        method.full_name(),
                        kind.describe()
                    ),
                ));
            }
            let template = self
                .payload
                .unwrap_or_else(|| JsonTemplate::new(Value::Object(Default::default())));
            let payload = Payload::compile(template, &input)
                .map_err(|e| payload_error("payload".to_owned(), e))?;
            (vec![payload], 1)
        };
        if self.each_message_event && !kind.streams_response() {
            return Err(task_error(
                index,
                "each_message_event",
                format!(
                    "{} is {} call: it receives one message, so \"each_message_event\" has no effect",
                    method.full_name(),
                    kind.describe()
                ),
            ));
        }

        let full_path = format!("/{}/{}", service.full_name(), method.name());
        let path: PathAndQuery = full_path.parse().map_err(|e| {
            task_error(
                index,
                self.method.1,
                format!("invalid method path {full_path:?}: {e}"),
            )
        })?;
        let name: Arc<str> = Arc::from(self.name.unwrap_or_else(|| full_path.clone()));
        let url: Arc<str> = Arc::from(format!("{url_origin}{full_path}"));
        let meta = RequestMeta::new(REQUEST_TYPE, name.clone(), url.clone());
        let message_meta = self
            .each_message_event
            .then(|| RequestMeta::new(MESSAGE_REQUEST_TYPE, name, url));
        Ok(CompiledTask {
            endpoint,
            path,
            kind,
            meta,
            message_meta,
            input,
            output,
            payloads,
            repeat,
            metadata: self.metadata,
            timeout: self.timeout,
            gzip: self.gzip,
            checks: if self.each_message_event {
                checks
            } else {
                None
            },
        })
    }
}

fn compile_metadata(index: usize, value: &Value) -> Result<Metadata, PlanError> {
    let pairs: Vec<(String, String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| (key.clone(), format!("metadata.{key}"), value))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(
                |(position, item)| match item.as_array().map(Vec::as_slice) {
                    Some([Value::String(key), value]) => {
                        Ok((key.clone(), format!("metadata[{position}]"), value))
                    }
                    _ => Err(task_error(
                        index,
                        format!("metadata[{position}]"),
                        format!("expected a [name, value] pair, got {item}"),
                    )),
                },
            )
            .collect::<Result<_, _>>()?,
        other => {
            return Err(task_error(
                index,
                "metadata",
                format!(
                    "metadata must be an object (or a list of [name, value] pairs), got {other}"
                ),
            ))
        }
    };
    let mut entries = Vec::with_capacity(pairs.len());
    for (key, path, value) in pairs {
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("grpc-")
            || lower.starts_with(':')
            || ["content-type", "te", "user-agent"].contains(&lower.as_str())
        {
            let hint = if lower == "grpc-timeout" {
                " (use \"timeout\")"
            } else if lower == "grpc-encoding" {
                " (use \"compression\")"
            } else {
                ""
            };
            return Err(task_error(
                index,
                path,
                format!("{key:?} is reserved by the gRPC protocol{hint}"),
            ));
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(n) => n.to_string(),
            // As Python's str(): True, False.
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            other => {
                return Err(task_error(
                    index,
                    path,
                    format!("a metadata value must be a string, number or boolean, got {other}"),
                ))
            }
        };
        let meta_key = if lower.ends_with("-bin") {
            BinaryMetadataKey::from_bytes(lower.as_bytes())
                .map(MetaKey::Binary)
                .ok()
        } else {
            AsciiMetadataKey::from_bytes(lower.as_bytes())
                .map(MetaKey::Ascii)
                .ok()
        }
        .ok_or_else(|| {
            task_error(
                index,
                path.clone(),
                format!("invalid metadata name {key:?}"),
            )
        })?;
        let template = Template::parse(&text);
        if let Some(constant) = template.as_constant() {
            let mut probe = MetadataMap::new();
            insert(&mut probe, &meta_key, constant).map_err(|_| {
                task_error(
                    index,
                    path.clone(),
                    format!("invalid metadata value {constant:?}"),
                )
            })?;
        }
        entries.push((meta_key, template));
    }
    let constant = if entries.iter().all(|(_, t)| t.as_constant().is_some()) {
        let mut map = MetadataMap::with_capacity(entries.len());
        for (key, value) in &entries {
            // Checked above.
            let _ = insert(&mut map, key, value.as_constant().unwrap_or_default());
        }
        Some(map)
    } else {
        None
    };
    Ok(Metadata { entries, constant })
}

/// A task ready to run: shared by every user of the group.
#[derive(Debug)]
pub(crate) struct CompiledTask {
    /// Index of the endpoint (target + TLS setting) the calls go to.
    pub(crate) endpoint: usize,
    pub(crate) path: PathAndQuery,
    pub(crate) kind: CallKind,
    pub(crate) meta: RequestMeta,
    /// Set when each received message is recorded as its own event.
    pub(crate) message_meta: Option<RequestMeta>,
    pub(crate) input: MessageDescriptor,
    pub(crate) output: MessageDescriptor,
    /// The request messages, sent in order, `repeat` times over.
    pub(crate) payloads: Vec<Payload>,
    pub(crate) repeat: u64,
    pub(crate) metadata: Metadata,
    pub(crate) timeout: Duration,
    pub(crate) gzip: bool,
    /// The task's own checks, when per-message events must be recorded without them.
    pub(crate) checks: Option<Arc<TaskChecks>>,
}

impl CompiledTask {
    /// The request messages of one call.
    pub(crate) fn render_messages(
        &self,
        vars: &UserVariables,
    ) -> Result<Vec<bytes::Bytes>, String> {
        let total = usize::try_from(self.repeat)
            .unwrap_or(usize::MAX)
            .saturating_mul(self.payloads.len());
        let mut out = Vec::with_capacity(total.min(1 << 16));
        for _ in 0..self.repeat {
            for payload in &self.payloads {
                out.push(
                    payload
                        .encode(&self.input, vars)
                        .map_err(|e| e.describe())?,
                );
            }
        }
        Ok(out)
    }
}
