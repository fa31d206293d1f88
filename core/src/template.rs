//! `${...}` placeholders, parsed once when a run starts and rendered per request.
//!
//! Supported now: `${var.NAME}` and bare `${NAME}` (a variable, the user's scope first),
//! `${env.NAME}` (an environment variable, read at render time). `$${` writes a literal `${`. A placeholder that cannot
//! be resolved stays in the text as written.
//!
//! A template without placeholders renders by borrowing, with no allocation.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::variables::{value_to_text, UserVariables};

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `${var.NAME}` or `${NAME}`.
    Var(String),
    /// `${env.NAME}`.
    Env(String),
    /// Anything else: kept as written (`raw` is the whole `${...}`).
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder {
        placeholder: Placeholder,
        raw: String,
    },
}

/// A parsed string template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    /// The rendered text when there are no placeholders (escapes already applied).
    constant: Option<String>,
}

impl Template {
    /// Parses a template.
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
                        segments.push(Segment::Placeholder {
                            placeholder: classify(body[..end].trim()),
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
        let constant = if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            Some(
                segments
                    .iter()
                    .map(|s| match s {
                        Segment::Literal(l) => l.as_str(),
                        Segment::Placeholder { .. } => "",
                    })
                    .collect(),
            )
        } else {
            None
        };
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

    /// The rendered text when the template has no placeholders.
    pub fn as_constant(&self) -> Option<&str> {
        self.constant.as_deref()
    }

    /// The placeholders in this template.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder { placeholder, .. } => Some(placeholder),
            Segment::Literal(_) => None,
        })
    }

    /// When the template is exactly one placeholder that resolves to a variable, that value
    /// with its JSON type.
    pub fn render_value(&self, vars: &UserVariables) -> Option<Value> {
        match self.segments.as_slice() {
            [Segment::Placeholder {
                placeholder: Placeholder::Var(name),
                ..
            }] => vars.get(name).cloned(),
            _ => None,
        }
    }

    /// Renders the template against a user's variables.
    pub fn render<'a>(&'a self, vars: &UserVariables) -> Cow<'a, str> {
        if let Some(constant) = &self.constant {
            return Cow::Borrowed(constant);
        }
        let mut out = String::with_capacity(self.source.len() + 16);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder { placeholder, raw } => match placeholder {
                    Placeholder::Var(name) => match vars.get(name) {
                        Some(Value::Null) | None => out.push_str(raw),
                        Some(value) => out.push_str(&value_to_text(value)),
                    },
                    Placeholder::Env(name) => match std::env::var(name) {
                        Ok(value) => out.push_str(&value),
                        Err(_) => out.push_str(raw),
                    },
                    Placeholder::Unknown(_) => out.push_str(raw),
                },
            }
        }
        Cow::Owned(out)
    }
}

fn classify(token: &str) -> Placeholder {
    match token.split_once('.') {
        None => Placeholder::Var(token.to_owned()),
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("var") => {
            Placeholder::Var(rest.to_owned())
        }
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("env") => {
            Placeholder::Env(rest.to_owned())
        }
        Some(_) => Placeholder::Unknown(token.to_owned()),
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

/// A JSON value whose strings may hold placeholders (a JSON body, a payload).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    value: Value,
    dynamic: bool,
}

impl JsonTemplate {
    /// Wraps a JSON value.
    pub fn new(value: Value) -> Self {
        let dynamic = has_placeholder(&value);
        Self { value, dynamic }
    }

    /// Whether any string in the value holds a placeholder.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The value as written.
    pub fn source(&self) -> &Value {
        &self.value
    }

    /// Renders every string. A string that is exactly one variable placeholder keeps the
    /// variable's JSON type (`"${var.n}"` with `n = 5` gives the number 5).
    pub fn render<'a>(&'a self, vars: &UserVariables) -> Cow<'a, Value> {
        if !self.dynamic {
            return Cow::Borrowed(&self.value);
        }
        Cow::Owned(render_value(&self.value, vars))
    }
}

impl<'de> Deserialize<'de> for JsonTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(JsonTemplate::new(Value::deserialize(deserializer)?))
    }
}

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('$'),
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(map) => map.values().any(has_placeholder),
        _ => false,
    }
}

fn render_value(value: &Value, vars: &UserVariables) -> Value {
    match value {
        Value::String(s) => {
            let template = Template::parse(s);
            template
                .render_value(vars)
                .unwrap_or_else(|| Value::String(template.render(vars).into_owned()))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_value(v, vars)))
                .collect(),
        ),
        other => other.clone(),
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
