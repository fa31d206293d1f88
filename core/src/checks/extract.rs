//! Extractors: values taken from a response into the user's own variables.

use regex::Regex;
use serde_json::Value;

use crate::checks::fields::Fields;
use crate::checks::Input;
use crate::json_path::JsonPath;
use crate::task::{kind, PlanError};
use crate::variables::UserVariables;

/// The extractor sources, as written in `"from"`.
pub(crate) const SOURCES: &[&str] = &["json_path", "header", "status_code", "regex"];

/// Where an extractor reads its value.
#[derive(Debug, Clone)]
enum Source {
    /// A dot path into the JSON body; the value keeps its JSON type.
    JsonPath(JsonPath),
    /// A header value, as a string.
    Header(String),
    /// The status code, as a number.
    Status,
    /// The first capture group of a regex over the body, as a string.
    Regex(Regex),
}

/// One compiled extractor.
#[derive(Debug, Clone)]
pub(crate) struct Extractor {
    var: String,
    source: Source,
}

impl Extractor {
    /// Compiles `extract[position]` of task `index`.
    pub(crate) fn compile(index: usize, position: usize, value: &Value) -> Result<Self, PlanError> {
        let mut fields = Fields::new(index, format!("extract[{position}]"), value, "an extractor")?;
        let var = fields.string("var")?;
        if var.contains(['$', '{', '}']) || var.chars().any(char::is_whitespace) {
            return Err(fields.error(
                "var",
                format!(
                    "\"var\" must be a plain variable name (read later as ${{var.NAME}}), got {var:?}"
                ),
            ));
        }
        let from = match fields.optional("from") {
            None => "json_path".to_owned(),
            Some(Value::String(from)) => from.to_ascii_lowercase(),
            Some(other) => {
                return Err(fields.error(
                    "from",
                    format!("\"from\" must be a string, got {}", kind(other)),
                ))
            }
        };
        let source = match from.as_str() {
            "json_path" => match fields.required("path")? {
                Value::String(path) => Source::JsonPath(JsonPath::parse(path)),
                other => {
                    return Err(fields.error(
                        "path",
                        format!("\"path\" must be a string, got {}", kind(other)),
                    ))
                }
            },
            "header" => Source::Header(fields.string("name")?.to_owned()),
            "status_code" => Source::Status,
            "regex" => {
                let pattern = fields.string("pattern")?;
                let regex = Regex::new(pattern).map_err(|error| {
                    fields.error("pattern", format!("invalid regex {pattern:?}: {error}"))
                })?;
                // `captures_len` counts the implicit whole-match group 0.
                if regex.captures_len() < 2 {
                    return Err(fields.error(
                        "pattern",
                        format!(
                            "the regex {pattern:?} needs a capture group: the text of group 1 is \
                             the value, e.g. \"token=(\\\\w+)\""
                        ),
                    ));
                }
                Source::Regex(regex)
            }
            other => {
                return Err(fields.error(
                    "from",
                    format!(
                        "unknown extractor source {other:?} (expected one of {})",
                        SOURCES.join(", ")
                    ),
                ))
            }
        };
        fields.finish()?;
        Ok(Self {
            var: var.to_owned(),
            source,
        })
    }

    /// Whether this extractor reads the body.
    pub(crate) fn needs_body(&self) -> bool {
        matches!(self.source, Source::JsonPath(_) | Source::Regex(_))
    }

    /// The value this extractor finds in a response, if any. A JSON `null` counts as nothing.
    pub(crate) fn value(&self, input: &Input<'_>) -> Option<Value> {
        match &self.source {
            Source::JsonPath(path) => input
                .json()
                .and_then(|doc| path.lookup(doc))
                .filter(|value| !value.is_null())
                .cloned(),
            Source::Header(name) => input
                .response
                .header(name)
                .map(|value| Value::String(value.to_owned())),
            Source::Status => input.response.status().map(Value::from),
            Source::Regex(regex) => regex
                .captures(input.text())
                .and_then(|captures| captures.get(1))
                .map(|group| Value::String(group.as_str().to_owned())),
        }
    }

    /// Writes the value into the user's own scope; leaves the variable as it was when there is
    /// no value.
    pub(crate) fn apply(&self, input: &Input<'_>, vars: &mut UserVariables) {
        if let Some(value) = self.value(input) {
            vars.set(self.var.as_str(), value);
        }
    }
}
