//! Parsing `thresholds`: k6's syntax, checked before the run starts.

use serde_json::{Map, Value};

use super::ThresholdError;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Latency of each request, ms.
    ResponseTime,
    /// Latency counted from the intended start (runs with a schedule), ms.
    CorrectedResponseTime,
    /// Failed requests / requests.
    FailureRate,
    /// Requests: `count`, `rate` per second.
    Requests,
    /// Iterations an arrival-rate schedule could not start: `count`, `rate` per second.
    DroppedIterations,
    /// Share of assertions that passed.
    Checks,
}

impl Metric {
    /// Every metric name.
    pub const NAMES: [&'static str; 6] = [
        "response_time",
        "corrected_response_time",
        "failure_rate",
        "requests",
        "dropped_iterations",
        "checks",
    ];

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "response_time" => Self::ResponseTime,
            "corrected_response_time" => Self::CorrectedResponseTime,
            "failure_rate" => Self::FailureRate,
            "requests" => Self::Requests,
            "dropped_iterations" => Self::DroppedIterations,
            "checks" => Self::Checks,
            _ => return None,
        })
    }

    fn aggregations(self) -> &'static str {
        match self {
            Self::ResponseTime | Self::CorrectedResponseTime => "avg, min, max, med, p(N)",
            Self::FailureRate | Self::Checks => "rate",
            Self::Requests | Self::DroppedIterations => "count, rate",
        }
    }

    fn accepts(self, aggregation: Aggregation) -> bool {
        use Aggregation as A;
        match self {
            Self::ResponseTime | Self::CorrectedResponseTime => {
                matches!(
                    aggregation,
                    A::Avg | A::Min | A::Max | A::Med | A::Percentile(_)
                )
            }
            Self::FailureRate | Self::Checks => aggregation == A::Rate,
            Self::Requests | Self::DroppedIterations => matches!(aggregation, A::Count | A::Rate),
        }
    }

    /// The filters this metric takes: request filters on request metrics, `group` on
    /// dropped iterations, none on checks.
    fn accepts_filter(self, key: &str) -> bool {
        match self {
            Self::Checks => false,
            Self::DroppedIterations => key == "group",
            _ => true,
        }
    }
}

/// Which requests a threshold looks at (`{name:X,type:GET,group:G}`); every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The request name.
    pub name: Option<String>,
    /// The request type (`GET`, `WS`, ...).
    pub request_type: Option<String>,
    /// The user group.
    pub group: Option<String>,
}

impl Filter {
    /// Whether the filter selects every request.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.request_type.is_none() && self.group.is_none()
    }
}

/// How the metric's samples are reduced to one number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Median.
    Med,
    /// Percentile, 0-100.
    Percentile(f64),
    /// A share (failure_rate, checks) or a per-second rate (requests, dropped_iterations).
    Rate,
    /// A count.
    Count,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Operator {
    /// Whether `value op bound` holds.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Self::Lt => value < bound,
            Self::Le => value <= bound,
            Self::Gt => value > bound,
            Self::Ge => value >= bound,
            Self::Eq => value == bound,
            Self::Ne => value != bound,
        }
    }
}

/// One condition: `p(95)<200`, with its abort settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The condition as written.
    pub text: String,
    /// The reduction.
    pub aggregation: Aggregation,
    /// The comparison.
    pub operator: Operator,
    /// The right-hand side.
    pub bound: f64,
    /// Stop the run when the condition fails.
    pub abort_on_fail: bool,
    /// Seconds from the start before a failure may abort the run.
    pub delay_abort_eval_s: f64,
}

/// One metric key (`response_time{name:/login}`) and its conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The key as written.
    pub key: String,
    /// The metric.
    pub metric: Metric,
    /// The requests it looks at.
    pub filter: Filter,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// Parses the whole `thresholds` object.
pub(super) fn parse_all(value: &Value) -> Result<Vec<Threshold>, ThresholdError> {
    let Value::Object(map) = value else {
        return Err(ThresholdError::new(
            "",
            format!("must be an object mapping a metric to its conditions, got {value}"),
        ));
    };
    map.iter()
        .map(|(key, conditions)| parse_one(key, conditions))
        .collect()
}

fn parse_one(key: &str, conditions: &Value) -> Result<Threshold, ThresholdError> {
    let (metric_name, filter_text) = match key.split_once('{') {
        None => (key.trim(), None),
        Some((name, rest)) => {
            let Some(inner) = rest.strip_suffix('}') else {
                return Err(ThresholdError::new(key, "a filter must end with '}'"));
            };
            (name.trim(), Some(inner))
        }
    };
    let metric = Metric::parse(metric_name).ok_or_else(|| {
        ThresholdError::new(
            key,
            format!(
                "unknown metric {metric_name:?} (known: {})",
                Metric::NAMES.join(", ")
            ),
        )
    })?;
    let mut filter = Filter::default();
    if let Some(text) = filter_text {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once(':') else {
                return Err(ThresholdError::new(
                    key,
                    format!("filter {part:?} must be key:value"),
                ));
            };
            let (name, value) = (name.trim(), value.trim().to_owned());
            if !metric.accepts_filter(name) && matches!(name, "name" | "type" | "group") {
                return Err(ThresholdError::new(
                    key,
                    format!("{metric_name} takes no {name:?} filter"),
                ));
            }
            let slot = match name {
                "name" => &mut filter.name,
                "type" => &mut filter.request_type,
                "group" => &mut filter.group,
                _ => {
                    return Err(ThresholdError::new(
                        key,
                        format!("unknown filter {name:?} (known: name, type, group)"),
                    ))
                }
            };
            if slot.replace(value).is_some() {
                return Err(ThresholdError::new(
                    key,
                    format!("filter {name:?} given twice"),
                ));
            }
        }
    }
    let items: Vec<&Value> = match conditions {
        Value::Array(items) => items.iter().collect(),
        single @ (Value::String(_) | Value::Object(_)) => vec![single],
        other => {
            return Err(ThresholdError::new(
                key,
                format!("must be a list of conditions, got {other}"),
            ))
        }
    };
    if items.is_empty() {
        return Err(ThresholdError::new(key, "has no conditions"));
    }
    let conditions = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            parse_condition(metric, item)
                .map_err(|message| ThresholdError::new(&format!("{key}[{index}]"), message))
        })
        .collect::<Result<_, _>>()?;
    Ok(Threshold {
        key: key.to_owned(),
        metric,
        filter,
        conditions,
    })
}

fn parse_condition(metric: Metric, item: &Value) -> Result<Condition, String> {
    let (text, abort_on_fail, delay) = match item {
        Value::String(text) => (text.as_str(), false, 0.0),
        Value::Object(map) => object_condition(map)?,
        other => {
            return Err(format!(
                "a condition must be a string or an object, got {other}"
            ))
        }
    };
    let (aggregation, operator, bound) = parse_expression(text)?;
    if !metric.accepts(aggregation) {
        return Err(format!(
            "{text:?}: this metric takes {}",
            metric.aggregations()
        ));
    }
    Ok(Condition {
        text: text.to_owned(),
        aggregation,
        operator,
        bound,
        abort_on_fail,
        delay_abort_eval_s: delay,
    })
}

fn object_condition(map: &Map<String, Value>) -> Result<(&str, bool, f64), String> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !["threshold", "abort_on_fail", "delay_abort_eval"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown key {unknown:?} (known: threshold, abort_on_fail, delay_abort_eval)"
        ));
    }
    let text = match map.get("threshold") {
        Some(Value::String(text)) => text.as_str(),
        Some(other) => return Err(format!("threshold must be a string, got {other}")),
        None => return Err("missing key \"threshold\"".to_owned()),
    };
    let abort = match map.get("abort_on_fail") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("abort_on_fail must be true or false, got {other}")),
    };
    let delay = match map.get("delay_abort_eval") {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(Value::String(text)) => parse_duration(text).ok_or_else(|| {
            format!("delay_abort_eval {text:?} is not a duration (10, \"10s\", \"1m\", \"500ms\")")
        })?,
        Some(other) => return Err(format!("delay_abort_eval must be seconds, got {other}")),
    };
    if !(delay.is_finite() && delay >= 0.0) {
        return Err("delay_abort_eval must be zero or more seconds".to_owned());
    }
    Ok((text, abort, delay))
}

/// `10`, `10s`, `1m`, `1m30s`, `500ms`, `1h` → seconds.
fn parse_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `p(95) < 200` → (Percentile(95), Lt, 200).
fn parse_expression(text: &str) -> Result<(Aggregation, Operator, f64), String> {
    let malformed = || {
        format!(
            "malformed condition {text:?}: expected AGGREGATION OPERATOR NUMBER, e.g. \
             \"p(95)<200\" (operators <, <=, >, >=, ==, !=)"
        )
    };
    let position = text.find(['<', '>', '=', '!']).ok_or_else(malformed)?;
    let (left, right) = text.split_at(position);
    let (operator, bound_text) = [
        ("<=", Operator::Le),
        (">=", Operator::Ge),
        ("==", Operator::Eq),
        ("!=", Operator::Ne),
        ("<", Operator::Lt),
        (">", Operator::Gt),
    ]
    .into_iter()
    .find_map(|(symbol, op)| right.strip_prefix(symbol).map(|rest| (op, rest)))
    .ok_or_else(malformed)?;
    let bound: f64 = bound_text.trim().parse().map_err(|_| malformed())?;
    if !bound.is_finite() {
        return Err(malformed());
    }
    let left = left.trim();
    let aggregation = match left {
        "avg" => Aggregation::Avg,
        "min" => Aggregation::Min,
        "max" => Aggregation::Max,
        "med" => Aggregation::Med,
        "rate" => Aggregation::Rate,
        "count" => Aggregation::Count,
        _ => {
            let inner = left
                .strip_prefix("p(")
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| {
                    format!(
                        "unknown aggregation {left:?} in {text:?} (known: avg, min, max, med, \
                         p(N), rate, count)"
                    )
                })?;
            let p: f64 = inner
                .trim()
                .parse()
                .map_err(|_| format!("percentile {inner:?} in {text:?} is not a number"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("percentile {p} in {text:?} is outside 0-100"));
            }
            Aggregation::Percentile(p)
        }
    };
    Ok((aggregation, operator, bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_parse() {
        assert_eq!(
            parse_expression("p(99.9) <= 500").expect("ok"),
            (Aggregation::Percentile(99.9), Operator::Le, 500.0)
        );
        assert_eq!(
            parse_expression("rate!=0").expect("ok"),
            (Aggregation::Rate, Operator::Ne, 0.0)
        );
        assert!(parse_expression("p(101)<1")
            .unwrap_err()
            .contains("outside 0-100"));
        assert!(parse_expression("p95<1")
            .unwrap_err()
            .contains("unknown aggregation"));
        assert!(parse_expression("avg 100")
            .unwrap_err()
            .contains("malformed"));
        assert!(parse_expression("avg<abc")
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn keys_and_filters_parse_and_errors_name_the_key() {
        let all = parse_all(&json!({
            "response_time{name:/login, type:POST}": ["p(99)<500"],
            "failure_rate": [{"threshold": "rate<0.01", "abort_on_fail": true, "delay_abort_eval": "1m"}],
        }))
        .expect("valid");
        assert_eq!(all[0].filter.name.as_deref(), Some("/login"));
        assert_eq!(all[0].filter.request_type.as_deref(), Some("POST"));
        assert!(all[1].conditions[0].abort_on_fail);
        assert_eq!(all[1].conditions[0].delay_abort_eval_s, 60.0);

        let error = parse_all(&json!({"latency": ["avg<1"]}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"latency\"") && error.contains("unknown metric"),
            "{error}"
        );
        let error = parse_all(&json!({"requests{host:x}": ["count>1"]}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown filter"), "{error}");
        let error = parse_all(&json!({"requests": ["count>1", "p(95)<1"]}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("requests[1]") && error.contains("count, rate"),
            "{error}"
        );
        let error = parse_all(&json!({"checks{name:x}": ["rate>0.9"]}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no \"name\" filter"), "{error}");
    }
}
