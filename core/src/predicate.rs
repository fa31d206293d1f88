//! Task conditions: `run_if` and `skip_if`, compiled once and evaluated with the user's
//! variables each time the task comes up, in every scenario mode.
//!
//! A task runs when its `run_if` (if any) is true and its `skip_if` (if any) is false.
//!
//! | form | true when |
//! |---|---|
//! | `true` / `false` | it is `true` |
//! | a number | it is not `0` |
//! | a string (usually a placeholder, `"${var.logged_in}"`) | the rendered value is [`truthy`] |
//! | `{"equals": [a, b]}` | `a` and `b` are equal after rendering ([`loose_equal`]) |
//! | `{"not_equals": [a, b]}` | they are not |
//! | `{"in": [x, container]}` | `container` is a string containing `x` as text, a list with an element equal to `x`, or an object with the key `x` |
//! | `{"truthy": v}` | the rendered `v` is truthy |
//!
//! Operator names are matched case-insensitively; a condition object has exactly one key.
//!
//! **Missing variables.** A string whose placeholders do not all resolve (a variable that is
//! missing or `null`, an unset environment variable) renders as `null`, so it is false, equals
//! only `null`, and is in nothing. A string that is exactly one `${var.NAME}` placeholder keeps
//! the variable's JSON type (`{"equals": ["${var.count}", 3]}` compares numbers).
//!
//! ```
//! use load_density_core::predicate::Predicate;
//! use load_density_core::variables::UserVariables;
//! use serde_json::json;
//!
//! let when_admin = Predicate::compile(0, "run_if", &json!({"equals": ["${var.role}", "admin"]}))?;
//! let mut vars = UserVariables::default();
//! assert!(!when_admin.evaluate(&vars));
//! vars.set("role", json!("admin"));
//! assert!(when_admin.evaluate(&vars));
//!
//! let logged_in = Predicate::compile(0, "run_if", &json!("${var.token}"))?;
//! assert!(!logged_in.evaluate(&vars));
//! vars.set("token", json!("abc"));
//! assert!(logged_in.evaluate(&vars));
//! # Ok::<(), load_density_core::PlanError>(())
//! ```

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::json_path::numbers_equal;
use crate::task::{kind, PlanError};
use crate::template::{Placeholder, Template};
use crate::variables::{value_to_text, UserVariables};

/// The condition operators, as written.
const OPERATORS: &str = "equals, not_equals, in or truthy";

/// A compiled `run_if` / `skip_if` condition.
#[derive(Debug, Clone)]
pub struct Predicate {
    form: Form,
}

#[derive(Debug, Clone)]
enum Form {
    Const(bool),
    Truthy(Operand),
    Equals(Operand, Operand),
    NotEquals(Operand, Operand),
    In(Operand, Operand),
}

/// A value that may hold placeholders, split so that constant parts are rendered once.
#[derive(Debug, Clone)]
enum Operand {
    Const(Value),
    Text { template: Template, single: bool },
    List(Vec<Operand>),
    Map(Vec<(String, Operand)>),
}

impl Predicate {
    /// Compiles the condition under `key` (`"run_if"` or `"skip_if"`) of task `index`.
    /// A wrong shape is an error naming the task and the key.
    pub fn compile(index: usize, key: &str, value: &Value) -> Result<Self, PlanError> {
        let form = match value {
            Value::Bool(b) => Form::Const(*b),
            Value::Number(_) => Form::Const(truthy(value)),
            Value::String(_) => Form::Truthy(Operand::compile(value)),
            Value::Object(map) => compile_operator(index, key, map)?,
            other => {
                return Err(PlanError::task(
                    index,
                    key,
                    format!(
                        "a condition must be a boolean, a number, a string or an object with one \
                         of {OPERATORS}, got {}",
                        kind(other)
                    ),
                ))
            }
        };
        let constant = match &form {
            Form::Const(_) => None,
            Form::Truthy(a) => a.is_const().then_some(()),
            Form::Equals(a, b) | Form::NotEquals(a, b) | Form::In(a, b) => {
                (a.is_const() && b.is_const()).then_some(())
            }
        };
        let predicate = Self { form };
        Ok(match constant {
            Some(()) => Self {
                form: Form::Const(predicate.evaluate(&UserVariables::default())),
            },
            None => predicate,
        })
    }

    /// Whether the condition holds for a user with these variables.
    pub fn evaluate(&self, vars: &UserVariables) -> bool {
        match &self.form {
            Form::Const(b) => *b,
            Form::Truthy(a) => truthy(&a.render(vars)),
            Form::Equals(a, b) => loose_equal(&a.render(vars), &b.render(vars)),
            Form::NotEquals(a, b) => !loose_equal(&a.render(vars), &b.render(vars)),
            Form::In(x, container) => contains(&container.render(vars), &x.render(vars)),
        }
    }
}

fn compile_operator(index: usize, key: &str, map: &Map<String, Value>) -> Result<Form, PlanError> {
    let mut entries = map.iter();
    let (Some((operator, argument)), None) = (entries.next(), entries.next()) else {
        return Err(PlanError::task(
            index,
            key,
            format!(
                "a condition object must have exactly one key ({OPERATORS}), got {}",
                if map.is_empty() {
                    "none".to_owned()
                } else {
                    map.keys()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    };
    let path = format!("{key}.{operator}");
    let pair = || match argument {
        Value::Array(items) if items.len() == 2 => {
            Ok((Operand::compile(&items[0]), Operand::compile(&items[1])))
        }
        other => Err(PlanError::task(
            index,
            path.clone(),
            format!(
                "\"{operator}\" takes a list of two values, got {}",
                match other {
                    Value::Array(items) => format!("a list of {}", items.len()),
                    other => kind(other).to_owned(),
                }
            ),
        )),
    };
    match operator.to_ascii_lowercase().as_str() {
        "equals" => pair().map(|(a, b)| Form::Equals(a, b)),
        "not_equals" => pair().map(|(a, b)| Form::NotEquals(a, b)),
        "in" => {
            let (x, container) = pair()?;
            if let Operand::Const(value @ (Value::Bool(_) | Value::Number(_) | Value::Null)) =
                &container
            {
                return Err(PlanError::task(
                    index,
                    path,
                    format!(
                        "the container of \"in\" must be a string, a list, an object or a \
                         placeholder, got {}",
                        kind(value)
                    ),
                ));
            }
            Ok(Form::In(x, container))
        }
        "truthy" => Ok(Form::Truthy(Operand::compile(argument))),
        other => Err(PlanError::task(
            index,
            path,
            format!("unknown condition operator {other:?} (expected {OPERATORS})"),
        )),
    }
}

impl Operand {
    fn compile(value: &Value) -> Self {
        match value {
            Value::String(s) => {
                let template = Template::parse(s);
                // A constant with unknown placeholders left in it is unresolved: null.
                match template.as_constant() {
                    Some(_) if template.placeholders().next().is_some() => Self::Const(Value::Null),
                    Some(text) => Self::Const(Value::String(text.to_owned())),
                    None => Self::Text {
                        single: is_single_placeholder(&template),
                        template,
                    },
                }
            }
            Value::Array(items) => {
                let items: Vec<_> = items.iter().map(Self::compile).collect();
                if items.iter().all(Self::is_const) {
                    Self::Const(value.clone())
                } else {
                    Self::List(items)
                }
            }
            Value::Object(map) => {
                let entries: Vec<_> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Self::compile(v)))
                    .collect();
                if entries.iter().all(|(_, v)| v.is_const()) {
                    Self::Const(value.clone())
                } else {
                    Self::Map(entries)
                }
            }
            other => Self::Const(other.clone()),
        }
    }

    fn is_const(&self) -> bool {
        matches!(self, Self::Const(_))
    }

    fn render(&self, vars: &UserVariables) -> Cow<'_, Value> {
        match self {
            Self::Const(value) => Cow::Borrowed(value),
            Self::Text { template, single } => Cow::Owned(render_text(template, *single, vars)),
            Self::List(items) => Cow::Owned(Value::Array(
                items.iter().map(|i| i.render(vars).into_owned()).collect(),
            )),
            Self::Map(entries) => Cow::Owned(Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(vars).into_owned()))
                    .collect(),
            )),
        }
    }
}

/// Whether the template is one placeholder and nothing else (`"${var.x}"`).
fn is_single_placeholder(template: &Template) -> bool {
    let source = template.source();
    template.placeholders().count() == 1
        && source.starts_with("${")
        && source.find('}') == Some(source.len() - 1)
}

/// Renders a string operand: `null` unless every placeholder resolves; a lone variable
/// placeholder keeps its JSON type.
fn render_text(template: &Template, single: bool, vars: &UserVariables) -> Value {
    let resolved = template
        .placeholders()
        .all(|placeholder| match placeholder {
            Placeholder::Var(name) => vars.get(name).is_some_and(|value| !value.is_null()),
            Placeholder::Env(name) => std::env::var(name).is_ok(),
            Placeholder::Csv { source, column } => vars.csv_field(source, column).is_ok(),
            Placeholder::Faker(_)
            | Placeholder::Uuid
            | Placeholder::Now
            | Placeholder::RandInt { .. } => true,
            Placeholder::Unknown { .. } => false,
        });
    if !resolved {
        return Value::Null;
    }
    if single {
        if let Some(value) = template.render_value(vars) {
            return value;
        }
    }
    Value::String(template.render(vars).into_owned())
}

/// Truthiness of a rendered value: `null`, `false`, `0`, an empty list or object are false; a
/// string is false when, trimmed, it is empty or `false`, `0` or `null` (any case); everything
/// else is true.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty()
                || s.eq_ignore_ascii_case("false")
                || s == "0"
                || s.eq_ignore_ascii_case("null"))
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Equality as conditions see it: numbers and numeric strings compare by value (`"200"`
/// equals `200`, `"1.0"` equals `1`); lists and objects compare element by element with the
/// same rule; anything else must be the same JSON value (`"true"` does not equal `true`).
pub fn loose_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            numeric_text(s).is_some_and(|parsed| numbers_equal(n, &parsed))
        }
        (Value::String(x), Value::String(y)) => {
            x == y
                || matches!((numeric_text(x), numeric_text(y)), (Some(p), Some(q)) if numbers_equal(&p, &q))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| loose_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A string that is a number (surrounding spaces allowed), as a JSON number.
fn numeric_text(text: &str) -> Option<serde_json::Number> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(n.into());
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some(n.into());
    }
    // `f64` also parses "inf" and "NaN": not numbers here.
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(serde_json::Number::from_f64)
}

fn contains(container: &Value, x: &Value) -> bool {
    match (container, x) {
        (_, Value::Null) => false,
        (Value::String(s), x) => s.contains(value_to_text(x).as_ref()),
        (Value::Array(items), x) => items.iter().any(|item| loose_equal(item, x)),
        (Value::Object(map), x) => map.contains_key(value_to_text(x).as_ref()),
        _ => false,
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
            ("yes", json!(true)),
            ("no", json!(false)),
            ("zero", json!(0)),
            ("zero_text", json!("0")),
            ("false_text", json!("False")),
            ("null_text", json!("null")),
            ("empty", json!("")),
            ("nothing", json!(null)),
            ("name", json!("alice")),
            ("code", json!(200)),
            ("code_text", json!("200")),
            ("tags", json!(["a", "b", 3])),
            ("user", json!({"id": 1})),
            ("list_empty", json!([])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        UserVariables::new(Arc::new(run))
    }

    fn eval(condition: Value) -> bool {
        Predicate::compile(0, "run_if", &condition)
            .expect("valid condition")
            .evaluate(&vars())
    }

    #[test]
    fn truth_table_of_plain_values() {
        let cases = [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!(0.5), true),
            (json!(0.0), false),
            (json!("yes"), true),
            (json!(""), false),
            (json!("false"), false),
            (json!("FALSE"), false),
            (json!("0"), false),
            (json!("null"), false),
            (json!(" 0 "), false),
            (json!("00"), true),
            (json!("${var.yes}"), true),
            (json!("${var.no}"), false),
            (json!("${var.zero}"), false),
            (json!("${var.zero_text}"), false),
            (json!("${var.false_text}"), false),
            (json!("${var.null_text}"), false),
            (json!("${var.empty}"), false),
            (json!("${var.nothing}"), false),
            (json!("${var.missing}"), false),
            (json!("${missing}"), false),
            (json!("x-${var.missing}"), false),
            (json!("x-${var.name}"), true),
            (json!("${name}"), true),
            (json!("${var.list_empty}"), false),
            (json!("${var.tags}"), true),
            (json!("${nope.x}"), false),
            (json!("${env.LD_PREDICATE_TEST_UNSET}"), false),
            (json!("$${var.missing}"), true),
            (json!({"truthy": "${var.name}"}), true),
            (json!({"truthy": "${var.missing}"}), false),
            (json!({"TRUTHY": 0}), false),
            (json!({"truthy": []}), false),
            (json!({"truthy": ["${var.missing}"]}), true),
        ];
        for (condition, expected) in cases {
            assert_eq!(eval(condition.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn equals_compares_numbers_by_value() {
        let cases = [
            (json!({"equals": ["${var.code}", 200]}), true),
            (json!({"equals": ["${var.code}", "200"]}), true),
            (json!({"equals": ["${var.code_text}", 200]}), true),
            (json!({"equals": ["${var.code_text}", 200.0]}), true),
            (json!({"equals": ["1.50", "1.5"]}), true),
            (json!({"equals": ["${var.code}", 201]}), false),
            (json!({"equals": ["${var.name}", "alice"]}), true),
            (json!({"equals": ["${var.name}", "Alice"]}), false),
            (json!({"equals": ["${var.yes}", true]}), true),
            (json!({"equals": ["${var.yes}", "true"]}), false),
            (json!({"equals": ["${var.missing}", null]}), true),
            (json!({"equals": ["${var.missing}", ""]}), false),
            (
                json!({"equals": ["${var.missing}", "${var.missing}"]}),
                true,
            ),
            (json!({"equals": ["inf", "inf"]}), true),
            (json!({"equals": ["${var.user}", {"id": "1"}]}), true),
            (json!({"equals": ["${var.tags}", ["a", "b", "3"]]}), true),
            (json!({"not_equals": ["${var.code}", 500]}), true),
            (json!({"not_equals": ["${var.code}", "200"]}), false),
            (json!({"Not_Equals": ["${var.missing}", "x"]}), true),
        ];
        for (condition, expected) in cases {
            assert_eq!(eval(condition.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn in_checks_substrings_elements_and_keys() {
        let cases = [
            (json!({"in": ["lic", "${var.name}"]}), true),
            (json!({"in": ["bob", "${var.name}"]}), false),
            (json!({"in": ["b", "${var.tags}"]}), true),
            (json!({"in": ["3", "${var.tags}"]}), true),
            (json!({"in": ["c", "${var.tags}"]}), false),
            (json!({"in": ["id", "${var.user}"]}), true),
            (json!({"in": ["name", "${var.user}"]}), false),
            (json!({"in": ["${var.name}", ["bob", "alice"]]}), true),
            (json!({"in": ["${var.name}", {"alice": 1}]}), true),
            (json!({"in": ["${var.missing}", ["${var.missing}"]]}), false),
            (json!({"in": ["x", "${var.missing}"]}), false),
            (json!({"in": ["0", "${var.code}"]}), false),
            (json!({"in": [200, "${var.code_text}"]}), true),
        ];
        for (condition, expected) in cases {
            assert_eq!(eval(condition.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn constant_conditions_are_folded() {
        let p = Predicate::compile(0, "run_if", &json!({"equals": [1, "1"]})).expect("valid");
        assert!(matches!(p.form, Form::Const(true)));
        let p = Predicate::compile(0, "run_if", &json!("${var.x}")).expect("valid");
        assert!(matches!(p.form, Form::Truthy(_)));
    }

    #[test]
    fn wrong_shapes_name_the_task_and_key() {
        let cases = [
            (json!([1, 2]), "tasks[3].skip_if", "got a list"),
            (json!(null), "tasks[3].skip_if", "got null"),
            (json!({}), "tasks[3].skip_if", "exactly one key"),
            (
                json!({"equals": [1, 2], "in": ["a", "b"]}),
                "tasks[3].skip_if",
                "exactly one key",
            ),
            (
                json!({"equals": [1]}),
                "tasks[3].skip_if.equals",
                "a list of 1",
            ),
            (
                json!({"not_equals": "x"}),
                "tasks[3].skip_if.not_equals",
                "got a string",
            ),
            (
                json!({"in": [1, 2, 3]}),
                "tasks[3].skip_if.in",
                "a list of 3",
            ),
            (json!({"in": ["a", 5]}), "tasks[3].skip_if.in", "container"),
            (
                json!({"in": ["a", null]}),
                "tasks[3].skip_if.in",
                "container",
            ),
            (
                json!({"greater": [1, 2]}),
                "tasks[3].skip_if.greater",
                "unknown condition operator",
            ),
        ];
        for (condition, location, message) in cases {
            let text = Predicate::compile(3, "skip_if", &condition)
                .expect_err("invalid condition")
                .to_string();
            assert!(
                text.starts_with(&format!("task 3 ({location}): ")),
                "{condition}: {text}"
            );
            assert!(text.contains(message), "{condition}: {text}");
        }
    }
}
