//! Assertions: checks on one response, compiled once per task.

use std::fmt::Write as _;

use regex::Regex;
use serde_json::Value;

use crate::checks::fields::Fields;
use crate::checks::{clip, Input};
use crate::json_path::{json_equal, JsonPath};
use crate::task::{kind, PlanError};
use crate::template::{JsonTemplate, Template};
use crate::variables::UserVariables;

/// The assertion types, as written in `"type"`.
pub(crate) const TYPES: &[&str] = &[
    "status_code",
    "contains",
    "not_contains",
    "json_path",
    "header",
    "regex",
    "max_response_time_ms",
];

/// The expected status of a `status_code` assertion.
#[derive(Debug, Clone)]
pub(crate) enum ExpectedStatus {
    /// A numeric code.
    Code(u16),
    /// A protocol's status name (a gRPC code name such as `NOT_FOUND`), compared with
    /// [`Response::status_name`](crate::Response::status_name).
    Name(String),
    /// A placeholder: rendered per response, then read as a code or a name.
    Dynamic(Template),
}

/// The limit of a `max_response_time_ms` assertion.
#[derive(Debug, Clone)]
pub(crate) enum Limit {
    /// Milliseconds, and the number as written.
    Fixed(f64, String),
    /// A placeholder, rendered per response.
    Dynamic(Template),
}

/// One compiled assertion.
#[derive(Debug, Clone)]
pub(crate) enum Assertion {
    /// `status_code`.
    Status(ExpectedStatus),
    /// `contains` (`negate == false`) and `not_contains`.
    Contains { needle: Template, negate: bool },
    /// `json_path`.
    JsonPath { path: JsonPath, value: JsonTemplate },
    /// `header`.
    Header { name: String, value: Template },
    /// `regex`.
    Regex(Regex),
    /// `max_response_time_ms`.
    MaxTime(Limit),
}

impl Assertion {
    /// Compiles `assertions[position]` of task `index`.
    pub(crate) fn compile(index: usize, position: usize, value: &Value) -> Result<Self, PlanError> {
        let mut fields = Fields::new(
            index,
            format!("assertions[{position}]"),
            value,
            "an assertion",
        )?;
        let kind_name = fields.string("type")?.to_ascii_lowercase();
        let assertion = match kind_name.as_str() {
            "status_code" => Self::Status(compile_status(&mut fields)?),
            "contains" | "not_contains" => {
                let needle = fields.text("value")?;
                if needle.as_constant() == Some("") {
                    return Err(fields.error("value", "\"value\" must not be empty"));
                }
                Self::Contains {
                    needle,
                    negate: kind_name == "not_contains",
                }
            }
            "json_path" => {
                let path = match fields.required("path")? {
                    Value::String(path) => JsonPath::parse(path),
                    other => {
                        return Err(fields.error(
                            "path",
                            format!("\"path\" must be a string, got {}", kind(other)),
                        ))
                    }
                };
                let value = fields.present("value")?;
                Self::JsonPath {
                    path,
                    value: JsonTemplate::new(value.clone()),
                }
            }
            "header" => Self::Header {
                name: fields.string("name")?.to_owned(),
                value: fields.text("value")?,
            },
            "regex" => {
                let pattern = fields.string("pattern")?;
                let regex = Regex::new(pattern).map_err(|error| {
                    fields.error("pattern", format!("invalid regex {pattern:?}: {error}"))
                })?;
                Self::Regex(regex)
            }
            "max_response_time_ms" => Self::MaxTime(compile_limit(&mut fields)?),
            other => {
                return Err(fields.error(
                    "type",
                    format!(
                        "unknown assertion type {other:?} (expected one of {})",
                        TYPES.join(", ")
                    ),
                ))
            }
        };
        fields.finish()?;
        Ok(assertion)
    }

    /// Whether this assertion reads the body.
    pub(crate) fn needs_body(&self) -> bool {
        matches!(
            self,
            Self::Contains { .. } | Self::JsonPath { .. } | Self::Regex(_)
        )
    }

    /// Whether this is a `status_code` assertion.
    pub(crate) fn is_status(&self) -> bool {
        matches!(self, Self::Status(_))
    }

    /// Checks one response: `Err(message)` when it fails.
    pub(crate) fn check(&self, input: &Input<'_>, vars: &UserVariables) -> Result<(), String> {
        match self {
            Self::Status(expected) => check_status(expected, input, vars),
            Self::Contains { needle, negate } => {
                let needle = needle.render(vars);
                let found = input.text().contains(needle.as_ref());
                match (found, negate) {
                    (true, false) | (false, true) => Ok(()),
                    (false, false) => Err(format!("body does not contain '{}'", clip(&needle))),
                    (true, true) => Err(format!("body unexpectedly contains '{}'", clip(&needle))),
                }
            }
            Self::JsonPath { path, value } => {
                let expected = value.render(vars);
                let actual = input
                    .json()
                    .and_then(|doc| path.lookup(doc))
                    .unwrap_or(&Value::Null);
                if json_equal(actual, &expected) {
                    Ok(())
                } else {
                    Err(format!(
                        "json_path {path} expected {}, got {}",
                        clip(&expected.to_string()),
                        clip(&actual.to_string())
                    ))
                }
            }
            Self::Header { name, value } => {
                let expected = value.render(vars);
                match input.response.header(name) {
                    Some(actual) if actual == expected.as_ref() => Ok(()),
                    actual => Err(format!(
                        "header {name} expected {}, got {}",
                        quoted(&expected),
                        actual.map_or_else(|| "none".to_owned(), quoted)
                    )),
                }
            }
            Self::Regex(regex) => {
                if regex.is_match(input.text()) {
                    Ok(())
                } else {
                    Err(format!(
                        "body does not match regex '{}'",
                        clip(regex.as_str())
                    ))
                }
            }
            Self::MaxTime(limit) => {
                let (limit_ms, shown) = match limit {
                    Limit::Fixed(ms, shown) => (*ms, std::borrow::Cow::Borrowed(shown.as_str())),
                    Limit::Dynamic(template) => {
                        let text = template.render(vars);
                        match text.trim().parse::<f64>() {
                            Ok(ms) if ms.is_finite() => (ms, text),
                            _ => {
                                return Err(format!(
                                    "max_response_time_ms value '{}' is not a number",
                                    clip(&text)
                                ))
                            }
                        }
                    }
                };
                let elapsed_ms = input.response_time.as_secs_f64() * 1000.0;
                if elapsed_ms <= limit_ms {
                    Ok(())
                } else {
                    Err(format!(
                        "response time {elapsed_ms:.1} ms exceeds {shown} ms"
                    ))
                }
            }
        }
    }
}

fn compile_status(fields: &mut Fields<'_>) -> Result<ExpectedStatus, PlanError> {
    const SHAPE: &str = "a whole number from 0 to 65535, a numeric string, or a status name";
    match fields.required("value")? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|code| u16::try_from(code).ok())
            .map(ExpectedStatus::Code)
            .ok_or_else(|| fields.error("value", format!("\"value\" must be {SHAPE}, got {n}"))),
        Value::String(s) => {
            let template = Template::parse(s);
            let Some(text) = template.as_constant() else {
                return Ok(ExpectedStatus::Dynamic(template));
            };
            let text = text.trim();
            if let Ok(code) = text.parse::<u16>() {
                Ok(ExpectedStatus::Code(code))
            } else if text.is_empty() || text.parse::<f64>().is_ok() {
                Err(fields.error("value", format!("\"value\" must be {SHAPE}, got {s:?}")))
            } else {
                Ok(ExpectedStatus::Name(text.to_owned()))
            }
        }
        other => Err(fields.error(
            "value",
            format!("\"value\" must be {SHAPE}, got {}", kind(other)),
        )),
    }
}

fn compile_limit(fields: &mut Fields<'_>) -> Result<Limit, PlanError> {
    const SHAPE: &str = "a number of milliseconds greater than 0";
    let positive = |ms: f64| ms.is_finite() && ms > 0.0;
    match fields.required("value")? {
        Value::Number(n) => match n.as_f64() {
            Some(ms) if positive(ms) => Ok(Limit::Fixed(ms, n.to_string())),
            _ => Err(fields.error("value", format!("\"value\" must be {SHAPE}, got {n}"))),
        },
        Value::String(s) => {
            let template = Template::parse(s);
            let Some(text) = template.as_constant() else {
                return Ok(Limit::Dynamic(template));
            };
            match text.trim().parse::<f64>() {
                Ok(ms) if positive(ms) => Ok(Limit::Fixed(ms, text.trim().to_owned())),
                _ => Err(fields.error("value", format!("\"value\" must be {SHAPE}, got {s:?}"))),
            }
        }
        other => Err(fields.error(
            "value",
            format!("\"value\" must be {SHAPE}, got {}", kind(other)),
        )),
    }
}

fn check_status(
    expected: &ExpectedStatus,
    input: &Input<'_>,
    vars: &UserVariables,
) -> Result<(), String> {
    let response = input.response;
    let by_name = |name: &str| {
        response
            .status_name()
            .is_some_and(|actual| actual.eq_ignore_ascii_case(name))
    };
    let rendered;
    let (passed, shown, named) = match expected {
        ExpectedStatus::Code(code) => (response.status() == Some(*code), code.to_string(), false),
        ExpectedStatus::Name(name) => (by_name(name), name.clone(), true),
        ExpectedStatus::Dynamic(template) => {
            rendered = template.render(vars);
            let text = rendered.trim();
            match text.parse::<u16>() {
                Ok(code) => (response.status() == Some(code), code.to_string(), false),
                Err(_) => (by_name(text), text.to_owned(), true),
            }
        }
    };
    if passed {
        return Ok(());
    }
    let mut message = format!("status_code expected {}, got ", clip(&shown));
    match (
        named.then(|| response.status_name()).flatten(),
        response.status(),
    ) {
        (Some(name), _) => message.push_str(name),
        (None, Some(code)) => {
            let _ = write!(message, "{code}");
        }
        (None, None) => message.push_str("none"),
    }
    Err(message)
}

/// A string in double quotes, JSON-escaped and clipped.
fn quoted(text: &str) -> String {
    clip(&Value::String(text.to_owned()).to_string()).into_owned()
}
