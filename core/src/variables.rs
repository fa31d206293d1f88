//! Variable scopes.
//!
//! A run has one set of run-level [`Variables`] (from `variables` and `LD_register_variable`).
//! Each simulated user layers its own scope on top ([`UserVariables`]): extractors write there,
//! so one user's token never leaks to another. Lookup order: the user's own scope, then the
//! run's variables.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// Run-level variables: read-only while a run is going.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    values: HashMap<String, Value>,
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
        }
    }
}

/// One user's view of variables: its own scope over the run's.
#[derive(Debug, Clone, Default)]
pub struct UserVariables {
    run: Arc<Variables>,
    own: HashMap<String, Value>,
}

impl UserVariables {
    /// A user scope over the given run variables.
    pub fn new(run: Arc<Variables>) -> Self {
        Self {
            run,
            own: HashMap::new(),
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
