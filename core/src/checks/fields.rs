//! Reading the fields of one task-language object (an assertion, an extractor) with errors
//! that name the task index and the key.

use serde_json::{Map, Value};

use crate::task::{kind, PlanError};
use crate::template::Template;

/// The fields of one object, at `path` inside task `index`. Keys are read once each;
/// [`Fields::finish`] rejects the keys nobody read.
pub(crate) struct Fields<'a> {
    index: usize,
    path: String,
    map: &'a Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The object at `path`, or an error when `value` is not an object.
    pub(crate) fn new(
        index: usize,
        path: String,
        value: &'a Value,
        what: &str,
    ) -> Result<Self, PlanError> {
        match value {
            Value::Object(map) => Ok(Self {
                index,
                path,
                map,
                read: Vec::new(),
            }),
            other => Err(PlanError::task(
                index,
                path,
                format!("{what} must be an object, got {}", kind(other)),
            )),
        }
    }

    /// An error about `key` of this object.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> PlanError {
        PlanError::task(self.index, format!("{}.{key}", self.path), message)
    }

    /// A key that may be absent; `null` counts as absent.
    pub(crate) fn optional(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A key that must be present and not `null`.
    pub(crate) fn required(&mut self, key: &'static str) -> Result<&'a Value, PlanError> {
        self.optional(key)
            .ok_or_else(|| self.error(key, format!("\"{key}\" is required")))
    }

    /// A key that must be present; `null` is a value here.
    pub(crate) fn present(&mut self, key: &'static str) -> Result<&'a Value, PlanError> {
        self.read.push(key);
        self.map
            .get(key)
            .ok_or_else(|| self.error(key, format!("\"{key}\" is required")))
    }

    /// A required non-empty string.
    pub(crate) fn string(&mut self, key: &'static str) -> Result<&'a str, PlanError> {
        match self.required(key)? {
            Value::String(s) if !s.is_empty() => Ok(s),
            Value::String(_) => Err(self.error(key, format!("\"{key}\" must not be empty"))),
            other => Err(self.error(
                key,
                format!("\"{key}\" must be a string, got {}", kind(other)),
            )),
        }
    }

    /// A required text value: a string (which may hold placeholders), or a number or boolean
    /// written as JSON text.
    pub(crate) fn text(&mut self, key: &'static str) -> Result<Template, PlanError> {
        match self.required(key)? {
            Value::String(s) => Ok(Template::parse(s)),
            Value::Number(n) => Ok(Template::parse(&n.to_string())),
            Value::Bool(b) => Ok(Template::parse(&b.to_string())),
            other => Err(self.error(
                key,
                format!(
                    "\"{key}\" must be a string, number or boolean, got {}",
                    kind(other)
                ),
            )),
        }
    }

    /// Rejects every key that was not read, unless its value is `null` (a `null` value means
    /// "not given", as for task keys).
    pub(crate) fn finish(self) -> Result<(), PlanError> {
        for (key, value) in self.map {
            if !value.is_null() && !self.read.contains(&key.as_str()) {
                let mut known = self.read.clone();
                known.sort_unstable();
                return Err(self.error(
                    key,
                    format!(
                        "unknown key \"{key}\" (expected {})",
                        known
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The items of a list-valued task key (`assertions`, `extract`).
pub(crate) fn list<'a>(
    index: usize,
    key: &str,
    value: &'a Value,
) -> Result<&'a [Value], PlanError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(PlanError::task(
            index,
            key,
            format!("\"{key}\" must be a list of objects, got {}", kind(other)),
        )),
    }
}
