//! The task shape of `mqtt_user`, compiled once per run.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use load_density_core::task::options::task_seconds;
use load_density_core::template::{JsonTemplate, Template};
use load_density_core::tls::{client_config, TlsSettings};
use load_density_core::variables::UserVariables;
use load_density_core::{GroupOptions, PlanError};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::broker::{Broker, DEFAULT_BROKER};
use crate::payload;
use crate::session::ProtocolVersion;

/// The timeout of a task when neither the task nor the group sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The keep-alive interval when the task sets none.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);

/// What an `mqtt_user` task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttMethod {
    /// Make sure the user is connected (timed until CONNACK when it connects).
    Connect,
    /// Publish a message (the default).
    Publish,
    /// Subscribe to a topic filter (timed until SUBACK).
    Subscribe,
    /// Unsubscribe from a topic filter (timed until UNSUBACK).
    Unsubscribe,
    /// Close the connection.
    Disconnect,
    /// Wait for a message on a subscribed topic.
    Receive,
}

impl MqttMethod {
    /// Every method name, as written in tasks.
    pub const NAMES: &'static [&'static str] = &[
        "connect",
        "publish",
        "subscribe",
        "unsubscribe",
        "disconnect",
        "receive",
    ];

    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "connect" => Self::Connect,
            "publish" => Self::Publish,
            "subscribe" => Self::Subscribe,
            "unsubscribe" => Self::Unsubscribe,
            "disconnect" => Self::Disconnect,
            "receive" => Self::Receive,
            _ => return None,
        })
    }

    /// The method's name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Disconnect => "disconnect",
            Self::Receive => "receive",
        }
    }
}

/// The `payload` key: a string (text, `hex:`, `b64:`), or any other JSON value, sent as JSON
/// text.
#[derive(Debug, Clone, PartialEq)]
enum PayloadKey {
    Text(Template),
    Json(JsonTemplate),
}

impl<'de> Deserialize<'de> for PayloadKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(text) => PayloadKey::Text(Template::parse(&text)),
            other => PayloadKey::Json(JsonTemplate::new(other)),
        })
    }
}

/// One task as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MqttTask {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    broker: Option<Template>,
    #[serde(default)]
    host: Option<Template>,
    #[serde(default)]
    topic: Option<Template>,
    #[serde(default)]
    payload: Option<PayloadKey>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_whole"
    )]
    qos: Option<u8>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    retain: Option<bool>,
    #[serde(default)]
    client_id: Option<Template>,
    #[serde(default)]
    username: Option<Template>,
    #[serde(default)]
    password: Option<Template>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_whole"
    )]
    keepalive: Option<u64>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_seconds"
    )]
    timeout: Option<f64>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    clean_session: Option<bool>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_whole"
    )]
    protocol_version: Option<u8>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    verify: Option<bool>,
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
    #[serde(
        default,
        deserialize_with = "load_density_core::task::values::opt_bool"
    )]
    stamp: Option<bool>,
    #[serde(default)]
    name: Option<Template>,
    #[serde(default)]
    expect: Option<Template>,
}

/// Group-level defaults (from the group's options and host).
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupDefaults {
    pub(crate) broker: Option<String>,
    pub(crate) version: Option<ProtocolVersion>,
    /// `timeout`, `verify` and `ca_file`.
    pub(crate) common: GroupOptions,
}

/// A value known at compile time, or rendered per task run.
#[derive(Debug, Clone)]
enum Source<T> {
    Static(T),
    Dynamic(Template),
}

#[derive(Debug, Clone)]
enum PayloadSource {
    Static(Bytes),
    Text(Template),
    Json(JsonTemplate),
}

/// The connection keys of a task (used when the task opens the connection).
#[derive(Debug, Clone)]
pub(crate) struct ConnectKeys {
    client_id: Option<Template>,
    username: Option<Template>,
    password: Option<Template>,
    pub(crate) keepalive: Duration,
    pub(crate) clean_session: bool,
    pub(crate) version: ProtocolVersion,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// One compiled task.
#[derive(Debug, Clone)]
pub(crate) struct TaskPlan {
    pub(crate) method: MqttMethod,
    broker: Source<(Arc<str>, Broker)>,
    topic: Option<Template>,
    payload: PayloadSource,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) connect: ConnectKeys,
    pub(crate) timeout: Duration,
    pub(crate) stamp: bool,
    name: Source<Arc<str>>,
    expect: Option<Template>,
}

/// A task rendered for one run.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub(crate) url: Arc<str>,
    pub(crate) broker: Broker,
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) name: Arc<str>,
    pub(crate) expect: Option<Vec<u8>>,
    pub(crate) client_id: Option<String>,
    pub(crate) credentials: Option<(String, String)>,
}

fn task_error(index: usize, key: &str, message: impl Into<String>) -> PlanError {
    PlanError::task(index, key, message)
}

fn version(index: usize, number: u8) -> Result<ProtocolVersion, PlanError> {
    match number {
        4 => Ok(ProtocolVersion::V311),
        5 => Ok(ProtocolVersion::V5),
        other => Err(task_error(
            index,
            "protocol_version",
            format!("protocol_version must be 4 (MQTT 3.1.1) or 5 (MQTT 5), got {other}"),
        )),
    }
}

fn check_topic(method: MqttMethod, topic: &str) -> Result<(), String> {
    match method {
        MqttMethod::Publish => {
            if topic.is_empty() {
                Err("a publish needs a topic".to_owned())
            } else if !rumqttc::valid_topic(topic) {
                Err(format!(
                    "invalid topic {topic:?} for publish (no '+' or '#' wildcards)"
                ))
            } else {
                Ok(())
            }
        }
        MqttMethod::Subscribe | MqttMethod::Unsubscribe => {
            if topic.is_empty() {
                Err(format!("a {} needs a topic filter", method.as_str()))
            } else if !rumqttc::valid_filter(topic) {
                Err(format!("invalid topic filter {topic:?}"))
            } else {
                Ok(())
            }
        }
        MqttMethod::Receive if !topic.is_empty() && !rumqttc::valid_filter(topic) => {
            Err(format!("invalid topic filter {topic:?}"))
        }
        _ => Ok(()),
    }
}

impl TaskPlan {
    /// Compiles task `index`; `ca_pem` is the text of its `ca_file`, read already.
    pub(crate) fn compile(
        index: usize,
        task: MqttTask,
        defaults: &GroupDefaults,
        ca_pem: Option<String>,
    ) -> Result<Self, PlanError> {
        let method = match &task.method {
            None => MqttMethod::Publish,
            Some(name) => MqttMethod::parse(name).ok_or_else(|| {
                task_error(
                    index,
                    "method",
                    format!(
                        "unsupported mqtt method {name:?} (expected one of {})",
                        MqttMethod::NAMES.join(", ")
                    ),
                )
            })?,
        };
        let only = |key: &str, present: bool, allowed: &[MqttMethod]| {
            if present && !allowed.contains(&method) {
                let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                return Err(task_error(
                    index,
                    key,
                    format!(
                        "\"{key}\" applies to {} tasks, not {}",
                        names.join(", "),
                        method.as_str()
                    ),
                ));
            }
            Ok(())
        };
        only("payload", task.payload.is_some(), &[MqttMethod::Publish])?;
        only("retain", task.retain.is_some(), &[MqttMethod::Publish])?;
        only("stamp", task.stamp.is_some(), &[MqttMethod::Publish])?;
        only("expect", task.expect.is_some(), &[MqttMethod::Receive])?;

        let broker_key = match (&task.broker, &task.host) {
            (Some(_), Some(_)) => {
                return Err(task_error(
                    index,
                    "host",
                    "give either \"broker\" or \"host\", not both",
                ))
            }
            (Some(b), None) => Some(("broker", b.clone())),
            (None, Some(h)) => Some(("host", h.clone())),
            (None, None) => None,
        };
        let broker = match broker_key {
            Some((key, template)) => match template.as_constant() {
                Some(text) => {
                    Source::Static(parse_broker(text).map_err(|m| task_error(index, key, m))?)
                }
                None => Source::Dynamic(template),
            },
            None => {
                let text = defaults.broker.as_deref().unwrap_or(DEFAULT_BROKER);
                Source::Static(parse_broker(text).map_err(|m| {
                    PlanError::Config(format!("option \"broker\" (or the host): {m}"))
                })?)
            }
        };

        if let Some(topic) = &task.topic {
            if let Some(text) = topic.as_constant() {
                check_topic(method, text).map_err(|m| task_error(index, "topic", m))?;
            }
        } else if matches!(
            method,
            MqttMethod::Publish | MqttMethod::Subscribe | MqttMethod::Unsubscribe
        ) {
            return Err(task_error(
                index,
                "",
                format!("a {} task needs a \"topic\"", method.as_str()),
            ));
        }

        let payload = match task.payload {
            None => PayloadSource::Static(Bytes::new()),
            Some(PayloadKey::Text(template)) => match template.as_constant() {
                Some(text) => PayloadSource::Static(
                    payload::decode(text).map_err(|m| task_error(index, "payload", m))?,
                ),
                None => PayloadSource::Text(template),
            },
            Some(PayloadKey::Json(json)) if !json.is_dynamic() => {
                PayloadSource::Static(Bytes::from(json.source().to_string()))
            }
            Some(PayloadKey::Json(json)) => PayloadSource::Json(json),
        };

        let qos = task.qos.unwrap_or(0);
        if qos > 2 {
            return Err(task_error(
                index,
                "qos",
                format!("qos must be 0, 1 or 2, got {qos}"),
            ));
        }
        let keepalive = match task.keepalive {
            None => DEFAULT_KEEPALIVE,
            Some(secs) if secs <= u64::from(u16::MAX) => Duration::from_secs(secs),
            Some(secs) => {
                return Err(task_error(
                    index,
                    "keepalive",
                    format!("keepalive must be 0..=65535 seconds, got {secs}"),
                ))
            }
        };
        let timeout = match task.timeout {
            None => defaults.common.timeout().unwrap_or(DEFAULT_TIMEOUT),
            Some(secs) => task_seconds(index, "timeout", secs)?,
        };
        let version = match task.protocol_version {
            Some(number) => version(index, number)?,
            None => defaults.version.unwrap_or_default(),
        };
        let clean_session = task.clean_session.unwrap_or(true);
        if !clean_session
            && task
                .client_id
                .as_ref()
                .and_then(|t| t.as_constant())
                .is_some_and(str::is_empty)
        {
            return Err(task_error(
                index,
                "client_id",
                "clean_session: false needs a non-empty client_id",
            ));
        }
        let verify = task.verify.or(defaults.common.verify()).unwrap_or(true);
        let tls = match ca_pem {
            // The task's own CAs replace the group's.
            Some(pem) if verify => client_config(&TlsSettings {
                insecure: false,
                extra_ca_pem: Some(pem),
                alpn: Vec::new(),
            })
            .map_err(|e| task_error(index, "ca_file", e.to_string()))?,
            _ => defaults.common.tls_config(verify, &[])?,
        };

        let name = match &task.name {
            Some(template) => match template.as_constant() {
                Some(text) => Source::Static(Arc::from(text)),
                None => Source::Dynamic(template.clone()),
            },
            None => match task.topic.as_ref().map(|t| t.as_constant()) {
                None => Source::Static(Arc::from(format!("{}:", method.as_str()))),
                Some(Some(topic)) => {
                    Source::Static(Arc::from(format!("{}:{topic}", method.as_str())))
                }
                Some(None) => Source::Dynamic(Template::parse(&format!(
                    "{}:{}",
                    method.as_str(),
                    task.topic.as_ref().map_or("", |t| t.source())
                ))),
            },
        };

        Ok(Self {
            method,
            broker,
            topic: task.topic,
            payload,
            qos,
            retain: task.retain.unwrap_or(false),
            connect: ConnectKeys {
                client_id: task.client_id,
                username: task.username,
                password: task.password,
                keepalive,
                clean_session,
                version,
                tls,
            },
            timeout,
            stamp: task.stamp.unwrap_or(false),
            name,
            expect: task.expect,
        })
    }

    /// Renders the task for one run.
    pub(crate) fn render(&self, vars: &UserVariables) -> Result<Rendered, String> {
        let (url, broker) = match &self.broker {
            Source::Static((url, broker)) => (url.clone(), broker.clone()),
            Source::Dynamic(template) => parse_broker(&template.render(vars))?,
        };
        let topic = self
            .topic
            .as_ref()
            .map_or(Cow::Borrowed(""), |t| t.render(vars))
            .into_owned();
        if self
            .topic
            .as_ref()
            .is_some_and(|t| t.as_constant().is_none())
        {
            check_topic(self.method, &topic)?;
        }
        let payload = match &self.payload {
            PayloadSource::Static(bytes) => bytes.clone(),
            PayloadSource::Text(template) => payload::decode(&template.render(vars))?,
            PayloadSource::Json(json) => Bytes::from(json.render(vars).to_string()),
        };
        let name = match &self.name {
            Source::Static(name) => name.clone(),
            Source::Dynamic(template) => Arc::from(template.render(vars).as_ref()),
        };
        let expect = self
            .expect
            .as_ref()
            .map(|t| t.render(vars).into_owned().into_bytes());
        let keys = &self.connect;
        let client_id = keys.client_id.as_ref().map(|t| t.render(vars).into_owned());
        let username = keys
            .username
            .as_ref()
            .map(|t| t.render(vars).into_owned())
            .unwrap_or_default();
        // As in the Python version: credentials only with a non-empty user name.
        let credentials = (!username.is_empty()).then(|| {
            let password = keys
                .password
                .as_ref()
                .map(|t| t.render(vars).into_owned())
                .unwrap_or_default();
            (username, password)
        });
        Ok(Rendered {
            url,
            broker,
            topic,
            payload,
            name,
            expect,
            client_id,
            credentials,
        })
    }

    /// The topic filter `receive` waits on (`None`: any topic).
    pub(crate) fn filter<'a>(&self, rendered: &'a Rendered) -> Option<&'a str> {
        (!rendered.topic.is_empty()).then_some(rendered.topic.as_str())
    }
}

fn parse_broker(text: &str) -> Result<(Arc<str>, Broker), String> {
    let broker = Broker::parse(text)?;
    Ok((Arc::from(text.trim()), broker))
}
