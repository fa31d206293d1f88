//! Preparing a group: reading its options and compiling its tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use load_density_core::{async_trait, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate};
use serde_json::{Map, Value};

use crate::session::ProtocolVersion;
use crate::task::{GroupDefaults, MqttMethod, TaskPlan};
use crate::user::MqttUser;

/// Group option keys `mqtt_user` reads.
pub const OPTION_NAMES: &[&str] = &["broker", "timeout", "verify", "ca_file", "protocol_version"];

/// The `mqtt_user` protocol: validates a group's tasks and makes [`MqttUser`]s.
///
/// Registered under the name `"mqtt_user"`; the runner finds it through the registry. Call
/// [`MqttProtocol::prepare_group`] directly to get the concrete factory type.
#[derive(Debug, Clone, Copy, Default)]
pub struct MqttProtocol;

/// What every user of a group shares: the compiled tasks.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) tasks: Vec<TaskPlan>,
    /// Whether any task is a `receive` (else incoming messages are not buffered).
    pub(crate) buffer_messages: bool,
}

/// Makes the users of one prepared `mqtt_user` group.
#[derive(Debug, Clone)]
pub struct MqttUserFactory {
    shared: Arc<GroupShared>,
}

impl MqttUserFactory {
    /// A new user, not connected yet, with its own default client id
    /// (`loaddensity-<user_id>-<8 random hex digits>`).
    pub fn user(&self, user_id: u64) -> MqttUser {
        MqttUser::new(user_id, self.shared.clone())
    }

    /// Number of tasks in the group.
    pub fn task_count(&self) -> usize {
        self.shared.tasks.len()
    }

    /// The method of task `index`.
    pub fn method(&self, index: usize) -> Option<MqttMethod> {
        self.shared.tasks.get(index).map(|t| t.method)
    }
}

impl UserFactory for MqttUserFactory {
    fn new_user(&self, user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(self.user(user_id))
    }
}

impl MqttProtocol {
    /// Validates every task of `plan` and builds what its users share.
    ///
    /// Group options read from [`GroupPlan::options`]: `broker` (the default broker, before the
    /// group's host), `timeout` (positive seconds), `verify` (boolean), `ca_file` (path of a PEM
    /// file of extra trusted CAs, read now) and `protocol_version` (4 or 5).
    ///
    /// # Errors
    /// A [`PlanError::Task`] naming the task index and key for an invalid task (an unknown key,
    /// a bad `qos`, an unreadable `ca_file`, ...), or a [`PlanError::Config`] naming the option.
    pub async fn prepare_group(&self, plan: &GroupPlan) -> Result<MqttUserFactory, PlanError> {
        let options = plan.options();
        let ca_pem = match option_str(options, "ca_file")? {
            Some(path) => Some(tokio::fs::read_to_string(path).await.map_err(|e| {
                PlanError::Config(format!("ca_file {path:?}: cannot read it: {e}"))
            })?),
            None => None,
        };
        let version = match option(options, "protocol_version") {
            None => None,
            Some(value) => match value.as_u64() {
                Some(4) => Some(ProtocolVersion::V311),
                Some(5) => Some(ProtocolVersion::V5),
                _ => {
                    return Err(PlanError::Config(format!(
                        "option \"protocol_version\" must be 4 or 5, got {value}"
                    )))
                }
            },
        };
        let defaults = GroupDefaults {
            broker: option_str(options, "broker")?
                .or(plan.host())
                .map(str::to_owned),
            timeout: option_timeout(options)?,
            verify: option_bool(options, "verify")?,
            ca_pem,
            version,
        };

        // Read every task's ca_file before compiling (compiling is synchronous).
        let mut task_cas: HashMap<usize, Result<String, String>> = HashMap::new();
        for def in plan.tasks().tasks() {
            if let Some(Value::String(path)) = def.keys().get("ca_file") {
                let read = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read {path:?}: {e}"));
                task_cas.insert(def.index(), read);
            }
        }
        let tasks =
            TaskPlan::compile_all(plan, &defaults, |index, path| match task_cas.get(&index) {
                Some(Ok(pem)) => Ok(pem.clone()),
                Some(Err(message)) => Err(PlanError::task(index, "ca_file", message.clone())),
                None => Err(PlanError::task(
                    index,
                    "ca_file",
                    format!("cannot read {path:?}"),
                )),
            })?;
        let buffer_messages = tasks.iter().any(|t| t.method == MqttMethod::Receive);
        Ok(MqttUserFactory {
            shared: Arc::new(GroupShared {
                tasks,
                buffer_messages,
            }),
        })
    }
}

#[async_trait]
impl Protocol for MqttProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        Ok(Arc::new(self.prepare_group(plan).await?))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
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
            "option {key:?} must be a string, got {other}"
        ))),
    }
}
