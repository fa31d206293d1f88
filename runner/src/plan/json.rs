//! Reading JSON objects with errors that name their JSON path.

use load_density_core::task::options::saturating_seconds;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::RunError;

/// An error at `path`: `"<path>: <message>"`.
pub(crate) fn invalid(path: &str, message: impl std::fmt::Display) -> RunError {
    RunError::Config(format!("{path}: {message}"))
}

/// `path.key`, or `key` at the top level.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON object being read, with its path.
pub(crate) struct Object<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// `value` at `path`, which must be an object.
    pub(crate) fn new(path: impl Into<String>, value: &'a Value) -> Result<Self, RunError> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Self { path, map }),
            other => Err(invalid(&path, format!("must be an object, got {other}"))),
        }
    }

    /// The path of `key` in this object.
    pub(crate) fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// This object's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The value of `key`, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Rejects keys not in `allowed`, naming the first unknown one and the allowed ones.
    pub(crate) fn only(&self, allowed: &[&str], what: &str) -> Result<(), RunError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(invalid(
                &self.at(unknown),
                format!(
                    "{unknown:?} does not belong to {what} (its keys: {})",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// A string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, RunError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                &self.at(key),
                format!("must be a string, got {other}"),
            )),
        }
    }

    /// A finite number.
    pub(crate) fn number(&self, key: &str) -> Result<Option<f64>, RunError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| invalid(&self.at(key), format!("must be a number, got {value}"))),
        }
    }

    /// A number > 0.
    pub(crate) fn positive(&self, key: &str) -> Result<Option<f64>, RunError> {
        match self.number(key)? {
            Some(n) if n <= 0.0 => Err(invalid(&self.at(key), format!("must be > 0, got {n}"))),
            other => Ok(other),
        }
    }

    /// A number >= 0.
    pub(crate) fn non_negative(&self, key: &str) -> Result<Option<f64>, RunError> {
        match self.number(key)? {
            Some(n) if n < 0.0 => Err(invalid(&self.at(key), format!("must be >= 0, got {n}"))),
            other => Ok(other),
        }
    }

    /// Seconds > 0.
    pub(crate) fn positive_seconds(&self, key: &str) -> Result<Option<Duration>, RunError> {
        Ok(self.positive(key)?.map(saturating_seconds))
    }

    /// Seconds >= 0.
    pub(crate) fn seconds(&self, key: &str) -> Result<Option<Duration>, RunError> {
        Ok(self.non_negative(key)?.map(saturating_seconds))
    }

    /// A whole number >= 0.
    pub(crate) fn count(&self, key: &str) -> Result<Option<u64>, RunError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                invalid(
                    &self.at(key),
                    format!("must be a whole number >= 0, got {value}"),
                )
            }),
        }
    }

    /// A whole number > 0.
    pub(crate) fn positive_count(&self, key: &str) -> Result<Option<u64>, RunError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                invalid(
                    &self.at(key),
                    format!("must be a positive whole number, got {value}"),
                )
            }),
        }
    }

    /// A list.
    pub(crate) fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, RunError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(invalid(
                &self.at(key),
                format!("must be a list, got {other}"),
            )),
        }
    }

    /// `key`, which must be present.
    pub(crate) fn required<T>(
        &self,
        key: &str,
        value: Option<T>,
        what: &str,
    ) -> Result<T, RunError> {
        value.ok_or_else(|| invalid(&self.at(key), format!("is required ({what})")))
    }
}
