//! The task language shared by every protocol.
//!
//! A group's `tasks` are accepted in the shapes our users already write:
//! - a list of task objects: `[{"method": "get", "request_url": "/"}, ...]`;
//! - the legacy method-keyed object: `{"get": {"request_url": "/"}, "post": {...}}`;
//! - a wrapper with a scenario mode: `{"mode": "sequence", "tasks": [...]}`.
//!
//! [`TaskList::from_json`] normalises them. Keys every protocol shares (`weight`, `run_if`,
//! `skip_if`, `assertions`, `extract`) are taken out by core; the remaining keys are the
//! protocol's, which it deserializes with [`TaskList::compile`] into its own task type (with
//! `#[serde(deny_unknown_fields)]`), so an unknown key is an error naming the task index.
//!
//! Beside the task language: [`options`] parses the group options every network protocol
//! shares (`timeout`, `verify`, `ca_file`) and positive seconds; [`url`] turns a group's
//! `host` into a base URL and resolves task URLs against it.

pub mod http;
pub mod options;
pub mod url;
pub mod values;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::variables::Variables;

/// The crate's short name for [`json_kind`].
pub(crate) use self::json_kind as kind;

/// Keys core handles for every protocol.
pub const COMMON_KEYS: &[&str] = &["weight", "run_if", "skip_if", "assertions", "extract"];

/// An invalid plan: what is wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// One task is invalid.
    #[error("task {index} ({location}): {message}", location = task_location(*index, path))]
    Task {
        /// Index in the task list, from 0.
        index: usize,
        /// JSON path of the offending key inside the task (empty for the task itself).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The task list itself has the wrong shape.
    #[error("tasks: {0}")]
    Shape(String),
    /// Some other part of the group's configuration is invalid.
    #[error("{0}")]
    Config(String),
}

fn task_location(index: usize, path: &str) -> String {
    if path.is_empty() || path == "." {
        format!("tasks[{index}]")
    } else {
        format!("tasks[{index}].{path}")
    }
}

impl PlanError {
    /// A task error.
    pub fn task(index: usize, path: impl Into<String>, message: impl Into<String>) -> Self {
        PlanError::Task {
            index,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// How a user walks its task list in one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScenarioMode {
    /// Every task in order (the default).
    #[default]
    Sequence,
    /// One task per iteration, picked by `weight`.
    Weighted,
    /// The same as [`ScenarioMode::Sequence`]: `run_if` / `skip_if` apply in every mode. Kept
    /// because existing task files name it.
    Conditional,
}

impl ScenarioMode {
    /// Parses a mode name, case-insensitively.
    pub fn parse(name: &str) -> Result<Self, PlanError> {
        match name.to_ascii_lowercase().as_str() {
            "sequence" | "" => Ok(Self::Sequence),
            "weighted" => Ok(Self::Weighted),
            "conditional" => Ok(Self::Conditional),
            other => Err(PlanError::Shape(format!(
                "unknown mode {other:?} (expected sequence, weighted or conditional)"
            ))),
        }
    }
}

/// The keys of one task that core handles, as written; [`Scenario::new`] validates and
/// compiles them (see [`crate::predicate`] and [`crate::checks`]).
///
/// [`Scenario::new`]: crate::scenario::Scenario::new
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskCommon {
    /// Relative weight in weighted mode (default 1; 0 never runs).
    pub weight: Option<Value>,
    /// Run only when this condition holds.
    pub run_if: Option<Value>,
    /// Skip when this condition holds.
    pub skip_if: Option<Value>,
    /// Assertions on the response.
    pub assertions: Option<Value>,
    /// Extractors into the user's variables.
    pub extract: Option<Value>,
}

/// One task: core's keys and the protocol's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDef {
    index: usize,
    common: TaskCommon,
    keys: Map<String, Value>,
}

impl TaskDef {
    /// Index in the task list.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The keys core handles.
    pub fn common(&self) -> &TaskCommon {
        &self.common
    }
    /// The protocol's keys.
    pub fn keys(&self) -> &Map<String, Value> {
        &self.keys
    }
}

/// A normalised task list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskList {
    mode: ScenarioMode,
    tasks: Vec<TaskDef>,
}

impl TaskList {
    /// Normalises any accepted shape (see the module docs). `null` is an empty list.
    pub fn from_json(value: &Value) -> Result<Self, PlanError> {
        match value {
            Value::Null => Ok(Self::default()),
            Value::Array(items) => Ok(Self {
                mode: ScenarioMode::Sequence,
                tasks: tasks_from_list(items)?,
            }),
            Value::Object(map) if map.contains_key("tasks") => {
                for key in map.keys() {
                    if key != "tasks" && key != "mode" {
                        return Err(PlanError::Shape(format!(
                            "unknown key {key:?} beside \"tasks\" (expected \"mode\" and \"tasks\")"
                        )));
                    }
                }
                let mode = match map.get("mode") {
                    None | Some(Value::Null) => ScenarioMode::Sequence,
                    Some(Value::String(m)) => ScenarioMode::parse(m)?,
                    Some(other) => {
                        return Err(PlanError::Shape(format!(
                            "mode must be a string, got {other}"
                        )))
                    }
                };
                let tasks = match &map["tasks"] {
                    Value::Array(items) => tasks_from_list(items)?,
                    Value::Object(legacy) => tasks_from_legacy(legacy)?,
                    other => {
                        return Err(PlanError::Shape(format!(
                            "\"tasks\" must be a list or a method-keyed object, got {}",
                            kind(other)
                        )))
                    }
                };
                Ok(Self { mode, tasks })
            }
            Value::Object(legacy) => Ok(Self {
                mode: ScenarioMode::Sequence,
                tasks: tasks_from_legacy(legacy)?,
            }),
            other => Err(PlanError::Shape(format!(
                "expected a list of tasks or an object, got {}",
                kind(other)
            ))),
        }
    }

    /// The scenario mode.
    pub fn mode(&self) -> ScenarioMode {
        self.mode
    }

    /// The tasks.
    pub fn tasks(&self) -> &[TaskDef] {
        &self.tasks
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Deserializes every task's protocol keys into `T`, naming the task index and the JSON
    /// path of the first problem.
    pub fn compile<T: DeserializeOwned>(&self) -> Result<Vec<T>, PlanError> {
        self.tasks
            .iter()
            .map(|task| {
                let value = Value::Object(task.keys.clone());
                serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
                    let path = error.path().to_string();
                    PlanError::task(task.index, path, error.into_inner().to_string())
                })
            })
            .collect()
    }

    /// [`TaskList::compile`], then `compile(index, task)` on each task in order: the one
    /// loop every protocol's `prepare` runs to validate its tasks into their compiled form.
    ///
    /// # Errors
    /// The first deserialization error (naming the task index and JSON path), else the first
    /// error `compile` returns.
    pub fn compile_each<T: DeserializeOwned, C>(
        &self,
        mut compile: impl FnMut(usize, T) -> Result<C, PlanError>,
    ) -> Result<Vec<C>, PlanError> {
        self.tasks
            .iter()
            .zip(self.compile::<T>()?)
            .map(|(def, task)| compile(def.index, task))
            .collect()
    }
}

/// What kind of JSON value this is, for error messages (`"a list"`, `"null"`, ...).
///
/// ```
/// use load_density_core::task::json_kind;
/// use serde_json::json;
///
/// assert_eq!(
///     format!("expected an object, got {}", json_kind(&json!([1]))),
///     "expected an object, got a list"
/// );
/// ```
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn task_from_object(index: usize, map: &Map<String, Value>) -> TaskDef {
    let mut keys = Map::new();
    let mut common = TaskCommon::default();
    for (key, value) in map {
        let slot = match key.as_str() {
            "weight" => &mut common.weight,
            "run_if" => &mut common.run_if,
            "skip_if" => &mut common.skip_if,
            "assertions" => &mut common.assertions,
            "extract" => &mut common.extract,
            _ => {
                // A null value means "not given", as in the Python version.
                if !value.is_null() {
                    keys.insert(key.clone(), value.clone());
                }
                continue;
            }
        };
        if !value.is_null() {
            *slot = Some(value.clone());
        }
    }
    TaskDef {
        index,
        common,
        keys,
    }
}

fn tasks_from_list(items: &[Value]) -> Result<Vec<TaskDef>, PlanError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(map) => Ok(task_from_object(index, map)),
            other => Err(PlanError::task(
                index,
                "",
                format!("a task must be an object, got {}", kind(other)),
            )),
        })
        .collect()
}

fn tasks_from_legacy(map: &Map<String, Value>) -> Result<Vec<TaskDef>, PlanError> {
    map.iter()
        .enumerate()
        .map(|(index, (method, body))| match body {
            Value::Object(fields) => {
                if fields.contains_key("method") {
                    return Err(PlanError::task(
                        index,
                        "method",
                        format!("the legacy {method:?} task already names its method by its key"),
                    ));
                }
                let mut with_method = Map::new();
                with_method.insert("method".to_owned(), Value::String(method.clone()));
                with_method.extend(fields.clone());
                Ok(task_from_object(index, &with_method))
            }
            other => Err(PlanError::task(
                index,
                "",
                format!(
                    "the legacy {method:?} task must be an object, got {}",
                    kind(other)
                ),
            )),
        })
        .collect()
}

/// Everything a protocol needs to prepare one group of users.
#[derive(Debug, Clone, Default)]
pub struct GroupPlan {
    name: String,
    user_type: String,
    tasks: TaskList,
    host: Option<String>,
    options: Map<String, Value>,
    variables: Arc<Variables>,
}

impl GroupPlan {
    /// A plan for `user_type` with these tasks; the group is named after the user type.
    pub fn new(user_type: impl Into<String>, tasks: TaskList) -> Self {
        let user_type = user_type.into();
        Self {
            name: user_type.clone(),
            user_type,
            tasks,
            ..Self::default()
        }
    }

    /// Sets the group's name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the base host relative URLs resolve against.
    pub fn with_host(mut self, host: Option<String>) -> Self {
        self.host = host;
        self
    }

    /// Sets protocol-level options (user-detail keys and extra start_test keys).
    pub fn with_options(mut self, options: Map<String, Value>) -> Self {
        self.options = options;
        self
    }

    /// Sets the run's variables.
    pub fn with_variables(mut self, variables: Arc<Variables>) -> Self {
        self.variables = variables;
        self
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The user type (`"fast_http_user"`, ...).
    pub fn user_type(&self) -> &str {
        &self.user_type
    }
    /// The tasks.
    pub fn tasks(&self) -> &TaskList {
        &self.tasks
    }
    /// The base host, if given.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    /// Protocol-level options.
    pub fn options(&self) -> &Map<String, Value> {
        &self.options
    }
    /// The run's variables.
    pub fn variables(&self) -> &Arc<Variables> {
        &self.variables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        method: String,
        url: Option<String>,
        timeout: Option<f64>,
    }

    #[test]
    fn accepts_the_three_shapes() {
        let list = TaskList::from_json(&json!([{"method": "get", "url": "/"}])).expect("list");
        assert_eq!(list.len(), 1);
        let legacy = TaskList::from_json(&json!({"get": {"url": "/a"}, "post": {"url": "/b"}}))
            .expect("legacy");
        assert_eq!(legacy.tasks()[1].keys()["method"], "post");
        let wrapped = TaskList::from_json(
            &json!({"mode": "Weighted", "tasks": [{"method": "get", "weight": 3}]}),
        )
        .expect("wrapped");
        assert_eq!(wrapped.mode(), ScenarioMode::Weighted);
        assert_eq!(wrapped.tasks()[0].common().weight, Some(json!(3)));
        assert!(!wrapped.tasks()[0].keys().contains_key("weight"));
    }

    #[test]
    fn compile_each_passes_indexes_and_stops_at_the_first_error() {
        let list = TaskList::from_json(&json!([
            {"method": "get", "url": "/a"},
            {"method": "post", "timeout": 2.0}
        ]))
        .expect("list");
        let compiled = list
            .compile_each(|index, task: T| Ok((index, task.method)))
            .expect("compiled");
        assert_eq!(compiled, [(0, "get".to_owned()), (1, "post".to_owned())]);
        let error = list
            .compile_each(|index, task: T| match task.timeout {
                Some(_) => Err(PlanError::task(index, "timeout", "no")),
                None => Ok(index),
            })
            .expect_err("task 1 is refused");
        assert_eq!(error.to_string(), "task 1 (tasks[1].timeout): no");
        // Deserialization errors come first, before any task is compiled.
        let list = TaskList::from_json(&json!([{"method": "get"}, {"method": 5}])).expect("list");
        let mut calls = 0;
        let error = list
            .compile_each(|index, _task: T| {
                calls += 1;
                Ok(index)
            })
            .expect_err("task 1 does not deserialize");
        assert!(error.to_string().contains("tasks[1].method"), "{error}");
        assert_eq!(calls, 0);
    }

    #[test]
    fn errors_name_the_task_and_key() {
        let list = TaskList::from_json(&json!([{"method": "get"}, {"method": "get", "bogus": 1}]))
            .expect("list");
        let error = list.compile::<T>().expect_err("unknown key");
        let text = error.to_string();
        assert!(
            text.starts_with("task 1 (tasks[1].bogus): unknown field `bogus`"),
            "{text}"
        );
        let list =
            TaskList::from_json(&json!([{"method": "get", "timeout": "soon"}])).expect("list");
        let text = list.compile::<T>().expect_err("bad type").to_string();
        assert!(text.contains("tasks[0].timeout"), "{text}");
        let text = TaskList::from_json(&json!([1]))
            .expect_err("not object")
            .to_string();
        assert!(text.contains("task 0"), "{text}");
        let text = TaskList::from_json(&json!({"mode": "random", "tasks": []}))
            .expect_err("bad mode")
            .to_string();
        assert!(text.contains("unknown mode"), "{text}");
    }
}
