//! `${...}` placeholders, parsed once when a run starts and rendered per request.
//!
//! | placeholder | gives |
//! |---|---|
//! | `${var.NAME}`, `${NAME}` | a variable: the user's own scope first, then the run's (see [`crate::variables`]); non-strings as JSON text |
//! | `${env.NAME}` | an environment variable, read at render time |
//! | `${csv.SOURCE.COLUMN}` | a column of the row the user has bound for that CSV source (one row per task, see [`crate::data`]) |
//! | `${faker.METHOD}` | fake data: `name`, `email`, `city`, ... (see [`crate::faker`]) |
//! | `${uuid()}`, `${now()}`, `${randint(a,b)}` | a UUID v4, the local time with its offset, an integer in `[a, b]` (see [`crate::functions`]) |
//! | `$${` | a literal `${` |
//!
//! Prefixes (`var`, `env`, `csv`, `faker`) and function names are case-insensitive; the text
//! between `${` and `}` is trimmed. There is no nesting, and rendered values are never scanned
//! again.
//!
//! A template is parsed once ([`Template::parse`]): each placeholder is classified then, and
//! function arguments and faker method names are checked then. Rendering walks the parsed
//! segments; a template whose output cannot change renders by borrowing, with no allocation.
//!
//! # Placeholders that do not resolve
//!
//! They stay in the text exactly as written, and each is logged once per process (a
//! `tracing` warning, deduplicated by the placeholder's text):
//! - at parse time, the ones that can never resolve: an unknown prefix, function or faker
//!   method, `randint` with the wrong number of arguments, non-integers or `b < a`
//!   ([`Template::unknown_placeholders`] lists them for a dry run);
//! - at render time, the ones that did not resolve this time: a variable or environment
//!   variable that is not set, a CSV source that is missing or exhausted.
//!
//! ```
//! use std::sync::Arc;
//! use load_density_core::template::Template;
//! use load_density_core::variables::{UserVariables, Variables};
//!
//! let mut run = Variables::new();
//! run.insert("base", "http://127.0.0.1:8080".into());
//! let vars = UserVariables::new(Arc::new(run));
//!
//! let url = Template::parse("${var.base}/items/${randint(1,3)}?id=${uuid()}");
//! assert!(url.render(&vars).starts_with("http://127.0.0.1:8080/items/"));
//!
//! let typo = Template::parse("${vra.base} costs $${5}");
//! assert_eq!(typo.render(&vars), "${vra.base} costs ${5}");
//! assert_eq!(typo.unknown_placeholders().count(), 1);
//! ```
//!
//! # JSON values
//!
//! [`JsonTemplate`] renders every string of a JSON value. A string that is exactly one
//! placeholder keeps a JSON type where it has one: `"${var.n}"` gives the variable's value as
//! it is (a number stays a number, `null` stays `null`), and `"${randint(1,5)}"` gives a number.
//! Every other placeholder (`csv`, `env`, `faker`, `uuid()`, `now()`) gives a string.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::data::CsvMiss;
use crate::faker::FakerMethod;
use crate::functions::{self, Call};
use crate::variables::UserVariables;
use crate::warn_once::warn_once;

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `${var.NAME}` or `${NAME}`.
    Var(String),
    /// `${env.NAME}`.
    Env(String),
    /// `${csv.SOURCE.COLUMN}`.
    Csv {
        /// The data source's name.
        source: String,
        /// The column (a header name).
        column: String,
    },
    /// `${faker.METHOD}`.
    Faker(FakerMethod),
    /// `${uuid()}`.
    Uuid,
    /// `${now()}`.
    Now,
    /// `${randint(a,b)}`, `low <= high`.
    RandInt {
        /// The smallest value.
        low: i64,
        /// The largest value.
        high: i64,
    },
    /// Anything else: rendered as written.
    Unknown {
        /// The text between `${` and `}`, trimmed.
        token: String,
        /// Why it is not understood.
        reason: String,
    },
}

/// A placeholder that can never resolve, as listed by [`Template::unknown_placeholders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPlaceholder<'a> {
    raw: &'a str,
    reason: &'a str,
}

impl<'a> UnknownPlaceholder<'a> {
    /// The placeholder as written, `${...}` included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Why it is not understood.
    pub fn reason(&self) -> &'a str {
        self.reason
    }
}

impl fmt::Display for UnknownPlaceholder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.raw, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder {
        placeholder: Placeholder,
        /// The placeholder as written, `${...}` included.
        raw: String,
    },
}

/// A parsed string template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    /// The rendered text when rendering depends on nothing (escapes already applied).
    constant: Option<String>,
}

impl Template {
    /// Parses a template. Never fails: what cannot be understood is kept as written and
    /// logged once (see the module docs).
    pub fn parse(source: &str) -> Self {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(escaped) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = escaped;
            } else if let Some(body) = after.strip_prefix("${") {
                match body.find('}') {
                    Some(end) if end > 0 => {
                        let raw = &after[..end + 3];
                        if !literal.is_empty() {
                            segments.push(Segment::Literal(std::mem::take(&mut literal)));
                        }
                        let placeholder = classify(body[..end].trim());
                        if let Placeholder::Unknown { reason, .. } = &placeholder {
                            warn_once(raw, || {
                                format!("placeholder {raw} will be sent as written: {reason}")
                            });
                        }
                        segments.push(Segment::Placeholder {
                            placeholder,
                            raw: raw.to_owned(),
                        });
                        rest = &body[end + 1..];
                    }
                    _ => {
                        literal.push_str("${");
                        rest = body;
                    }
                }
            } else {
                literal.push('$');
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let constant = segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Placeholder {
                    placeholder: Placeholder::Unknown { .. },
                    raw,
                } => Some(raw.as_str()),
                Segment::Placeholder { .. } => None,
            })
            .collect::<Option<String>>();
        Self {
            source: source.to_owned(),
            segments,
            constant,
        }
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rendered text when rendering depends on nothing: no placeholders, or only unknown
    /// ones (which render as written).
    pub fn as_constant(&self) -> Option<&str> {
        self.constant.as_deref()
    }

    /// The template as pieces in order: `Some(text)` for literal text (escapes applied),
    /// `None` for a placeholder.
    pub fn pieces(&self) -> impl Iterator<Item = Option<&str>> {
        self.segments.iter().map(|s| match s {
            Segment::Literal(text) => Some(text.as_str()),
            Segment::Placeholder { .. } => None,
        })
    }

    /// The placeholders in this template, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.placeholders_with_text()
            .map(|(placeholder, _)| placeholder)
    }

    /// The placeholders with their text as written.
    pub(crate) fn placeholders_with_text(&self) -> impl Iterator<Item = (&Placeholder, &str)> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder { placeholder, raw } => Some((placeholder, raw.as_str())),
            Segment::Literal(_) => None,
        })
    }

    /// The placeholders that can never resolve (unknown prefix, function or faker method, bad
    /// function arguments), in order, with the reason.
    pub fn unknown_placeholders(&self) -> impl Iterator<Item = UnknownPlaceholder<'_>> {
        self.placeholders_with_text()
            .filter_map(|(placeholder, raw)| match placeholder {
                Placeholder::Unknown { reason, .. } => Some(UnknownPlaceholder { raw, reason }),
                _ => None,
            })
    }

    /// When the template is exactly one placeholder that has a JSON type, its value with that
    /// type: a variable's value as stored (`null` included), `randint` as a number. `None`
    /// otherwise (render it as text then).
    pub fn render_value(&self, vars: &UserVariables) -> Option<Value> {
        match self.segments.as_slice() {
            [Segment::Placeholder {
                placeholder: Placeholder::Var(name),
                ..
            }] => vars.get(name).cloned(),
            [Segment::Placeholder {
                placeholder: Placeholder::RandInt { low, high },
                ..
            }] => Some(Value::from(functions::randint(*low, *high))),
            _ => None,
        }
    }

    /// Renders the template against a user's variables.
    pub fn render<'a>(&'a self, vars: &UserVariables) -> Cow<'a, str> {
        if let Some(constant) = &self.constant {
            return Cow::Borrowed(constant);
        }
        let mut out = String::with_capacity(self.source.len() + 32);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder { placeholder, raw } => {
                    write_placeholder(placeholder, raw, vars, &mut out)
                }
            }
        }
        Cow::Owned(out)
    }
}

/// Appends a placeholder's value, or the placeholder as written (reported once) when it has
/// none.
fn write_placeholder(placeholder: &Placeholder, raw: &str, vars: &UserVariables, out: &mut String) {
    match placeholder {
        Placeholder::Var(name) => match vars.get(name) {
            Some(Value::String(text)) => out.push_str(text),
            Some(Value::Null) => unresolved(raw, out, || format!("variable {name:?} is null")),
            None => unresolved(raw, out, || format!("variable {name:?} is not set")),
            // JSON text, written straight into the output.
            Some(other) => {
                let _ = write!(out, "{other}");
            }
        },
        Placeholder::Env(name) if !vars.run().env_allowed(name) => unresolved(raw, out, || {
            format!(
                "environment variable {name:?} is not in this worker's allow-list (--allow-env)"
            )
        }),
        Placeholder::Env(name) => match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(error) => unresolved(raw, out, || {
                format!("environment variable {name:?}: {error}")
            }),
        },
        Placeholder::Csv { source, column } => match vars.csv_field(source, column) {
            Ok(field) => out.push_str(&field),
            Err(miss) => unresolved(raw, out, || match miss {
                CsvMiss::NoData => "the run has no CSV data sources".to_owned(),
                CsvMiss::UnknownSource => format!("no CSV data source is named {source:?}"),
                CsvMiss::UnknownColumn => {
                    format!("CSV data source {source:?} has no column {column:?}")
                }
                CsvMiss::Exhausted(on_end) => {
                    format!("CSV data source {source:?} has no rows left (on_end: {on_end})")
                }
            }),
        },
        Placeholder::Faker(method) => out.push_str(&method.generate()),
        Placeholder::Uuid => functions::write_uuid_v4(out),
        Placeholder::Now => functions::write_now(out),
        Placeholder::RandInt { low, high } => {
            let _ = write!(out, "{}", functions::randint(*low, *high));
        }
        // Reported when parsed.
        Placeholder::Unknown { .. } => out.push_str(raw),
    }
}

fn unresolved(raw: &str, out: &mut String, why: impl FnOnce() -> String) {
    out.push_str(raw);
    warn_once(raw, || {
        format!("placeholder {raw} left as written: {}", why())
    });
}

fn classify(token: &str) -> Placeholder {
    let unknown = |reason: String| Placeholder::Unknown {
        token: token.to_owned(),
        reason,
    };
    if token.is_empty() {
        return unknown("empty placeholder".to_owned());
    }
    if let Some(call) = functions::parse_call(token) {
        return match call {
            Ok(Call::Uuid) => Placeholder::Uuid,
            Ok(Call::Now) => Placeholder::Now,
            Ok(Call::RandInt { low, high }) => Placeholder::RandInt { low, high },
            Err(reason) => unknown(reason),
        };
    }
    let Some((prefix, rest)) = token.split_once('.') else {
        return Placeholder::Var(token.to_owned());
    };
    let prefix = prefix.to_ascii_lowercase();
    match prefix.as_str() {
        "var" | "env" if rest.is_empty() => unknown(format!("${{{prefix}.NAME}} needs a name")),
        "var" => Placeholder::Var(rest.to_owned()),
        "env" => Placeholder::Env(rest.to_owned()),
        "csv" => match rest.split_once('.') {
            Some((source, column)) if !source.is_empty() && !column.is_empty() => {
                Placeholder::Csv {
                    source: source.to_owned(),
                    column: column.to_owned(),
                }
            }
            _ => unknown("expected ${csv.SOURCE.COLUMN}".to_owned()),
        },
        "faker" => match FakerMethod::lookup(rest) {
            Some(method) => Placeholder::Faker(method),
            None => unknown(format!(
                "unknown faker method {rest:?} (known: {})",
                FakerMethod::names().collect::<Vec<_>>().join(", ")
            )),
        },
        _ => unknown(format!(
            "unknown prefix {prefix:?} (expected var, env, csv or faker, or one of the functions uuid(), now(), randint(a,b))"
        )),
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Ok(Template::parse(&source))
    }
}

impl From<&str> for Template {
    fn from(source: &str) -> Self {
        Template::parse(source)
    }
}

/// A JSON value whose strings may hold placeholders (a JSON body, a payload), parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    value: Value,
    node: JsonNode,
    /// The rendered value when rendering depends on nothing.
    constant: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum JsonNode {
    /// A value with no placeholders (escapes already applied).
    Fixed(Value),
    /// A string with placeholders.
    Text(Template),
    Array(Vec<JsonNode>),
    Object(Vec<(String, JsonNode)>),
}

impl JsonNode {
    fn build(value: &Value) -> Self {
        match value {
            Value::String(text) => {
                let template = Template::parse(text);
                if template.placeholders().next().is_some() {
                    JsonNode::Text(template)
                } else {
                    JsonNode::Fixed(Value::String(template.constant.unwrap_or_default()))
                }
            }
            Value::Array(items) => JsonNode::Array(items.iter().map(JsonNode::build).collect()),
            Value::Object(map) => JsonNode::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), JsonNode::build(value)))
                    .collect(),
            ),
            other => JsonNode::Fixed(other.clone()),
        }
    }

    fn is_dynamic(&self) -> bool {
        match self {
            JsonNode::Fixed(_) => false,
            JsonNode::Text(template) => template.as_constant().is_none(),
            JsonNode::Array(items) => items.iter().any(JsonNode::is_dynamic),
            JsonNode::Object(entries) => entries.iter().any(|(_, node)| node.is_dynamic()),
        }
    }

    fn render(&self, vars: &UserVariables) -> Value {
        match self {
            JsonNode::Fixed(value) => value.clone(),
            JsonNode::Text(template) => template
                .render_value(vars)
                .unwrap_or_else(|| Value::String(template.render(vars).into_owned())),
            JsonNode::Array(items) => Value::Array(items.iter().map(|n| n.render(vars)).collect()),
            JsonNode::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, node)| (key.clone(), node.render(vars)))
                    .collect(),
            ),
        }
    }

    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonNode::Fixed(_) => {}
            JsonNode::Text(template) => out.push(template),
            JsonNode::Array(items) => items.iter().for_each(|n| n.templates(out)),
            JsonNode::Object(entries) => entries.iter().for_each(|(_, n)| n.templates(out)),
        }
    }
}

impl JsonTemplate {
    /// Parses every string of a JSON value.
    pub fn new(value: Value) -> Self {
        let node = JsonNode::build(&value);
        let constant = (!node.is_dynamic()).then(|| node.render(&UserVariables::default()));
        Self {
            value,
            node,
            constant,
        }
    }

    /// Whether rendering depends on the user (some string holds a placeholder that is not
    /// unknown).
    pub fn is_dynamic(&self) -> bool {
        self.constant.is_none()
    }

    /// The value as written.
    pub fn source(&self) -> &Value {
        &self.value
    }

    /// The templates of the strings that hold placeholders, in document order.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.node.templates(&mut out);
        out
    }

    /// The placeholders that can never resolve, over every string.
    pub fn unknown_placeholders(&self) -> Vec<UnknownPlaceholder<'_>> {
        self.templates()
            .into_iter()
            .flat_map(Template::unknown_placeholders)
            .collect()
    }

    /// Renders every string. A string that is exactly one placeholder keeps its JSON type
    /// where it has one (see the module docs): `"${var.n}"` with `n = 5` gives the number 5.
    pub fn render<'a>(&'a self, vars: &UserVariables) -> Cow<'a, Value> {
        match &self.constant {
            Some(constant) => Cow::Borrowed(constant),
            None => Cow::Owned(self.node.render(vars)),
        }
    }
}

impl<'de> Deserialize<'de> for JsonTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(JsonTemplate::new(Value::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::Variables;
    use serde_json::json;
    use std::sync::Arc;

    fn vars() -> UserVariables {
        let run: Variables = [
            ("base".to_owned(), json!("http://h")),
            ("n".to_owned(), json!(5)),
        ]
        .into_iter()
        .collect();
        UserVariables::new(Arc::new(run))
    }

    #[test]
    fn renders_vars_env_escapes_and_keeps_unknowns() {
        let v = vars();
        assert_eq!(
            Template::parse("${var.base}/get").render(&v),
            "http://h/get"
        );
        assert_eq!(
            Template::parse("${base}/x?n=${ n }").render(&v),
            "http://h/x?n=5"
        );
        assert_eq!(Template::parse("$${var.base}").render(&v), "${var.base}");
        assert_eq!(
            Template::parse("${var.missing}!").render(&v),
            "${var.missing}!"
        );
        assert_eq!(Template::parse("${nope.x}").render(&v), "${nope.x}");
        assert_eq!(Template::parse("cost $5 {x}").render(&v), "cost $5 {x}");
        std::env::set_var("LD_TEMPLATE_TEST", "e");
        assert_eq!(Template::parse("${env.LD_TEMPLATE_TEST}").render(&v), "e");
        // A worker's allow-list: only the names listed are read.
        let mut restricted = Variables::new();
        restricted.restrict_env(["LD_TEMPLATE_TEST".to_owned()]);
        let restricted = UserVariables::new(Arc::new(restricted));
        std::env::set_var("LD_TEMPLATE_TEST_SECRET", "hunter2");
        assert_eq!(
            Template::parse("${env.LD_TEMPLATE_TEST}").render(&restricted),
            "e"
        );
        assert_eq!(
            Template::parse("${env.LD_TEMPLATE_TEST_SECRET}").render(&restricted),
            "${env.LD_TEMPLATE_TEST_SECRET}"
        );
        assert!(Template::parse("plain").as_constant().is_some());
        assert!(Template::parse("${x}").as_constant().is_none());
    }

    #[test]
    fn json_single_placeholder_keeps_its_type() {
        let v = vars();
        let t = JsonTemplate::new(json!({"id": "${var.n}", "s": "n=${var.n}", "k": [true]}));
        assert_eq!(
            t.render(&v).into_owned(),
            json!({"id": 5, "s": "n=5", "k": [true]})
        );
    }
}
