//! The task JSON of `websocket_user` and its compiled form.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use load_density_core::task::http::TemplatePairs;
use load_density_core::task::options::task_seconds;
use load_density_core::task::url::{path_and_query, resolve_url, url_name, UrlName};
use load_density_core::template::JsonTemplate;
use load_density_core::variables::UserVariables;
use load_density_core::{PlanError, Template};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use url::Url;

use crate::error::WsError;

/// Handshake headers a task may not set: tungstenite writes them itself.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
];

/// How many characters of a frame a failed `expect` quotes.
const QUOTE_CHARS: usize = 100;

/// One task as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WsTask {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    request_url: Option<Template>,
    #[serde(default)]
    url: Option<Template>,
    #[serde(default)]
    name: Option<Template>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_seconds"
    )]
    timeout: Option<f64>,
    #[serde(default)]
    payload: Option<PayloadSpec>,
    #[serde(default)]
    expect: Option<ExpectSpec>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    skip_non_matching: Option<bool>,
    #[serde(default)]
    headers: Option<TemplatePairs>,
    #[serde(default)]
    subprotocols: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    verify: Option<bool>,
}

/// `payload` as written: text (maybe `hex:` / `b64:` / `text:`), or any other JSON value, sent
/// as JSON text.
#[derive(Debug)]
enum PayloadSpec {
    Text(Template),
    Json(JsonTemplate),
}

impl<'de> Deserialize<'de> for PayloadSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(s) => PayloadSpec::Text(Template::parse(&s)),
            other => PayloadSpec::Json(JsonTemplate::new(other)),
        })
    }
}

/// `expect` as written: a substring, or `{"regex": "..."}`.
#[derive(Debug)]
enum ExpectSpec {
    Substring(Template),
    Regex(String),
}

impl<'de> Deserialize<'de> for ExpectSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(ExpectSpec::Substring(Template::parse(&s))),
            Value::Object(map) if map.len() == 1 => match map.get("regex") {
                Some(Value::String(re)) => Ok(ExpectSpec::Regex(re.clone())),
                _ => Err(D::Error::custom(
                    "expected a substring or {\"regex\": \"...\"} (the regex must be a string)",
                )),
            },
            other => Err(D::Error::custom(format!(
                "expected a substring or {{\"regex\": \"...\"}}, got {other}"
            ))),
        }
    }
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Connect,
    Send,
    Recv,
    SendRecv,
    Close,
}

impl Method {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "connect" => Some(Self::Connect),
            "send" => Some(Self::Send),
            "recv" => Some(Self::Recv),
            "sendrecv" => Some(Self::SendRecv),
            "close" => Some(Self::Close),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Send => "send",
            Self::Recv => "recv",
            Self::SendRecv => "sendrecv",
            Self::Close => "close",
        }
    }

    /// Whether the task writes a frame.
    pub(crate) fn sends(self) -> bool {
        matches!(self, Self::Send | Self::SendRecv)
    }

    /// Whether the task waits for a frame.
    pub(crate) fn receives(self) -> bool {
        matches!(self, Self::Recv | Self::SendRecv)
    }
}

/// A text value: constant (shared) or rendered per request.
#[derive(Debug, Clone)]
enum Part {
    Constant(Arc<str>),
    Dynamic(Template),
}

impl Part {
    fn new(template: &Template) -> Self {
        match template.as_constant() {
            Some(c) => Part::Constant(Arc::from(c)),
            None => Part::Dynamic(template.clone()),
        }
    }

    fn render(&self, vars: &UserVariables) -> Arc<str> {
        match self {
            Part::Constant(c) => c.clone(),
            Part::Dynamic(t) => Arc::from(t.render(vars)),
        }
    }
}

/// The task's URL.
#[derive(Debug, Clone)]
enum UrlPart {
    /// No URL: use the connection's.
    None,
    /// Constant: resolved at prepare. `written` is the text as written (the default name).
    Constant {
        resolved: Arc<str>,
        written: Arc<str>,
    },
    /// Rendered and resolved per request.
    Dynamic(Template),
}

/// The payload, ready to send.
#[derive(Debug, Clone)]
enum Payload {
    Constant(Message, u64),
    Text(Template),
    Json(JsonTemplate),
}

/// `expect`, compiled.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    Substring(Template),
    Regex(regex::Regex),
}

impl Expect {
    /// `None` when `frame` matches; otherwise the failure reason.
    pub(crate) fn check(&self, frame: &[u8], vars: &UserVariables) -> Option<String> {
        let text = String::from_utf8_lossy(frame);
        match self {
            Expect::Substring(template) => {
                let needle = template.render(vars);
                (!text.contains(needle.as_ref()))
                    .then(|| format!("expected '{needle}' in frame, got '{}'", quote(&text)))
            }
            Expect::Regex(re) => (!re.is_match(&text)).then(|| {
                format!(
                    "expected a frame matching /{}/, got '{}'",
                    re.as_str(),
                    quote(&text)
                )
            }),
        }
    }
}

/// The first [`QUOTE_CHARS`] characters of `text`, with `...` when cut.
fn quote(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
    }
}

/// Group defaults a task inherits.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub(crate) base: Option<Url>,
    pub(crate) timeout: Duration,
    pub(crate) verify: bool,
}

/// One task, validated and ready to run.
#[derive(Debug)]
pub(crate) struct CompiledTask {
    pub(crate) method: Method,
    url: UrlPart,
    name: Option<Part>,
    pub(crate) timeout: Duration,
    payload: Payload,
    pub(crate) expect: Option<Expect>,
    pub(crate) skip_non_matching: bool,
    headers: Vec<(HeaderName, Part)>,
    subprotocols: Option<HeaderValue>,
    pub(crate) verify: bool,
}

/// Resolves a URL against the group's base and turns `http(s)` into `ws(s)`.
pub(crate) fn resolve_ws_url(base: Option<&Url>, text: &str) -> Result<Url, String> {
    let mut url = resolve_url(base, text)?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(format!(
                "unsupported scheme {other:?} in {text:?} (expected ws:// or wss://)"
            ))
        }
    };
    if url.scheme() != scheme && url.set_scheme(scheme).is_err() {
        return Err(format!("cannot use {text:?} as a {scheme}:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    Ok(url)
}

/// Decodes a payload text: `hex:` and `b64:` give binary frames, `text:` and anything else a
/// text frame.
fn decode_payload(text: &str) -> Result<(Message, u64), String> {
    if let Some(hex) = text.strip_prefix("hex:") {
        let bytes = decode_hex(hex)?;
        let len = bytes.len() as u64;
        Ok((Message::Binary(Bytes::from(bytes)), len))
    } else if let Some(b64) = text.strip_prefix("b64:") {
        let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = engine
            .decode(compact.as_bytes())
            .map_err(|e| format!("invalid base64 after \"b64:\": {e}"))?;
        let len = bytes.len() as u64;
        Ok((Message::Binary(Bytes::from(bytes)), len))
    } else {
        let text = text.strip_prefix("text:").unwrap_or(text);
        Ok((Message::text(text), text.len() as u64))
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "invalid hex after \"hex:\": odd number of digits ({})",
            digits.len()
        ));
    }
    let value = |d: u8| -> Result<u8, String> {
        char::from(d).to_digit(16).map(|v| v as u8).ok_or_else(|| {
            format!(
                "invalid hex after \"hex:\": {:?} is not a hex digit",
                char::from(d)
            )
        })
    };
    digits
        .chunks_exact(2)
        .map(|pair| Ok(value(pair[0])? << 4 | value(pair[1])?))
        .collect()
}

fn header_problem(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower == "sec-websocket-protocol" {
        return Some("set subprotocols with the \"subprotocols\" key".to_owned());
    }
    RESERVED_HEADERS
        .contains(&lower.as_str())
        .then(|| format!("{name:?} is part of the WebSocket handshake and cannot be set"))
}

impl CompiledTask {
    /// Validates task `index`.
    pub(crate) fn compile(
        index: usize,
        task: WsTask,
        defaults: &Defaults,
    ) -> Result<Self, PlanError> {
        let error = |path: &str, message: String| PlanError::task(index, path, message);
        let method = match &task.method {
            None => Method::Send,
            Some(name) => Method::parse(name).ok_or_else(|| {
                error(
                    "method",
                    format!(
                        "unknown websocket method {name:?} (expected connect, send, recv, sendrecv or close)"
                    ),
                )
            })?,
        };
        let not_for = |key: &str| {
            error(
                key,
                format!("\"{key}\" has no effect on a {} task", method.as_str()),
            )
        };
        if task.payload.is_some() && !method.sends() {
            return Err(not_for("payload"));
        }
        if task.expect.is_some() && !method.receives() {
            return Err(not_for("expect"));
        }
        if task.skip_non_matching.is_some() && !method.receives() {
            return Err(not_for("skip_non_matching"));
        }
        if task.skip_non_matching == Some(true) && task.expect.is_none() {
            return Err(error(
                "skip_non_matching",
                "\"skip_non_matching\" needs \"expect\" (which frames to wait for)".to_owned(),
            ));
        }
        let timeout = match task.timeout {
            None => defaults.timeout,
            Some(secs) => task_seconds(index, "timeout", secs)?,
        };
        let (url_key, url_template) = match (&task.request_url, &task.url) {
            (Some(t), _) => ("request_url", Some(t)),
            (None, Some(t)) => ("url", Some(t)),
            (None, None) => ("request_url", None),
        };
        let url = match url_template {
            None => UrlPart::None,
            Some(t) => match t.as_constant() {
                Some(text) => {
                    let resolved = resolve_ws_url(defaults.base.as_ref(), text)
                        .map_err(|e| error(url_key, e))?;
                    UrlPart::Constant {
                        resolved: Arc::from(resolved.as_str()),
                        written: Arc::from(text),
                    }
                }
                None => UrlPart::Dynamic(t.clone()),
            },
        };
        let payload = match task.payload {
            None => Payload::Constant(Message::text(""), 0),
            Some(PayloadSpec::Text(t)) => match t.as_constant() {
                Some(text) => {
                    let (message, len) = decode_payload(text).map_err(|e| error("payload", e))?;
                    Payload::Constant(message, len)
                }
                None => Payload::Text(t),
            },
            Some(PayloadSpec::Json(json)) if !json.is_dynamic() => {
                let text = json.source().to_string();
                let len = text.len() as u64;
                Payload::Constant(Message::text(text), len)
            }
            Some(PayloadSpec::Json(json)) => Payload::Json(json),
        };
        let expect = match task.expect {
            None => None,
            Some(ExpectSpec::Substring(t)) => Some(Expect::Substring(t)),
            Some(ExpectSpec::Regex(re)) => {
                Some(Expect::Regex(regex::Regex::new(&re).map_err(|e| {
                    error("expect.regex", format!("invalid regex: {e}"))
                })?))
            }
        };
        let mut headers = Vec::new();
        for (name, value) in task.headers.map(|h| h.0).unwrap_or_default() {
            let path = format!("headers.{name}");
            if let Some(problem) = header_problem(&name) {
                return Err(error(&path, problem));
            }
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error(&path, format!("invalid header name {name:?}")))?;
            if let Some(constant) = value.as_constant() {
                HeaderValue::from_str(constant).map_err(|_| {
                    error(
                        &path,
                        "control characters (CR, LF, ...) are not allowed in header values"
                            .to_owned(),
                    )
                })?;
            }
            headers.push((header, Part::new(&value)));
        }
        let subprotocols = match task.subprotocols {
            None => None,
            Some(list) if list.is_empty() => None,
            Some(list) => {
                for (i, protocol) in list.iter().enumerate() {
                    let valid = !protocol.is_empty()
                        && protocol
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b",;\"()<>@:/[]?={}\\".contains(&b));
                    if !valid {
                        return Err(error(
                            &format!("subprotocols[{i}]"),
                            format!("invalid subprotocol {protocol:?} (a token without spaces or separators)"),
                        ));
                    }
                }
                let joined = list.join(", ");
                Some(HeaderValue::from_str(&joined).map_err(|_| {
                    error("subprotocols", format!("invalid subprotocols {joined:?}"))
                })?)
            }
        };
        Ok(Self {
            method,
            url,
            // Without a `name`: core's rule, the path and query (see `url_name`).
            name: match (
                task.name.as_ref().filter(|n| !n.source().is_empty()),
                url_template,
            ) {
                (Some(name), _) => Some(Part::new(name)),
                (None, Some(url)) => match url_name(url, defaults.base.as_ref()) {
                    UrlName::Fixed(name) => Some(Part::Constant(Arc::from(name))),
                    UrlName::PathAndQuery => None,
                },
                (None, None) => None,
            },
            timeout,
            payload,
            expect,
            skip_non_matching: task.skip_non_matching.unwrap_or(false),
            headers,
            subprotocols,
            verify: task.verify.unwrap_or(defaults.verify),
        })
    }

    /// The task's resolved URL, if it names one.
    pub(crate) fn target(
        &self,
        base: Option<&Url>,
        vars: &UserVariables,
    ) -> Result<Option<Arc<str>>, WsError> {
        match &self.url {
            UrlPart::None => Ok(None),
            UrlPart::Constant { resolved, .. } => Ok(Some(resolved.clone())),
            UrlPart::Dynamic(t) => resolve_ws_url(base, &t.render(vars))
                .map(|url| Some(Arc::from(url.as_str())))
                .map_err(WsError::Url),
        }
    }

    /// The statistics name: the task's `name`, else its URL's path and query (its URL as
    /// written when the path or query holds placeholders), else the method.
    pub(crate) fn name(&self, base: Option<&Url>, vars: &UserVariables) -> Arc<str> {
        if let Some(name) = &self.name {
            return name.render(vars);
        }
        match &self.url {
            UrlPart::Constant { written, .. } => written.clone(),
            UrlPart::Dynamic(t) => {
                let text = t.render(vars);
                match resolve_ws_url(base, &text) {
                    Ok(url) => Arc::from(path_and_query(&url)),
                    Err(_) => Arc::from(text),
                }
            }
            UrlPart::None => Arc::from(self.method.as_str()),
        }
    }

    /// The frame to send and its payload length in bytes.
    pub(crate) fn payload(&self, vars: &UserVariables) -> Result<(Message, u64), WsError> {
        match &self.payload {
            Payload::Constant(message, len) => Ok((message.clone(), *len)),
            Payload::Text(t) => decode_payload(&t.render(vars)).map_err(WsError::Payload),
            Payload::Json(json) => {
                let text = json.render(vars).to_string();
                let len = text.len() as u64;
                Ok((Message::text(text), len))
            }
        }
    }

    /// The extra handshake headers, rendered.
    pub(crate) fn headers(
        &self,
        vars: &UserVariables,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, WsError> {
        let mut out = Vec::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            let text = value.render(vars);
            let value = HeaderValue::from_str(&text).map_err(|_| WsError::Header {
                name: name.to_string(),
                reason: "control characters (CR, LF, ...) are not allowed in header values"
                    .to_owned(),
            })?;
            out.push((name.clone(), value));
        }
        if let Some(protocols) = &self.subprotocols {
            out.push((
                HeaderName::from_static("sec-websocket-protocol"),
                protocols.clone(),
            ));
        }
        Ok(out)
    }
}
