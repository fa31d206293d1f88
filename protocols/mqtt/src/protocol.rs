//! Preparing a group: reading its options and compiling its tasks.

use std::collections::HashMap;
use std::sync::Arc;

use load_density_core::task::options::{option_bytes, with_common_options};
use load_density_core::{
    async_trait, GroupOptions, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate,
};
use serde_json::{Map, Value};

use crate::session::{ProtocolVersion, MQTT_PACKET_LIMIT};
use crate::task::{GroupDefaults, MqttMethod, MqttTask, TaskPlan};
use crate::user::MqttUser;
use crate::DEFAULT_MAX_PACKET_SIZE;

/// Group option keys `mqtt_user` reads: the common ones
/// ([`COMMON_OPTION_NAMES`](load_density_core::COMMON_OPTION_NAMES): `ca_file`, `timeout`,
/// `verify`), `broker`, `protocol_version` and `max_packet_size`.
pub const OPTION_NAMES: &[&str] =
    &with_common_options::<6>(&["broker", "protocol_version", "max_packet_size"]);

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
    /// The group's `max_packet_size`: the largest packet sent or accepted.
    pub(crate) max_packet_size: usize,
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
        let max_packet_size =
            option_bytes(options, "max_packet_size")?.map_or(DEFAULT_MAX_PACKET_SIZE, |n| {
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(MQTT_PACKET_LIMIT)
            });
        let defaults = GroupDefaults {
            broker: broker_option(options)?.or(plan.host()).map(str::to_owned),
            version: version_option(options)?,
            common: GroupOptions::from_map(options)?,
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
        let tasks = plan.tasks().compile_each(|index, task: MqttTask| {
            let ca_pem = match &task.ca_file {
                None => None,
                Some(path) => match task_cas.remove(&index) {
                    Some(read) => Some(read.map_err(|m| PlanError::task(index, "ca_file", m))?),
                    None => {
                        let message = format!("cannot read {path:?}");
                        return Err(PlanError::task(index, "ca_file", message));
                    }
                },
            };
            TaskPlan::compile(index, task, &defaults, ca_pem)
        })?;
        let buffer_messages = tasks.iter().any(|t| t.method == MqttMethod::Receive);
        Ok(MqttUserFactory {
            shared: Arc::new(GroupShared {
                tasks,
                buffer_messages,
                max_packet_size,
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

    fn binds_source_address(&self) -> bool {
        true
    }
}

/// The `broker` option: the group's default broker, before its host.
fn broker_option(options: &Map<String, Value>) -> Result<Option<&str>, PlanError> {
    match options.get("broker") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(broker)) => Ok(Some(broker)),
        Some(other) => Err(PlanError::Config(format!(
            "option \"broker\" must be a string, got {other}"
        ))),
    }
}

/// The `protocol_version` option: 4 (MQTT 3.1.1) or 5.
fn version_option(options: &Map<String, Value>) -> Result<Option<ProtocolVersion>, PlanError> {
    match options.get("protocol_version") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(4) => Ok(Some(ProtocolVersion::V311)),
            Some(5) => Ok(Some(ProtocolVersion::V5)),
            _ => Err(PlanError::Config(format!(
                "option \"protocol_version\" must be 4 or 5, got {value}"
            ))),
        },
    }
}
