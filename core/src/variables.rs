//! Variable scopes, and the user's bound CSV rows.
//!
//! A run has one set of run-level [`Variables`] (from `variables` and `LD_register_variable`),
//! read-only while it runs. Each simulated user layers its own scope on top
//! ([`UserVariables`]): extractors write there, so one user's token never leaks to another.
//!
//! # Lookup order
//!
//! `${var.NAME}` and `${NAME}` look in:
//! 1. the user's own scope ([`UserVariables::set`]);
//! 2. the run's variables.
//!
//! The first scope that has the name wins, even when its value is `null` (a `null` renders
//! into text as a missing variable would: the placeholder stays as written).
//!
//! # How values are written into text
//!
//! Strings as they are; every other value as compact JSON ([`value_to_text`]): `5`, `true`,
//! `{"a":1}`, `[1,2]` (never Python's `True` or `{'a': 1}`). When a JSON value is exactly one
//! variable placeholder, it keeps the variable's JSON type instead
//! ([`JsonTemplate`](crate::template::JsonTemplate)).
//!
//! # CSV rows
//!
//! A user built with [`UserVariables::with_data`] reads `${csv.SOURCE.COLUMN}` from the run's
//! [`DataSources`]. The user binds one row per source per task (or per life, for a per-user
//! source): call [`UserVariables::begin_task`] before each task. See [`crate::data`].

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use crate::data::{CsvMiss, DataSources, Fetch, Field, OnEnd};

/// Run-level variables: read-only while a run is going.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    values: HashMap<String, Value>,
    /// The environment variables `${env.NAME}` may read; `None`: every one.
    env_allowed: Option<Vec<String>>,
}

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one variable, replacing an existing one.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        self.values.insert(name.into(), value);
    }

    /// Sets every pair of a JSON object.
    pub fn extend(&mut self, values: impl IntoIterator<Item = (String, Value)>) {
        self.values.extend(values);
    }

    /// Lets `${env.NAME}` read only the environment variables named here (a worker running
    /// its master's plan: see `--allow-env`); the others stay unresolved.
    pub fn restrict_env(&mut self, allowed: impl IntoIterator<Item = String>) {
        self.env_allowed = Some(allowed.into_iter().collect());
    }

    /// Whether `${env.NAME}` may read the environment variable `name`.
    pub fn env_allowed(&self, name: &str) -> bool {
        self.env_allowed
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == name))
    }

    /// Looks one variable up.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every name and value.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }
}

impl FromIterator<(String, Value)> for Variables {
    fn from_iter<T: IntoIterator<Item = (String, Value)>>(iter: T) -> Self {
        Self {
            values: iter.into_iter().collect(),
            env_allowed: None,
        }
    }
}

/// One user's view of variables: its own scope over the run's, plus its bound CSV rows.
///
/// `Send` and `Sync`: the row bindings sit behind an uncontended per-user lock, so rendering
/// needs only `&self` and a protocol may hold `&UserVariables` across an `.await`.
#[derive(Debug, Default)]
pub struct UserVariables {
    run: Arc<Variables>,
    own: HashMap<String, Value>,
    user_id: u64,
    data: Option<Arc<DataSources>>,
    bound: Mutex<Bound>,
}

/// The user's rows, one slot per data source.
#[derive(Debug, Clone, Default)]
struct Bound {
    slots: Vec<Slot>,
    exhausted: Option<OnEnd>,
}

#[derive(Debug, Clone, Default)]
enum Slot {
    #[default]
    Unbound,
    Row(Arc<csv::StringRecord>),
    Exhausted,
}

impl Clone for UserVariables {
    /// A copy with the same variables and the same bound rows.
    fn clone(&self) -> Self {
        Self {
            run: self.run.clone(),
            own: self.own.clone(),
            user_id: self.user_id,
            data: self.data.clone(),
            bound: Mutex::new(self.bound.lock().clone()),
        }
    }
}

impl UserVariables {
    /// A user scope over the given run variables, with no data sources.
    pub fn new(run: Arc<Variables>) -> Self {
        Self {
            run,
            ..Self::default()
        }
    }

    /// A user scope over the run variables that also reads the run's CSV data sources.
    /// `user_id` identifies the user (the runner's user id).
    pub fn with_data(run: Arc<Variables>, data: Arc<DataSources>, user_id: u64) -> Self {
        Self {
            run,
            user_id,
            data: Some(data),
            ..Self::default()
        }
    }

    /// Looks a name up: the user's own scope first, then the run's.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.own.get(name).or_else(|| self.run.get(name))
    }

    /// Sets a variable in the user's own scope.
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.own.insert(name.into(), value);
    }

    /// The run's variables.
    pub fn run(&self) -> &Arc<Variables> {
        &self.run
    }

    /// The run's data sources, if any.
    pub fn data(&self) -> Option<&Arc<DataSources>> {
        self.data.as_ref()
    }

    /// The user's id (0 unless built with [`with_data`](Self::with_data)).
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// Starts a new task: forgets the rows of per-task sources, so the task's first
    /// `${csv...}` lookup of each source takes a fresh row. Per-user rows are kept.
    ///
    /// Call it once per task execution, before anything of the task is rendered (its
    /// conditions included), so that everything in one task sees the same row.
    pub fn begin_task(&mut self) {
        let Some(data) = &self.data else { return };
        let bound = self.bound.get_mut();
        for (index, slot) in bound.slots.iter_mut().enumerate() {
            let per_user = data
                .source(index)
                .is_some_and(|source| source.spec().per_user());
            if !per_user {
                *slot = Slot::Unbound;
            }
        }
    }

    /// Whether a `${csv...}` lookup met a source that ran out of rows since the last call,
    /// and what that source wants done (`stop_run` wins over `stop_user`). Clears the record.
    pub fn take_exhausted(&mut self) -> Option<OnEnd> {
        self.bound.get_mut().exhausted.take()
    }

    /// The value of `column` in the row this user has bound for `source`, binding the next row
    /// of the source when there is none yet (see [`begin_task`](Self::begin_task)).
    ///
    /// An unknown source or column binds nothing and uses up no row. An exhausted source is
    /// recorded for [`take_exhausted`](Self::take_exhausted).
    pub fn csv_field(&self, source: &str, column: &str) -> Result<Field, CsvMiss> {
        let data = self.data.as_ref().ok_or(CsvMiss::NoData)?;
        let index = data.index_of(source).ok_or(CsvMiss::UnknownSource)?;
        let found = data.source(index).ok_or(CsvMiss::UnknownSource)?;
        let column = found.column_index(column).ok_or(CsvMiss::UnknownColumn)?;
        let mut bound = self.bound.lock();
        if bound.slots.len() <= index {
            bound.slots.resize(data.len().max(index + 1), Slot::Unbound);
        }
        if matches!(bound.slots[index], Slot::Unbound) {
            bound.slots[index] = match data.next_row(index) {
                Fetch::Row(row) => Slot::Row(row),
                Fetch::Exhausted => Slot::Exhausted,
            };
        }
        match &bound.slots[index] {
            Slot::Row(row) => Ok(Field::new(row.clone(), column)),
            Slot::Exhausted | Slot::Unbound => {
                let on_end = found.spec().on_end();
                bound.exhausted = Some(match bound.exhausted {
                    Some(OnEnd::StopRun) => OnEnd::StopRun,
                    _ => on_end,
                });
                Err(CsvMiss::Exhausted(on_end))
            }
        }
    }
}

/// How a variable's value is written into text: strings as they are, everything else as JSON.
pub fn value_to_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_scope_shadows_run_scope_and_does_not_leak() {
        let run: Arc<Variables> = Arc::new(
            [
                ("token".to_owned(), json!("shared")),
                ("n".to_owned(), json!(5)),
            ]
            .into_iter()
            .collect(),
        );
        let mut a = UserVariables::new(run.clone());
        let b = UserVariables::new(run);
        a.set("token", json!("mine"));
        assert_eq!(a.get("token"), Some(&json!("mine")));
        assert_eq!(b.get("token"), Some(&json!("shared")));
        assert_eq!(value_to_text(&json!(5)), "5");
        assert_eq!(value_to_text(&json!({"a": 1})), "{\"a\":1}");
    }
}
