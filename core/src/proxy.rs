//! The task-proxy registry (Python's `locust_wrapper_proxy`): tasks per user type, set before a
//! run.
//!
//! Unlike the Python version, a run takes a snapshot of the registry when it starts: changing
//! the registry during a run does not change users already running.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use parking_lot::RwLock;
use serde_json::{Map, Value};

/// What is configured for one user type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxyEntry {
    /// The `user_detail_dict` given with the tasks.
    pub user_detail: Map<String, Value>,
    /// The task payload as written (any accepted shape).
    pub tasks: Value,
    /// The base host.
    pub host: Option<String>,
    /// Other keyword arguments (protocol options).
    pub extra: Map<String, Value>,
}

/// Tasks per user type.
#[derive(Debug, Default)]
pub struct TaskProxy {
    entries: RwLock<BTreeMap<String, ProxyEntry>>,
}

impl TaskProxy {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the configuration of `user_type`.
    pub fn configure(&self, user_type: &str, entry: ProxyEntry) {
        self.entries.write().insert(user_type.to_owned(), entry);
    }

    /// Replaces only the tasks of `user_type`.
    pub fn set_tasks(&self, user_type: &str, tasks: Value) {
        self.entries
            .write()
            .entry(user_type.to_owned())
            .or_default()
            .tasks = tasks;
    }

    /// A copy of the configuration of `user_type`.
    pub fn get(&self, user_type: &str) -> Option<ProxyEntry> {
        self.entries.read().get(user_type).cloned()
    }

    /// A copy of every user type's tasks (Python's `tasks_dict`).
    pub fn tasks_dict(&self) -> BTreeMap<String, Value> {
        self.entries
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.tasks.clone()))
            .collect()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.write().clear();
    }
}

/// The process-wide task proxy.
pub fn locust_wrapper_proxy() -> &'static TaskProxy {
    static PROXY: OnceLock<TaskProxy> = OnceLock::new();
    PROXY.get_or_init(TaskProxy::new)
}
